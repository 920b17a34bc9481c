"""Command line: ``pdeinv generate|train|invert|models|benchmark|demo``.

Each sub-command lives in its own module, which provides
``add_arguments(parser)`` and ``main(args) -> int``; only the module of the
sub-command being run is imported, so ``pdeinv --help`` stays fast (no torch).

What every sub-command gets from the dispatcher here:

* a user error -- a bad argument, an out-of-range value (:func:`pdeinv.cli._checks.check_ranges`),
  a device this machine does not have (:func:`~pdeinv.cli._checks.check_device`, checked before
  any work), a missing, corrupt or mismatched file -- is **one line on stderr and exit code 2**,
  never a traceback (``--log-level DEBUG`` logs the traceback);
* Ctrl-C is one line saying what was saved and how to go on (the sub-command's
  ``interrupted(args)``, when it has one), exit code 130.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

SUBCOMMANDS = {
    "generate": ("pdeinv.cli.generate", "generate a dataset with a simulator (netCDF/zarr)"),
    "train": ("pdeinv.cli.train", "train a surrogate, inverse operator or denoiser"),
    "invert": ("pdeinv.cli.invert", "recover an unknown from observations (netCDF or mesh file)"),
    "models": ("pdeinv.cli.models", "the trained networks shipped with pdeinv (list, info, ship)"),
    "benchmark": ("pdeinv.cli.benchmark", "run methods side by side on a benchmark task"),
    "demo": ("pdeinv.cli.demo", "a real inversion on a laptop CPU: Darcy at 64² in under a minute (--task ns, mcmc, "
                                "pinn: a few minutes)"),
}

#: what Ctrl-C says for a sub-command whose module has no ``interrupted(args)``
INTERRUPTED = {
    "benchmark": "the samples finished so far are recorded in the results folder's .jsonl logs; run the same "
                 "command again to resume from them",
}

#: errors that are the user's (a bad value, a missing or unreadable file): one line, exit code 2
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, RuntimeError, OSError)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (exit code 2), naming the help."""

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """``--device``, ``--seed``, ``--quiet``, ``--log-level``: every sub-command has them."""
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu); "
                                                   "checked before any work starts")
    p.add_argument("--seed", type=int, default=0, help="random seed, >= 0 (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = Parser(prog="pdeinv", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, (mod, help_) in SUBCOMMANDS.items():
        module = importlib.import_module(mod) if name == only else None
        desc = getattr(module, "DESCRIPTION", None) or help_
        sub_p = sub.add_parser(name, help=help_, description=desc,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        if module is not None:
            module.add_arguments(sub_p)
            add_common_arguments(sub_p)
    return parser


def _quiet_progress_when_piped() -> None:
    """Progress bars redraw with ``\\r``; into a log file or a pipe that is thousands of updates on
    one line.  When stderr is not a terminal, bars update at most every 30 s (tqdm's own
    ``TQDM_MININTERVAL`` default, which the user's environment may set otherwise)."""
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    if not tty:
        os.environ.setdefault("TQDM_MININTERVAL", "30")


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
    _quiet_progress_when_piped()
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    prefix = f"pdeinv {args.command}: error:"
    try:
        from pdeinv.cli._checks import check_benchmark_args
        check_benchmark_args(args)          # ranges and --device, for every sub-command, before any work
        return int(module.main(args) or 0)
    except KeyboardInterrupt:
        note = getattr(module, "interrupted", None)
        msg = note(args) if note is not None else INTERRUPTED.get(args.command, "nothing more was written")
        print(f"pdeinv {args.command}: interrupted; {msg}", file=sys.stderr)
        return 130
    except USER_ERRORS as err:  # user errors: one clear line, no traceback
        logging.getLogger("pdeinv").debug("error", exc_info=True)
        text = str(err).strip() or type(err).__name__
        if isinstance(err, OSError) and not isinstance(err, FileNotFoundError) and err.filename:
            text = f"{err.strerror or err}: {err.filename!r}"
        print(f"{prefix} {' '.join(text.split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
