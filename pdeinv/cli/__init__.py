"""The command line, ``pdeinv generate|train|invert|benchmark|demo``: the only part of the
package that parses arguments.  Each sub-command is a module here with
``add_arguments(parser)`` and ``main(args) -> int``; :mod:`pdeinv.cli.app` dispatches."""
from pdeinv.cli.app import main

__all__ = ["main"]
