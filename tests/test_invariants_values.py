"""The issue-15 invariants on the values an operation writes (`invariants.check_plan`), pure: each
attribute whose values are checked beyond their place is still checked, in a create and in an
update, whatever shortcut the check takes for the attributes it does not look into."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from reconciler.attributes import (
    ISSUED_AT,
    LOCK,
    LOCKED,
    MUST_CHANGE,
    PASSWORD,
    PERSON_CLASSES,
    TOMBSTONE,
    TOMBSTONE_WRITABLE,
    WRITABLE,
)
from reconciler.model import Action, Change, Deferred, Limits, Operation, Plan, Value
from reconciler.planning import invariants

BASE = "dc=hagiang,dc=gov,dc=vn"
PEOPLE = f"ou=people,{BASE}"


def create(**values: tuple[Value, ...]) -> Operation:
    written: dict[str, tuple[Value, ...]] = {
        "objectClass": PERSON_CLASSES,
        "uid": ("an.soyte",),
        "cn": ("Nguyễn Văn An",),
        "sn": ("Nguyễn",),
        "employeeNumber": ("HG-0001",),
        "mail": ("an.soyte@hagiang.gov.vn",),
        PASSWORD: (Deferred.PASSWORD,),
        MUST_CHANGE: ("TRUE",),
        ISSUED_AT: (Deferred.APPLY_TIME,),
        **values,
    }
    return Operation(
        action=Action.CREATE,
        id="HG-0001",
        address="an.soyte@hagiang.gov.vn",
        clause="HG-2024 Đ5.1",
        reason="new hire",
        new_dn=f"uid=an.soyte,{PEOPLE}",
        attributes=tuple(Change(attr, (), after) for attr, after in written.items()),
    )


def plan_of(op: Operation) -> Plan:
    return Plan(
        regulation="hagiang-2024",
        domain="hagiang.gov.vn",
        base_dn=BASE,
        now=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        inventory_digest="sha256:i",
        inventory_commit="",
        directory_url="ldap://x",
        directory_fingerprint="f",
        operations=(op,),
        people=(PEOPLE,),
        limits=Limits(max_deletes=10),
    )


def test_a_create_as_plan_makes_it_keeps_every_invariant() -> None:
    assert invariants.check_plan(plan_of(create())) == []


@pytest.mark.parametrize(
    ("attr", "after", "why"),
    [
        ("objectClass", ("top", "person", "inetOrgPerson"), "a new mailbox has the tool's classes"),
        ("employeeNumber", ("HG-0002",), "employeeNumber is the operation's own id HG-0001"),
        ("mail", ("boss@hagiang.gov.vn",), "a new mailbox's mail is its address"),
        (LOCK, ("20990101000000Z",), f"{LOCK} is only ever"),
        (MUST_CHANGE, ("FALSE",), f"{MUST_CHANGE} is only ever TRUE"),
        (PASSWORD, ("{SSHA}backdoor",), "is only ever a password apply issues"),
        ("title", (Deferred.PASSWORD,), "password can only go to userPassword, not to title"),
        ("title", (Deferred.APPLY_TIME,), "the time of apply can only be stamped on"),
        ("title", ("x", Deferred.APPLY_TIME), "the time of apply can only be stamped on"),
    ],
)
def test_every_checked_value_is_still_checked(
    attr: str, after: tuple[Value, ...], why: str
) -> None:
    problems = invariants.check_plan(plan_of(create(**{attr: after})))
    assert any(why in p for p in problems), problems


def test_an_update_sets_no_employee_number_and_no_object_class() -> None:
    update = replace(
        create(),
        action=Action.UPDATE,
        dn=f"uid=an.soyte,{PEOPLE}",
        new_dn="",
        attributes=(),
        changes=(
            Change("employeeNumber", (), ("HG-0001",)),
            Change("objectClass", ("top", "inetOrgPerson"), ("top", "inetOrgPerson", "extra")),
        ),
    )
    problems = invariants.check_plan(plan_of(update))
    assert any("only a create or an adoption sets employeeNumber" in p for p in problems)
    assert any("only an adoption changes an entry's object classes" in p for p in problems)


# Issue 20: `_writes` passes over the values `_value` finds nothing wrong with (plain strings of
# an attribute it does not look into) without calling it, and `_plain` tests with `join`. Held
# to the loop before them: the same problems, in the same order, over every action and values
# of every kind in every attribute the tool writes, and some it does not.


def _old_plain(values: tuple[Value, ...]) -> bool:
    return all(type(v) is str for v in values)


def _old_writes(op: Operation) -> list[str]:
    seen: set[str] = set()
    adoption = invariants.adopts(op)
    allowed = invariants._TOMBSTONE_WRITABLE if op.action is Action.DELETE else invariants._WRITABLE
    out = []
    for change in (*op.attributes, *op.changes):
        name = change.attr.lower()
        if name not in allowed or change.attr != allowed[name]:
            out.append(f"it writes {change.attr}, which apply never writes there")
            continue
        if name in seen:
            out.append(f"it writes {change.attr} twice")
        seen.add(name)
        why = invariants._value(op, change, adoption)
        if why:
            out.append(why)
    return out


VALUES: list[tuple[Value, ...]] = [
    (),
    ("x",),
    ("TRUE",),
    ("HG-0001",),
    ("an.soyte@hagiang.gov.vn",),
    (LOCKED,),
    tuple(PERSON_CLASSES),
    (*PERSON_CLASSES, "extra"),
    ("top", TOMBSTONE),
    ("x", "y"),
    *((d,) for d in Deferred),
    ("x", Deferred.APPLY_TIME),
    (Deferred.PASSWORD, Deferred.PASSWORD),
]


def test_the_writes_check_finds_what_it_found_before(monkeypatch: pytest.MonkeyPatch) -> None:
    names = sorted({*WRITABLE, *TOMBSTONE_WRITABLE, "userpassword", "MAIL", "description"})
    compared = 0
    for action in Action:
        for attr in names:
            for after in VALUES:
                for before in ((), ("top", "inetOrgPerson")):
                    change = Change(attr, before, after)
                    listed = (change, change) if after == ("x",) else (change,)
                    op = replace(
                        create(),
                        action=action,
                        dn="" if action is Action.CREATE else f"uid=an.soyte,{PEOPLE}",
                        attributes=(*create().attributes, *listed)
                        if action in (Action.CREATE, Action.DELETE)
                        else (),
                        changes=()
                        if action in (Action.CREATE, Action.DELETE)
                        else (*listed, Change("objectClass", before, (*before, "govMailAccount"))),
                    )
                    now = list(invariants._writes(op))
                    with monkeypatch.context() as patched:
                        patched.setattr(invariants, "all_strings", _old_plain)
                        assert now == _old_writes(op), (action, attr, after)
                    compared += 1
    assert compared > 5000


ODD = f"uid=an.x+cn=An,{PEOPLE}"
ODD_RECORD = f"cn=HG-0001+uid=x,ou=history,{BASE}"


def _on(action: Action, **fields: str) -> Operation:
    """An operation of `action` on HG-0001's mailbox, as plan makes it, but for `fields`."""
    if action is Action.RENAME:
        written = {"changes": (Change("uid", ("an.soyte",), ("an.x",)),)}
    elif action is Action.DELETE:
        written = {"attributes": (Change("objectClass", (), ("top", TOMBSTONE)),)}
    else:
        written = {"changes": (Change("title", ("A",), ("B",)),)}
    new_dn = {Action.RENAME: f"uid=an.x,{PEOPLE}", Action.DELETE: f"cn=HG-0001,ou=history,{BASE}"}
    return Operation(
        action=action,
        id="HG-0001",
        address="an.soyte@hagiang.gov.vn",
        clause="HG-2024 Đ5.3",
        reason="a reason",
        dn=fields.get("dn", f"uid=an.soyte,{PEOPLE}"),
        new_dn=fields.get("new_dn", new_dn.get(action, "")),
        fingerprint="sha256:f",
        **written,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("op", "odd"),
    [
        (replace(create(), new_dn=ODD), ODD),
        (_on(Action.RENAME, new_dn=ODD), ODD),
        (_on(Action.RENAME, dn=ODD), ODD),
        (_on(Action.DELETE, dn=ODD), ODD),
        (_on(Action.DELETE, new_dn=ODD_RECORD), ODD_RECORD),
        (_on(Action.UPDATE, dn=ODD), ODD),
    ],
    ids=["create", "rename-new", "rename-old", "delete", "tombstone", "update"],
)
def test_a_dn_named_by_several_attributes_is_a_problem_not_a_crash(op: Operation, odd: str) -> None:
    """A resealed plan naming an entry by a multi-valued RDN (`uid=a+cn=b`), as the entry it
    writes, creates, renames to or records a delete in: check_plan names the operation and the
    DN. Parsing such a DN raised out of check_plan (a create), or out of apply before its first
    write (a delete's tombstone) or while its writes were in flight (a rename)."""
    problems = invariants.check_plan(plan_of(op))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"operation 1 ({op.action.value} HG-0001 ")
    assert problems[0].endswith(f"): {odd} is not named by one attribute")


def test_a_plan_of_a_regulation_this_release_does_not_know_is_refused_before_any_write() -> None:
    """Its clauses, notices and limits' words need the regulation: a plan file from a newer
    release (or resealed) named one this one does not know, and apply wrote everything before
    its notices failed on it."""
    problems = invariants.check_plan(replace(plan_of(create()), regulation="xx-2099"))
    assert problems == [
        "the plan's regulation 'xx-2099' is not one this release knows "
        "(quangnam-2020, hagiang-2024)"
    ]
