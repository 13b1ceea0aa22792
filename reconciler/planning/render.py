"""Plans for people: text for a terminal, markdown for a pull-request comment. Pure functions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence

from reconciler.attributes import (
    FORMER_ADDRESS,
    ISSUED_AT,
    LAST_LOGIN,
    MUST_CHANGE,
    PASSWORD,
    RESTORED_AT,
    SUSPENDED_AT,
)
from reconciler.inventory.gitdiff import InventoryChanges, Kind, StaffChange
from reconciler.model import Action, Change, Deferred, Operation, Plan, Value
from reconciler.text import markdown_code, markdown_text

#: The text shown in a pull-request comment stays under GitHub's 65,536-character limit.
MARKDOWN_BUDGET = 60_000
#: A group longer than this is folded in <details> in markdown.
FOLD_AFTER = 20

_VERBS = {
    Action.CREATE: "create",
    Action.RENAME: "rename",
    Action.UPDATE: "update",
    Action.SUSPEND: "suspend",
    Action.RESTORE: "restore",
    Action.DELETE: "delete",
}
_COLOURS = {
    Action.CREATE: "32",
    Action.RENAME: "36",
    Action.UPDATE: "33",
    Action.SUSPEND: "35",
    Action.RESTORE: "34",
    Action.DELETE: "31",
}
_SUMMARY_ORDER = (
    Action.CREATE,
    Action.RENAME,
    Action.UPDATE,
    Action.SUSPEND,
    Action.RESTORE,
    Action.DELETE,
)
#: Internal attributes are not shown as changes; the reason already says what they mean.
#: The time a password is issued goes with "password: issued", which says it.
_HIDDEN = frozenset(
    {"displayName", "govMailKind", "govMailAgency", "govMailUnit", "uid", "mail", ISSUED_AT}
)


def summary(plan: Plan) -> str:
    counts = ", ".join(f"{plan.count(a)} to {_VERBS[a]}" for a in _SUMMARY_ORDER)
    return f"Plan: {counts}."


#: How a value apply fills in reads in a plan.
DEFERRED_TEXT = {
    Deferred.PASSWORD: "issued (credentials file)",
    Deferred.APPLY_TIME: "time of apply",
    Deferred.CARRIED: "carried from the source entry (never shown)",
}
#: What a create moved from a former province's directory also shows: what it carries over.
_CARRIED_SHOWN = frozenset({SUSPENDED_AT, LAST_LOGIN, "govMailAlias"})


def _values(values: Sequence[Value]) -> str:
    shown = [DEFERRED_TEXT[v] if isinstance(v, Deferred) else v for v in values]
    return ", ".join(shown) if shown else "(none)"


def _shown(op: Operation) -> list[Change]:
    """The changes a reviewer reads below an operation: all but the internal ones for an update
    or a rename; for the other actions (whose reason says the rest), what apply decides as it
    writes (an issued password, a time), whether the password must be changed, and the aliases a
    new mailbox receives mail for (an address given is never hidden from review)."""
    if op.action in (Action.UPDATE, Action.RENAME):
        return [c for c in op.changes if c.attr not in _HIDDEN]
    if op.action is Action.DELETE:  # what its tombstone keeps
        return [c for c in op.attributes if c.attr == FORMER_ADDRESS]
    shown = [
        c
        for c in (*op.attributes, *op.changes)
        if (
            c.deferred
            or c.attr in (MUST_CHANGE, "govMailAlias")
            or (op.source and c.attr in _CARRIED_SHOWN)
        )
        and c.attr not in _HIDDEN
    ]
    return sorted(shown, key=lambda c: _APPLY_ORDER.get(c.attr, len(_APPLY_ORDER)))


_APPLY_ORDER = {
    attr: i for i, attr in enumerate((PASSWORD, MUST_CHANGE, SUSPENDED_AT, RESTORED_AT))
}


def _alias_change(before: Sequence[str], after: Sequence[str]) -> str:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    parts = [f"+{a}" for a in added] + [f"-{r}" for r in removed]
    return " ".join(parts)


#: What each attribute is called in a plan shown to people.
LABELS = {
    "cn": "name",
    "sn": "family name",
    "givenName": "given name",
    "title": "title",
    "o": "agency",
    "ou": "unit",
    "govMailQuota": "quota",
    "govMailQuotaDecision": "quota decision",
    "govMailManager": "manager",
    "govMailAlias": "aliases",
    "objectClass": "object classes",
    "employeeNumber": "id",
    PASSWORD: "password",
    SUSPENDED_AT: "suspended at",
    RESTORED_AT: "restored at",
    FORMER_ADDRESS: "kept from reissue",
    LAST_LOGIN: "last login (carried)",
}


def quota(value: str) -> str:
    """Bytes as the GiB/MiB people write in the inventory (5368709120 → 5 GB)."""
    try:
        n = int(value)
    except ValueError:
        return value
    for unit, size in (("GB", 1024**3), ("MB", 1024**2)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def _change_text(change: Change) -> str:
    label = LABELS.get(change.attr, change.attr)
    if change.deferred:
        return f"{label}: {_values(change.after)}"
    before, after = change.before, tuple(v for v in change.after if isinstance(v, str))
    if change.attr == "govMailAlias":
        return f"{label}: {_alias_change(before, after)}"
    if change.attr == FORMER_ADDRESS:
        return f"{label}: {_values(after)} (in ou=history; not reissued to anyone else)"
    if change.attr == MUST_CHANGE and after == ("TRUE",):
        return f"{label}: TRUE (must change at first login)"
    if change.attr == "govMailQuota":
        before, after = tuple(map(quota, before)), tuple(map(quota, after))
    return f"{label}: {_values(before)} → {_values(after)}"


def _cited(op: Operation) -> str:
    """The operation's clause, and the address rule beside it for a create or a rename."""
    return f"{op.clause} (address: {op.address_clause})" if op.address_clause else op.clause


