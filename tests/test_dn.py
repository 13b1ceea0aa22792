"""DN and filter escaping (RFC 4514, RFC 4515)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.dn import (
    child_dn,
    escape_filter_value,
    escape_rdn_value,
    is_descendant,
    normalize_dn,
    parent_dn,
    parse_dn,
    parse_rdns,
    split_dn,
)

NASTY = [
    "plain",
    "a,b",
    "a+b",
    'say "hi"',
    "back\\slash",
    "<tag>",
    "semi;colon",
    "e=mc2",
    "#hash",
    " leading",
    "trailing ",
    "  both  ",
    "nul\0byte",
    "*(wild)*",
    "Nguyễn Văn Sơn",
    "\\,",
    ",",
    "#",
    " ",
]


@pytest.mark.parametrize("value", NASTY)
def test_escape_round_trips_through_parse(value: str) -> None:
    dn = child_dn("cn", value, "ou=people,dc=example,dc=gov,dc=vn")
    assert parse_dn(dn) == [
        ("cn", value),
        ("ou", "people"),
        ("dc", "example"),
        ("dc", "gov"),
        ("dc", "vn"),
    ]
    assert parent_dn(dn) == "ou=people,dc=example,dc=gov,dc=vn"


def test_escape_rdn_value() -> None:
    assert escape_rdn_value('a,b+c"d\\e<f>g;h=i') == 'a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h\\=i'
    assert escape_rdn_value("#x ") == "\\#x\\ "
    assert escape_rdn_value(" x#") == "\\ x#"
    assert escape_rdn_value("a\0b") == "a\\00b"
    assert escape_rdn_value("Sơn") == "Sơn"


def test_escape_filter_value() -> None:
    assert escape_filter_value("*(a)\\\0") == "\\2a\\28a\\29\\5c\\00"
    assert escape_filter_value("Sơn") == "Sơn"


def test_parse_hex_escapes_and_spaces() -> None:
    assert parse_dn("cn=S\\C6\\A1n , dc=vn") == [("cn", "Sơn"), ("dc", "vn")]
    assert parse_dn("CN=a\\ ,DC=vn") == [("CN", "a "), ("DC", "vn")]
    assert parse_dn('cn="a, b",dc=vn') == [("cn", "a, b"), ("dc", "vn")]
    assert parse_dn("") == []
    assert parse_rdns("cn=a+sn=b,dc=vn") == [[("cn", "a"), ("sn", "b")], [("dc", "vn")]]


@pytest.mark.parametrize("bad", ["cn", "cn=a,", "cn=a\\", "=a", "cn=a,dc"])
def test_parse_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_dn(bad)


def test_multivalued_rdn_not_a_plain_dn() -> None:
    with pytest.raises(ValueError):
        parse_dn("cn=a+sn=b,dc=vn")
    assert normalize_dn("SN=B+cn=A,dc=VN") == "cn=a+sn=b,dc=vn"


def test_normalize_dn() -> None:
    nfd = unicodedata.normalize("NFD", "Nguyễn Văn Sơn")
    assert normalize_dn(f"CN={nfd}, DC=Example,dc=VN") == normalize_dn(
        "cn=nguyễn văn sơn,dc=example,dc=vn"
    )
    assert normalize_dn("uid=A\\2Cb,dc=x") == normalize_dn("uid=a\\,B,dc=x") == "uid=a\\,b,dc=x"
    assert normalize_dn("uid=a,dc=x") != normalize_dn("uid=a\\,dc\\=x")


def test_split_and_descendant() -> None:
    assert split_dn("uid=a\\,b,ou=p,dc=x") == ("uid=a\\,b", "ou=p,dc=x")
    assert split_dn("dc=x") == ("dc=x", "")
    assert is_descendant("uid=a,ou=p,dc=x", "OU=P,dc=x")
    assert is_descendant("dc=x", "dc=x")
    assert not is_descendant("cn=a\\,ou=p,dc=x", "ou=p,dc=x")
    assert not is_descendant("uid=a,ou=px,dc=x", "ou=p,dc=x")
    assert is_descendant("dc=x", "")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20))
def test_any_value_round_trips(value: str) -> None:
    dn = child_dn("uid", value, "ou=p,dc=x")
    assert parse_dn(dn) == [("uid", value), ("ou", "p"), ("dc", "x")]
    assert split_dn(dn) == (dn[: -len(",ou=p,dc=x")], "ou=p,dc=x")
    assert is_descendant(dn, "ou=p,dc=x")


# Issue 20: `escape_rdn_value`, `split_dn` and `parse_rdns` take quick paths for the common DN
# (nothing to escape, nothing escaped or quoted). Held to the loops they had before.


def _old_escape(value: str) -> str:
    out: list[str] = []
    last = len(value) - 1
    for i, char in enumerate(value):
        if char == "\0":
            out.append("\\00")
        elif char in ',+"\\<>;=' or (i == 0 and char in " #") or (i == last and char == " "):
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def _old_split(dn: str) -> tuple[str, str]:
    from reconciler.dn import _trim

    i, n = 0, len(dn)
    in_quotes = False
    while i < n:
        char = dn[i]
        if char == "\\":
            i += 2
            continue
        if char == '"':
            in_quotes = not in_quotes
        elif char in ",;" and not in_quotes:
            return _trim(dn[:i]), _trim(dn[i + 1 :])
        i += 1
    return _trim(dn), ""


DN_TEXT = st.text(alphabet=st.sampled_from(list(' ,;=+"\\#<>\0aZ0ồ-.')), max_size=30)


@settings(max_examples=2000, deadline=None)
@given(DN_TEXT | st.text(max_size=30))
def test_the_quick_paths_give_what_the_loops_gave(text: str) -> None:
    assert escape_rdn_value(text) == _old_escape(text)
    assert split_dn(text) == _old_split(text)
    for dn in (f"uid={text},ou=people,dc=x", f"cn={text}", f"{text}=a,dc=x"):
        assert split_dn(dn) == _old_split(dn)


@pytest.mark.parametrize("dn", ["c<n=a,dc=x", "cn=a,d>c=x", "<=a"])
def test_an_attribute_type_with_angle_brackets_is_refused(dn: str) -> None:
    with pytest.raises(ValueError, match="bad attribute type"):
        parse_rdns(dn)


@pytest.mark.parametrize(
    "value", ["", " ", "#", "a ", " a", "#a", "a#", "a\0", "a=b", "Nguyễn Văn An", "a\\ "]
)
def test_the_quick_escape_keeps_every_edge(value: str) -> None:
    assert escape_rdn_value(value) == _old_escape(value)
