"""Hà Giang: Quyết định 23/2024/QĐ-UBND of 03/06/2024 (in force 20/06/2024), Quy chế quản lý, vận
hành và sử dụng hệ thống thư điện tử công vụ trên địa bàn tỉnh Hà Giang.

- Đ5.1 organisation ``<abbr>@``; unit ``<unit abbr>.<abbr>@`` (vanphong.sotttt).
- Đ5.2 person ``<initials of family and middle names><given>.<abbr>@``: Nguyễn Văn Sơn of sotttt →
  nvson.sotttt. Same address as another person: (a) diacritic-free full names differ → add the
  following letters of the family name, then of each middle name, one at a time, until unique
  (Ngô Văn Sơn → ngvson.sotttt); (b) identical → a number after the given name (nvson1.sotttt).
  The agency is in the address, so a transfer is a rename.
- Đ6.2 password ≥ 8 characters with upper case, digit and special character (no lower-case or
  name rule). Đ8.2.a 6 months without activity, Đ8.2.d default password unchanged after 1 month,
  Đ8.4 suspended 3 years → deleted.
- Đ9.2.b leaves the quota to the Department of Information and Communications and sets no figure:
  the default is the same 5 GiB as quangnam-2020, cited as Đ9.2.b; no attachment limit is set.
- Đ7.1 covers creation, change (transfer included: "luân chuyển") and deletion on request; Đ7.2 a
  deleted account cannot be restored (cited by the guard on a plan's deletions); Đ11.2 the head
  (or a delegate) managing the organisation mailbox.
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
    person_clause="HG-2024 Đ5.2",
    collision_clause="HG-2024 Đ5.2",
    agency_clause="HG-2024 Đ5.1",
    unit_clause="HG-2024 Đ5.1",
    agency_mailboxes=True,
    transfer_renames=True,
    lengthens_initials=True,
    default_quota=5 * GIB,
    quota_clause="HG-2024 Đ9.2.b",
    update_clause="HG-2024 Đ7.1",
    transfer_clause="HG-2024 Đ7.1",
    manager_clause="HG-2024 Đ11.2",
    delete_clause="HG-2024 Đ7.1",
    irreversible_delete_clause="HG-2024 Đ7.2",
    restore_clause="HG-2024 Đ8.3",
    declared_suspend_clause="HG-2024 Đ8.2.b",
    inactivity=TimeRule(6, "HG-2024 Đ8.2.a"),
    password_change=TimeRule(1, "HG-2024 Đ8.2.d"),
    expiry=TimeRule(3 * 12, "HG-2024 Đ8.4"),
    reset_clause="HG-2024 Đ6.1",
)
