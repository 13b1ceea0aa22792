"""The regulations' interface, clauses, candidate forms, password and time rules."""

from __future__ import annotations

import dataclasses
import itertools
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.errors import NamingError, ReconcilerError
from reconciler.names import split
from reconciler.rules import regulations
from reconciler.rules.regulations import Regulation, TimeRule

QN = regulations.get("quangnam-2020")
HG = regulations.get("hagiang-2024")
CLAUSE = re.compile(r"(QN-2020|HG-2024) Đ\d+(\.\d+)?(\.[a-z])?")


def test_known_and_get() -> None:
    assert regulations.KNOWN == ("quangnam-2020", "hagiang-2024")
    for regulation_id in regulations.KNOWN:
        assert regulations.get(regulation_id).id == regulation_id


def test_unknown_regulation_names_the_known_ones() -> None:
    with pytest.raises(ReconcilerError, match="quangnam-2020, hagiang-2024"):
        regulations.get("danang-2025")


def test_regulations_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        QN.default_quota = 1  # type: ignore[misc]


def test_quangnam_fields() -> None:
    assert (QN.id, QN.code, QN.domain) == ("quangnam-2020", "QN-2020", "quangnam.gov.vn")
    assert QN.default_quota == 5 * 1024**3
    assert (QN.person_clause, QN.collision_clause) == ("QN-2020 Đ4.1", "QN-2020 Đ4.2")
    assert not QN.transfer_renames
    assert not QN.agency_mailboxes  # only when the inventory declares its `mailbox`
    assert QN.inactivity == TimeRule(3, "QN-2020 Đ7.2")
    assert QN.password_change is None and QN.expiry is None
    assert QN.delete_clause == "QN-2020 Đ7.1"
    assert QN.irreversible_delete_clause is None  # the decision does not say so
    assert QN.transfer_clause == "QN-2020 Đ10.3"
    assert QN.manager_clause is None
    assert (QN.reset_clause, QN.must_change_clause) == ("QN-2020 Đ6.2", "QN-2020 Đ6.3")
    assert QN.quota_ceiling == 5 * 1024**3 and QN.create_clause == "QN-2020 Đ5.1"
    assert [c for c, _ in QN.suspension_grounds] == ["QN-2020 Đ7.2"]
    assert QN.time_clauses == {"QN-2020 Đ7.2"}


def test_hagiang_fields() -> None:
    assert (HG.id, HG.code, HG.domain) == ("hagiang-2024", "HG-2024", "hagiang.gov.vn")
    assert HG.default_quota == 5 * 1024**3  # Đ9.2.b sets no figure
    assert HG.quota_clause == "HG-2024 Đ9.2.b"
    assert (HG.agency_clause, HG.person_clause) == ("HG-2024 Đ5.1", "HG-2024 Đ5.2")
    assert HG.transfer_renames
    assert HG.agency_mailboxes
    assert HG.inactivity == TimeRule(6, "HG-2024 Đ8.2.a")
    assert HG.password_change == TimeRule(1, "HG-2024 Đ8.2.d")
    assert HG.expiry == TimeRule(36, "HG-2024 Đ8.4")
    assert HG.expiry.span == "3 years"
    assert (HG.delete_clause, HG.restore_clause) == ("HG-2024 Đ7.1", "HG-2024 Đ8.3")
    assert HG.irreversible_delete_clause == "HG-2024 Đ7.2"
    assert HG.declared_suspend_clause == "HG-2024 Đ8.1"  # an agency's request
    grounds = ["HG-2024 Đ8.1", "HG-2024 Đ8.2.b", "HG-2024 Đ8.2.c"]
    assert [c for c, _ in HG.suspension_grounds] == grounds
    assert (HG.reset_clause, HG.must_change_clause) == ("HG-2024 Đ12.2", "HG-2024 Đ6.1")
    assert (HG.manager_clause, HG.handover_clause) == ("HG-2024 Đ11.2", "HG-2024 Đ11.3")
    assert HG.quota_ceiling is None and HG.create_clause == "HG-2024 Đ7.1"
    assert HG.manager_clause == "HG-2024 Đ11.2"
    assert HG.time_clauses == {"HG-2024 Đ8.2.a", "HG-2024 Đ8.2.d", "HG-2024 Đ8.4"}


def test_time_rule_spans() -> None:
    assert [TimeRule(m, "").span for m in (1, 3, 12, 36, 18)] == [
        "1 month",
        "3 months",
        "1 year",
        "3 years",
        "18 months",
    ]