def _headline(op: Operation) -> str:
    who = f"{op.name} ({op.id})" if op.name else op.id
    if op.action is Action.RENAME:
        return f"{op.previous} → {op.address}  {who}"
    return f"{op.address}  {who}"


def text(
    plan: Plan,
    *,
    color: bool = False,
    show_unmanaged: bool = False,
    changes: InventoryChanges | None = None,
) -> str:
    """The plan for a terminal: one line per operation, a symbol per action, changes below."""
    lines = text_lines(plan, color=color, show_unmanaged=show_unmanaged, changes=changes)
    return "\n".join(lines) + "\n"


def text_lines(
    plan: Plan,
    *,
    color: bool = False,
    show_unmanaged: bool = False,
    changes: InventoryChanges | None = None,
) -> Iterator[str]:
    """`text`, a line at a time (without their ends): a plan of 100,000 changes is printed
    without being made whole first."""

    def paint(code: str, s: str) -> str:
        return f"\x1b[{code}m{s}\x1b[0m" if color else s

    yield f"Directory {plan.directory_url} — {plan.domain} ({plan.regulation})"
    if plan.source_url:
        yield f"Merging in {plan.source_url} ({plan.source_base_dn}), only read"
    for dn in plan.containers:
        yield f"  {paint('32', '+')} container {dn}"
    told = _told(plan)
    for op in plan.operations:
        head = paint(_COLOURS[op.action], f"{op.action.symbol} {_VERBS[op.action]:<7}")
        yield f"  {head} {_headline(op)}"
        yield f"      {_cited(op)}: {op.reason}"
        for change in _shown(op):
            yield f"      {_change_text(change)}"
        if at := told(op):
            yield f"      the owner is told at {at} too (external_email)"
    for r in plan.refused:
        yield f"  {paint('31', '✗ refused')} {r.name} ({r.id})"
        yield f"      {r.clause}: {r.reason}"
    for note in plan.notes:
        yield f"  note: {note}"
    if plan.unmanaged:
        yield (
            f"  {_unmanaged(len(plan.unmanaged))}"
            + ("" if show_unmanaged else " (list them with --show-unmanaged)")
        )
        if show_unmanaged:
            yield from (f"    {dn}" for dn in plan.unmanaged)
    if plan.empty and not plan.refused:
        yield "No changes. The directory matches the inventory and the regulation."
    elif plan.empty:
        yield "No changes to apply; the records refused above need the agency's answer."
    else:
        yield summary(plan)
    if changes is not None:
        yield from inventory_changes_text(changes)


def _unmanaged(n: int) -> str:
    if n == 1:
        return "1 entry without govMailAccount is not managed and was left alone"
    return f"{n} entries without govMailAccount are not managed and were left alone"


