"""``pdeinv models``: the trained networks that ship with pdeinv (:mod:`pdeinv.nn.pretrained`).

    pdeinv models                       # table: name, kind, task, grid, steps, validation, methods
    pdeinv models info darcy64-fno      # the manifest entry (JSON): command, data, commit, steps, ...
    pdeinv models ship run.pt --name darcy64-fno --kind surrogate --methods surrogate-map \\
        --command "pdeinv train fno ..." --data "pdeinv generate darcy ..." --validation '{"rel_l2": 0.02}'

A shipped model is used by name wherever a checkpoint is taken: ``pdeinv invert ... --model
darcy64-fno``, ``pdeinv train ... --init darcy64-fno`` (warm start).
"""
from __future__ import annotations

import argparse
import json
import sys

DESCRIPTION = __doc__


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", default="list", choices=["list", "info", "ship"])
    parser.add_argument("target", nargs="?", default=None, help="info: a model name; ship: the checkpoint to ship")
    parser.add_argument("--name", help="ship: the name to ship it under, e.g. darcy64-fno")
    parser.add_argument("--kind", choices=["surrogate", "inverse", "prior"], help="ship: what the network is")
    parser.add_argument("--methods", default="", help="ship: comma-separated solver methods it serves")
    parser.add_argument("--default-for", default="", help="ship: methods for which it is the task's default model")
    parser.add_argument("--train-command", dest="train_command", default=None,
                        help="ship: the pdeinv train command")
    parser.add_argument("--data-command", dest="data_command", action="append", default=[],
                        help="ship: a pdeinv generate command of its data (repeatable)")
    parser.add_argument("--validation", default="{}", help="ship: held-out figures (JSON)")
    parser.add_argument("--health", default=None, help="ship: prior health figures (JSON)")
    parser.add_argument("--learning-curve", default=None, help="ship: the learning-curve file")
    parser.add_argument("--fixed-grid", action="store_true", help="ship: the network serves only its grid")
    parser.add_argument("--notes", default="")
    parser.add_argument("--train-samples", dest="train_samples", default=None, metavar="SEED:START:STOP",
                        help="ship: its training fields are samples [START, STOP) of `pdeinv generate TASK --seed "
                             "SEED` (the harness then refuses to test it on them)")
    parser.add_argument("--steps-per-epoch", type=int, default=None,
                        help="ship: optimiser steps per epoch, for checkpoints that do not record it")
    parser.add_argument("--overwrite", action="store_true", help="ship: replace an existing model of that name")
    parser.add_argument("--models-dir", default=None, help=argparse.SUPPRESS)


def _fmt_val(v) -> str:
    if not isinstance(v, dict):
        return ""
    return ", ".join(f"{k} {x:.4g}" if isinstance(x, float) else f"{k} {x}" for k, x in v.items()
                     if isinstance(x, (int, float, str)))


def main(args) -> int:
    from pdeinv.nn import pretrained
    if args.action == "list":
        names = pretrained.available(models_dir=args.models_dir)
        if not names:
            print("no trained models ship with this installation")
            return 0
        print(f"{'name':<20} {'kind':<9} {'class':<12} {'task':<10} {'res':>4} {'steps':>7} {'MB':>5}  "
              f"validation; methods")
        for n in names:
            e = pretrained.info(n, args.models_dir)
            print(f"{n:<20} {e.get('kind', ''):<9} {e.get('class', ''):<12} {str(e.get('task')):<10} "
                  f"{str(e.get('res')):>4} {e.get('steps', 0):>7} {e.get('bytes', 0) / 1e6:>5.1f}  "
                  f"{_fmt_val(e.get('validation'))}; {', '.join(e.get('methods', []))}")
        return 0
    if args.action == "info":
        if not args.target:
            raise ValueError("pdeinv models info NAME: give a model name (see `pdeinv models`)")
        json.dump(pretrained.info(args.target, args.models_dir), sys.stdout, indent=1, sort_keys=True)
        print()
        return 0
    # ship
    missing = [f for f, v in (("CKPT", args.target), ("--name", args.name), ("--kind", args.kind),
                              ("--train-command", args.train_command)) if not v]
    if missing:
        raise ValueError(f"pdeinv models ship needs {', '.join(missing)}")
    try:
        validation = json.loads(args.validation)
        health = json.loads(args.health) if args.health else None
    except json.JSONDecodeError as err:
        raise ValueError(f"--validation/--health must be JSON: {err}") from None
    e = pretrained.ship(args.target, args.name, kind=args.kind,
                        methods=[m for m in args.methods.split(",") if m], command=args.train_command,
                        data=args.data_command, validation=validation, health=health,
                        learning_curve=args.learning_curve, fixed_grid=args.fixed_grid,
                        default_for_methods=[m for m in args.default_for.split(",") if m], notes=args.notes,
                        overwrite=args.overwrite, steps_per_epoch=args.steps_per_epoch,
                        train_samples=args.train_samples, models_dir=args.models_dir)
    print(f"shipped {e['name']}: {e['class']} on {e['task']} at res {e['res']}, {e['steps']} steps, "
          f"{e['bytes'] / 1e6:.1f} MB")
    return 0
