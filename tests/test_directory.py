"""The directory adapters: one suite run against slapd through each LDAP backend (python-ldap and
ldap3) and against the LDIF file backend; the connection tests run with both LDAP backends."""

from __future__ import annotations

import base64
import gc
import importlib.util
import os
import re
import socket
import stat
import sys
import time
import unicodedata
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.attributes import READ
from reconciler.devtools.throwaway import Slapd
from reconciler.directory import BACKENDS, FIND_CHUNK, Directory, open_directory
from reconciler.directory.ldif import LdifDirectory
from reconciler.directory.snapshot import read_tree_into
from reconciler.dn import child_dn, normalize_dn
from reconciler.errors import DirectoryError, EntryExists, NoSuchEntry, StaleEntry
from reconciler.model import Settings
from reconciler.planning.desired import Survey, Surveyed
from tests.helpers import write_people_ldif

SUFFIX = "dc=example,dc=gov,dc=vn"
PEOPLE = f"ou=people,{SUFFIX}"
PASSWORD_CANARY = "Sấm-sét-9!canary"


@dataclass
class Backend:
    kind: str
    directory: Directory
    base: str
    _reopen: Callable[[Path | None], Directory]

    def reopen(self, preload: Path | None = None) -> Directory:
        """Close, optionally bulk-load an LDIF of extra entries, open again."""
        self.directory.close()
        self.directory = self._reopen(preload)
        return self.directory


def _person(uid: str, number: str, **extra: list[str]) -> dict[str, list[str]]:
    attrs = {
        "objectClass": ["inetOrgPerson", "govMailAccount"],
        "uid": [uid],
        "cn": [uid],
        "sn": [uid],
        "mail": [f"{uid}@example.gov.vn"],
        "employeeNumber": [number],
    }
    attrs.update(extra)
    return attrs


def _ou(name: str) -> dict[str, list[str]]:
    return {"objectClass": ["organizationalUnit"], "ou": [name]}


