"""Checks of Vietnamese text: Unicode NFC (TCVN 6909:2001), legacy 8-bit encodings, look-alikes;
and `count`, a number with its English noun in the right number for messages.

Pure functions, no I/O. `check_name` returns a reason in plain words, or None when the name is fine.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

_TONES = ("", "\u0300", "\u0301", "\u0309", "\u0303", "\u0323")
_VOWELS = "aăâeêioôơuưy"


def _alphabet() -> str:
    letters = set("abcdefghijklmnopqrstuvwxyzđ")
    letters.update(unicodedata.normalize("NFC", v + t) for v in _VOWELS for t in _TONES)
    letters.update("čĕŏŭ")  # Ê Đê letters (NAMES.md)
    return "".join(sorted(letters | {c.upper() for c in letters}))


ALPHABET = _alphabet()  #: every letter a name may hold (after NFC), besides ơ̆
_APOSTROPHES = "'’ʼ"
_NAME_CHARS = re.compile(f"[{re.escape(ALPHABET)}{_APOSTROPHES} -]*\\Z")
_BREVE_ON_O = re.compile("[ơƠ]\u0306")
#: A person's external address (`external_email`): a plain address, no display name, no quoting,
#: no comment, no blank or line break; a local part of at most 64 characters without a dot at
#: either end, a domain of labels with a top-level name of letters.
_EXTERNAL_ADDRESS = re.compile(
    r"[A-Za-z0-9_%+-](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\Z"
)
#: The longest address SMTP carries (RFC 5321: a path of 256 octets, its brackets included).
MAX_ADDRESS = 254

# VNI writes a toned vowel as a plain vowel followed by a mark character (Vaên = Văn,
# Nguyeãn = Nguyễn). Vietnamese never writes `a`/`e` before a vowel with diacritics, nor `o`
# before â ê ô ơ, nor a plain vowel before ø û ï ö å ä ë ü.
_VNI_PAIRS = re.compile(
    "[aAeE][áàảãạâấầẩẫậăắằẳẵặéèẻẽẹêếềểễệíìỉĩịóòỏõọôốồổỗộơớờởỡợúùủũụưứừửữựýỳỷỹỵÁÀÂÊÉÈÔÙÚÕÃ]"
    "|[oO][âấầẩẫậêếềểễệôốồổỗộÂÊÔ]"
    "|[aeiouyAEIOUY][øûïöåäëüØÛÏÖÅÄËÜ]"
    "|(?:^|\\s)[ñÑ]"
    "|[bcdghklmnpqrstvxBCDGHKLMNPQRSTVX](?=[öÖ])|[öÖôÔ][ôÔùøûõïÙØÛÕÏ]"
)
_TCVN3 = frozenset("§®¬¨©ª«µ¶·¸¹»¼½¾¡¢£¤¥¦ÇÈÉËÌÎÏÑÒÓÖ×ØÜÞßåæçëîïñö÷øûüþ")
# Typographic quotes, dashes, the ellipsis and the bullet (‘ ’ “ ” – — … •) are left out: Vietnamese
# text uses them ("Phòng Kế hoạch – Tài chính", H’Hen), so they are no evidence of VISCII.
_VISCII = frozenset("ðÐ€‚ƒ„†‡ˆ‰Š‹ŒŽ˜™š›œžŸ")
_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u2061\u2062\u2063\u2064")
_FIX = "retype it in Unicode or convert it (e.g. with Unikey's converter)"
_LOOKALIKE_D = {
    "Ð": "U+00D0 LATIN CAPITAL LETTER ETH",
    "Ɖ": "U+0189 LATIN CAPITAL LETTER AFRICAN D",
    "ð": "U+00F0 LATIN SMALL LETTER ETH",
    "ɖ": "U+0256 LATIN SMALL LETTER D WITH TAIL",
}


def nfc(s: str) -> str:
    """`s` in Unicode NFC, the form TCVN 6909:2001 and the directory use."""
    return s if unicodedata.is_normalized("NFC", s) else unicodedata.normalize("NFC", s)


def char_name(ch: str) -> str:
    return f"U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed character')}"


def invisible(value: str) -> str | None:
    """A reason when `value` holds a zero-width, control or other invisible character."""
    for ch in value:
        if ch in _ZERO_WIDTH or unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cn", "Zl", "Zp"):
            return f"contains an invisible character ({char_name(ch)}): delete it and retype"
        if ch != " " and unicodedata.category(ch) == "Zs":
            return f"contains an unusual space ({char_name(ch)}): use a plain space"
    return None


def mixed_script(value: str) -> str | None:
    """A reason when `value` holds a Cyrillic or Greek letter that looks like a Latin one."""
    for ch in value:
        if ord(ch) >= 0x370 and unicodedata.category(ch).startswith("L"):
            script = unicodedata.name(ch, "").split(" ")[0]
            if script in ("CYRILLIC", "GREEK", "ARMENIAN", "COPTIC", "CHEROKEE"):
                return (
                    f"contains {ch!r} ({char_name(ch)}), a {script.title()} look-alike of a "
                    "Latin letter: mixed scripts; retype it with a Vietnamese keyboard"
                )
    return None


def odd_characters(value: str) -> str | None:
    """A reason when an identifier holds invisible or look-alike characters."""
    return invisible(value) or mixed_script(value)


def legacy_encoding(value: str) -> str | None:
    """The legacy encoding `value` seems to be written in, with the evidence, or None."""
    if "?" in value or "\ufffd" in value:
        return (
            "a lossy conversion: a letter was replaced by '?' or '\ufffd' (was it saved in "
            "an encoding without Vietnamese letters?)"
        )
    fixed = _utf8_as_cp1252(value)
    if fixed is not None:
        return f'UTF-8 read as Windows-1252 (mojibake); it was probably "{fixed}"'
    vni = len(_VNI_PAIRS.findall(value))
    tcvn = sum(ch in _TCVN3 for ch in value)
    if tcvn and "\u00ad" in value:  # TCVN3's ư shows as a soft hyphen
        tcvn += value.count("\u00ad")
    viscii = sum(ch in _VISCII for ch in value)
    if re.search(r"\w®", value):  # VISCII ® = ệ inside words; TCVN3 ® = đ starts them
        viscii += 2
    best = max(vni, tcvn, viscii)
    marks = "".join(
        dict.fromkeys(
            ch for ch in value if ch in _TCVN3 or ch in _VISCII or ch in "øûïöåäëüØÛÏÖÅÄËÜñÑ\u00ad"
        )
    )
    if best == 0 or (not vni and set(marks) <= set("Ðð")):  # a lone Ð is a look-alike of Đ
        return None
    evidence = f" (suspicious: {', '.join(marks)})" if marks else ""
    if [vni, tcvn, viscii].count(best) > 1:
        return f"a legacy 8-bit Vietnamese encoding (TCVN3, VNI or VISCII){evidence}"
    if best == vni:
        pairs = ", ".join(
            dict.fromkeys(
                m.strip()
                for m in _VNI_PAIRS.findall(value)
                if len(m.strip()) > 1 or m.strip() in ("ñ", "Ñ")
            )
        )
        return f"the legacy VNI encoding (a letter followed by a mark character: {pairs})"
    if best == tcvn:
        return f"the legacy TCVN3 (ABC) encoding{evidence}"
    return f"the legacy VISCII encoding{evidence}"


def _utf8_as_cp1252(value: str) -> str | None:
    if not any(ch in value for ch in "ÃÄÆáâÅ"):
        return None
    for codec in ("cp1252", "latin-1"):
        try:
            fixed = value.encode(codec).decode("utf-8")
        except UnicodeError:
            continue
        if fixed != value:
            return nfc(fixed)
    return None


@functools.lru_cache(maxsize=65536)
def check_name(value: str) -> str | None:
    """Why `value` is not an acceptable person's name, or None.

    Accepted after NFC: letters of the Vietnamese alphabet, f j w z, the Ê Đê letters č ĕ ŏ ŭ and
    ơ̆ (ơ + combining breve), apostrophes (' ’ ʼ), hyphens and single spaces between words.
    """
    value = nfc(value)
    if not value.strip():
        return "is empty"
    bare = _BREVE_ON_O.sub("ơ", value)
    if _NAME_CHARS.match(bare):
        vni = _VNI_PAIRS.search(bare)
        if vni:
            return f"looks like {legacy_encoding(bare)}: {_FIX}"
        if value != value.strip() or "  " in value:
            return "has leading, trailing or double spaces"
        return None
    legacy = legacy_encoding(value)
    if legacy:
        return f"looks like {legacy}: {_FIX}"
    reason = invisible(value) or mixed_script(value)
    if reason:
        return reason
    bad = next(ch for ch in bare if not _NAME_CHARS.match(ch))
    if bad in _LOOKALIKE_D:
        return f"contains {bad!r} ({_LOOKALIKE_D[bad]}), a look-alike of Đ/đ: use Đ (U+0110) or đ"
    return f"contains {bad!r} ({char_name(bad)}), which is not a letter of the Vietnamese alphabet"


@functools.lru_cache(maxsize=65536)
def check_text(value: str) -> str | None:
    """Why free text (an agency or unit name, a title) is not acceptable, or None.

    Digits and punctuation are allowed; legacy encodings and invisible characters are not.
    """
    value = nfc(value)
    if not value.strip():
        return "is empty"
    if value.isascii() and value.isprintable():
        return None
    if (
        _VNI_PAIRS.search(value)
        or any(ch in _TCVN3 or ch in _VISCII for ch in value)
        or _utf8_as_cp1252(value)
        or "\ufffd" in value
    ):
        legacy = legacy_encoding(value.replace("?", ""))
        if legacy:
            return f"looks like {legacy}: {_FIX}"
    return invisible(value) or mixed_script(value)


def external_address_problem(value: str, domain: str) -> str | None:
    """Why `value` is not a person's external address (outside the directory's `domain`, where a
    notice reaches them while their mailbox is suspended), in plain words; None when it is."""
    if len(value) > MAX_ADDRESS:
        return f"is longer than {MAX_ADDRESS} characters"
    if not _EXTERNAL_ADDRESS.match(value) or ".." in value:
        return (
            "is not a plain e-mail address (name@example.com: no display name, no blank, no "
            "line break, no quotes)"
        )
    host = value.rpartition("@")[2].lower()
    if host == domain.lower() or host.endswith("." + domain.lower()):
        return (
            f"is in the directory's domain {domain}: an external address is outside it (a "
            "suspended mailbox cannot receive)"
        )
    return None


def all_strings(values: Iterable[object]) -> bool:
    """Whether every value is a str: `join` is the quick test (a value of any other type is a
    TypeError), some ten times faster than a type check per value over a plan's 360,000."""
    try:
        "".join(values)  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and the noun, singular for 1: count(1, "entry", "entries") is "1 entry"."""
    many = plural if plural is not None else noun + "s"
    return f"{n:,} {noun if n == 1 else many}"


# ---------------------------------------------------------------------------------------------
# Outputs are data: text from the inventory or the directory never becomes a formula in a
# spreadsheet, nor a link, an image, emphasis or HTML in markdown.

#: What a spreadsheet takes for the start of a formula (OWASP, "CSV Injection"): `=`, `+`, `-`,
#: `@`, a tab and a carriage return.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """`value` as a CSV cell a spreadsheet shows as text: a string that begins with one of
    `FORMULA_STARTS` gets a leading apostrophe (OWASP's rule; Excel and LibreOffice hide it).
    Numbers and every other string are kept as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_row(values: Iterable[object]) -> list[object]:
    """Every cell of a row through `csv_cell`: what each of the tool's CSV writers writes."""
    return [csv_cell(v) for v in values]


#: Characters that start inline markdown anywhere in a line: emphasis, code, links, images,
#: HTML, entities, strikethrough, table cells, e-mail autolinks.
_MD_INLINE = frozenset("\\`*_[]!<>&~|@")
#: What starts a block when it comes first (a heading, a quote, a list, a setext underline).
_MD_BLOCK_START = re.compile(r"[#>+=-]|\d+(?=[.)])")
_MD_AUTOLINK = re.compile(r"(?i)(?<=www)\.|(?=://)")


def markdown_text(value: str) -> str:
    """`value` as literal markdown text: the characters that could start markdown are
    backslash-escaped (CommonMark: an escaped character is plain text), so no link, image,
    emphasis, HTML, entity or table cell can form; `www.` and `://` lose the dot and colon that
    make them autolinks; a first character that would start a block is escaped too; a line break
    becomes a space, so the text stays in its line, list item or table cell. What is left
    (letters, digits, spaces, `. , ; : ( ) ' " / ? + - = #` inside the text) reads as written."""
    value = " ".join(value.splitlines())
    out = "".join(f"\\{c}" if c in _MD_INLINE else c for c in value)
    out = _MD_AUTOLINK.sub(lambda m: "\\" if m.group(0) == "" else "\\.", out)
    start = _MD_BLOCK_START.match(out)
    if start:  # `\#`, `\-`; an ordered list's `1.` becomes `1\.`
        at = start.end() if out[0].isdigit() else 0
        out = out[:at] + "\\" + out[at:]
    return out


def markdown_code(value: str) -> str:
    """`value` as a markdown code span: nothing inside one is interpreted; a fence longer than any
    run of backticks in the value keeps it closed."""
    value = " ".join(value.splitlines())
    longest = max((len(run) for run in re.findall("`+", value)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if value.startswith("`") or value.endswith("`") or longest else ""
    return f"{fence}{pad}{value}{pad}{fence}"
