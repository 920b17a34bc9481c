"""Why the shipped darcy prior fails its interface-fraction check: pixel speckle in its unconditional draws.

    OMP_NUM_THREADS=1 python benchmarks/prior_speckle.py [--prior darcy64-uno] [--draws 16] [--head-steps 400]

For unconditional draws of a shipped Darcy prior and for draws of the task's law it reports, on the
thresholded coefficient (mid value 7.5):

* the interface fraction (neighbouring pixel pairs on two sides; the health check's statistic);
* the share of *isolated* pixels (all four neighbours on the other side), which the law almost never has;
* the interface fraction after a 3x3 majority filter (what is left once isolated flips are removed).

If the excess interface is all isolated flips, the majority-filtered fraction falls to the law's: the prior
has the law's large-scale geometry and adds pixel noise.  ``--head-steps N`` tests one explanation: a
zero-initialised local 3x3 convolution head on the network's output (so it starts as the shipped model),
trained N steps on the prior's own training data with the base frozen, then the same statistics again.
Results: ``benchmarks/results/prior_speckle-<prior>.md``.

``--flip PRIOR [PRIOR ...]`` runs another test instead (:func:`flip_table`): law draws with 1 % of their
pixels flipped, noised at a small sigma and denoised once.  A denoiser that keeps the flips cannot remove
speckle that arises during sampling, and it freezes in (``--name`` names the results file).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import md_table, write_results  # noqa: E402
from pdeinv.nn.pretrained import resolve  # noqa: E402
from pdeinv.priors import pretrained  # noqa: E402
from pdeinv.priors.diffusion.health import sample_prior  # noqa: E402
from pdeinv.tasks import TASKS  # noqa: E402


def speckle_stats(m: torch.Tensor, level: float = 7.5) -> dict:
    """Interface fraction, isolated-pixel share and majority-filtered interface fraction of ``m (B, 1, H, W)``."""
    b = (m > level).double()

    def interface(x):
        return float(0.5 * ((x[..., 1:, :] != x[..., :-1, :]).double().mean()
                            + (x[..., :, 1:] != x[..., :, :-1]).double().mean()))
    p = F.pad(b, (1, 1, 1, 1), mode="replicate")
    nb = p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]
    iso = ((b == 1) & (nb == 0)) | ((b == 0) & (nb == 4))
    maj = (F.conv2d(p, torch.ones(1, 1, 3, 3, dtype=b.dtype)) >= 5).double()
    return {"interface": interface(b), "isolated": float(iso.double().mean()), "interface_majority": interface(maj),
            "high_share": float(b.mean())}


class LocalHead(nn.Module):
    """``F + conv3x3(gelu(conv3x3(gelu(conv3x3([x, F, c_noise])))))`` with the last convolution zero."""

    def __init__(self, channels: int, width: int = 32):
        super().__init__()
        self.a = nn.Conv2d(2 * channels + 1, width, 3, padding=1, padding_mode="replicate")
        self.b = nn.Conv2d(width, width, 3, padding=1, padding_mode="replicate")
        self.c = nn.Conv2d(width, channels, 3, padding=1, padding_mode="replicate")
        nn.init.zeros_(self.c.weight)
        nn.init.zeros_(self.c.bias)

    def forward(self, x, out, c_noise):
        cn = c_noise.reshape(-1, 1, 1, 1).expand(x.shape[0], 1, *x.shape[2:]).to(x.dtype)
        h = F.gelu(self.b(F.gelu(self.a(torch.cat([x, out, cn], 1)))))
        return out + self.c(h)


class WithHead(nn.Module):
    def __init__(self, net, head):
        super().__init__()
        self.net, self.head = net, head

    def forward(self, x, c_noise):
        return self.head(x, self.net(x, c_noise), c_noise.reshape(-1).expand(x.shape[0]))


def _command(argv) -> str:
    """The results file's command line."""
    return f"\n\nCommand: `python benchmarks/prior_speckle.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n"