@pytest.fixture(params=[*BACKENDS, "ldif"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param in BACKENDS:
        server: Slapd = request.getfixturevalue("slapd")

        def reopen_ldap(preload: Path | None) -> Directory:
            if preload is not None:
                server.reset(preload)
            return open_directory(
                server.url, bind_dn=server.root_dn, password=server.root_pw, backend=request.param
            )

        backend = Backend(request.param, reopen_ldap(None), server.suffix, reopen_ldap)
        assert backend.directory.backend == request.param
    else:
        path = tmp_path / "directory.ldif"
        first = LdifDirectory(f"ldif:{path}")
        first.add(
            SUFFIX,
            {"objectClass": ["dcObject", "organization"], "dc": ["example"], "o": ["example"]},
        )
        first.close()

        def reopen_ldif(preload: Path | None) -> Directory:
            if preload is not None:
                with path.open("a", encoding="utf-8") as out:
                    out.write("\n" + preload.read_text(encoding="utf-8"))
            return open_directory(f"ldif:{path}")

        backend = Backend("ldif", reopen_ldif(None), SUFFIX, reopen_ldif)
    backend.directory.add(PEOPLE, _ou("people"))
    try:
        yield backend
    finally:
        backend.directory.close()


def _dns(directory: Directory, base: str = PEOPLE) -> set[str]:
    return {normalize_dn(e.dn) for e in directory.read(base, ["1.1"])}


# ---------------------------------------------------------------------------------------------
# the shared suite


def test_add_get_read_modify_rename_delete(backend: Backend) -> None:
    d = backend.directory
    dn = child_dn("uid", "nvson", PEOPLE)
    d.add(dn, _person("nvson", "HG-0001", govMailAlias=["son.nv@example.gov.vn"]))
    entry = d.get(dn, ["uid", "mail", "employeeNumber", "govMailAlias", "objectClass"])
    assert entry is not None
    assert normalize_dn(entry.dn) == normalize_dn(dn)
    assert entry.get("employeeNumber") == "HG-0001"
    assert entry.key == "HG-0001" and entry.managed and entry.mail == "nvson@example.gov.vn"
    assert set(entry.attrs) == {"uid", "mail", "employeenumber", "govmailalias", "objectclass"}
    assert "cn" not in entry.attrs  # only what was asked for

    d.modify(dn, {"govMailAlias": ["a@example.gov.vn", "b@example.gov.vn"], "title": ["Giám đốc"]})
    entry = d.get(dn, ["govMailAlias", "title"])
    assert entry is not None
    assert sorted(entry.all("govMailAlias")) == ["a@example.gov.vn", "b@example.gov.vn"]
    assert entry.get("title") == "Giám đốc"
    d.modify(dn, {"title": [], "description": []})  # delete one, the other is absent: no error
    entry = d.get(dn, ["title", "description", "govMailAlias"])
    assert entry is not None and "title" not in entry.attrs and "description" not in entry.attrs

    new_dn = d.rename(dn, "uid=son.nv")
    assert normalize_dn(new_dn) == normalize_dn(f"uid=son.nv,{PEOPLE}")
    assert d.get(dn, ["uid"]) is None
    moved = d.get(new_dn, ["uid", "employeeNumber"])
    assert moved is not None
    assert moved.all("uid") == ("son.nv",)  # the old RDN value is gone
    assert moved.key == "HG-0001"

    listed = list(d.read(backend.base, ["uid"]))
    assert normalize_dn(backend.base) in {normalize_dn(e.dn) for e in listed}  # base included
    assert normalize_dn(new_dn) in {normalize_dn(e.dn) for e in listed}
    assert all(k == k.lower() for e in listed for k in e.attrs)

    d.delete(new_dn)
    assert d.get(new_dn, ["uid"]) is None
    assert _dns(d) == {normalize_dn(PEOPLE)}


def test_find_by_attribute_in_chunks_with_specials(backend: Backend) -> None:
    d = backend.directory
    numbers = [f"HG-{i:04d}" for i in range(FIND_CHUNK + 30)]  # more than one search
    for i, number in enumerate(numbers):
        d.add(child_dn("uid", f"u{i}", PEOPLE), _person(f"u{i}", number))
    tricky = "x*)(uid=u1"  # a filter injection attempt is only a value
    d.add(child_dn("uid", "odd", PEOPLE), _person("odd", tricky))
    wanted = [*numbers[::2], "hg-0001", "HG-9999", tricky]  # employeeNumber ignores case
    found = {
        e.key: e for e in d.find(backend.base, "employeeNumber", wanted, ["uid", "employeeNumber"])
    }
    assert set(found) == {*numbers[::2], "HG-0001", tricky}
    assert found[tricky].get("uid") == "odd"
    assert set(found["HG-0002"].attrs) == {"uid", "employeenumber"}  # only what was asked for
    assert list(d.find(backend.base, "employeeNumber", [], ["uid"])) == []
    assert [e.get("uid") for e in d.find(backend.base, "uid", ["U3"], ["uid"])] == ["u3"]


def test_find_over_many_chunks_in_order_and_stopped_early(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many chunks: every entry once, chunk after chunk; a reader that stops early leaves the
    connection as good as before."""
    monkeypatch.setattr("reconciler.directory.ldapcommon.FIND_CHUNK", 3)
    d = backend.directory
    numbers = [f"HG-{i:04d}" for i in range(20)]  # seven chunks of three
    for i, number in enumerate(numbers):
        d.add(child_dn("uid", f"u{i}", PEOPLE), _person(f"u{i}", number))
    wanted = [*reversed(numbers), "HG-9999"]
    found = [e.key for e in d.find(backend.base, "employeeNumber", wanted, ["employeeNumber"])]
    assert sorted(found) == numbers
    if backend.kind != "ldif":  # each chunk's entries come before the next chunk's
        chunks = [set(wanted[i : i + 3]) for i in range(0, len(wanted), 3)]
        assert [next(i for i, c in enumerate(chunks) if k in c) for k in found] == sorted(
            next(i for i, c in enumerate(chunks) if k in c) for k in found
        )
    reader = d.find(backend.base, "employeeNumber", wanted, ["employeeNumber"])
    assert next(reader).key in numbers
    reader.close()  # the searches sent ahead are abandoned
    assert d.get(child_dn("uid", "u7", PEOPLE), ["employeeNumber"]) is not None
    again = d.find(backend.base, "employeeNumber", numbers[:5], ["employeeNumber"])
    assert sorted(e.key for e in again) == numbers[:5]


def test_find_chunks_whose_matches_take_several_pages(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk's matches on more than one page: slapd keeps one paged search per connection,
    so the chunks' searches go one after another (sent ahead, the next chunk's first page made
    the server drop this one's cookie: "paged results cookie is invalid")."""
    monkeypatch.setattr("reconciler.directory.ldapcommon.FIND_CHUNK", 3)
    monkeypatch.setattr("reconciler.directory.python_ldap.PAGE_SIZE", 2)
    monkeypatch.setattr("reconciler.directory.ldap.PAGE_SIZE", 2, raising=False)
    d = backend.directory
    numbers = [f"HG-{i:04d}" for i in range(20)]
    for i, number in enumerate(numbers):
        d.add(child_dn("uid", f"u{i}", PEOPLE), _person(f"u{i}", number))
    found = [e.key for e in d.find(backend.base, "employeeNumber", numbers, ["employeeNumber"])]
    assert sorted(found) == numbers


def test_find_a_value_many_entries_hold_is_read_page_by_page(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """python-ldap's chunks go unpaged, many at once: one whose matches pass FIND_LIMIT (the
    server's size limit would cut it short) is read again page by page, the chunks after it
    still in flight, and the entries still come chunk after chunk; more chunks than go at
    once, and a reader stopping early, leave the connection as good as before."""
    monkeypatch.setattr("reconciler.directory.ldapcommon.FIND_CHUNK", 2)
    monkeypatch.setattr("reconciler.directory.python_ldap.FIND_LIMIT", 3)
    monkeypatch.setattr("reconciler.directory.python_ldap.FIND_AHEAD", 2)
    monkeypatch.setattr("reconciler.directory.python_ldap.PAGE_SIZE", 2)
    d = backend.directory
    shared = [f"HG-{i:04d}" for i in range(4)]  # chunk 1: a title eight entries share, and one
    for i in range(8):
        d.add(child_dn("uid", f"s{i}", PEOPLE), _person(f"s{i}", shared[i % 4], title=["Chung"]))
    for i in range(9):
        d.add(child_dn("uid", f"u{i}", PEOPLE), _person(f"u{i}", f"HG-{i + 10:04d}"))
    wanted = ["Chung", "nobody", *(f"u{i}" for i in range(9))]
    found = [e.get("uid") for e in d.find(backend.base, "title", wanted[:2], ["uid"])]
    assert sorted(found) == [f"s{i}" for i in range(8)]
    mixed = [
        e.get("uid")
        for e in d.find(backend.base, "uid", ["s0", "s1", "u0", "u1", "u2", "u3", "u4"], ["uid"])
    ]
    assert sorted(mixed) == ["s0", "s1", "u0", "u1", "u2", "u3", "u4"]
    if backend.kind != "ldif":  # chunk after chunk: s0,s1 | u0,u1 | u2,u3 | u4
        assert [sorted(mixed[i : i + 2]) for i in (0, 2, 4)] == [
            ["s0", "s1"],
            ["u0", "u1"],
            ["u2", "u3"],
        ]
    by_title = d.find(backend.base, "title", ["Chung", "Phó", "Trưởng", "Chung"], ["uid"])
    assert sorted(e.get("uid") for e in by_title) == [f"s{i}" for i in range(8)]
    reader = d.find(backend.base, "uid", [f"u{i}" for i in range(9)], ["uid"])
    assert next(reader).get("uid") in {"u0", "u1"}
    reader.close()  # the searches in flight are abandoned
    assert d.get(child_dn("uid", "u8", PEOPLE), ["uid"]) is not None
    assert sorted(e.get("uid") for e in d.find(backend.base, "uid", ["u5", "U8"], ["uid"])) == [
        "u5",
        "u8",
    ]


def test_modify_with_expect_is_a_compare_and_swap(backend: Backend) -> None:
    d = backend.directory
    dn = child_dn("uid", "nvson", PEOPLE)
    d.add(dn, _person("nvson", "HG-0001", title=["Chuyên viên"], govMailAlias=["a@x.vn"]))
    # as expected: swapped in one step
    d.modify(
        dn,
        {"title": ["Phó Giám đốc"], "govMailAlias": ["a@x.vn", "b@x.vn"], "description": ["d"]},
        {"title": ["Chuyên viên"], "govMailAlias": ["a@x.vn"], "description": []},
    )
    entry = d.get(dn, ["title", "govMailAlias", "description"])
    assert entry is not None and entry.get("title") == "Phó Giám đốc"
    assert sorted(entry.all("govMailAlias")) == ["a@x.vn", "b@x.vn"]
    # an expected value is gone (changed by hand meanwhile): refused, nothing changed
    with pytest.raises(StaleEntry, match="nothing was changed"):
        d.modify(
            dn,
            {"title": ["Giám đốc"], "description": ["e"]},
            {"title": ["Chuyên viên"], "description": ["d"]},
        )
    # a value to add is already there (it was expected absent)
    with pytest.raises(StaleEntry):
        d.modify(dn, {"description": ["d"], "title": ["Giám đốc"]}, {"description": []})
    entry = d.get(dn, ["title", "description"])
    assert entry is not None and entry.get("title") == "Phó Giám đốc"
    assert entry.get("description") == "d"
    # a value someone else added to a multi-valued attribute is kept, never overwritten
    d.modify(dn, {"govMailAlias": ["a@x.vn", "c@x.vn", "hand@x.vn"]})
    d.modify(dn, {"govMailAlias": ["a@x.vn", "d@x.vn"]}, {"govMailAlias": ["a@x.vn", "c@x.vn"]})
    entry = d.get(dn, ["govMailAlias"])
    assert entry is not None
    assert sorted(entry.all("govMailAlias")) == ["a@x.vn", "d@x.vn", "hand@x.vn"]
    with pytest.raises(NoSuchEntry):
        d.modify(child_dn("uid", "nobody", PEOPLE), {"title": ["x"]}, {"title": []})


def test_vietnamese_names_written_nfd_read_back_nfc(backend: Backend) -> None:
    d = backend.directory
    name = "Nguyễn Thị Ánh Tuyết"
    nfd = unicodedata.normalize("NFD", name)
    assert nfd != name
    dn = child_dn("cn", nfd, PEOPLE)
    d.add(dn, _person("ntatuyet", "QN-7", cn=[nfd], sn=["Nguyễn"], displayName=[nfd]))
    (entry,) = [e for e in d.read(PEOPLE, ["cn", "displayName", "sn"]) if e.get("cn")]
    assert entry.get("cn") == name and entry.get("displayname") == name
    assert entry.dn == child_dn("cn", name, PEOPLE)
    assert unicodedata.is_normalized("NFC", entry.dn)
    by_nfc = d.get(child_dn("cn", name, PEOPLE), ["cn"])
    assert by_nfc is not None and by_nfc.get("cn") == name
    d.modify(child_dn("cn", name, PEOPLE), {"title": [unicodedata.normalize("NFD", "Phó phòng")]})
    again = d.get(child_dn("cn", name, PEOPLE), ["title"])
    assert again is not None and again.get("title") == "Phó phòng"


def test_entry_exists_and_no_such_entry(backend: Backend) -> None:
    d = backend.directory
    dn = child_dn("uid", "a", PEOPLE)
    d.add(dn, _person("a", "A-1"))
    with pytest.raises(EntryExists):
        d.add(dn, _person("a", "A-2"))
    with pytest.raises(EntryExists):
        d.add(child_dn("uid", "A", PEOPLE), _person("A", "A-3"))  # DNs compare case-insensitively
    d.add(child_dn("uid", "b", PEOPLE), _person("b", "B-1"))
    with pytest.raises(EntryExists):
        d.rename(child_dn("uid", "b", PEOPLE), "uid=a")
    missing = child_dn("uid", "nobody", PEOPLE)
    with pytest.raises(NoSuchEntry):
        d.modify(missing, {"title": ["x"]})
    with pytest.raises(NoSuchEntry):
        d.delete(missing)
    with pytest.raises(NoSuchEntry):
        d.rename(missing, "uid=somebody")
    with pytest.raises(NoSuchEntry):
        d.add(child_dn("uid", "c", f"ou=missing,{PEOPLE}"), _person("c", "C-1"))
    with pytest.raises(NoSuchEntry):
        list(d.read(f"ou=missing,{PEOPLE}", ["uid"]))
    assert d.get(missing, ["uid"]) is None
    with pytest.raises(DirectoryError) as refused:  # a parent with children stays
        d.delete(PEOPLE)
    assert not isinstance(refused.value, NoSuchEntry)
    with pytest.raises(DirectoryError):  # the RDN value cannot be modified away
        d.modify(dn, {"uid": ["other"]})


SPECIALS = [
    "*",
    "(",
    ")",
    "\\",
    ",",
    "+",
    '"',
    "<",
    ">",
    ";",
    "=",
    "#",
    " lead",
    "#hash",
    "victim,ou=people",
    "victim\\",
    "victim)(uid=*",
    "vic*",
    "x=y+uid=victim",
    'a"b\\c<d>e;f',
]


def test_ldap_specials_in_rdn_values_cannot_touch_another_entry(backend: Backend) -> None:
    d = backend.directory
    victim = child_dn("uid", "victim", PEOPLE)
    d.add(victim, _person("victim", "V-0", title=["untouched"]))
    for i, value in enumerate(SPECIALS):
        dn = child_dn("uid", value, PEOPLE)
        d.add(dn, _person(value, f"S-{i}"))
        got = d.get(dn, ["uid", "employeeNumber"])
        assert got is not None, value
        assert got.key == f"S-{i}" and value in got.all("uid"), value
        d.modify(dn, {"title": ["changed"]})
        renamed = d.rename(dn, "uid=" + child_dn("uid", value + "2", "").split("=", 1)[1])
        d.delete(renamed)
        assert d.get(dn, ["uid"]) is None and d.get(renamed, ["uid"]) is None
    survivor = d.get(victim, ["title", "employeeNumber"])
    assert survivor is not None and survivor.get("title") == "untouched" and survivor.key == "V-0"
    assert _dns(d) == {normalize_dn(PEOPLE), normalize_dn(victim)}


def test_operational_attributes_and_passwords(backend: Backend) -> None:
    d = backend.directory
    dn = child_dn("uid", "pw", PEOPLE)
    d.add(dn, _person("pw", "P-1", userPassword=[PASSWORD_CANARY]))
    plain = d.get(dn, ["uid", "userPassword"])
    assert plain is not None and "userpassword" not in plain.attrs
    assert plain.passwords == 1  # how many values, never what
    assert PASSWORD_CANARY not in repr(plain) and "SSHA" not in repr(plain)
    assert "createtimestamp" not in plain.attrs  # operational: only when asked by name
    assert d.get(dn, ["uid"]).passwords is None  # type: ignore[union-attr]  # not asked for
    star = d.get(dn, ["*"])
    assert star is not None and "uid" in star.attrs and star.passwords == 1
    assert "userpassword" not in star.attrs and "createtimestamp" not in star.attrs
    op = d.get(dn, ["createTimestamp", "modifyTimestamp", "pwdReset"])
    assert op is not None
    assert (op.get("createTimestamp") or "").endswith("Z")
    assert op.get("pwdReset") is None  # not set when the entry is created
    d.modify(dn, {"userPassword": ["another-Pw-1"]})  # an administrator's reset
    reset = d.get(dn, ["pwdReset", "pwdChangedTime"])
    assert reset is not None and reset.get("pwdReset") == "TRUE"
    assert reset.get("pwdChangedTime") is not None
    d.modify(dn, {"pwdAccountLockedTime": ["000001010000Z"], "pwdReset": []})
    locked = d.get(dn, ["pwdAccountLockedTime", "pwdReset"])
    assert locked is not None
    assert locked.get("pwdAccountLockedTime") == "000001010000Z" and locked.get("pwdReset") is None
    d.modify(dn, {"pwdAccountLockedTime": []})
    unlocked = d.get(dn, ["pwdAccountLockedTime"])
    assert unlocked is not None and unlocked.attrs == {}
    with pytest.raises(DirectoryError):
        d.modify(dn, {"createTimestamp": ["20200101000000Z"]})


def test_two_reads_of_an_unchanged_directory_have_one_fingerprint(backend: Backend) -> None:
    """The plan file's directory fingerprint (`desired.Survey.fingerprint`, a digest of the
    entries as packed): the same for two reads of an unchanged directory, and for the entries
    packed straight from what the LDAP library returns or from the entries made of it; nothing
    of a password in what it digests; another once a value changed."""
    d = backend.directory
    for uid, number in (("nvson", "HG-0001"), ("ttlan", "HG-0002")):
        person = _person(uid, number, userPassword=[PASSWORD_CANARY], title=["Chuyên viên"])
        d.add(child_dn("uid", uid, PEOPLE), person)
    settings = Settings("hagiang-2024", "example.gov.vn", backend.base)

    def fingerprint() -> str:
        found = Surveyed(settings)
        read_tree_into(d, backend.base, READ, found)
        packed = [item for item in found.items if isinstance(item, bytes)]
        assert len(packed) == len(found) >= 4
        assert not any(PASSWORD_CANARY.encode() in item or b"SSHA" in item for item in packed)
        return found.survey.fingerprint

    first = fingerprint()
    assert fingerprint() == first
    assert Survey.of(settings, d.read(backend.base, READ)).fingerprint == first
    d.modify(child_dn("uid", "ttlan", PEOPLE), {"title": ["Giám đốc"]})
    assert fingerprint() != first


def test_paged_read_of_2500_entries(backend: Backend, tmp_path: Path) -> None:
    ldif = write_people_ldif(tmp_path / "many.ldif", SUFFIX, 2500, ou="many")
    d = backend.reopen(ldif)
    seen: list[int] = []
    started = time.perf_counter()
    entries = list(
        d.read(f"ou=many,{SUFFIX}", ["uid", "mail", "employeeNumber", "govMailQuota"], seen.append)
    )
    elapsed = time.perf_counter() - started
    assert len(entries) == 2501
    assert len({e.key for e in entries if e.key}) == 2500
    assert seen[-1] == 2501 and len(seen) >= 3  # pages of 1000
    assert all(e.get("govMailQuota") == "5368709120" for e in entries if e.key)
    print(f"{backend.kind}: read 2,501 entries in {elapsed:.3f} s")
    assert elapsed < 30  # bounded, not a benchmark


def test_a_read_stopped_midway_leaves_the_connection_usable(
    backend: Backend, tmp_path: Path
) -> None:
    """python-ldap asks for the next page before the last is decoded: a reader that stops
    midway leaves a request in flight, which is abandoned; what follows reads as usual."""
    ldif = write_people_ldif(tmp_path / "many.ldif", SUFFIX, 2500, ou="many")
    d = backend.reopen(ldif)
    base = f"ou=many,{SUFFIX}"
    reading = d.read(base, ["uid"])
    first = [next(reading) for _ in range(1500)]
    reading.close()
    again = list(d.read(base, ["uid"]))
    assert len(again) == 2501 and [e.dn for e in again[:1500]] == [e.dn for e in first]
    assert d.get(first[-1].dn, ["uid"]) == first[-1]


def test_progress_optional_and_streaming(backend: Backend) -> None:
    d = backend.directory
    iterator = d.read(backend.base, ["uid"])
    first = next(iterator)
    assert first.dn
    rest = list(iterator)
    assert len(rest) >= 1


# ---------------------------------------------------------------------------------------------
# the LDIF file


def test_ldif_round_trip_is_byte_stable(tmp_path: Path) -> None:
    path = tmp_path / "dir.ldif"
    d = open_directory(f"ldif:{path}")
    d.add(SUFFIX, {"objectClass": ["dcObject", "organization"], "dc": ["example"], "o": ["x"]})
    d.add(PEOPLE, _ou("people"))
    d.add(child_dn("uid", "b", PEOPLE), _person("b", "B", description=["x" * 200]))
    d.add(
        child_dn("cn", "Đỗ Thị Hương", PEOPLE),
        _person(
            "dthuong",
            "H-2",
            cn=["Đỗ Thị Hương"],
            description=[" leading space", ":colon", "<angle", "trailing "],
            userPassword=[PASSWORD_CANARY],
        ),
    )
    d.add(child_dn("uid", "a,b+c", PEOPLE), _person("a,b+c", "C"))
    d.close()
    data = path.read_bytes()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert PASSWORD_CANARY.encode() not in data and b"\nuserPassword: {SSHA}" in data
    text = data.decode("ascii")  # non-ASCII is base64
    assert all(len(line) <= 76 for line in text.splitlines())
    head = r"version: 1\n# reconciler directory identity: ldif:[0-9a-f-]{36}\n\ndn: "
    assert re.match(head + re.escape(SUFFIX) + "\n", text)
    assert text.index(f"dn: {PEOPLE}\n") < text.index("dn: uid=b,")  # parents first
    again = LdifDirectory(f"ldif:{path}")
    assert again.dump() == data
    assert [e.dn for e in again.read(SUFFIX, ["1.1"])] == [
        e.dn for e in LdifDirectory(f"ldif:{path}").read(SUFFIX, ["1.1"])
    ]
    hashed = [v for v in again._entries.values() if v.values("userPassword")]
    assert len(hashed) == 1 and hashed[0].values("userPassword")[0].startswith("{SSHA}")
    entry = again.get(child_dn("cn", "Đỗ Thị Hương", PEOPLE), ["description", "cn"])
    assert entry is not None and entry.get("cn") == "Đỗ Thị Hương"
    assert sorted(entry.all("description")) == sorted(
        [" leading space", ":colon", "<angle", "trailing "]
    )
    again.modify(child_dn("uid", "b", PEOPLE), {"title": ["t"]})
    again.flush()
    assert LdifDirectory(f"ldif:{path}").dump() == path.read_bytes()
    again.close()


def test_ldif_reads_rfc2849_content(tmp_path: Path) -> None:
    name = base64.b64encode("Trần Văn Bình".encode()).decode()
    path = tmp_path / "hand.ldif"
    path.write_text(
        "# a comment\n"
        "#  folded comment\n"
        " continued\n"
        "version: 1\n"
        "\n"
        f"dn: {SUFFIX}\r\n"
        "objectClass: dcObject\n"
        "objectClass: organization\n"
        "dc: example\n"
        "o: exam\n"
        " ple\n"
        "\n\n"
        f"dn:: {base64.b64encode(f'cn=Trần Văn Bình,{SUFFIX}'.encode()).decode()}\n"
        "objectClass: inetOrgPerson\n"
        f"cn:: {name}\n"
        "sn:   Trần\n"
        "pwdLastSuccess: 20260101000000Z\n",
        encoding="utf-8",
    )
    d = open_directory(f"ldif:{path}")
    entries = {e.dn: e for e in d.read(SUFFIX, ["o", "cn", "sn", "pwdLastSuccess"])}
    assert entries[SUFFIX].get("o") == "example"
    person = entries[f"cn=Trần Văn Bình,{SUFFIX}"]
    assert person.get("cn") == "Trần Văn Bình" and person.get("sn") == "Trần"
    assert person.get("pwdLastSuccess") == "20260101000000Z"
    d.close()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("dn: dc=x\nchangetype: add\nobjectClass: top\n", "change records"),
        ("objectClass: top\n", "must start with `dn:`"),
        ("dn: dc=x\nobjectClass\n", ":2:"),
        ("dn: dc=x\nobjectClass: top\n\ndn: DC=X\nobjectClass: top\n", "appears twice"),
        ("dn: dc=x\ncn:: !!!\n", "bad base64"),
    ],
)
def test_ldif_refuses_bad_files_with_line_numbers(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.ldif"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DirectoryError) as error:
        open_directory(f"ldif:{path}")
    assert message in str(error.value) and str(path) in str(error.value)


def test_ldif_missing_file_is_empty_and_created_on_close(tmp_path: Path) -> None:
    path = tmp_path / "new.ldif"
    d = open_directory(f"ldif:{path}")
    with pytest.raises(NoSuchEntry):
        list(d.read(SUFFIX, ["1.1"]))
    assert not path.exists()
    d.close()
    assert re.fullmatch(
        rb"version: 1\n# reconciler directory identity: ldif:[0-9a-f-]{36}\n", path.read_bytes()
    )
    assert [p.name for p in tmp_path.iterdir()] == ["new.ldif"]  # no temp file left


# ---------------------------------------------------------------------------------------------
# LDAP connections, through each LDAP backend


@pytest.fixture(params=BACKENDS)
def library(request: pytest.FixtureRequest) -> str:
    """The LDAP backend the connection tests open."""
    return str(request.param)


def _refused(url: str, library: str, **kw: object) -> DirectoryError:
    with pytest.raises(DirectoryError) as error:
        open_directory(url, backend=library, **kw)  # type: ignore[arg-type]
    message = str(error.value)
    assert PASSWORD_CANARY not in message and PASSWORD_CANARY not in repr(error.value)
    return error.value


def test_the_backend_is_chosen(slapd: Slapd, monkeypatch: pytest.MonkeyPatch) -> None:
    kw = {"bind_dn": slapd.root_dn, "password": slapd.root_pw}
    with open_directory(slapd.url, **kw) as d:  # python-ldap is in the development lock
        assert d.backend == "python-ldap"
        assert slapd.root_pw not in repr(d) and "bind_dn" in repr(d)
    with open_directory(slapd.url, backend="ldap3", **kw) as d:
        assert d.backend == "ldap3" and slapd.root_pw not in repr(d)
    assert open_directory("ldif:" + str(slapd.workdir / "x.ldif"), backend="ldap3").backend == (
        "ldif"
    )
    with pytest.raises(DirectoryError, match="unknown directory backend 'ldap4'"):
        open_directory(slapd.url, backend="ldap4", **kw)
    # an install without a compiler: no python-ldap, ldap3 by default, a clear error when forced
    monkeypatch.setitem(sys.modules, "ldap", None)  # type: ignore[arg-type]
    monkeypatch.delitem(sys.modules, "reconciler.directory.python_ldap", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with open_directory(slapd.url, **kw) as d:
        assert d.backend == "ldap3"
    with pytest.raises(DirectoryError, match=r"python-ldap backend is not available.*ldap3"):
        open_directory(slapd.url, backend="python-ldap", **kw)


def test_closed_port_is_one_readable_error(library: str) -> None:
    error = _refused(
        "ldap://127.0.0.1:1", library, bind_dn="cn=admin," + SUFFIX, password=PASSWORD_CANARY
    )
    assert str(error) == (
        "cannot reach ldap://127.0.0.1:1: connection refused — is slapd running and is the port "
        "right?"
    )


def test_wrong_password_is_one_readable_error(slapd: Slapd, library: str) -> None:
    error = _refused(slapd.url, library, bind_dn=slapd.root_dn, password=PASSWORD_CANARY)
    assert f"refused the bind DN {slapd.root_dn}: invalid credentials" in str(error)
    assert "RECONCILER_BIND_PASSWORD" in str(error) and slapd.url in str(error)


def test_wrong_base_dn_is_one_readable_error(slapd: Slapd, library: str) -> None:
    kw = {"bind_dn": slapd.root_dn, "password": slapd.root_pw, "backend": library}
    with open_directory(slapd.url, **kw) as d:
        with pytest.raises(DirectoryError) as error:
            list(d.read("dc=nowhere,dc=vn", ["uid"]))
        assert str(error.value).startswith(
            f"base DN dc=nowhere,dc=vn does not exist on {slapd.url}"
        )
        assert slapd.root_pw not in repr(d) and slapd.root_pw not in str(error.value)


def test_plain_bind_to_remote_host_refused(library: str) -> None:
    admin = {"bind_dn": "cn=admin," + SUFFIX, "password": PASSWORD_CANARY}
    error = _refused("ldap://192.0.2.10:389", library, **admin)
    assert "--starttls" in str(error) and "192.0.2.10" in str(error)
    error = _refused("ldap://[::1]:1", library, **admin)
    assert "connection refused" in str(error)  # loopback: allowed, then refused by the port


def test_bad_urls_and_missing_password(library: str) -> None:
    assert "unsupported directory URL" in str(_refused("http://example.org", library))
    missing = _refused("ldap://127.0.0.1:1", library, bind_dn="cn=x")
    assert "RECONCILER_BIND_PASSWORD" in str(missing)
    assert "has a path" in str(_refused("ldap://127.0.0.1:1/dc=x", library))
    assert "over a local socket" in str(_refused("ldapi://%2Ftmp%2Fx", library, starttls=True))


def test_ldapi_and_anonymous(slapd: Slapd, library: str) -> None:
    root = {"bind_dn": slapd.root_dn, "password": slapd.root_pw, "backend": library}
    with open_directory(slapd.ldapi_url, **root) as d:  # type: ignore[arg-type]
        assert {normalize_dn(e.dn) for e in d.read(slapd.suffix, ["1.1"])} >= {
            normalize_dn(slapd.suffix)
        }
    anonymous = open_directory(slapd.url, backend=library)  # ACLs: anonymous may only bind
    with anonymous, pytest.raises(DirectoryError, match="an anonymous bind may not read"):
        list(anonymous.read(slapd.suffix, ["uid"]))


def test_ldapi_without_a_bind_dn_binds_with_sasl_external(slapd: Slapd, library: str) -> None:
    # the throwaway slapd gives the local user over ldapi what Debian gives root: manage rights
    with open_directory(slapd.ldapi_url, backend=library) as d:
        d.add(f"ou=viaexternal,{slapd.suffix}", {"objectClass": ["organizationalUnit"]})
        assert d.get(f"ou=viaexternal,{slapd.suffix}", ["ou"]) is not None
    plain = open_directory(slapd.url, backend=library)  # no bind DN over TCP: still anonymous
    with plain, pytest.raises(DirectoryError, match="an anonymous bind may not read"):
        list(plain.read(slapd.suffix, ["uid"]))


def test_no_socket_and_dead_server(slapd: Slapd, tmp_path: Path, library: str) -> None:
    error = _refused("ldapi://" + str(tmp_path / "none").replace("/", "%2F"), library)
    assert "no socket at that path" in str(error)
    root = {"bind_dn": slapd.root_dn, "password": slapd.root_pw, "backend": library}
    d = open_directory(slapd.url, **root)  # type: ignore[arg-type]
    slapd.kill()
    with pytest.raises(DirectoryError) as lost:
        list(d.read(slapd.suffix, ["uid"]))
    assert slapd.url in str(lost.value)
    d.close()


@pytest.fixture(scope="module")
def tls_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with Slapd(tmp_path_factory.mktemp("tls"), tls=True) as server:
        yield server


def test_starttls_and_ldaps_verify_with_ca_file(tls_slapd: Slapd, library: str) -> None:
    s = tls_slapd
    root = {"bind_dn": s.root_dn, "password": s.root_pw}
    for url, starttls in ((s.url, True), (s.ldaps_url, False)):
        with open_directory(
            url, starttls=starttls, ca_file=s.ca_file, backend=library, **root
        ) as d:
            assert d.get(s.suffix, ["dc"]) is not None
    untrusted = _refused(s.ldaps_url, library, **root)
    assert "could not be verified" in str(untrusted) and "--ca-file" in str(untrusted)
    untrusted = _refused(s.url, library, starttls=True, **root)
    assert "could not be verified" in str(untrusted)
    # the certificate names 127.0.0.1 and localhost, not this machine: the name is checked too
    name = socket.gethostname()
    assert socket.gethostbyname(name).startswith("127."), "this machine's name is not loopback"
    with warnings.catch_warnings():
        # ldap3 checks the name after the handshake and drops that TLS socket without closing it
        warnings.simplefilter("ignore", ResourceWarning)
        wrong_name = _refused(
            s.ldaps_url.replace("127.0.0.1", name), library, ca_file=s.ca_file, **root
        )
        gc.collect()
    assert "could not be verified" in str(wrong_name) or "match" in str(wrong_name)


def test_starttls_refused_by_a_server_without_tls(slapd: Slapd, library: str) -> None:
    error = _refused(slapd.url, library, starttls=True)
    assert "refused StartTLS" in str(error) and "ldaps://" in str(error)


def test_the_lock_policy_is_read_alike_through_each_backend(slapd: Slapd, library: str) -> None:
    # what apply reads before it suspends: the default policy locks (pwdLockout: TRUE)
    root = {"bind_dn": slapd.root_dn, "password": slapd.root_pw, "backend": library}
    with open_directory(slapd.url, **root) as d:  # type: ignore[arg-type]
        over_tcp = d.lock_policy(slapd.suffix)
    with open_directory(slapd.ldapi_url, backend=library) as d:  # cn=config readable there
        over_ldapi = d.lock_policy(slapd.suffix)
    for policy in (over_tcp, over_ldapi):
        assert policy.locks is True, policy
        assert f"cn=default,ou=policies,{slapd.suffix}" in policy.detail, policy
    assert "the only password policy" in over_tcp.detail  # the rootdn may not read cn=config
    assert "named by cn=config" in over_ldapi.detail


def test_a_failed_tls_handshake_leaves_no_socket_open(
    tls_slapd: Slapd, library: str, tmp_path: Path
) -> None:
    s = tls_slapd
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n", encoding="utf-8")
    before = len(os.listdir("/proc/self/fd"))
    _refused(s.ldaps_url, library, bind_dn=s.root_dn, password=s.root_pw, ca_file=junk)
    assert len(os.listdir("/proc/self/fd")) == before  # error's traceback keeps the object alive
