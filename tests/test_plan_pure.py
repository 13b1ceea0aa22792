"""Plan computation without a server: entries built in the test."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.attributes import MANAGED
from reconciler.errors import UnsafePlan
from reconciler.inventory import loader as inventory
from reconciler.model import Action, Change, Entry, Limits, Operation, Plan
from reconciler.planning.limits import check_limits
from reconciler.planning.plan import Context, attribute_changes, compute
from reconciler.rules import regulations

from . import scenario


def legacy(mail: str, cn: str, created: str) -> Entry:
    return Entry(
        dn=f"uid={mail.split('@')[0]},ou=users,dc=quangnam,dc=example,dc=gov,dc=vn",
        attrs={
            "objectclass": ("top", "person", "organizationalPerson", "inetOrgPerson"),
            "uid": (mail.split("@")[0],),
            "mail": (mail,),
            "cn": (cn,),
            "sn": (cn.split()[0],),
            "createtimestamp": (created,),
        },
    )


def test_adopting_plan_changes_nothing_but_adoption_even_for_long_idle_accounts(
    tmp_path: Path,
) -> None:
    spec = scenario.qn()
    spec["people"] = "ou=users"  # the legacy container: adopted from there only
    spec["agencies"]["soyte"]["staff"][0]["address"] = "tranthilan@quangnam.gov.vn"
    inv = inventory.load(scenario.write(spec, tmp_path / "inv"))
    entries = [legacy("tranthilan@quangnam.gov.vn", "Trần Thị Lan", "20190101000000Z")]
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    plan = compute(inv, entries, regulations.get("quangnam-2020"), Context(now=now))
    adopting = [op for op in plan.operations if op.id == "QN-0101"]
    assert [op.action for op in adopting] == [Action.UPDATE]
    assert "adopts" in adopting[0].reason
    assert plan.count(Action.SUSPEND) == 0


def managed(key: str, mail: str, cn: str, created: str, **extra: tuple[str, ...]) -> Entry:
    attrs = legacy(mail, cn, created).attrs | {
        "objectclass": ("top", "person", "organizationalPerson", "inetOrgPerson", "govMailAccount"),
        "employeenumber": (key,),
    }
    return Entry(
        dn=f"uid={mail.split('@')[0]},ou=people,dc=quangnam,dc=example,dc=gov,dc=vn",
        attrs=attrs | {k.lower(): v for k, v in extra.items()},
    )


def test_a_restore_request_counts_as_activity(tmp_path: Path) -> None:
    """An account restored by hand, with the request recorded afterwards, is not re-suspended
    the next day (QN-2020 Đ7.2: 3 months counted from the request)."""
    spec = scenario.qn()
    lan = spec["agencies"]["soyte"]["staff"][0]
    inv_path = scenario.write(spec, tmp_path / "inv")
    entry = managed(
        "QN-0101",
        "lantt@quangnam.gov.vn",
        "Trần Thị Lan",
        "20250101000000Z",
        pwdLastSuccess=("20250201000000Z",),
    )
    reg = regulations.get("quangnam-2020")
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    before = compute(inventory.load(inv_path), [entry], reg, Context(now=now))
    assert [op.id for op in before.operations if op.action is Action.SUSPEND] == ["QN-0101"]
    lan["restored"] = "2026-11-20"
    after = compute(inventory.load(scenario.write(spec, inv_path)), [entry], reg, Context(now=now))
    assert after.count(Action.SUSPEND) == 0
    later = compute(
        inventory.load(inv_path), [entry], reg, Context(now=dt.datetime(2027, 2, 20, tzinfo=dt.UTC))
    )
    suspended = [op for op in later.operations if op.action is Action.SUSPEND]
    assert [op.id for op in suspended] == ["QN-0101"]
    assert "2026-11-20" in suspended[0].reason


def _deleting(regulation_id: str, clauses: list[str]) -> Plan:
    return Plan(
        regulation=regulation_id,
        domain=regulations.get(regulation_id).domain,
        base_dn="dc=x",
        now=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        inventory_digest="",
        inventory_commit="",
        directory_url="",
        directory_fingerprint="",
        operations=tuple(
            Operation(Action.DELETE, f"P{i}", f"p{i}@x", clause, "removed")
            for i, clause in enumerate(clauses)
        ),
        accounts=100,
    )


@pytest.mark.parametrize("regulation_id", regulations.KNOWN)
def test_too_many_deletes_cite_what_the_plans_regulation_says_of_a_delete(
    regulation_id: str,
) -> None:
    regulation = regulations.get(regulation_id)
    due = [regulation.expiry.clause] if regulation.expiry else []
    plan = _deleting(regulation_id, [regulation.delete_clause] * 2 + due)
    with pytest.raises(UnsafePlan) as refused:
        check_limits(plan, Limits(max_deletes=1))
    message = str(refused.value)
    assert f"this plan deletes {2 + len(due)} mailboxes" in message
    assert "Deleted mailboxes cannot be restored" in message
    # only the plan's own regulation is cited: a Quảng Nam plan never cites Hà Giang
    others = {r for r in regulations.KNOWN if r != regulation_id}
    assert not any(regulations.get(r).code in message for r in others)
    irreversible = regulation.irreversible_delete_clause
    if irreversible is None:
        assert "cannot be restored. If every deletion" in message
    else:
        assert f"cannot be restored ({irreversible}). If every deletion" in message
    if due:
        assert f"(1 of them due under {due[0]})" in message
    else:
        assert "due under" not in message


_some_values = st.lists(st.sampled_from(["a", "A", "b", "Nguyễn", ""]), max_size=3).map(tuple)
# as `_diff` compares them: every managed attribute on both sides (`live_attrs`, `_attrs`), and
# perhaps one the other side lacks
_some_attrs = st.builds(
    lambda common, extra: {**common, **extra},
    st.fixed_dictionaries({a: _some_values for a in MANAGED[:4]}),
    st.dictionaries(st.sampled_from(["x-other", MANAGED[4]]), _some_values, max_size=1),
)


@settings(max_examples=300, deadline=None)
@given(_some_attrs, _some_attrs)
def test_attribute_changes_are_what_deepdiff_found(
    before: dict[str, tuple[str, ...]], after: dict[str, tuple[str, ...]]
) -> None:
    """The attributes an update changes are the ones `DeepDiff(ignore_order=True)` named, as
    plans found them before: one side lacks it, or the values differ as sets."""
    from deepdiff import DeepDiff

    named = {
        str(item.path(output_format="list")[0])
        for level in DeepDiff(before, after, ignore_order=True, view="tree").values()
        for item in level
        if item.path(output_format="list")
    }
    expected = tuple(Change(a, before.get(a, ()), after.get(a, ())) for a in MANAGED if a in named)
    assert attribute_changes(before, after) == expected


#: Moments around the deadlines of a plan at `_NOW` (one month, three, six, a year and more
#: before it, a second either side of local midnight), and values that are not times.
_NOW = dt.datetime(2027, 3, 31, 17, 0, 1, tzinfo=dt.UTC)  # 1 April, 00:00:01 in Hà Nội
_MOMENTS = [
    _NOW - dt.timedelta(days=d, seconds=s)
    for d in (0, 28, 30, 31, 59, 62, 90, 92, 181, 183, 184, 366, 1100)
    for s in (-2, 0, 1, 2)
]
_STAMP = st.one_of(
    st.sampled_from(_MOMENTS).map(lambda t: t.strftime("%Y%m%d%H%M%SZ")),
    st.sampled_from(["", "not a time", "000001010000Z", "20271399000000Z", "20270101000000.5Z"]),
)
_STAMPED = (
    "pwdLastSuccess",
    "authTimestamp",
    "govMailLastLogin",
    "govMailRestoredAt",
    "govMailCreatedAt",
    "createTimestamp",
    "govMailPasswordIssuedAt",
    "pwdChangedTime",
)


@settings(max_examples=600, deadline=None)
@given(
    stamps=st.dictionaries(st.sampled_from(_STAMPED), _STAMP),
    reset=st.sampled_from([None, "TRUE", "FALSE", "true"]),
    seen=st.none() | st.sampled_from(_MOMENTS),
    regulation=st.sampled_from(["hagiang-2024", "quangnam-2020"]),
    hours=st.sampled_from([0, 7, 16, 17, 23]),
)
def test_a_mailbox_not_due_is_one_the_time_rules_in_full_leave(
    stamps: dict[str, str], reset: str | None, seen: dt.datetime | None, regulation: str, hours: int
) -> None:
    """The time rules' shortcut (`lifecycle.not_due`) says no rule can fire only on an entry the
    rules in full (its every stamp, the activity file) leave alone; and it says so of most
    active mailboxes, or it would save nothing."""
    from reconciler.model import Address, Kind, Loc, Mailbox, State
    from reconciler.rules import lifecycle

    attrs = {name: (value,) for name, value in stamps.items() if value}
    if reset is not None:
        attrs["pwdReset"] = (reset,)
    entry = managed("QN-0101", "lan@quangnam.gov.vn", "Trần Thị Lan", "", **attrs)
    if not stamps.get("createTimestamp"):
        entry = Entry(entry.dn, {k: v for k, v in entry.attrs.items() if k != "createtimestamp"})
    box = Mailbox(
        "QN-0101",
        Kind.PERSON,
        "soyte",
        "Trần Thị Lan",
        Address("lan", "quangnam.gov.vn", "QN-2020 Đ4.1"),
        {},
        State.ACTIVE,
        None,
        None,
        Loc("agencies/soyte.yaml", 3),
    )
    rule = regulations.get(regulation)
    now = _NOW + dt.timedelta(hours=hours)
    activity = {} if seen is None else {"lan@quangnam.gov.vn": seen}
    in_full = lifecycle._rules_in_full(box, entry, rule, now, activity)
    if lifecycle.not_due(entry, rule, now):
        assert in_full == []
    assert lifecycle._time_rules(box, entry, rule, now, activity) == in_full


def test_an_active_mailbox_is_known_not_due_from_its_stamps() -> None:
    """The shortcut answers for the mailboxes most plans are made of: logged in lately, or
    created lately with the password issued then."""
    from reconciler.rules import lifecycle

    rule = regulations.get("hagiang-2024")
    recent = (_NOW - dt.timedelta(days=3)).strftime("%Y%m%d%H%M%SZ")
    old = "20200101000000Z"
    fresh = managed("HG-1", "a@hagiang.gov.vn", "A", recent, pwdReset=("TRUE",))
    fresh = Entry(fresh.dn, fresh.attrs | {"govmailpasswordissuedat": (recent,)})
    assert lifecycle.not_due(fresh, rule, _NOW)
    logged = managed("HG-1", "a@hagiang.gov.vn", "A", old, pwdLastSuccess=(recent,))
    assert lifecycle.not_due(logged, rule, _NOW)
    idle = managed("HG-1", "a@hagiang.gov.vn", "A", old, pwdLastSuccess=(old,))
    assert not lifecycle.not_due(idle, rule, _NOW)
    # a password issued long ago and never changed: the password rule decides
    unchanged = managed("HG-1", "a@hagiang.gov.vn", "A", old, pwdLastSuccess=(recent,))
    unchanged = Entry(unchanged.dn, unchanged.attrs | {"pwdreset": ("TRUE",)})
    assert not lifecycle.not_due(unchanged, rule, _NOW)
