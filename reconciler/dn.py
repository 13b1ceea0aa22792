"""Distinguished names and filter values, as pure string functions (RFC 4514, RFC 4515).

No ldap3 here: the planner builds DNs and the LDIF backend compares them with these.
"""

from __future__ import annotations

import functools
import re
import unicodedata

_RDN_SPECIALS = frozenset(',+"\\<>;=')
_HEX = "0123456789abcdefABCDEF"
_UNUSUAL = re.compile(r'[\\"+#;]')
#: The characters `escape_rdn_value` escapes wherever they are.
_TO_ESCAPE = re.compile(r'[,+"\\<>;=\0]')
#: The separators of RDNs.
_SEPARATOR = re.compile("[,;]")


def escape_rdn_value(value: str) -> str:
    """Escape an attribute value for use in an RDN (RFC 4514 section 2.4).

    Backslash-escapes `, + " \\ < > ; =`, a leading space or `#` and a trailing space; NUL
    becomes `\\00`. Everything else (including non-ASCII letters) is kept as is.
    """
    edges = value[:1] in (" ", "#") or value[-1:] == " "
    if not edges and _TO_ESCAPE.search(value) is None:
        return value  # nothing to escape (most values): the loop below would keep it as it is
    out: list[str] = []
    last = len(value) - 1
    for i, char in enumerate(value):
        if char == "\0":
            out.append("\\00")
        elif char in _RDN_SPECIALS or (i == 0 and char in " #") or (i == last and char == " "):
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def escape_filter_value(value: str) -> str:
    """Escape an assertion value for a search filter (RFC 4515 section 3): `* ( ) \\ NUL`."""
    return (
        value.replace("\\", "\\5c")
        .replace("*", "\\2a")
        .replace("(", "\\28")
        .replace(")", "\\29")
        .replace("\0", "\\00")
    )


def _unescape_hex(raw: str, start: int) -> tuple[bytes, int]:
    pair = raw[start : start + 2]
    if len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX:
        return bytes.fromhex(pair), start + 2
    raise ValueError("bad escape")


def parse_rdns(dn: str) -> list[list[tuple[str, str]]]:
    """Split a DN string into RDNs, each a list of (attribute, unescaped value) pairs.

    Multi-valued RDNs (`cn=a+sn=b`) give several pairs. Raises ValueError on a malformed DN.
    The empty DN gives an empty list.
    """
    rdns: list[list[tuple[str, str]]] = []
    if not dn.strip():
        return rdns
    if _UNUSUAL.search(dn) is None:  # fast path: nothing escaped, quoted or multi-valued
        for part in dn.split(","):
            attr, equals, value = part.partition("=")
            attr = attr.strip()
            if not equals or not attr or "=" in value or "<" in attr or ">" in attr:
                break  # malformed or unusual: let the full parser say what is wrong
            rdns.append([(attr, value.rstrip(" "))])
        else:
            return rdns
        rdns = []
    current: list[tuple[str, str]] = []
    i, n = 0, len(dn)
    while True:
        # attribute type
        while i < n and dn[i] == " ":
            i += 1
        eq = dn.find("=", i)
        if eq < 0:
            raise ValueError(f"malformed DN {dn!r}: missing '=' after {dn[i:]!r}")
        attr = dn[i:eq].strip()
        if not attr or any(c in attr for c in ',+"\\<>;'):
            raise ValueError(f"malformed DN {dn!r}: bad attribute type {attr!r}")
        i = eq + 1
        # attribute value: collected as bytes, so that \XX\YY UTF-8 escapes decode correctly
        buf = bytearray()
        trailing_unescaped_spaces = 0
        if i < n and dn[i] == "#":  # BER-encoded value: kept as its hex string
            j = i + 1
            while j < n and dn[j] in _HEX:
                j += 1
            buf += dn[i:j].encode()
            i = j
        elif i < n and dn[i] == '"':  # RFC 2253 legacy quoting
            i += 1
            while i < n and dn[i] != '"':
                if dn[i] == "\\" and i + 1 < n:
                    i += 1
                buf += dn[i].encode("utf-8")
                i += 1
            if i >= n:
                raise ValueError(f"malformed DN {dn!r}: unterminated quote")
            i += 1
            while i < n and dn[i] == " ":
                i += 1
        else:
            while i < n and dn[i] not in ",+;":
                char = dn[i]
                if char == "\\":
                    if i + 1 >= n:
                        raise ValueError(f"malformed DN {dn!r}: trailing backslash")
                    nxt = dn[i + 1]
                    if nxt in _HEX and i + 2 < n and dn[i + 2] in _HEX:
                        byte, i = _unescape_hex(dn, i + 1)
                        buf += byte
                    else:
                        buf += nxt.encode("utf-8")
                        i += 2
                    trailing_unescaped_spaces = 0
                    continue
                if char == " ":
                    trailing_unescaped_spaces += 1
                else:
                    trailing_unescaped_spaces = 0
                buf += char.encode("utf-8")
                i += 1
            if trailing_unescaped_spaces:
                del buf[-trailing_unescaped_spaces:]
        try:
            value = buf.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"malformed DN {dn!r}: escaped bytes are not UTF-8") from exc
        current.append((attr, value))
        if i >= n:
            rdns.append(current)
            return rdns
        sep = dn[i]
        i += 1
        if sep in ",;":
            rdns.append(current)
            current = []
        if i >= n:
            raise ValueError(f"malformed DN {dn!r}: ends with a separator")


