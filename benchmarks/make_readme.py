"""Regenerate ``benchmarks/results/README.md`` from the result files.

The README holds the harness table (every ``<task>-<mode>.json`` written by
``pdeinv benchmark``, with the published numbers of DiffusionPDE / FunDPS
beside ours) followed by every other ``benchmarks/results/*.md`` written by
the per-method benchmark scripts, one section each.

    python benchmarks/make_readme.py [--results benchmarks/results]
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pdeinv.benchmark import write_readme  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default=str(Path(__file__).resolve().parent / "results"),
                   help="results folder (default: benchmarks/results next to this script)")
    args = p.parse_args(argv)
    path = write_readme(args.results)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
