"""Errors the reconciler reports to people. Each carries a message in plain words; the CLI prints it
and exits 1 without a traceback."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class ReconcilerError(Exception):
    """Base of every error meant for the user."""


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One problem in an inventory, reported as `FILE:LINE: message`."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class InventoryError(ReconcilerError):
    """The inventory is invalid; carries every problem found, sorted by file and line. The
    loader also hands over what it could read without a problem (`partial`, a
    `model.Inventory`, typed loosely as in UnsafePlan), so that the checks that come after it
    still run and one run reports every problem."""

    def __init__(self, problems: Iterable[Problem], partial: Any = None) -> None:
        self.problems = tuple(sorted(set(problems)))
        self.partial = partial
        super().__init__("\n".join(str(p) for p in self.problems))


class NamingError(ReconcilerError):
    """A name that the regulation cannot turn into an address."""


class DirectoryError(ReconcilerError):
    """The directory could not be reached or refused an operation."""


class Refused(DirectoryError):
    """The server answered a write with a refusal: nothing was written (unlike a connection lost
    while the write was on its way, after which nobody knows)."""


class EntryExists(Refused):
    """An add hit an existing DN."""


class NoSuchEntry(Refused):
    """The entry is not there."""


class StaleEntry(Refused):
    """A compare-and-swap modify found other values than the ones it expected: nothing changed."""


class UnsafePlan(ReconcilerError):
    """The plan goes past a safety limit (deletes, suspensions). `plan` is the refused
    `model.Plan`, so that it can be shown before the refusal (typed loosely: `model` imports this
    module, and this one imports nothing of ours)."""

    def __init__(self, message: str, plan: Any) -> None:
        self.plan = plan
        super().__init__(message)


class StalePlan(ReconcilerError):
    """The directory changed since the plan was made."""


class LockHeld(ReconcilerError):
    """Another apply holds the directory's lock."""
