"""Quảng Nam: Quyết định 1217/QĐ-UBND of 04/05/2020, Quy chế quản lý, vận hành và sử dụng hệ thống
thư điện tử công vụ tỉnh Quảng Nam.

- Đ4.1 personal address ``<given><initials of family and middle names>``: Nguyễn Văn Nam → namnv.
- Đ4.2 same address: the higher leadership rank keeps the plain form, the others get 1, 2, 3…
  after the initials (vanntt, vanntt1). The article speaks of one agency; addresses are unique in
  the whole domain, so the rule is applied domain-wide, and an issued address is never taken back
  (a newcomer who outranks the holder gets a number).
- No format for organisation or unit mailboxes: an agency has one only when the inventory declares
  its ``mailbox`` local part (created on request, Đ5.1); units get none. The address has no agency
  part, so a transfer (Đ10.3) is an update, not a rename.
- Đ5.1 a new mailbox on the agency's written request: a create cites it, with the address rule
  (Đ4.1, Đ4.2) beside it. Đ6.2 a password reset on request, Đ6.3 changed at the first login.
- Đ7.2 no login for 3 months → suspended ("không đăng nhập": logins only count, never mail sent
  or received, so `activity_kinds` is the login alone); the same clause covers misuse and a breach
  of the security rules, the one ground an inventory may declare. The decision has no suspension
  on request: a lock found at import is recorded as found, never as a breach.
- Đ8 password rules; Đ9 quota at most 5 GB (taken as 5 GiB) "except special cases decided by the
  province": the default may not exceed it, and a person's quota above it names the deciding
  document by number and date. 20 MB attachments (the mail server's setting, not the
  directory's). The decision sets no restore
  procedure: a restore cites Đ7.2, the suspension it lifts. A transfer cites Đ10.3 (rights
  change); any other update Đ13.5 (agencies report staff changes). Đ7.2 covers both misuse and
  inactivity, so a declared suspension and an inactivity suspension cite the same clause. The
  decision does not say that a deleted mailbox cannot be restored: the guard on a plan's
  deletions cites no clause for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.names import MAX_LOCAL, NameParts
from reconciler.rules.regulations.base import (
    Regulation,
    TimeRule,
    _initials,
    _name_like,
    _password_classes,
)

GIB = 1024**3

_LABELS = {
    "upper": "an upper-case letter",
    "lower": "a lower-case letter",
    "digit": "a digit",
    "special": "a special character",
}


@dataclass(frozen=True)
class QuangNam2020(Regulation):
    """quangnam-2020: ``<given><initials>[n]@domain``; numbers only, no agency part."""

    def render(self, stem: str, given: str, number: int | None, agency_abbr: str) -> str:
        tail = stem + (str(number) if number is not None else "")
        # the given name is shortened first; the initials and number tell namesakes apart
        if len(tail) >= MAX_LOCAL:  # 64 family and middle names: keep the end
            return (given + tail)[-MAX_LOCAL:]
        return self._fit(given, tail)

    def _is_form(self, body: str, parts: NameParts) -> bool:
        return body == parts.given + _initials(parts.initials_words)

    def agency_local(self, abbr: str, mailbox: str | None) -> str | None:
        return mailbox.strip().lower() if mailbox else None

    def unit_local(self, unit_abbr: str, agency_abbr: str) -> str | None:
        return None

    def password_ok(self, password: str, parts: NameParts) -> str | None:
        reasons: list[str] = []
        if len(password) < 8:
            reasons.append(f"{self.code} Đ8.1: the password needs at least 8 characters")
        if _name_like(password, parts):
            reasons.append(
                f"{self.code} Đ8.1: the password must not be the family, middle or given name"
            )
        missing = [_LABELS[k] for k, ok in _password_classes(password).items() if not ok]
        if missing:
            reasons.append(f"{self.code} Đ8.2: the password needs {', '.join(missing)}")
        return "; ".join(reasons) or None


REGULATION = QuangNam2020(
    id="quangnam-2020",
    code="QN-2020",
    domain="quangnam.gov.vn",
    decision="Quyết định số 1217/QĐ-UBND ngày 04/05/2020 của UBND tỉnh Quảng Nam",
    person_clause="QN-2020 Đ4.1",
    collision_clause="QN-2020 Đ4.2",
    agency_clause="QN-2020 Đ5.1",
    unit_clause="QN-2020 Đ5.1",
    agency_mailboxes=False,
    transfer_renames=False,
    lengthens_initials=False,
    rank_keeps_plain=True,
    create_clause="QN-2020 Đ5.1",
    default_quota=5 * GIB,
    quota_ceiling=5 * GIB,
    quota_clause="QN-2020 Đ9",
    update_clause="QN-2020 Đ13.5",
    transfer_clause="QN-2020 Đ10.3",
    manager_clause=None,
    handover_clause=None,
    delete_clause="QN-2020 Đ7.1",
    irreversible_delete_clause=None,
    restore_clause="QN-2020 Đ7.2",
    suspension_grounds=(
        ("QN-2020 Đ7.2", "misuse or a breach of the security rules, found by the operator"),
    ),
    import_suspend_clause=None,
    inactivity=TimeRule(3, "QN-2020 Đ7.2"),
    activity_kinds=frozenset({"login"}),
    activity_words="no login",
    password_change=None,
    expiry=None,
    reset_clause="QN-2020 Đ6.2",
    must_change_clause="QN-2020 Đ6.3",
    words=(
        ("QN-2020 Đ4.1", "tài khoản đặt theo dạng <tên><họ và tên lót viết tắt>"),
        ("QN-2020 Đ4.2", "trùng tên thì thêm số thứ tự 1, 2, 3… sau họ và tên lót viết tắt"),
        ("QN-2020 Đ5.1", "cấp mới hộp thư theo văn bản đề nghị của đơn vị"),
        ("QN-2020 Đ6.2", "cài đặt lại mật khẩu theo đề nghị"),
        ("QN-2020 Đ7.1", "chấm dứt hoạt động hộp thư theo yêu cầu bằng văn bản của đơn vị"),
        (
            "QN-2020 Đ7.2",
            "sử dụng không đúng mục đích, không tuân thủ quy định về an toàn thông tin, hoặc sau "
            "03 tháng không đăng nhập: tạm dừng hoạt động hộp thư và gửi thông báo",
        ),
        ("QN-2020 Đ9", "dung lượng tối đa mỗi hộp thư là 5 Gigabyte"),
        ("QN-2020 Đ10.3", "chuyển công tác sang cơ quan, đơn vị khác"),
        ("QN-2020 Đ13.5", "đơn vị báo cáo thay đổi nhân sự"),
    ),
)
