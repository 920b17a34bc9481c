r"""Running a benchmark: every method on identical samples, measured, resumable, optionally on Dask.

:func:`run_benchmark` runs each method of :data:`~pdeinv.benchmark.methods.METHODS` on the test
samples of one task and mode (:func:`~pdeinv.benchmark.samples.make_sample`) -- training or reusing
the models it needs -- and records per sample (:func:`run_one`) the relative L2 error
:math:`\|\hat x - x\|_2/\|x\|_2` (and the pixel error rate after thresholding at 7.5 for the Darcy
coefficient), the wall time and the peak memory (:class:`PeakMemory`).  Every finished sample is
appended to ``<out>/<task>-<mode>.jsonl`` at once (:class:`ResultLog`): a killed run resumes where
it stopped and ends with the same table.  :func:`write_run` then writes ``<task>-<mode>.json`` and
``.md`` (one :func:`summarize` record per method), and the README is regenerated
(:func:`~pdeinv.benchmark.report.write_readme`).

Per-sample methods (``parallel = True``) run on Dask when ``cfg.workers`` (a local cluster of
one-thread processes) or ``cfg.scheduler`` (a running one) is set; results are written as each
task finishes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import platform
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from pdeinv.benchmark.config import (HARNESS_VERSION, MODES, BenchConfig, atomic_write_text, get_task, progress,
                                     stable_hash)
from pdeinv.benchmark.methods import METHODS, Method, MethodUnavailable, parse_variant, resolve_method
from pdeinv.benchmark.report import figure, run_markdown, write_readme
from pdeinv.benchmark.samples import Data, Sample, make_sample
from pdeinv.benchmark.stats import band_statistics, summarize_statistics
from pdeinv.nn.base import atomic_torch_save

log = logging.getLogger(__name__)


# ============================================================================ measurement
class PeakMemory:
    """Peak memory of a block, in MiB: CUDA allocator peak on a GPU; on the CPU the peak
    resident set size above the level at entry, sampled every 5 ms by a thread."""

    def __init__(self, device: str = "cpu"):
        self.device = torch.device(device)
        self.peak_mb = 0.0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        self._stop = threading.Event()
        self._base = self._rss()
        self._peak = self._base
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _rss() -> int:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            import resource
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _poll(self):
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, self._rss())

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2 ** 20
        else:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, self._rss())
            self.peak_mb = (self._peak - self._base) / 2 ** 20
        return False


def sample_errors(cfg: BenchConfig, pred: torch.Tensor, sample: Sample) -> Dict[str, float]:
    from pdeinv.metrics import error_rate, relative_l2
    true = sample.target
    if tuple(pred.shape) != tuple(true.shape):
        raise ValueError(f"method returned a prediction of shape {tuple(pred.shape)}; expected {tuple(true.shape)}")
    if not bool(torch.isfinite(pred).all()):
        return {"rel_l2": float("nan")}
    out = {"rel_l2": float(relative_l2(pred.double(), true.double())[0])}
    if cfg.task == "darcy" and cfg.mode == "inverse":
        out["error_rate"] = float(error_rate(pred.double(), true.double(), threshold=7.5)[0])
    return out


def run_one(cfg: BenchConfig, method: Method, sample: Sample, key: str) -> Tuple[Dict[str, Any], torch.Tensor]:
    """Run ``method`` on ``sample``: the JSONL record and the prediction."""
    t0 = time.perf_counter()
    with PeakMemory(cfg.device) as mem:
        pred, info = method.predict(cfg, sample)
        if torch.device(cfg.device).type == "cuda":
            torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    pred = pred.detach().cpu().double()
    info = dict(info or {})
    rec_extra = band_statistics(cfg, sample, info.pop("samples", None), info.pop("exact_std", None), pred)
    info.update(rec_extra.pop("_scalars"))
    rec = {"method": method.name, "index": sample.index, "key": key, **sample_errors(cfg, pred, sample),
           "time_s": wall, "peak_mem_mb": mem.peak_mb, "obs_seed": sample.obs_seed, "noise_seed": sample.noise_seed,
           "n_obs": sample.observation.n_obs}
    rec.update({k: v for k, v in info.items() if isinstance(v, (int, float, str, bool, type(None)))})
    rec.update(rec_extra)
    return rec, pred


# worker-side cache of prepared methods (one per process)
_PREPARED: Dict[str, Method] = {}


def _remote_run(cfg: BenchConfig, method_name: str, key: str, index: int):
    """Dask task: rebuild sample ``index`` from the cached test set and run one method on it.

    Runs with one torch thread (workers are one-thread processes); the previous
    setting is restored, so an in-process (threaded) cluster leaves the client alone."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _remote_run_inner(cfg, method_name, key, index)
    finally:
        torch.set_num_threads(threads)