def _clauses(reg: Regulation) -> list[tuple[str, str]]:
    """Every clause the regulation cites, with the field it is in."""
    found = []
    for field in dataclasses.fields(reg):
        value = getattr(reg, field.name)
        if isinstance(value, TimeRule):
            found.append((field.name, value.clause))
        elif field.name.endswith("_clause") and value is not None:
            found.append((field.name, value))
    return found


@pytest.mark.parametrize("reg", [QN, HG], ids=lambda r: r.id)
def test_every_clause_is_well_formed_and_of_its_regulation(reg: Regulation) -> None:
    clauses = _clauses(reg)
    assert len(clauses) >= 12
    for name, value in clauses:
        assert CLAUSE.fullmatch(value), (name, value)
        assert value.startswith(reg.code + " "), name
        assert reg.clause_problem(value) is None, name


@pytest.mark.parametrize(
    ("clause", "problem"),
    [
        ("HG-2024 Đ8.2.b", None),
        ("HG-2024 Đ8", None),
        ("HG-2024 Đ8.2.b.c", "is not a clause"),
        ("HG-2024 D8.2", "is not a clause"),
        ("HG-2024", "is not a clause"),
        ("Điều 8", "is not a clause"),
        ("QN-2020 Đ7.2", "another regulation than hagiang-2024"),
        ("DN-2025 Đ1", "another regulation than hagiang-2024"),
    ],
)
def test_a_clause_is_recognised_by_its_regulation(clause: str, problem: str | None) -> None:
    found = HG.clause_problem(clause)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
    assert QN.clause_problem("QN-2020 Đ7.2") is None
    assert "another regulation than quangnam-2020" in (QN.clause_problem("HG-2024 Đ8.4") or "")


def test_a_clause_that_is_not_one_is_shown_an_example_of_its_regulation() -> None:
    assert HG.declared_suspend_clause in (HG.clause_problem("lộ mật khẩu") or "")
    assert QN.declared_suspend_clause in (QN.clause_problem("lộ mật khẩu") or "")


# ---------------------------------------------------------------------------------------------
# Address forms


def test_agency_and_unit_local_parts() -> None:
    assert HG.agency_local("sotttt", "ignored") == "sotttt"
    assert HG.unit_local("vanphong", "sotttt") == "vanphong.sotttt"
    assert QN.agency_local("sotttt", "vanphongso") == "vanphongso"
    assert QN.agency_local("sotttt", None) is None
    assert QN.unit_local("vanphong", "sotttt") is None
    with pytest.raises(NamingError, match="unit abbreviation"):
        HG.unit_local("Văn phòng", "sotttt")


def test_candidates_quangnam() -> None:
    parts = split("Nguyễn Thị Tú Vân")
    first = list(itertools.islice(QN.person_candidates(parts, "sotttt"), 4))
    assert first == ["vanntt", "vanntt1", "vanntt2", "vanntt3"]


def test_candidates_hagiang() -> None:
    parts = split("Ngô Văn Sơn")
    first = list(itertools.islice(HG.person_candidates(parts, "sotttt"), 7))
    assert first == [
        "nvson.sotttt",
        "ngvson.sotttt",
        "ngovson.sotttt",
        "ngovason.sotttt",
        "ngovanson.sotttt",
        "nvson1.sotttt",
        "nvson2.sotttt",
    ]


@pytest.mark.parametrize("reg", [QN, HG], ids=lambda r: r.id)
def test_candidates_are_endless_and_distinct(reg: Regulation) -> None:
    parts = split("Lê Na")
    many = list(itertools.islice(reg.person_candidates(parts, "a"), 500))
    assert len(set(many)) == 500


@pytest.mark.parametrize("reg", [QN, HG], ids=lambda r: r.id)
def test_accepts_every_candidate(reg: Regulation) -> None:
    parts = split("Phạm Lê Nguyễn Hoàng Minh Khôi")
    for local in itertools.islice(reg.person_candidates(parts, "sotttt"), 40):
        assert reg.accepts(local, parts, "sotttt"), local
    # and with diacritics or case changed: the same folded name
    for local in itertools.islice(reg.person_candidates(parts, "sotttt"), 40):
        assert reg.accepts(local, split("PHAM LE NGUYEN HOANG MINH KHOI"), "sotttt")


