"""``pdeinv generate TASK --n N --res R -o FILE``: a dataset from a task's simulator (netCDF or zarr).

With ``--recipe datasets/NAME.toml`` the task, resolution, seed and split come from the
recipe.  Generation is resumable (per-chunk part files) and runs on Dask with ``--workers``.
"""
from __future__ import annotations

import logging

from pdeinv.data.generate import generate, load_recipe, split_range

log = logging.getLogger(__name__)


def add_arguments(parser) -> None:
    from pdeinv.tasks import TASKS
    parser.add_argument("task", nargs="?", help=f"task to generate: one of {sorted(TASKS)} (or give --recipe)")
    parser.add_argument("--n", type=int, default=None, help="number of samples (default: the recipe split's size)")
    parser.add_argument("--res", type=int, default=None, help="grid resolution (default: recipe or task default)")
    parser.add_argument("-o", "--out", required=True,
                        help="output file: .nc (netCDF4) or .zarr (zarr store, for large datasets); an existing "
                             "one needs --overwrite")
    parser.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    parser.add_argument("--recipe", default=None, help="dataset recipe, e.g. datasets/darcy.toml")
    parser.add_argument("--split", default="train", choices=("train", "test"),
                        help="with --recipe: which split to generate (default: train)")
    parser.add_argument("--batch-size", type=int, default=None, help="samples per chunk, >= 1 (default 32)")
    parser.add_argument("--workers", type=int, default=None, help="run on a local Dask cluster of N >= 1 processes")
    parser.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler (tcp://...)")
    parser.add_argument("--keep-parts", action="store_true", help="keep the per-chunk part files")


def interrupted(args) -> str:
    """What ``pdeinv generate`` says on Ctrl-C."""
    from pathlib import Path
    parts = Path(args.out).parent / (Path(args.out).name + ".parts")
    if parts.exists():
        return (f"the finished chunks are in {parts}; run the same command again to resume (only the missing "
                "chunks are computed)")
    return "nothing was written; run the same command again"


def main(args) -> int:
    from pdeinv.cli._checks import check_output
    check_output(args.out, inputs=[args.recipe], overwrite=args.overwrite, what="dataset")
    task, res, n, seed, start = args.task, args.res, args.n, args.seed, 0
    batch_size = args.batch_size
    problem_kwargs = None
    if args.recipe:
        rec = load_recipe(args.recipe)
        if task is not None and task != rec["task"]:
            raise ValueError(f"the recipe is for task {rec['task']!r}, not {task!r}")
        task = rec["task"]
        res = res or rec["res"]
        start, n_split = split_range(rec, args.split)
        n = n or n_split
        if seed not in (0, rec["seed"]):
            log.warning("--seed %d overrides the recipe's seed %d", seed, rec["seed"])
        else:
            seed = rec["seed"]
        batch_size = batch_size or rec.get("batch_size")
        problem_kwargs = rec.get("problem")
    if task is None:
        raise ValueError("give a task (e.g. 'pdeinv generate darcy --n 100 -o darcy.nc') or --recipe")
    if n is None:
        raise ValueError("give --n (number of samples) or --recipe")
    ds = generate(task, n, res, seed, device=args.device, batch_size=batch_size or 32, verbose=not args.quiet,
                  workers=args.workers, scheduler=args.scheduler, out=args.out, start=start,
                  problem_kwargs=problem_kwargs, keep_parts=args.keep_parts)
    log.info("wrote %s: %d samples of %s, m %s, u %s", args.out, ds.sizes["sample"], ds.attrs["task"],
             dict(ds["m"].sizes), dict(ds["u"].sizes))
    return 0
