"""Run the benchmark harness (``pdeinv benchmark``) from a checkout.

    python benchmarks/run.py [--quick | --full] [any `pdeinv benchmark` option]

``--quick`` (the default) runs ``--suite quick``: darcy, poisson and helmholtz,
inverse and forward, at 64² with map, fno, deeponet and mean (name the costlier
methods with ``--methods``; see ``benchmarks/bench_diffusion.py`` for the
diffusion headline); ``--full`` is the published-scale GPU suite with every method.
Results go to ``benchmarks/results/<task>-<mode>.json`` + ``.md`` and
``benchmarks/results/README.md`` is regenerated.  See docs/benchmarks.md.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pdeinv.cli.app import main  # noqa: E402

if __name__ == "__main__":
    argv = list(sys.argv[1:])
    suite = "full" if "--full" in argv else "quick"
    argv = [a for a in argv if a not in ("--quick", "--full")]
    if "--suite" not in argv:
        argv += ["--suite", suite]
    if "--out" not in argv:
        argv += ["--out", str(ROOT / "benchmarks" / "results")]
    sys.exit(main(["benchmark", *argv]))
