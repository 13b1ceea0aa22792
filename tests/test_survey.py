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


def _every_kind() -> list[Entry]:
    """Entries of every kind a survey tells apart, with every attribute a plan reads."""
    from reconciler.attributes import READ

    base = "dc=hagiang,dc=gov,dc=vn"
    full = {name.lower(): (f"{name}-value",) for name in READ if name.lower() != "userpassword"}

    def person(uid: str, classes: tuple[str, ...], **attrs: tuple[str, ...]) -> Entry:
        values = {"objectclass": classes, "uid": (uid,), "cn": ("Nguyễn Văn Sơn",)}
        return Entry(f"uid={uid},{PEOPLE}", full | values | attrs, passwords=1)

    account = ("top", "inetOrgPerson", "govMailAccount")
    return [
        Entry(base, {"objectclass": ("dcObject", "organization"), "dc": ("hagiang",)}),
        Entry(PEOPLE, {"objectclass": ("organizationalUnit",), "ou": ("people",)}),
        person(
            "nvson",
            account,
            employeenumber=("HG-0001",),
            mail=("NVSon@hagiang.gov.vn",),
            govmailalias=("son.nv@hagiang.gov.vn", "nvson@hagiang.gov.vn"),
        ),
        person(
            "ttlan",
            account,
            employeenumber=("HG-0002",),
            mail=("ttlan@hagiang.gov.vn",),
            govmailalias=("son.nv@hagiang.gov.vn",),
        ),  # an address held twice
        person(
            "old",
            ("top", "inetOrgPerson"),
            employeenumber=("X-1",),
            mail=("old@hagiang.gov.vn",),
            govmailalias=("cu@hagiang.gov.vn",),
        ),  # adoptable, a foreign id
        person("svc", ("top", "account"), mail=("svc@hagiang.gov.vn",)),  # unmanaged
        Entry(
            f"cn=HG-0009 ab12,ou=history,{base}",
            {
                "objectclass": ("top", "govMailTombstone"),
                "govmailformerid": ("HG-0009",),
                "govmailformeraddress": ("Gone@hagiang.gov.vn", "gone.old@hagiang.gov.vn"),
                "govmaildeletedat": ("20260101000000Z",),
                "govmaildeletereason": ("HG-2024 Đ7.1: removed from the inventory",),
                "displayname": ("Bàn Văn Mình",),
                "govmailagency": ("soyte",),
                "description": ("not read by the survey",),
            },
        ),
        Entry(f"cn=batch,ou=history,{base}", {"objectclass": ("govMailAuditLog",)}),
    ]


def test_an_entry_read_is_surveyed_from_the_attributes_the_survey_reads_only() -> None:
    """python-ldap's read surveys each entry unpacked with `SURVEYED` only: what the survey
    finds is what it finds of the whole entries (a survey that came to read another attribute
    fails here until `SURVEYED` names it)."""
    from reconciler.directory.history import is_audit

    def survey(read_packed: bool) -> dict[str, object]:
        store = Surveyed(SETTINGS, is_audit)
        store.survey.ids = {"HG-0001": "HG-0001"}
        for one in _every_kind():
            if read_packed:
                packed = store.pack(one)
                assert isinstance(packed, bytes)
                store.append_packed(packed)
            else:
                store.append(one)
        found = {k: v for k, v in vars(store.survey).items() if k not in ("_tables", "_digest")}
        return found | {"fingerprint": store.survey.fingerprint, "items": list(store.items)}

    whole, surveyed = survey(read_packed=False), survey(read_packed=True)
    assert surveyed == whole
    assert len(whole["stones"]) == 1 and len(whole["candidates"]) == 1  # type: ignore[arg-type]
    assert whole["repeated"] and whole["foreign_ids"] and whole["unmanaged"]
    assert len(whole["items"]) == 7  # type: ignore[arg-type]  # the audit batch skipped
