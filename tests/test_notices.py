"""The agencies' notices (QN-2020 Đ7.2, HG-2024 Đ7.3) read as Vietnamese letters: an organisation
or unit mailbox is named by its name, not by the tool's key for it, and a mailbox created already
suspended says it cannot be used yet. Pure: `notices.build` from a plan and what apply did."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconciler.attributes import LOCK, SUSPEND_REASON
from reconciler.model import Action, Change, Contact, Kind, Operation, Owner, Plan, Refusal
from reconciler.outputs import notices
from reconciler.rules import regulations

NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)


def plan_of(*ops: Operation, province: str = "hagiang", **more: Any) -> Plan:
    return Plan(
        regulation=f"{province}-{2020 if province == 'quangnam' else 2024}",
        domain=f"{province}.gov.vn",
        base_dn=f"dc={province},dc=gov,dc=vn",
        now=NOW,
        inventory_digest="sha256:i",
        inventory_commit="",
        directory_url="ldap://x",
        directory_fingerprint="f",
        operations=ops,
        **more,
    )


def notice_of(*ops: Operation) -> str:
    plan = plan_of(
        *ops,
        contacts=(Contact("sotttt", "Sở Thông tin và Truyền thông", ("sotttt@hagiang.gov.vn",)),),
    )
    outcomes = [(op, "changed", NOW) for op in ops]
    (notice,) = notices.build(plan, outcomes, regulations.get("hagiang-2024"), NOW)
    return " ".join(notice.body.split())


def create(key: str, address: str, name: str, kind: Kind, *extra: Change) -> Operation:
    return Operation(
        action=Action.CREATE,
        id=key,
        address=address,
        clause="HG-2024 Đ7.1",
        reason="new in the inventory",
        kind=kind,
        agency="sotttt",
        name=name,
        attributes=(Change("userPassword", (), ("x",)), *extra),
    )


def test_organisation_and_unit_mailboxes_are_named_without_the_tools_key() -> None:
    body = notice_of(
        create(
            "agency:sotttt", "sotttt@hagiang.gov.vn", "Sở Thông tin và Truyền thông", Kind.AGENCY
        ),
        create("unit:sotttt/cntt", "cntt.sotttt@hagiang.gov.vn", "Phòng CNTT", Kind.UNIT),
        create("HG-0001", "nvson.sotttt@hagiang.gov.vn", "Nguyễn Văn Sơn", Kind.PERSON),
    )
    assert "agency:" not in body and "unit:" not in body
    assert "Cấp mới hộp thư sotttt@hagiang.gov.vn của Sở Thông tin và Truyền thông, lúc" in body
    assert "Cấp mới hộp thư cntt.sotttt@hagiang.gov.vn của Phòng CNTT, lúc" in body
    assert "của Nguyễn Văn Sơn (HG-0001), lúc" in body  # a person keeps their staff number


def test_a_mailbox_created_suspended_says_it_cannot_be_used_yet() -> None:
    body = notice_of(
        create(
            "HG-0011",
            "pqkhanh.sotttt@hagiang.gov.vn",
            "Phạm Quốc Khánh",
            Kind.PERSON,
            Change(LOCK, (), ("000001010000Z",)),
            Change(SUSPEND_REASON, (), ("HG-2024 Đ8.2.b: lộ mật khẩu",)),
        ),
        create("HG-0001", "nvson.sotttt@hagiang.gov.vn", "Nguyễn Văn Sơn", Kind.PERSON),
    )
    khanh, son = body.split("2. ")
    assert "được cấp ở trạng thái tạm khóa theo Điều 8 khoản 2" in khanh
    assert "(HG-2024 Đ8.2.b)" in khanh and "chưa thể đăng nhập" in khanh
    assert "tạm khóa" not in son


def test_qn_2020_d7_2_the_owner_of_a_suspended_mailbox_is_told_at_their_own_address() -> None:
    """A suspended mailbox cannot receive: its owner is told at the external address the
    inventory holds (`external_email`), of their own case only: what, when, which clause, whom
    to ask (the agency's organisation mailbox); never a password, nor anyone else's case."""
    suspend, other = (
        replace(
            create(key, address, name, Kind.PERSON),
            action=Action.SUSPEND,
            clause="QN-2020 Đ7.2",
            reason="declared suspended: CV 45/SYT",
            agency="soyte",
            attributes=(),
            changes=(Change(LOCK, (), ("000001010000Z",)),),
        )
        for key, address, name in (
            ("QN-0101", "lantt@quangnam.gov.vn", "Trần Thị Lan"),
            ("QN-0102", "binhnv@quangnam.gov.vn", "Nguyễn Văn Bình"),
        )
    )
    plan = plan_of(
        suspend,
        other,
        province="quangnam",
        contacts=(Contact("soyte", "Sở Y tế", ("soyte@quangnam.gov.vn",)),),
        owners=(Owner("QN-0101", "soyte", "lan.tt@gmail.com"),),
    )
    outcomes = [(suspend, "changed", NOW), (other, "changed", NOW)]
    regulation = regulations.get("quangnam-2020")
    agency, owner = notices.build(plan, outcomes, regulation, NOW, plan.owners)
    assert (agency.owner, agency.to) == ("", ("soyte@quangnam.gov.vn",))
    assert (owner.owner, owner.agency, owner.to) == ("QN-0101", "soyte", ("lan.tt@gmail.com",))
    assert owner.subject == "Thông báo tạm khóa hộp thư điện tử công vụ lantt@quangnam.gov.vn"
    body = " ".join(owner.body.split())
    assert owner.body.startswith("Kính gửi: Ông/Bà Trần Thị Lan\n")
    assert "hộp thư điện tử công vụ lantt@quangnam.gov.vn của Ông/Bà đã bị tạm khóa" in body
    assert "lúc 10:00 ngày 01/12/2026" in body  # the province's time
    assert "(QN-2020 Đ7.2)" in body and "không thể đăng nhập, gửi, nhận thư" in body
    assert "liên hệ Sở Y tế qua hộp thư soyte@quangnam.gov.vn" in body
    assert "binhnv" not in body and "Bình" not in body and "CV 45" not in body  # only their case
    assert all(len(line) <= 80 and line.isprintable() for line in owner.body.splitlines())
    assert "mật khẩu không bao giờ được gửi" in body
    # an owner apply does not trust gets nothing; nor does one whose mailbox was not suspended
    assert len(notices.build(plan, outcomes, regulation, NOW)) == 1
    failed = [(suspend, "failed", NOW), (other, "changed", NOW)]
    assert len(notices.build(plan, failed, regulation, NOW, plan.owners)) == 1
    assert notices.file_name("soyte", "QN-0101") == "soyte-owner-QN-0101"
    assert notices.file_name("soyte", "../x").startswith("soyte-owner-id-")


def test_an_owners_address_is_trusted_only_from_the_inventory_or_the_reviewed_plan() -> None:
    """The plan file can be re-sealed by whoever writes it: apply sends an owner's notice to the
    address the inventory gives that person (--inventory), or, without it, to the plan's only
    when the plan is bound by --expect-digest; each one withheld is said in plain words."""
    from reconciler.model import Details, Person
    from reconciler.planning.invariants import trusted_owners

    lan = Owner("QN-0101", "soyte", "lan.tt@gmail.com")
    plan = plan_of(province="quangnam", owners=(lan,))
    record = Person(
        "QN-0101", "Trần Thị Lan", "soyte", details=Details(external_email="Lan.TT@gmail.com")
    )
    assert trusted_owners(plan, [record], digest_bound=False) == ([lan], [])
    assert trusted_owners(plan, None, digest_bound=True) == ([lan], [])
    sent, withheld = trusted_owners(plan, None, digest_bound=False)
    assert not sent and "not sent to lan.tt@gmail.com" in withheld[0]
    moved = replace(record, details=Details(external_email="lan@yahoo.com"))
    for people in ([moved], [replace(record, details=Details())], []):
        sent, withheld = trusted_owners(plan, people, digest_bound=True)  # the inventory decides
        assert not sent and "The agency's notice still goes." in withheld[0], withheld


def test_a_notices_lines_are_textwraps_own_with_its_quick_fill_and_without(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`_wrap` replaces textwrap.wrap for speed: line for line the same, on the texts it fills
    itself (words between single blanks, ids with hyphens) and on those it hands to textwrap
    (blanks folded, long words, words broken at a hyphen)."""
    import random
    import textwrap

    handed: list[str] = []
    wrap = textwrap.wrap
    monkeypatch.setattr(
        notices.textwrap, "wrap", lambda text, *a, **k: handed.append(text) or wrap(text, *a, **k)
    )
    plain = ["Cấp", "mới", "hộp", "thư", "(HG-0001)", "29/11/2026,", "Điều", "7.2.", "x" * 70]
    odd = ["an-bình", "well-known", "x--y", "a-", "y" * 73, "z" * 75, "", "\t", "a\nb", "-a"]
    rnd = random.Random(7)
    for round_ in range(4000):
        words = plain if round_ % 2 else plain + odd
        text = " ".join(rnd.choice(words) for _ in range(rnd.randint(1, 50)))
        for first, rest in (("", ""), ("1. ", "   "), ("12. ", "   "), ("12. ", "")):
            expected = wrap(text, notices.WIDTH, initial_indent=first, subsequent_indent=rest)
            handed.clear()
            assert notices._wrap(text, first, rest) == expected, (text, first, rest)
            if round_ % 2:
                assert not handed, text  # the quick fill, not textwrap


def test_a_notice_file_holds_the_email_packages_own_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """`notices.write` folds the headers a run's notices share once (`rendered`): every byte is
    still what the email package writes for the whole message, whatever the headers hold (a
    Vietnamese subject, a long one, several recipients, none), and a line break in a header is
    still refused."""
    monkeypatch.setattr(notices, "make_msgid", lambda domain=None: f"<1.2.3@{domain}>")
    ops = [
        create(f"HG-{n:04d}", f"nv{n}@hagiang.gov.vn", f"Nguyễn Văn {n}", Kind.PERSON)
        for n in range(30)
    ]
    plan = plan_of(
        *ops,
        contacts=(Contact("sotttt", "Sở Thông tin và Truyền thông", ("sotttt@hagiang.gov.vn",)),),
    )
    outcomes = [(op, "changed", NOW) for op in ops]
    (built,) = notices.build(plan, outcomes, regulations.get("hagiang-2024"), NOW)
    cases = [
        built,
        replace(built, to=()),
        replace(built, to=("a@hagiang.gov.vn", "Trần Thị Lan <lan@hagiang.gov.vn>")),
        replace(built, subject="Thông báo " * 20, body="plain ascii\n"),
        notices.Notice("x", ("x@y.vn",), "ascii", "x" * 300 + "\n"),
    ]
    for notice in cases * 2:  # the second time from the folded headers kept
        for sender in ("noreply@hagiang.gov.vn", "Trung tâm <noreply@hagiang.gov.vn>"):
            expected = bytes(notices.message(notice, sender, NOW))
            assert notices.rendered(notice, sender, NOW) == expected
    with pytest.raises(ValueError, match="linefeed"):
        notices.rendered(replace(built, to=("a@b.vn\nBcc: c@d.vn",)), "n@hagiang.gov.vn", NOW)


def every_case() -> tuple[Plan, list[tuple[Operation, str, dt.datetime]]]:
    """A plan of every action, in three agencies (one without a contact), with refusals, an
    owner to tell, a merger's create, a mailbox created suspended; and what apply did with it:
    done, already done, failed, then skipped, at times a minute apart."""
    base = create("HG-0001", "nvson.sotttt@hagiang.gov.vn", "Nguyễn Văn Sơn", Kind.PERSON)
    ops: list[Operation] = []
    for n in range(60):
        agency = ("sotttt", "soyte", "ubnd-xa-a")[n % 3]
        action = list(Action)[n % len(Action)]
        ops.append(
            replace(
                base,
                action=action,
                id=f"HG-{n:04d}",
                address=f"nv{n}.{agency}@hagiang.gov.vn",
                agency=agency,
                name=f"Nguyễn Văn {('Sơn', 'Hùng', 'Mai')[n % 3]} {n}" if n % 7 else "",
                kind=Kind.UNIT if n % 11 == 0 else Kind.PERSON,
                previous=f"cu{n}.{agency}@hagiang.gov.vn" if action is Action.RENAME else "",
                address_clause="HG-2024 Đ5.1" if n % 4 == 0 else "",
                source=notices_source() if n % 13 == 0 else None,
                attributes=(
                    (Change(LOCK, (), ("x",)), Change(SUSPEND_REASON, (), ("HG-2024 Đ7.2: x",)))
                    if n % 5 == 0
                    else base.attributes
                ),
            )
        )
    plan = plan_of(
        *ops,
        contacts=(
            Contact("sotttt", "Sở Thông tin và Truyền thông", ("sotttt@hagiang.gov.vn",)),
            Contact("soyte", "Sở Y tế", ("soyte@hagiang.gov.vn",)),
        ),
        refused=(
            Refusal("HG-0900", "soyte", "Lê Thị Hoa", "HG-2024 Đ9.1", "deleted"),
            Refusal("HG-0901", "soyte", "Lê Thị Hà", "HG-2024 Đ9.1", "deleted"),
        ),
        owners=tuple(
            Owner(op.id, op.agency, f"{op.id.lower()}@gmail.com")
            for op in ops
            if op.action is Action.SUSPEND
        ),
    )
    what = ["changed"] * 40 + ["ok"] * 5 + ["changed"] * 3 + ["failed"] * 2 + ["skipped"] * 10
    outcomes = [
        (op, outcome, NOW + dt.timedelta(minutes=n // 4))
        for n, (op, outcome) in enumerate(zip(ops, what, strict=True))
    ]
    return plan, outcomes


def notices_source() -> Any:
    from reconciler.model import Source

    return Source("uid=x,dc=old", "f")


def written_bytes(folder: Any, built: list[notices.Notice]) -> dict[str, bytes]:
    return {
        path.name: path.read_bytes()
        for _, path in notices.write(built, folder, "noreply@hagiang.gov.vn", NOW)
    }


def test_the_notices_drafted_while_apply_runs_are_the_same_bytes(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Drafts` works out the items while the writes are in flight, fed the outcomes as they
    come, a slice at a time: the notices built from its drafts are byte for byte those built
    without, whether it drafted every outcome, some of them, or failed half way (then `build`
    works out the rest itself)."""
    from reconciler.applying.inflight import Outcome

    monkeypatch.setattr(notices, "make_msgid", lambda domain=None: f"<1.2.3@{domain}>")
    plan, outcomes = every_case()
    regulation = regulations.get("hagiang-2024")
    plain = notices.build(plan, outcomes, regulation, NOW, plan.owners)
    said = " ".join(" ".join(n.body.split()) for n in plain)
    for words in (*notices._VERBS.values(), "do sự cố kỹ thuật", "vì thao tác trước đó"):
        assert words in said, words  # every action; failed, and skipped after the failure
    assert "không cấp lại" in said and "tỉnh cũ" in said and "cấp ở trạng thái tạm khóa" in said
    expected = written_bytes(tmp_path / "plain", plain)
    owners = [name for name in expected if "-owner-" in name]
    assert len(expected) - len(owners) == 3 and len(owners) >= 2  # agencies, owners told
    monkeypatch.setattr(notices.Drafts, "SLICE", 0.0)  # one outcome a slice
    for case in ("all", "some", "broken", "other regulation"):
        drafts = notices.Drafts(regulation, plan, "noreply@hagiang.gov.vn")
        if case == "other regulation":
            drafts = notices.Drafts(regulations.get("quangnam-2020"))
        so_far: list[Outcome] = []
        slices = 0
        for entry in outcomes:  # appended as apply goes, drafted between
            so_far.append(entry)
            if case == "some" and len(so_far) > 30:
                continue
            if case == "broken" and len(so_far) == 20:
                monkeypatch.setattr(notices, "_done", lambda *a: 1 / 0)
            while drafts.step(so_far):
                slices += 1
        monkeypatch.undo()
        monkeypatch.setattr(notices, "make_msgid", lambda domain=None: f"<1.2.3@{domain}>")
        if case == "all":
            assert len(drafts.drafted) == len(outcomes) and not drafts.broken
        assert drafts.broken == (case == "broken")
        built = notices.build(plan, so_far, regulation, NOW, plan.owners, drafts)
        assert written_bytes(tmp_path / case, built) == expected, case
    # a header that cannot be folded ahead is left for `write`, which refuses it as before
    bad = replace(plan, contacts=(Contact("soyte", "Sở Y tế", ("a@b.vn\nBcc: c@d.vn",)),))
    drafts = notices.Drafts(regulation, bad, "noreply@hagiang.gov.vn")
    while drafts.step(outcomes):
        pass
    assert not drafts.broken and len(drafts.drafted) == len(outcomes)
    with pytest.raises(ValueError, match="linefeed"):
        notices.write(
            notices.build(bad, outcomes, regulation, NOW), tmp_path / "bad", "n@x.vn", NOW
        )
    # a draft for another list of outcomes is not taken for this one's
    drafts = notices.Drafts(regulation)
    while drafts.step(list(reversed(outcomes))):
        pass
    built = notices.build(plan, outcomes, regulation, NOW, plan.owners, drafts)
    assert written_bytes(tmp_path / "reversed", built) == expected


VIETNAMESE = (
    "aăâbcdđeêghiklmnoôơpqrstuưvxyàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵĐƯƠ"
)
#: Lines of a body: Vietnamese, ASCII only (some with what quoted-printable escapes), long or
#: blank, and odd ends of lines.
BODY_LINE = st.one_of(
    st.text(alphabet=VIETNAMESE + " .,:()0123456789", max_size=120),
    st.text(alphabet=VIETNAMESE + " ", min_size=40, max_size=120),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=200),
    st.text(alphabet="ab =\t-.", min_size=70, max_size=200),
    st.just(""),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30),
)
DOMAIN = st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}(\.[a-z0-9-]{1,20}){0,3}", fullmatch=True)


@settings(max_examples=400, deadline=None)
@example(lines=["ab cd " * 20] * 11, ending="\n", domain="x.vn", odd_id=False)  # qp, 11 lines
@example(lines=["Cấp mới hộp thư " * 6] * 11, ending="\n", domain="x.vn", odd_id=False)
@given(
    lines=st.lists(BODY_LINE, max_size=40),
    ending=st.sampled_from(["\n", "\r\n", "\r"]),
    domain=DOMAIN,
    odd_id=st.booleans(),
)
def test_a_notice_file_is_the_email_packages_bytes_for_any_body(
    lines: list[str], ending: str, domain: str, odd_id: bool
) -> None:
    """`rendered` writes the content (and a plain Message-ID's line) without the email
    package: the bytes are still its own, whatever the body holds (Vietnamese, ASCII only, long
    lines, blank lines, line ends of any kind: 7bit, 8bit, quoted-printable or base64) and
    whatever the Message-ID."""
    from email.utils import make_msgid

    body = ending.join(lines) + (ending if lines else "")
    msgid = make_msgid(domain=domain) if not odd_id else f"<{domain}.{len(lines)}@{domain} x>"
    notice = notices.Notice("sotttt", ("sotttt@hagiang.gov.vn",), "Thông báo", body)
    kept = notices.make_msgid
    notices.make_msgid = lambda domain=None: msgid  # type: ignore[assignment]
    try:
        expected = bytes(notices.message(notice, f"noreply@{domain}", NOW))
        assert notices.rendered(notice, f"noreply@{domain}", NOW) == expected
    finally:
        notices.make_msgid = kept
