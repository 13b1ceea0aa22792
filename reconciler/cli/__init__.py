"""The command line: thin commands that parse, call the core, render, and map errors to exit codes.

The `cli` package is the only place that imports click. Each command lives in its own module and
registers itself on the `main` group when imported here.
"""

from __future__ import annotations

from reconciler.cli import (  # noqa: F401  (register the commands)
    activity_cmd,
    apply_cmd,
    doctor_cmd,
    inventory_cmds,
    merge_cmd,
    plan_cmd,
    reset_cmd,
    show_cmd,
    snapshot_cmd,
    suspend_cmd,
)
from reconciler.cli.app import main
from reconciler.cli.import_cmd import import_  # noqa: F401  (registers `reconciler import`)
from reconciler.cli.publish_cmd import publish  # noqa: F401  (registers `reconciler publish`)
from reconciler.cli.report_cmd import report  # noqa: F401  (registers `reconciler report`)

__all__ = ["main"]
