"""The ``nb2pipe`` command: argv -> one library call per command.

:mod:`.main` builds the parser from each command group's ``add_commands`` and is the only
place that prints errors and picks exit codes.
"""

from nb2pipe.cli.main import build_parser, main, run

__all__ = ["build_parser", "main", "run"]
