"""Rendering: the markdown comment stays under its budget and says what it cut; text is plain
without a terminal and coloured on one."""

from __future__ import annotations

import datetime as dt

from reconciler.model import Action, Change, Kind, Operation, Plan
from reconciler.planning import render


def plan_of(n: int) -> Plan:
    ops = []
    for i in range(n):
        action = (Action.CREATE, Action.RENAME, Action.UPDATE, Action.SUSPEND, Action.DELETE)[i % 5]
        ops.append(
            Operation(
                action=action,
                id=f"HG-{i:06d}",
                address=f"nvson{i}.sotttt@hagiang.gov.vn",
                previous=f"nvson{i}.soyte@hagiang.gov.vn" if action is Action.RENAME else "",
                clause="HG-2024 Đ5.2",
                reason="chuyển công tác từ Sở Y tế",
                kind=Kind.PERSON,
                agency=f"agency{i % 7}",
                name="Nguyễn Văn Sơn",
                changes=(Change("title", ("Chuyên viên",), ("Trưởng phòng",)),),
            )
        )
    return Plan(
        regulation="hagiang-2024",
        domain="hagiang.gov.vn",
        base_dn="dc=hagiang",
        now=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
        inventory_digest="sha256:i",
        inventory_commit="abc",
        directory_url="ldap://x",
        directory_fingerprint="f",
        operations=tuple(ops),
    )


def test_markdown_of_a_huge_plan_stays_under_budget_and_counts_what_it_cut() -> None:
    md = render.markdown(plan_of(20_000), "sha256:d")
    assert len(md) < 60_000
    assert "operations were cut" in md and "more not shown" in md
    assert "| 4000 | 4000 | 4000 | 4000 | 0 | 4000 |" in md
    assert md.rstrip().endswith("</sub>") and "sha256:d" in md
    # deletions and suspensions come first
    assert md.index("#### ⚠️ Deletions and suspensions") < md.index("#### `agencies/agency0.yaml`")


def test_small_markdown_is_not_cut_and_long_groups_are_folded() -> None:
    md = render.markdown(plan_of(60), "sha256:d")
    assert "cut" not in md
    assert md.count("<details>") >= 1
    assert "`nvson1.soyte@hagiang.gov.vn` → `nvson1.sotttt@hagiang.gov.vn`" in md


def test_text_has_colour_only_when_asked() -> None:
    plain = render.text(plan_of(5))
    assert "\x1b[" not in plain
    assert plain.rstrip().endswith(
        "Plan: 1 to create, 1 to rename, 1 to update, 1 to suspend, 0 to restore, 1 to delete."
    )
    assert "\x1b[" in render.text(plan_of(5), color=True)


def test_markdown_escapes_what_would_break_a_table_or_inject_html() -> None:
    op = Operation(
        action=Action.CREATE,
        id="HG-1",
        address="a@b",
        clause="c",
        reason="<script>x</script> | pipe",
        name="A|B",
    )
    base = plan_of(0)
    md = render.markdown(
        Plan(**{**{f: getattr(base, f) for f in base.__dataclass_fields__}, "operations": (op,)}),
        "d",
    )
    assert "<script>" not in md and "\\<script\\>" in md and "A\\|B" in md


def test_quota_in_words() -> None:
    assert render.quota("5368709120") == "5 GB"
    assert render.quota("524288000") == "500 MB"
    assert render.quota("1000") == "1000 bytes"


def test_no_operation_line_opens_a_nested_list_in_markdown() -> None:
    """`- + **create**` is, in CommonMark, a list item holding another list: a pull request's
    comment would show every create as a bullet inside an empty bullet."""
    md = render.markdown(plan_of(5), "sha256:d")
    items = [line for line in md.splitlines() if line.startswith("- ")]
    assert any("**create**" in line for line in items)
    for line in items:
        assert not line[2:].startswith(("+ ", "- ", "* ")), line
    assert "- \\+ **create** `nvson0.sotttt@hagiang.gov.vn`" in md


def test_a_create_shows_the_aliases_its_mailbox_receives_mail_for() -> None:
    """An alias is an address: a new hire given `lanhdao@…` as an alias must be seen in review."""
    op = Operation(
        action=Action.CREATE,
        id="HG-0008",
        address="thinhvd@hagiang.gov.vn",
        clause="HG-2024 Đ7.1",
        reason="new in the inventory",
        name="Vũ Đức Thịnh",
        attributes=(
            Change("title", (), ("Chuyên viên",)),
            Change("govMailAlias", (), ("lanhdao@hagiang.gov.vn",)),
        ),
    )
    base = plan_of(0)
    plan = Plan(**{**{f: getattr(base, f) for f in base.__dataclass_fields__}, "operations": (op,)})
    assert "aliases: +lanhdao@hagiang.gov.vn" in render.text(plan)
    assert "aliases: +lanhdao\\@hagiang.gov.vn" in render.markdown(plan, "d")
    assert "Chuyên viên" not in render.text(plan)  # the rest stays in the JSON plan


def test_the_reviewers_see_where_a_suspension_s_notice_goes() -> None:
    """A suspended mailbox's owner is told at the external address the inventory gives
    (`external_email`): the pull request's comment says which, as the terminal's plan does, so
    that an address changed in the same pull request is seen before apply sends there."""
    from dataclasses import replace

    from reconciler.model import Owner

    base = plan_of(5)
    suspended = next(op for op in base.operations if op.action is Action.SUSPEND)
    deleted = next(op for op in base.operations if op.action is Action.DELETE)
    plan = replace(
        base,
        owners=(
            Owner(suspended.id, suspended.agency, "son.nv@gmail.com"),
            # an owner a delete's line (the same section) must not show: told of no suspension
            Owner(deleted.id, deleted.agency, "other@gmail.com"),
        ),
    )
    md = render.markdown(plan, "sha256:d")
    [line] = [line for line in md.splitlines() if suspended.address in line]
    assert line.endswith("<br>the owner is told at `son.nv@gmail.com` too (`external_email`)")
    assert "other@gmail.com" not in md
    assert "the owner is told at son.nv@gmail.com too (external_email)" in render.text(plan)
    assert "told at" not in render.markdown(base, "sha256:d")