@pytest.mark.parametrize(
    ("reg", "local", "name", "abbr"),
    [
        (QN, "namnv0", "Nguyễn Văn Nam", ""),  # no number 0
        (QN, "namnv01", "Nguyễn Văn Nam", ""),  # no leading zero
        (QN, "namtv", "Nguyễn Văn Nam", ""),  # another family name
        (QN, "namn", "Nguyễn Văn Nam", ""),  # initials missing
        (QN, "nam.nv", "Nguyễn Văn Nam", ""),
        (QN, "nvnam", "Nguyễn Văn Nam", ""),  # the other regulation's form
        (HG, "nvson.soyte", "Nguyễn Văn Sơn", "sotttt"),  # another agency: transfer → rename
        (HG, "nvson", "Nguyễn Văn Sơn", "sotttt"),
        (HG, "ngvson.sotttt", "Nông Văn Sơn", "sotttt"),  # not a lengthening of Nông
        (HG, "nguyvson.sotttt", "Nguyễn Văn Sơn", "sotttt1"),
        (HG, "nvason.sotttt", "Nguyễn Văn Sơn", "sotttt"),  # middle lengthened before family
        (HG, "son.nv", "Nguyễn Văn Sơn", "nv"),  # a pinned pre-regulation form
    ],
)
def test_accepts_refuses(reg: Regulation, local: str, name: str, abbr: str) -> None:
    assert not reg.accepts(local, split(name), abbr)


def test_accepts_lengthened_and_numbered_forms() -> None:
    parts = split("Nguyễn Văn Sơn")
    for local in ("nvson.sotttt", "nguyvson.sotttt", "nguyenvason.sotttt", "nguyvson12.sotttt"):
        assert HG.accepts(local, parts, "sotttt"), local
    assert QN.accepts("sonnv12", parts, "")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.text(alphabet="abcđơ0", min_size=1, max_size=4), min_size=2, max_size=5),
    st.integers(0, 30),
    st.sampled_from([QN, HG]),
)
def test_accepts_agrees_with_the_candidates(words: list[str], count: int, reg: Regulation) -> None:
    try:
        parts = split(" ".join(words))
    except NamingError:
        return
    candidates = list(itertools.islice(reg.person_candidates(parts, "ab"), count + 1))
    assert all(reg.accepts(local, parts, "ab") for local in candidates)
    assert all(re.fullmatch(r"[a-z0-9.]{1,64}", local) for local in candidates)


# ---------------------------------------------------------------------------------------------
# Passwords


@pytest.mark.parametrize(
    ("password", "clause"),
    [
        ("Ab1!", "QN-2020 Đ8.1"),
        ("Abcdefg1", "QN-2020 Đ8.2"),  # no special character
        ("ABCDEFG1!", "QN-2020 Đ8.2"),  # no lower case
        ("abcdefg1!", "QN-2020 Đ8.2"),  # no upper case
        ("Abcdefgh!", "QN-2020 Đ8.2"),  # no digit
        ("Nguyễn@2024", "QN-2020 Đ8.1"),  # the family name, dressed up
        ("Vân#12345", "QN-2020 Đ8.1"),  # the given name
        ("TuVan!2024", None),
        ("Kh0ng-Doan-Duoc", None),
        ("Mật khẩu 1", "QN-2020 Đ8.2"),  # a space is not a special character
        ("Mật khẩu 1!", None),
    ],
)
def test_password_quangnam(password: str, clause: str | None) -> None:
    reason = QN.password_ok(password, split("Nguyễn Thị Tú Vân"))
    if clause is None:
        assert reason is None
    else:
        assert reason is not None and clause in reason
        assert password not in reason


@pytest.mark.parametrize(
    ("password", "ok"),
    [
        ("Ab1!", False),
        ("ABCDEFG1!", True),  # Đ6.2 asks no lower case
        ("abcdefg1!", False),
        ("Abcdefgh!", False),
        ("Abcdefgh1", False),
        ("Nguyen@2024", True),  # Đ6.2 has no name rule
    ],
)
def test_password_hagiang(password: str, ok: bool) -> None:
    reason = HG.password_ok(password, split("Nguyễn Văn Sơn"))
    assert (reason is None) is ok
    if reason:
        assert reason.startswith("HG-2024 Đ6.2") and password not in reason


# ---------------------------------------------------------------------------------------------
# Purity


def test_core_imports_neither_ldap3_nor_click() -> None:
    code = (
        "import sys, reconciler.rules.naming, reconciler.rules.regulations;"
        "reconciler.rules.regulations.get('hagiang-2024');"
        "bad = {'ldap3', 'click'} & set(sys.modules);"
        "print(*sorted(bad)); sys.exit(1 if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