def _remote_run_inner(cfg: BenchConfig, method_name: str, key: str, index: int):
    tag = f"{method_name}:{key}"
    if tag not in _PREPARED:
        method = resolve_method(method_name)
        method.prepare(cfg, Data(cfg))
        _PREPARED[tag] = method
    m, u = Data(cfg).test()
    sample = make_sample(cfg, index, m[index:index + 1], u[index:index + 1])
    return run_one(cfg, _PREPARED[tag], sample, key)


# ============================================================================ results files
class ResultLog:
    """Append-only JSONL of per-sample records; tolerant of a truncated last line."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self) -> List[Dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        with open(self.path) as fh:
            for n, line in enumerate(fh):
                line = line.strip()
                if not line:
                    continue
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    log.warning("%s line %d is incomplete (interrupted write); ignoring it", self.path, n + 1)
        return out

    def append(self, rec: Dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() > 0:  # a killed writer may have left a partial line: start a fresh one
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    fh.write(b"\n")
            fh.write((json.dumps(rec) + "\n").encode())
            fh.flush()
            os.fsync(fh.fileno())


def git_commit() -> str:
    for cwd in (Path(__file__).resolve().parents[2], Path.cwd()):   # the checkout, then the working folder
        try:
            return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=cwd,
                                           stderr=subprocess.DEVNULL, text=True).strip()
        except Exception:
            continue
    return "unknown"


def machine_info(device: str = "cpu") -> Dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    dev = str(device)
    if dev.startswith("cuda") and torch.cuda.is_available():
        dev = f"{dev} ({torch.cuda.get_device_name(torch.device(dev))})"
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "device": dev,
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def summarize(cfg: BenchConfig, method: Method, recs: List[Dict[str, Any]], info: Dict[str, Any],
              key: str, settings: Dict[str, Any], n_test: Optional[int] = None) -> Dict[str, Any]:
    """One JSON record per method from its per-sample records (sorted by index)."""
    recs = sorted(recs, key=lambda r: r["index"])
    err = np.array([r["rel_l2"] for r in recs], dtype=float)
    out = {"method": method.name, "status": "ok" if len(recs) == (n_test or cfg.n_test) else "partial",
           "n_test": len(recs), "error": "relative L2", "error_mean": float(np.mean(err)) if len(err) else None,
           "error_std": float(np.std(err)) if len(err) else None, "errors": [float(e) for e in err],
           "indices": [int(r["index"]) for r in recs]}
    if recs and "error_rate" in recs[0]:
        er = np.array([r["error_rate"] for r in recs], dtype=float)
        out.update(error_rate_mean=float(er.mean()), error_rate_std=float(er.std()), error_rates=er.tolist())
    t = np.array([r["time_s"] for r in recs], dtype=float)
    out.update(time_per_sample_s=float(t.mean()) if len(t) else None, time_std_s=float(t.std()) if len(t) else None,
               peak_mem_mb=float(max(r["peak_mem_mb"] for r in recs)) if recs else None,
               device=cfg.device, res=cfg.res, grid=get_task(cfg.task).grid(cfg.res).to_dict(),
               n_train=info.get("n_train"), steps=info.get("steps"), train_time_s=info.get("train_time_s"),
               seed=cfg.seed, obs_fraction=cfg.obs, n_obs=recs[0]["n_obs"] if recs else None, noise=cfg.noise,
               settings=settings, key=key, commit=git_commit())
    out.update(summarize_statistics(recs))
    return out


# ============================================================================ the run
@contextlib.contextmanager
def _dask_client(cfg: BenchConfig):
    if not cfg.workers and not cfg.scheduler:
        yield None
        return
    from dask.distributed import Client, LocalCluster
    if cfg.scheduler:
        client = Client(cfg.scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(n_workers=int(cfg.workers), threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.WARNING)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def run_benchmark(cfg: BenchConfig, methods: Optional[List[str]] = None, *, _stop_after: Optional[int] = None,
                  write_readme_file: bool = True, report_only: bool = False) -> Dict[str, Any]:
    """Run ``methods`` (names in :data:`METHODS`; default all) on one task and mode; return the JSON payload.

    ``report_only``: compute nothing; write the JSON/README from the samples already recorded in the
    JSONL (e.g. of a run stopped early: its methods are marked ``partial`` with their sample count).

    ``_stop_after`` (tests): raise ``KeyboardInterrupt`` after that many newly
    computed samples, to simulate a killed run.
    """
    if cfg.mode not in MODES:
        raise ValueError(f"unknown mode {cfg.mode!r}; expected one of {MODES}")
    get_task(cfg.task)  # unknown task: clear error before any work
    if not 0 < cfg.obs <= 1:
        raise ValueError(f"--obs is the fraction of grid nodes observed, in (0, 1]; got {cfg.obs}")
    if cfg.noise < 0:
        raise ValueError(f"--noise is a relative noise level >= 0; got {cfg.noise}")
    if cfg.n_test < 1:
        raise ValueError(f"--n-test must be >= 1; got {cfg.n_test}")
    names = list(methods) if methods else list(METHODS)
    unknown = [n for n in names if parse_variant(n)[0] not in METHODS]
    if unknown:
        raise ValueError(f"unknown benchmark method(s) {unknown}; registered: {sorted(METHODS)} (a variant with "
                         "solver options: NAME[KEY=VALUE;...], e.g. fundps[tempering=schedule])")
    adapters = {n: resolve_method(n) for n in names}      # a bad variant option fails here, before any work
    out_dir = Path(cfg.out_dir)
    jsonl = ResultLog(out_dir / f"{cfg.name}.jsonl")
    data = Data(cfg)
    m_test, u_test = data.test()
    done_all = jsonl.load()
    fig_dir = cfg.cache / "bench" / cfg.name
    records, skipped = [], []
    preds_for_figure: Dict[str, torch.Tensor] = {}
    new_count = 0
    with _dask_client(cfg) as client:
        for name in names:
            method = adapters[name]
            reason = method.available(cfg) if cfg.mode in method.modes else f"not defined for {cfg.mode} mode"
            if reason is None:
                try:
                    settings = method.settings(cfg)
                    key = stable_hash({**cfg.common_key(), "method": name, "settings": settings})
                    if report_only and not any(r.get("method") == name and r.get("key") == key for r in done_all):
                        continue      # nothing recorded: nothing to report, and nothing is computed
                    t0 = time.perf_counter()
                    info = method.prepare(cfg, data) or {}
                    info.setdefault("train_time_s", time.perf_counter() - t0 if method.needs_training else 0.0)
                except MethodUnavailable as err:
                    reason = str(err)
            if reason is not None:
                log.warning("benchmark: skipping %s on %s: %s", name, cfg.name, reason)
                skipped.append({"method": name, "status": "skipped", "reason": reason})
                continue
            have = {r["index"]: r for r in done_all if r.get("method") == name and r.get("key") == key}
            n_test = (min(cfg.n_test, getattr(method, "max_test", {}).get(cfg.suite, cfg.n_test)) if cfg.cap_costly
                      else cfg.n_test)
            todo = [] if report_only else [i for i in range(n_test) if i not in have]
            log.info("%s on %s: %d samples cached, %d to run", name, cfg.name, n_test - len(todo), len(todo))
            fig_path = fig_dir / f"{name}-{key}-0.pt"

            def finish(rec, pred):
                nonlocal new_count
                jsonl.append(rec)
                have[rec["index"]] = rec
                if rec["index"] == 0:
                    atomic_torch_save(pred, fig_path)
                new_count += 1
                if _stop_after is not None and new_count >= _stop_after:
                    raise KeyboardInterrupt(f"simulated interruption after {new_count} samples")

            if client is not None and method.parallel and todo:
                from dask.distributed import as_completed
                futures = [client.submit(_remote_run, cfg, name, key, i, pure=False) for i in todo]
                for fut in progress(as_completed(futures), cfg.verbose, f"{name} {cfg.name}", len(futures)):
                    finish(*fut.result())
            else:
                for i in progress(todo, cfg.verbose, f"{name} {cfg.name}"):
                    sample = make_sample(cfg, i, m_test[i:i + 1], u_test[i:i + 1])
                    finish(*run_one(cfg, method, sample, key))
            recs = [have[i] for i in range(n_test) if i in have]
            records.append(summarize(cfg, method, recs, info, key, settings, n_test))
            if fig_path.exists():
                preds_for_figure[name] = torch.load(fig_path, weights_only=True)
    payload = write_run(cfg, records, skipped)
    if cfg.figures and preds_for_figure:
        try:
            sample0 = make_sample(cfg, 0, m_test[:1], u_test[:1])
            fig_out = out_dir / "figures" / f"{cfg.name}.png"
            try:   # the package's plotting helper (true / each method / error / sensors)
                from pdeinv.plot import compare
                import matplotlib.pyplot as plt
                fig_out.parent.mkdir(parents=True, exist_ok=True)
                plt.close(compare(true=sample0.target, recovered=preds_for_figure, sensors=sample0.observation,
                                  path=fig_out, title=f"{cfg.name}, test sample 0"))
            except ImportError:
                figure(sample0, preds_for_figure, fig_out, title=cfg.name)
        except Exception as err:  # a figure must never lose the numbers
            log.warning("figure for %s failed: %s", cfg.name, err)
    if write_readme_file:
        write_readme(out_dir)
    return payload


def write_run(cfg: BenchConfig, records: List[Dict[str, Any]], skipped: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Write ``<task>-<mode>.json`` / ``.md``, keeping records of other methods from earlier runs of the same setup."""
    out_dir = Path(cfg.out_dir)
    path = out_dir / f"{cfg.name}.json"
    common = stable_hash(cfg.common_key())
    keep = []
    if path.exists():
        try:
            old = json.loads(path.read_text())
            if old.get("common_key") == common:
                ran = {r["method"] for r in records} | {s["method"] for s in skipped}
                keep = [r for r in old.get("records", []) if r["method"] not in ran]
        except (json.JSONDecodeError, KeyError):
            pass
    order = list(METHODS)
    rank = lambda name: (order.index(parse_variant(name)[0]) if parse_variant(name)[0] in order else 99, name)
    all_recs = sorted(keep + records, key=lambda r: rank(r["method"]))
    payload = {"benchmark": cfg.name, "harness": HARNESS_VERSION, "common_key": common,
               "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("verbose",)},
               "machine": machine_info(cfg.device), "commit": git_commit(), "records": all_recs,
               "skipped": skipped}
    atomic_write_text(path, json.dumps(payload, indent=1, default=str))
    atomic_write_text(out_dir / f"{cfg.name}.md", run_markdown(payload))
    return payload


