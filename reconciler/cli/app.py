"""The `reconciler` command group."""

from __future__ import annotations

import importlib
from typing import Any

import click

from reconciler import __version__
from reconciler.planning import collector

#: Exit status of a usage error (an unknown option, a bad value): an error like any other. Click
#: exits 2, which the project's exit codes keep for "changes" (`plan --detailed-exitcode`, as in
#: Terraform), so a mistyped option would read as a plan with changes.
USAGE_ERROR = 1


#: Each command and the module that registers it on `main`, imported when the command is run
#: (or listed, by `--help`): a command does not pay for the others' imports at start-up (12 ms
#: of `apply`'s, which are the fixed cost of a small run).
COMMANDS = {
    "activity": "activity_cmd",
    "address": "inventory_cmds",
    "apply": "apply_cmd",
    "doctor": "doctor_cmd",
    "import": "import_cmd",
    "merge": "merge_cmd",
    "merge-lists": "merge_cmd",
    "plan": "plan_cmd",
    "publish": "publish_cmd",
    "report": "report_cmd",
    "reset-password": "reset_cmd",
    "show": "show_cmd",
    "snapshot": "snapshot_cmd",
    "suspend": "suspend_cmd",
    "validate": "inventory_cmds",
}


class Commands(click.Group):
    """The command group: its commands' modules imported when one is asked for (`COMMANDS`),
    and usage errors exiting USAGE_ERROR instead of click's 2."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(f"reconciler.cli.{module}")  # registers it on `main`
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand:  # "Did you mean": from every command, imported
            raise click.exceptions.NoSuchCommand(  # or not (click offers the registered ones)
                args[0], possibilities=self.list_commands(ctx), ctx=ctx
            ) from None

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:  # the group's own options, or no command at all
            error.exit_code = USAGE_ERROR  # type: ignore[misc]
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as error:  # a command's options and arguments
            error.exit_code = USAGE_ERROR  # type: ignore[misc]
            raise


@click.group(
    cls=Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="reconciler")
def main() -> None:
    """Run a government e-mail directory as code.

    Staff and agencies are declared in YAML files (one per agency); `validate` checks them
    against the schemas and the province's regulation, `plan` computes what would change in the
    directory, and `apply` carries out a saved plan.
    """
    collector.raise_thresholds()
