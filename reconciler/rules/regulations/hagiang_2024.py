"""Hà Giang: Quyết định 23/2024/QĐ-UBND of 03/06/2024 (in force 20/06/2024), Quy chế quản lý, vận
hành và sử dụng hệ thống thư điện tử công vụ trên địa bàn tỉnh Hà Giang.

- Đ5.1 organisation ``<abbr>@``; unit ``<unit abbr>.<abbr>@`` (vanphong.sotttt).
- Đ5.2 person ``<initials of family and middle names><given>.<abbr>@``: Nguyễn Văn Sơn of sotttt →
  nvson.sotttt. Same address as another person: (a) diacritic-free full names differ → add the
  following letters of the family name, then of each middle name, one at a time, until unique
  (Ngô Văn Sơn → ngvson.sotttt); (b) identical → a number after the given name (nvson1.sotttt).
  The agency is in the address, so a transfer is a rename.
- Đ6.2 password ≥ 8 characters with upper case, digit and special character (no lower-case or
  name rule); Đ6.1 changed at the first access; Đ12.2 a new password on request (the reset).
- Đ8.1 suspension on an agency's request or for a security risk; the grounds an inventory may
  declare are Đ8.1 (request), Đ8.2.b (taken over or leaked, as warned) and Đ8.2.c (a prohibited
  act of Đ3); Đ8.2.a and Đ8.2.d are the tool's time rules. A lock found at import is recorded
  under Đ8.1, never as a breach.
- Đ8.2.a 6 months without "đăng nhập, gửi, nhận": logins, mail sent and mail received all count
  (`activity_kinds`, read from the mail server's log by `--activity`).
- Đ8.2.d the default password unchanged 1 month "kể từ thời điểm được cấp tài khoản". This
  project reads a reset (Đ12.2) or a restore (Đ8.3.c) as issuing the account's default password
  again: the month counts from the last password the tool issued that is still unchanged
  (pwdReset still set), and a password the person changed never fires the rule.
- Đ8.3 restore on request; Đ8.3.c the password is changed at the first access after it: a restore
  issues a new temporary password (the old one may be the leaked one of Đ8.2.b).
- Đ8.4 suspended 3 years → deleted, "không còn khả năng khôi phục": the deleted mailbox is kept in
  the directory's history, and a record still in the inventory is refused, never created again.
- Đ9.2.b leaves the quota to the Department of Information and Communications and sets no figure:
  the default is the same 5 GiB as quangnam-2020, cited as Đ9.2.b; no attachment limit is set.
- Đ7.1 covers creation, change (transfer included: "luân chuyển") and deletion on request: a
  create cites it with the address rule (Đ5.1, Đ5.2) beside it; Đ7.2 a deleted account cannot be
  restored (cited by the guard on a plan's deletions and by the refusal to create a deleted
  mailbox again). Đ11.2 the head, or a person of the agency delegated in writing, manages the
  organisation mailbox; Đ11.3 a new head: the organisation mailbox is handed over with a new
  password.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from reconciler.names import NameParts
from reconciler.rules.regulations.base import (
    Regulation,
    TimeRule,
    _lengthening_of_size,
    _lengthenings,
    _password_classes,
    check_abbr,
)
from reconciler.rules.regulations.quangnam_2020 import GIB

_LABELS = {"upper": "an upper-case letter", "digit": "a digit", "special": "a special character"}


@dataclass(frozen=True)
class HaGiang2024(Regulation):
    """hagiang-2024: ``<initials><given>[n].<abbr>@domain``; lengthening, then numbers."""

    def stems(self, parts: NameParts) -> Iterator[str]:
        return _lengthenings(parts.initials_words)

    def _is_form(self, body: str, parts: NameParts) -> bool:
        if not body.endswith(parts.given):
            return False
        stem = body[: len(body) - len(parts.given)]
        return _lengthening_of_size(parts.initials_words, len(stem)) == stem

    def render(self, stem: str, given: str, number: int | None, agency_abbr: str) -> str:
        tail = (str(number) if number is not None else "") + "." + check_abbr(agency_abbr)
        # stem + given is cut at its end: the given name is shortened first
        return self._fit(stem + given, tail)

    def _head(self, local: str, agency_abbr: str) -> str | None:
        suffix = "." + agency_abbr
        return local[: -len(suffix)] if local.endswith(suffix) else None

    def agency_local(self, abbr: str, mailbox: str | None) -> str | None:
        return check_abbr(abbr)

    def unit_local(self, unit_abbr: str, agency_abbr: str) -> str | None:
        return f"{check_abbr(unit_abbr, 'unit abbreviation')}.{check_abbr(agency_abbr)}"

    def password_ok(self, password: str, parts: NameParts) -> str | None:
        reasons: list[str] = []
        if len(password) < 8:
            reasons.append(f"{self.code} Đ6.2: the password needs at least 8 characters")
        classes = _password_classes(password)
        missing = [label for k, label in _LABELS.items() if not classes[k]]
        if missing:
            reasons.append(f"{self.code} Đ6.2: the password needs {', '.join(missing)}")
        return "; ".join(reasons) or None


REGULATION = HaGiang2024(
    id="hagiang-2024",
    code="HG-2024",
    domain="hagiang.gov.vn",
    decision="Quyết định số 23/2024/QĐ-UBND ngày 03/06/2024 của UBND tỉnh Hà Giang",
    person_clause="HG-2024 Đ5.2",
    collision_clause="HG-2024 Đ5.2",
    agency_clause="HG-2024 Đ5.1",
    unit_clause="HG-2024 Đ5.1",
    agency_mailboxes=True,
    transfer_renames=True,
    lengthens_initials=True,
    rank_keeps_plain=False,
    create_clause="HG-2024 Đ7.1",
    default_quota=5 * GIB,
    quota_ceiling=None,
    quota_clause="HG-2024 Đ9.2.b",
    update_clause="HG-2024 Đ7.1",
    transfer_clause="HG-2024 Đ7.1",
    manager_clause="HG-2024 Đ11.2",
    handover_clause="HG-2024 Đ11.3",
    delete_clause="HG-2024 Đ7.1",
    irreversible_delete_clause="HG-2024 Đ7.2",
    restore_clause="HG-2024 Đ8.3",
    suspension_grounds=(
        ("HG-2024 Đ8.1", "on an agency's request"),
        ("HG-2024 Đ8.2.b", "taken over, leaked or spreading spam or malware, as warned"),
        ("HG-2024 Đ8.2.c", "a prohibited act of Đ3"),
    ),
    import_suspend_clause="HG-2024 Đ8.1",
    inactivity=TimeRule(6, "HG-2024 Đ8.2.a"),
    activity_kinds=frozenset({"login", "sent", "received", "mail"}),
    activity_words="no login, sending or receiving",
    password_change=TimeRule(1, "HG-2024 Đ8.2.d"),
    expiry=TimeRule(3 * 12, "HG-2024 Đ8.4"),
    reset_clause="HG-2024 Đ12.2",
    must_change_clause="HG-2024 Đ6.1",
    words=(
        ("HG-2024 Đ5.1", "địa chỉ của tổ chức và của phòng, ban, đơn vị trực thuộc"),
        ("HG-2024 Đ5.2", "địa chỉ của cá nhân: [họ và tên đệm viết tắt][tên].[tổ chức]"),
        ("HG-2024 Đ7.1", "cấp mới, thay đổi, hủy bỏ tài khoản theo yêu cầu của thủ trưởng"),
        ("HG-2024 Đ7.2", "tài khoản sau khi hủy bỏ sẽ được xóa và không còn khả năng khôi phục"),
        ("HG-2024 Đ8.1", "tạm khóa khi có đề nghị của cơ quan, đơn vị"),
        (
            "HG-2024 Đ8.2.a",
            "tài khoản không phát sinh hoạt động đăng nhập, gửi, nhận trong 06 tháng",
        ),
        (
            "HG-2024 Đ8.2.b",
            "tài khoản bị chiếm dụng, lộ lọt hoặc phát tán thư rác, mã độc được cảnh báo",
        ),
        ("HG-2024 Đ8.2.c", "vi phạm các hành vi bị nghiêm cấm tại Điều 3"),
        ("HG-2024 Đ8.2.d", "không thay đổi mật khẩu mặc định sau 01 tháng kể từ khi được cấp"),
        ("HG-2024 Đ8.3", "khôi phục tài khoản theo văn bản của cơ quan, đơn vị"),
        ("HG-2024 Đ8.4", "tạm khóa liên tục từ 03 năm trở lên thì hủy bỏ, không thể khôi phục"),
        ("HG-2024 Đ9.2.b", "Sở Thông tin và Truyền thông quyết định dung lượng"),
        ("HG-2024 Đ11.3", "thay đổi thủ trưởng thì bàn giao tài khoản cho thủ trưởng mới"),
        ("HG-2024 Đ12.2", "cấp lại mật khẩu mới khi bị lộ hoặc quên"),
    ),
)
