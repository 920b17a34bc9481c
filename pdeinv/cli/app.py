"""Command line: ``pdeinv generate|train|invert|benchmark|demo``.

Each sub-command lives in its own module, which provides
``add_arguments(parser)`` and ``main(args) -> int``; only the module of the
sub-command being run is imported, so ``pdeinv --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

SUBCOMMANDS = {
    "generate": ("pdeinv.cli.generate", "generate a dataset with a simulator (netCDF/zarr)"),
    "train": ("pdeinv.cli.train", "train a surrogate, inverse operator or denoiser"),
    "invert": ("pdeinv.cli.invert", "recover an unknown from observations (netCDF or mesh file)"),
    "benchmark": ("pdeinv.cli.benchmark", "run methods side by side on a benchmark task"),
    "demo": ("pdeinv.cli.demo", "a real inversion in a couple of minutes on a laptop CPU"),
}


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """``--device``, ``--seed``, ``--quiet``, ``--log-level``: every sub-command has them."""
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pdeinv", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (mod, help_) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        if name == only:
            module = importlib.import_module(mod)
            module.add_arguments(sp)
            add_common_arguments(sp)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    parser = _parser(cmd)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    try:
        return int(module.main(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError) as err:  # user errors: one clear line, no traceback
        logging.getLogger("pdeinv").debug("error", exc_info=True)
        print(f"pdeinv {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
