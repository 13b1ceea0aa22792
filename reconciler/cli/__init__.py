"""The command line: thin commands that parse, call the core, render, and map errors to exit codes.

The `cli` package is the only place that imports click. Each command lives in its own module and
registers itself on the `main` group when imported; the group imports a command's module when
that command is asked for (`app.COMMANDS`), so that a command starts without the others' imports.
"""

from __future__ import annotations

from reconciler.cli.app import main

__all__ = ["main"]