def flip_table(specs, sigmas=(0.02, 0.1, 0.3, 1.0), rate=0.01, n=8, name="prior_speckle-flip", argv=None):
    """Does one denoiser call remove speckle?  Law draws (with their solutions ``u``) get ``rate`` of their
    pixels flipped 3 <-> 12, then GRF noise at ``sigma`` and one call of ``D``; the isolated-pixel share of
    ``D``'s permeability channel is compared with the clean and the flipped fields'."""
    task = TASKS["darcy"]
    grid, problem = task.make(64)
    m = task.sample_m(grid, n, seed=4242)
    u = problem(m)
    lo, hi = (float(v) for v in task.attrs.get("binary", (3.0, 12.0)))
    flip = torch.rand(m.shape, generator=torch.Generator().manual_seed(0)) < rate
    ms = torch.where(flip, lo + hi - m, m)                  # lo <-> hi
    rows = [{"source": "law draws", "sigma": None, **speckle_stats(m.double())},
            {"source": f"law draws, {rate:.0%} of pixels flipped", "sigma": None, **speckle_stats(ms.double())}]
    for spec in specs:
        model = resolve(spec).eval()          # a shipped prior's name or a checkpoint path
        xs = torch.cat([ms, u], 1)[:, :int(model.config["channels"])].float()
        for sigma in sigmas:
            nz = model.noise.sample(xs.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float32)
            with torch.no_grad():
                d = model.decode(model.denoise(model.encode(xs) + sigma * nz, sigma))
            rows.append({"source": f"D of the flipped fields: {Path(spec).name}", "sigma": sigma,
                         **speckle_stats(d[:, :1].double())})
    md = ("# Does one denoiser call remove speckle? (Darcy)\n\n"
          f"{n} law draws with {rate:.0%} of their pixels flipped 3 <-> 12, plus the prior's own noise at sigma "
          "(normalised units), denoised once.  An exact denoiser removes the flips (the law has none); a "
          "network that never saw pixel-scale noise in training (GRF noise has little) may keep them.\n\n"
          + md_table(rows, [("source", "fields", None), ("sigma", "sigma", "{}"),
                            ("isolated", "isolated pixels", "{:.4f}"), ("interface", "interface", "{:.4f}")])
          + _command(argv))
    write_results(name, rows, md, meta={"models": list(specs), "sigmas": list(sigmas), "rate": rate})
    print(md)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flip", nargs="+", default=None, metavar="PRIOR",
                    help="instead: the flip test (flip_table) of these priors (names or checkpoints)")
    ap.add_argument("--name", default="prior_speckle-flip", help="results name of --flip")
    ap.add_argument("--prior", default="darcy64-uno")
    ap.add_argument("--draws", type=int, default=16)
    ap.add_argument("--steps", type=int, default=18, help="Heun steps of the unconditional draws")
    ap.add_argument("--head-steps", type=int, default=0)
    ap.add_argument("--data", default=None, help="training fields for --head-steps (the prior's darcy64.nc)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.flip:
        return flip_table(args.flip, name=args.name, argv=argv)
    model = pretrained(args.prior)
    task = TASKS["darcy"]
    n = int(model.config.get("train_res") or 64)
    grid, _ = task.make(n)
    rows = [{"source": f"the law (task.sample_m, {4 * args.draws} draws)",
             **speckle_stats(task.sample_m(grid, 4 * args.draws, seed=5))}]
    draws = sample_prior(model, args.draws, (n, n), num_steps=args.steps, seed=0)
    rows.append({"source": f"{args.prior} ({args.draws} draws, {args.steps} Heun steps)",
                 **speckle_stats(draws[:, :1].double())})
    if args.head_steps:
        from pdeinv.data.io import load_dataset
        from pdeinv.priors.diffusion.training import DenoisingLoss, joint_fields
        if not args.data:
            raise SystemExit("--head-steps needs --data (the prior's training fields)")
        x = joint_fields(load_dataset(args.data))[:int(model.manifest.get("n_train", 1000))]
        base = model.ema_net if model.ema_net is not None else model.net
        for p in base.parameters():
            p.requires_grad_(False)
        head = LocalHead(model.in_channels)
        model.net, model.ema_net = WithHead(base, head), None
        opt = torch.optim.Adam(head.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(0)
        loss_fn = DenoisingLoss()
        model.train()
        t0 = time.perf_counter()
        for _ in range(args.head_steps):
            loss = loss_fn(model, (x[torch.randint(0, x.shape[0], (16,), generator=g)],))
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        draws = sample_prior(model, args.draws, (n, n), num_steps=args.steps, seed=0)
        rows.append({"source": f"{args.prior} + local 3x3 head ({args.head_steps} steps, base frozen, "
                               f"{time.perf_counter() - t0:.0f} s)", **speckle_stats(draws[:, :1].double())})
    md = ("# Speckle in a diffusion prior's draws (Darcy)\n\n"
          "Thresholded at 7.5.  *interface*: share of neighbouring pixel pairs on two sides (the health check's "
          "statistic); *isolated*: pixels whose four neighbours are all on the other side; *after majority*: "
          "interface share after a 3x3 majority filter.\n\n"
          + md_table(rows, [("source", "draws", None), ("interface", "interface", "{:.4f}"),
                            ("isolated", "isolated pixels", "{:.4f}"),
                            ("interface_majority", "interface after majority", "{:.4f}"),
                            ("high_share", "share at 12", "{:.3f}")])
          + _command(argv))
    write_results(f"prior_speckle-{args.prior}", rows, md, meta=vars(args))
    print(md)


if __name__ == "__main__":
    main()
