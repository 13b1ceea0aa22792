"""The survey of the entries a plan reads (`desired.Survey`, `desired.Surveyed`), made as they
are read and packed: the directory's fingerprint in the plan file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reconciler.directory.ldapcommon import entry
from reconciler.model import Entry, Settings
from reconciler.planning.desired import Survey, Surveyed

from .helpers import keep_as_read

SETTINGS = Settings("hagiang-2024", "hagiang.gov.vn", "dc=hagiang,dc=gov,dc=vn")
PEOPLE = "ou=people,dc=hagiang,dc=gov,dc=vn"


def _raw(
    uid: str, *passwords: bytes, title: bytes = b"Chuy\xc3\xaan vi\xc3\xaan"
) -> dict[str, list[bytes]]:
    return {
        "objectClass": [b"top", b"inetOrgPerson", b"govMailAccount"],
        "uid": [uid.encode()],
        "cn": [b"Nguy\xe1\xbb\x85n V\xc4\x83n S\xc6\xa1n"],
        "mail": [f"{uid}@hagiang.gov.vn".encode()],
        "employeeNumber": [b"HG-0001"],
        "title": [title],
        "userPassword": list(passwords),
    }


def _read(found: Sequence[tuple[str, Mapping[str, Sequence[bytes]]]]) -> Surveyed:
    """`found` as python-ldap's read keeps it (`PythonLdapDirectory.read_into`)."""
    store = Surveyed(SETTINGS)
    keep_as_read(store, found)
    return store


def test_the_directory_fingerprint_is_of_the_entries_as_read_never_of_a_password() -> None:
    dn = f"uid=nvson,{PEOPLE}"
    base = [(PEOPLE, {"objectClass": [b"organizationalUnit"], "ou": [b"people"]})]
    one = _read([*base, (dn, _raw("nvson", b"{SSHA}first-hash"))])
    assert not any(b"hash" in item for item in one.items if isinstance(item, bytes))
    fingerprint = one.survey.fingerprint
    assert fingerprint.startswith("sha256:") and len(fingerprint) == 7 + 64
    # another hash, as many passwords: the same; how many passwords is part of it
    assert (
        _read([*base, (dn, _raw("nvson", b"{SSHA}other-hash"))]).survey.fingerprint == fingerprint
    )
    assert (
        _read([*base, (dn, _raw("nvson", b"{SSHA}a", b"{SSHA}b"))]).survey.fingerprint
        != fingerprint
    )
    # any value read, and the order read
    changed = _raw("nvson", b"{SSHA}first-hash", title=b"Gi\xc3\xa1m \xc4\x91\xe1\xbb\x91c")
    assert _read([*base, (dn, changed)]).survey.fingerprint != fingerprint
    assert _read([(dn, _raw("nvson", b"x")), *base]).survey.fingerprint != fingerprint
    # what the packing numbered (common values, attribute names) is part of it
    renamed = {"description" if k == "uid" else k: v for k, v in _raw("nvson", b"x").items()}
    assert _read([*base, (dn, renamed)]).survey.fingerprint != fingerprint
    # the same entries surveyed without reading (`Survey.of`): the same fingerprint
    entries = [entry(d, raw) for d, raw in [*base, (dn, _raw("nvson", b"x"))]]
    assert Survey.of(SETTINGS, entries).fingerprint == fingerprint


def test_an_entry_packing_cannot_keep_counts_by_its_own_fingerprint() -> None:
    odd = Entry(f"cn=a,{PEOPLE}", {"description": ("a\x00b",)})  # kept as it is
    store = Surveyed(SETTINGS)
    store.append(odd)
    assert store.items == [odd]
    other = Surveyed(SETTINGS)
    other.append(Entry(odd.dn, {"description": ("a\x00c",)}))
    assert other.survey.fingerprint != store.survey.fingerprint
    assert Survey.of(SETTINGS, [odd]).fingerprint == store.survey.fingerprint
