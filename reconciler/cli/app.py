"""The `reconciler` command group."""

from __future__ import annotations

from typing import Any

import click

from reconciler import __version__
from reconciler.planning import collector

#: Exit status of a usage error (an unknown option, a bad value): an error like any other. Click
#: exits 2, which the project's exit codes keep for "changes" (`plan --detailed-exitcode`, as in
#: Terraform), so a mistyped option would read as a plan with changes.
USAGE_ERROR = 1


class Commands(click.Group):
    """The command group, with usage errors exiting USAGE_ERROR instead of click's 2."""

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
