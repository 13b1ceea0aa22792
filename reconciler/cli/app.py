"""The `reconciler` command group."""

from __future__ import annotations

import click

from reconciler import __version__
from reconciler.planning import collector


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="reconciler")
def main() -> None:
    """Run a government e-mail directory as code.

    Staff and agencies are declared in YAML files (one per agency); `validate` checks them
    against the schemas and the province's regulation, `plan` computes what would change in the
    directory, and `apply` carries out a saved plan.
    """
    collector.raise_thresholds()
