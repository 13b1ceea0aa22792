"""The agencies' notices (QN-2020 Đ7.2, HG-2024 Đ7.3) read as Vietnamese letters: an organisation
or unit mailbox is named by its name, not by the tool's key for it, and a mailbox created already
suspended says it cannot be used yet. Pure: `notices.build` from a plan and what apply did."""

from __future__ import annotations

import datetime as dt

from reconciler.attributes import LOCK, SUSPEND_REASON
from reconciler.model import Action, Change, Contact, Kind, Operation, Plan
from reconciler.outputs import notices
from reconciler.rules import regulations

NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)


def notice_of(*ops: Operation) -> str:
    plan = Plan(
        regulation="hagiang-2024",
        domain="hagiang.gov.vn",
        base_dn="dc=hagiang,dc=gov,dc=vn",
        now=NOW,
        inventory_digest="sha256:i",
        inventory_commit="",
        directory_url="ldap://x",
        directory_fingerprint="f",
        operations=ops,
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
