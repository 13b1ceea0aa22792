"""The packed store of the entries a plan reads (`reconciler.packed`): whatever goes in comes
back equal, in order, packed when it can be and kept as it is when it cannot."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.attributes import fingerprint
from reconciler.model import Entry
from reconciler.packed import Packed

from .helpers import keep_as_read

PERSON = Entry(
    "uid=nvson.sotttt,ou=people,dc=hagiang,dc=gov,dc=vn",
    {
        "objectclass": ("top", "person", "inetOrgPerson", "govMailAccount"),
        "uid": ("nvson.sotttt",),
        "cn": ("Nguyễn Văn Sơn",),
        "govmailalias": ("son.nv@hagiang.gov.vn", "nvson@hagiang.gov.vn"),
    },
)


def test_entries_come_back_equal_and_in_order() -> None:
    later = Entry("ou=people,dc=hagiang,dc=gov,dc=vn", {"ou": ("people",), "description": ("x",)})
    two = Entry(PERSON.dn, PERSON.attrs, passwords=2)
    store = Packed([PERSON, later, two, PERSON])
    assert list(store) == [PERSON, later, two, PERSON] and store[2].passwords == 2
    assert store[1] == later and store[-1] == PERSON and list(store[:2]) == [PERSON, later]
    assert len(store) == 4 and all(type(item) is bytes for item in store.items)
    assert fingerprint(store[0]) == fingerprint(PERSON)


def test_what_packing_cannot_say_is_kept_as_it_is() -> None:
    odd = [
        Entry("cn=a,dc=x", {"description": ("a\x00b",)}),  # a NUL of its own
        Entry("cn=a\x01,dc=x", {"cn": ("a",)}),  # SOH in the DN
        Entry("cn=a,dc=x", {"cn": ("",)}),  # an empty value
        Entry("cn=a,dc=x", {"cn": ("a", "")}),
        Entry("cn=a,dc=x", {"cn": ()}),  # an attribute without values
        Entry("cn=a,dc=x", {"cn": ("",), "uid": ("a",)}),  # … empty, before another one
        Entry("cn=a,dc=x", {"cn": ("", "a"), "uid": ("a",)}),
        Entry("cn=a,dc=x", {"cn": ("a", ""), "uid": ("a",)}),
        Entry("cn=a,dc=x", {"cn": ("a", "", "b"), "uid": ("a",)}),
        Entry("cn=a,dc=x", {"cn": (), "uid": ("a",)}),
        Entry("cn=a,dc=x", {"cn": ("\ud800",)}),  # not valid Unicode
        Entry("cn=a,dc=x", {"title": ("\x020",)}),  # what a common value is packed as
        Entry("cn=a\x02,dc=x", {"title": ("a",)}),
    ]
    store = Packed(odd)
    assert list(store) == odd
    assert not any(type(item) is bytes for item in store.items)
    assert "13 kept as they are" in repr(store)


values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
entries = st.builds(
    Entry,
    values,
    st.dictionaries(
        st.sampled_from(["cn", "mail", "uid", "objectclass", "title", "x-other"]),
        st.lists(values, max_size=3).map(tuple),
        max_size=4,
    ),
    st.none() | st.integers(min_value=0, max_value=3),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(entries, max_size=6))
def test_any_entries_come_back_equal(found: list[Entry]) -> None:
    store = Packed(found)
    assert list(store) == found
    assert [store[i] for i in range(len(found))] == found


@settings(max_examples=200, deadline=None)
@given(st.lists(entries, max_size=6), st.frozensets(st.sampled_from(["cn", "mail", "title", "x"])))
def test_an_entry_unpacked_with_some_names_has_those_of_its_attributes(
    found: list[Entry], names: frozenset[str]
) -> None:
    store = Packed(found)
    for item, entry in zip(store.items, found, strict=True):
        some = store.unpack(item, names)
        if isinstance(item, bytes):
            kept = {name: values for name, values in entry.attrs.items() if name in names}
            assert some == Entry(entry.dn, kept, entry.passwords)
        else:  # kept as it is: whole
            assert some == entry


def _fingerprint_piece_by_piece(entry: Entry) -> str:
    """`attributes.fingerprint` as first written, a digest fed one piece at a time."""
    import hashlib

    from reconciler.attributes import VOLATILE

    h = hashlib.sha256(entry.dn.lower().encode())
    for name in sorted(entry.attrs):
        if name in VOLATILE:
            continue
        h.update(b"\0" + name.encode())
        for value in sorted(entry.attrs[name]):
            h.update(b"\1" + value.encode())
    if entry.passwords:
        h.update(b"\2" + str(entry.passwords).encode())
    return "sha256:" + h.hexdigest()[:32]


def test_common_values_are_packed_once_and_come_back_as_they_were() -> None:
    """The values many entries share (object classes, agency, title…) are packed as a number:
    every entry holding them unpacks to them, one tuple for all."""
    other = Entry("uid=b,dc=x", {**PERSON.attrs, "uid": ("b",)})
    store = Packed([PERSON, other])
    assert list(store) == [PERSON, other] and len(store.common) == 1
    assert store[0].attrs["objectclass"] is store[1].attrs["objectclass"]
    assert not any(b"govMailAccount" in item for item in store.items)  # numbered once


@settings(max_examples=200, deadline=None)
@given(entries)
def test_the_fingerprint_is_the_one_plans_always_had(entry: Entry) -> None:
    attrs = {**entry.attrs, "modifytimestamp": ("20260101000000Z",)}
    for one in (entry, Entry(entry.dn, attrs), PERSON):
        assert fingerprint(one) == _fingerprint_piece_by_piece(one)


raw_value = st.sampled_from(
    [b"a", b"Nguy\xe1\xbb\x85n", b"Nguye\xcc\x82\xcc\x83n", b"", b"\xff", b"x\x00y", b"\x020"]
) | st.binary(max_size=6)
raw_values = st.lists(raw_value, max_size=3)
raw_entries = st.dictionaries(
    st.sampled_from(["cn", "CN", "mail", "userPassword", "objectClass", "govMailAlias", "Title"]),
    raw_values,
    max_size=5,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["cn=a,dc=x", "cn=Nguye\u0302\u0303n,dc=x"]), raw_entries),
        max_size=5,
    )
)
def test_packing_what_ldap_returns_is_packing_the_entry_made_of_it(
    found: list[tuple[str, dict[str, list[bytes]]]],
) -> None:
    """python-ldap's reads pack the values as libldap returns them (`Packed.pack_raw`): what
    comes back is the entry `ldapcommon.entry` makes of them (NFC, lower-case names,
    userPassword as a count), or, when that cannot be packed exactly, nothing (the entry goes
    in instead)."""
    from reconciler.directory.ldapcommon import entry, entry_name

    store = Packed()
    for dn, raw in found:
        made = entry(dn, raw)
        packed = store.pack_raw(dn, raw, entry_name)
        if packed is None:
            store.append(made)
        else:
            store.append_packed(packed)
        assert store[-1] == made


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["cn=a,dc=x", "cn=Nguye\u0302\u0303n,dc=x"]),
            st.dictionaries(
                st.sampled_from(["cn", "mail", "userPassword", "objectClass", "title", "x-o"]),
                st.lists(raw_value, min_size=1, max_size=3),
                max_size=5,
            ),
        ),
        max_size=6,
    )
)
def test_what_ldap_returns_packs_to_the_bytes_its_entry_packs_to(
    found: list[tuple[str, dict[str, list[bytes]]]],
) -> None:
    """Read through python-ldap (`pack_raw`) or through ldap3 or a file (`pack` of the entry),
    the same entries are kept as the same bytes: the plan file's directory fingerprint, a digest
    of them, does not depend on the library that read the directory. (A server sends no
    attribute without values.)"""
    from reconciler.directory.ldapcommon import entry

    from_raw, from_entries = Packed(), Packed([entry(dn, raw) for dn, raw in found])
    keep_as_read(from_raw, found)
    assert from_raw.items == from_entries.items