def _told(plan: Plan) -> Callable[[Operation], str]:
    """The external address (`external_email`) at which an operation's owner is told of it: a
    suspension's, when the plan names its owner; "" for any other."""
    told = {(o.id, o.agency): o.to for o in plan.owners}
    return lambda op: told.get((op.id, op.agency), "") if op.action is Action.SUSPEND else ""


def _md(s: str) -> str:
    """Text from the inventory or the directory as literal markdown (`text.markdown_text`): a
    title cannot make a link, an image, emphasis or a fake digest line in a PR comment."""
    return markdown_text(s)


def _md_line(op: Operation, told: str = "") -> str:
    """One operation as a list item; `told`: the external address its owner is told at (a
    suspension's notice), shown so that the reviewers see where it goes."""
    who = f"{_md(op.name)} ({markdown_code(op.id)})" if op.name else markdown_code(op.id)
    what = markdown_code(op.address)
    if op.action is Action.RENAME:
        what = f"{markdown_code(op.previous)} → {what}"
    # the symbol escaped: a create's `+` right after the item's `-` would open a nested list
    line = (
        f"- {_md(op.action.symbol)} **{_VERBS[op.action]}** {what} {who} — {_md(_cited(op))}: "
        f"{_md(op.reason)}"
    )
    shown = _shown(op)
    if shown:
        line += "<br>" + "; ".join(_md(_change_text(c)) for c in shown)
    if told:
        line += f"<br>the owner is told at {markdown_code(told)} too (`external_email`)"
    return line


def _agency_file(agency: str) -> str:
    return f"agencies/{agency}.yaml" if agency else ""


def _file_lines(plan: Plan, changes: InventoryChanges | None) -> list[str]:
    """One line per agency file with operations (or, with --base-ref, with edits), so that the
    owner of each `agencies/<id>.yaml` (its CODEOWNER) sees their part at a glance."""
    ops: dict[str, list[Operation]] = defaultdict(list)
    for op in plan.operations:
        ops[_agency_file(op.agency)].append(op)
    edited = {f.file: f for f in changes.files} if changes is not None else {}
    lines = []
    for rel in sorted(set(ops) | {f for f in edited if f.startswith("agencies/")}, key=str):
        mine = ops.get(rel, [])
        counts = ", ".join(
            f"{n} {_VERBS[a]}" for a in _SUMMARY_ORDER if (n := sum(op.action is a for op in mine))
        )
        what = f"{len(mine)} operation{'s' if len(mine) != 1 else ''}" + (
            f" ({counts})" if counts else ""
        )
        if rel in edited:
            f = edited[rel]
            what += f"; file {f.status}, {f.staff} staff record{'s' if f.staff != 1 else ''}"
        label = (
            markdown_code(rel) if rel else "other (organisation and unit mailboxes without a file)"
        )
        lines.append(f"- {label}: {what}")
    return lines


_KIND_WORDS = {"added": "+ added", "removed": "- removed", "moved": "→ moved", "edited": "~ edited"}


def _staff_change(c: StaffChange, md: bool) -> str:
    code = markdown_code if md else (lambda x: x)
    esc = _md if md else (lambda x: x)
    who = f"{esc(c.name)} ({code(c.id)})" if c.name else code(c.id)
    line = f"**{c.kind.value}** {who}" if md else f"{_KIND_WORDS[c.kind.value]} {who}"
    if c.kind is Kind.MOVED:
        line += f": {code(c.from_file)} → {code(c.file)}"
    else:
        line += f" in {code(c.file)}"
    if c.fields:
        line += "; changed " + ", ".join(code(f) for f in c.fields)
    return line


def _changes_summary(changes: InventoryChanges) -> str:
    counts = ", ".join(f"{changes.count(k)} {k.value}" for k in Kind)
    return f"Inventory changes since {changes.base}: {counts}."


def inventory_changes_text(changes: InventoryChanges) -> list[str]:
    """The `--base-ref` section for a terminal."""
    lines = [_changes_summary(changes)]
    lines += [f"  {_staff_change(c, md=False)}" for c in changes.changes]
    lines += [f"  {f.file} {f.status}" for f in changes.files if f.file == "directory.yaml"]
    lines += [f"  note: {rel} did not parse on one side" for rel in changes.unreadable]
    return lines


def _changes_section(changes: InventoryChanges) -> tuple[str, list[str]]:
    items = [f"- {_staff_change(c, md=True)}" for c in changes.changes]
    items += [f"- `{f.file}` {f.status}" for f in changes.files if f.file == "directory.yaml"]
    items += [f"- {markdown_code(rel)} did not parse on one side" for rel in changes.unreadable]
    if not items:
        items = ["- no staff record changed"]
    title = f"#### Inventory changes since {markdown_code(changes.base)} ({len(changes.changes)})"
    return title, items


