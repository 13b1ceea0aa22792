"""The provinces' regulations: address format, collision rule, password rule, time rules, clauses.

One module per regulation; each holds one frozen `Regulation` instance (`base`). Pure: no I/O.

    >>> from reconciler.rules import regulations
    >>> regulations.get("hagiang-2024").code
    'HG-2024'
"""

from __future__ import annotations

from reconciler.errors import ReconcilerError
from reconciler.rules.regulations import hagiang_2024, quangnam_2020
from reconciler.rules.regulations.base import Regulation, TimeRule, check_abbr

_TABLE: dict[str, Regulation] = {
    quangnam_2020.REGULATION.id: quangnam_2020.REGULATION,
    hagiang_2024.REGULATION.id: hagiang_2024.REGULATION,
}
#: The regulation ids an inventory's `directory.yaml` may name.
KNOWN: tuple[str, ...] = tuple(_TABLE)


def get(regulation_id: str) -> Regulation:
    """The regulation called `regulation_id` (one of `KNOWN`)."""
    try:
        return _TABLE[regulation_id]
    except KeyError:
        raise ReconcilerError(
            f"unknown regulation {regulation_id!r}: known are {', '.join(KNOWN)}"
        ) from None


def cite(clause: str, default: Regulation) -> str:
    """`clause` in Vietnamese, by the regulation whose code it starts with (a merged directory
    may hold mailboxes of a former territory's regulation), else by `default`."""
    for regulation in _TABLE.values():
        if clause.startswith(regulation.code + " "):
            return regulation.in_vietnamese(clause)
    return default.in_vietnamese(clause)


def for_domain(domain: str) -> Regulation | None:
    """The built-in regulation decided for the mail domain `domain`, if any."""
    for regulation in _TABLE.values():
        if regulation.domain == domain.lower():
            return regulation
    return None


__all__ = ["KNOWN", "Regulation", "TimeRule", "check_abbr", "for_domain", "get"]