def parse_dn(dn: str) -> list[tuple[str, str]]:
    """The (attribute, unescaped value) of each RDN, leaf first.

    Raises ValueError on a malformed DN or a multi-valued RDN (use `parse_rdns` for those).
    """
    result: list[tuple[str, str]] = []
    for rdn in parse_rdns(dn):
        if len(rdn) != 1:
            raise ValueError(f"multi-valued RDN in {dn!r}")
        result.append(rdn[0])
    return result


def _fold(value: str) -> str:
    # caseIgnoreMatch-like: NFC, case-folded, insignificant spaces collapsed
    return " ".join(unicodedata.normalize("NFC", value).casefold().split())


def _normalize_rdns(dn: str) -> tuple[str, ...]:
    parts: list[str] = []
    for rdn in parse_rdns(dn):
        avas = sorted(f"{attr.lower()}={escape_rdn_value(_fold(value))}" for attr, value in rdn)
        parts.append("+".join(avas))
    return tuple(parts)


@functools.lru_cache(maxsize=4096)
def _normalized_parent(dn: str) -> tuple[str, ...]:
    return normalized_rdns(dn)


def normalized_rdns(dn: str) -> tuple[str, ...]:
    """The normalized RDNs of `dn`, leaf first (see `normalize_dn`). Raises ValueError."""
    rdn, parent = split_dn(dn)
    if not parent:
        return _normalize_rdns(dn)
    if not rdn:
        raise ValueError(f"malformed DN {dn!r}: empty RDN")
    return _normalize_rdns(rdn) + _normalized_parent(parent)  # parents repeat: cache them


def normalize_dn(dn: str) -> str:
    """A canonical form for comparing DNs: attribute names lower-cased, values NFC, case-folded,
    spaces collapsed, re-escaped; AVAs of a multi-valued RDN sorted. Raises ValueError."""
    return ",".join(normalized_rdns(dn))


def format_dn(rdns: list[tuple[str, str]]) -> str:
    """The DN string of (attribute, value) pairs, leaf first, with values escaped."""
    return ",".join(f"{attr}={escape_rdn_value(value)}" for attr, value in rdns)


def _trim(part: str) -> str:
    """Strip leading spaces and trailing spaces that are not escaped."""
    part = part.lstrip(" ")
    while part.endswith(" "):
        backslashes = len(part) - 1 - len(part[:-1].rstrip("\\"))
        if backslashes % 2:
            break  # `\ `: an escaped space belongs to the value
        part = part[:-1]
    return part


def split_dn(dn: str) -> tuple[str, str]:
    """(first RDN as written, parent DN as written); the parent of a one-RDN DN is ""."""
    if "\\" not in dn and '"' not in dn:  # nothing escaped or quoted: the first separator splits
        separator = _SEPARATOR.search(dn)
        if separator is None:
            return _trim(dn), ""
        i = separator.start()
        return _trim(dn[:i]), _trim(dn[i + 1 :])
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


def parent_dn(dn: str) -> str:
    """The parent DN as written ("" for a one-RDN DN)."""
    return split_dn(dn)[1]


def child_dn(rdn_attr: str, value: str, parent: str) -> str:
    """`rdn_attr=<escaped value>,parent` (just the RDN when parent is empty)."""
    rdn = f"{rdn_attr}={escape_rdn_value(value)}"
    return f"{rdn},{parent}" if parent else rdn


def is_descendant(dn: str, base: str) -> bool:
    """True when `dn` is `base` or below it (compared RDN by RDN, normalized)."""
    rdns, base_rdns = normalized_rdns(dn), normalized_rdns(base)
    return len(rdns) >= len(base_rdns) and rdns[len(rdns) - len(base_rdns) :] == base_rdns