def markdown(
    plan: Plan,
    digest: str,
    *,
    show_unmanaged: bool = False,
    changes: InventoryChanges | None = None,
) -> str:
    """The plan as a pull-request comment: summary table, a line per agency file, deletions and
    suspensions first, then one section per agency file, long sections folded, the whole kept
    under MARKDOWN_BUDGET. With `changes` (--base-ref), the staff records edited in git too."""
    head = [f"### Directory plan for `{plan.domain}` ({plan.regulation})", ""]
    if plan.source_url:
        head += [f"Merging in `{plan.source_url}` (`{plan.source_base_dn}`), only read.", ""]
    if plan.empty:
        head.append("**No changes.** The directory matches the inventory and the regulation.")
    else:
        head.append("| " + " | ".join(_VERBS[a] for a in _SUMMARY_ORDER) + " |")
        head.append("|" + "---:|" * len(_SUMMARY_ORDER))
        head.append("| " + " | ".join(str(plan.count(a)) for a in _SUMMARY_ORDER) + " |")
    files = _file_lines(plan, changes)
    if files:
        head += ["", "**Agency files:**", ""]
        head += files[:FOLD_AFTER]
        if len(files) > FOLD_AFTER:
            head.append(f"- … and {len(files) - FOLD_AFTER} more files")
    tail = [""]
    for note in plan.notes:
        tail.append(f"> {_md(note)}")
    if plan.unmanaged:
        tail.append(_unmanaged(len(plan.unmanaged)).replace("govMailAccount", "`govMailAccount`"))
    tail += [
        "",
        f"<sub>Plan digest `{digest}` · inventory `{plan.inventory_digest}`"
        + (f" at `{plan.inventory_commit[:12]}`" if plan.inventory_commit else "")
        + "</sub>",
    ]

    sections: list[tuple[str, list[str]]] = []
    if changes is not None:
        sections.append(_changes_section(changes))
    if plan.refused:
        sections.append(
            (
                f"#### ✗ Refused ({len(plan.refused)})",
                [
                    f"- ✗ {_md(r.name)} ({markdown_code(r.id)}) — {_md(r.clause)}: {_md(r.reason)}"
                    for r in plan.refused
                ],
            )
        )
    destructive = [op for op in plan.operations if op.action in (Action.DELETE, Action.SUSPEND)]
    if destructive:
        told = _told(plan)
        sections.append(
            (
                f"#### ⚠️ Deletions and suspensions ({len(destructive)})",
                [_md_line(op, told(op)) for op in destructive],
            )
        )
    by_agency: dict[str, list[Operation]] = defaultdict(list)
    for op in plan.operations:
        if op.action not in (Action.DELETE, Action.SUSPEND):
            by_agency[op.agency].append(op)
    for agency in sorted(by_agency):
        ops = by_agency[agency]
        title = (
            f"#### `agencies/{agency}.yaml` ({len(ops)})" if agency else f"#### Other ({len(ops)})"
        )
        sections.append((title, [_md_line(op) for op in ops]))
    if show_unmanaged and plan.unmanaged:
        sections.append(
            ("#### Unmanaged entries", [f"- {markdown_code(dn)}" for dn in plan.unmanaged])
        )

    # every section keeps room for its title and a "not shown" line, whatever came before it
    reserve = sum(len(title) + 120 for title, _ in sections) + 200
    budget = MARKDOWN_BUDGET - sum(len(x) + 1 for x in head + tail) - reserve
    used = 0
    body: list[str] = []
    cut = 0
    for title, items in sections:
        body += ["", title, ""]
        folded = len(items) > FOLD_AFTER
        if folded:
            body += ["<details><summary>show all</summary>", ""]
        kept = 0
        for item in items:
            if used + len(item) + 1 > budget:
                break
            body.append(item)
            used += len(item) + 1
            kept += 1
        if kept < len(items):
            cut += len(items) - kept
            body.append(f"- … {len(items) - kept} more not shown (see the plan file)")
        if folded:
            body += ["", "</details>"]
    if cut:
        body += [
            "",
            f"_{cut} operations were cut to keep this comment short; the plan file has them all._",
        ]
    return "\n".join(head + body + tail) + "\n"
