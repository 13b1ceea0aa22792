"""Hostile inventories, built at test time: each refused by `reconciler validate` with FILE:LINE
messages, exit 1, no traceback, in bounded time. The attacks on memory and time (an alias bomb,
deep nesting, huge values and files, a million records) run the command in a process of its own
with a memory limit and a timeout; the others run it in-process.

Already covered by the corpus in tests/broken (test_inventory.py), not repeated here: an anchor
and an alias, nesting 17 deep, an empty agency file, a homoglyph in a name, invalid UTF-8, a NUL
byte, a symlinked agency file outside the folder, an unknown key, wrong types, zero-width
characters in a staff id and a name, tabs, legacy encodings, a file over 20 MiB (sparse, 1 byte
over). A BOM and NFD text are accepted (test_inventory.py).
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest

from reconciler import attributes
from reconciler.devtools.throwaway import Slapd
from reconciler.inventory import loader as inventory
from reconciler.planning import desired
from reconciler.rules import regulations

from . import scenario
from .helpers import CliResult, run_cli

DIRECTORY = "regulation: hagiang-2024\ndomain: hagiang.gov.vn\nbase_dn: dc=hagiang,dc=gov,dc=vn\n"
MEMORY = 1024**3  # address space for the validate process


def agency(
    staff: str = "", *, agency_id: str = "sotttt", abbr: str = "sotttt", extra: str = ""
) -> str:
    head = (
        f"agency:\n  id: {agency_id}\n  name: Sở Thông tin và Truyền thông\n"
        f"  abbreviation: {abbr}\n{extra}"
    )
    return head + (f"staff:\n{staff}" if staff else "")


def person(pid: str, name: str = "Nguyễn Văn Sơn", more: str = "") -> str:
    return f"  - id: {pid}\n    name: {name}\n{more}"


def write(folder: Path, files: dict[str, str | bytes]) -> Path:
    (folder / "agencies").mkdir(parents=True, exist_ok=True)
    files = {"directory.yaml": DIRECTORY, **files}
    for rel, content in files.items():
        path = folder / rel
        if isinstance(content, str):
            content = content.encode("utf-8")
        path.write_bytes(content)
    return folder


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def validate(
    folder: Path, *, limited: bool = False
) -> tuple[subprocess.CompletedProcess[str] | CliResult, float]:
    """`reconciler validate FOLDER` and its time: `limited`, in a process with a memory limit and
    a timeout (an attack on memory must not take the test run down with it)."""
    start = time.perf_counter()
    if not limited:
        return run_cli("validate", str(folder)), time.perf_counter() - start
    result = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "validate", str(folder)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=90,
        preexec_fn=_limit,
        check=False,
    )
    return result, time.perf_counter() - start


def refused(
    folder: Path, *expected: str, seconds: float = 10.0, limited: bool = False
) -> list[str]:
    """Exit 1, no traceback, every line FILE:LINE: message, each `expected` (a regex matched
    against `FILE:LINE: message` with FILE relative to the folder) in some line; in time."""
    result, elapsed = validate(folder, limited=limited)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[-1].startswith(f"{folder}: ") and lines[-1].endswith(" found")
    shown = []
    for line in lines[:-1]:
        assert re.match(rf"{re.escape(str(folder))}/[^:]+:[0-9]+: ", line), line
        shown.append(line.removeprefix(f"{folder}/"))
    for pattern in expected:
        assert any(re.search(pattern, line) for line in shown), (pattern, shown)
    assert elapsed < seconds, elapsed
    return shown


# cases: name → (files, expected patterns) -----------------------------------------------------

BOMB = "\n".join(
    [
        "agency: {id: sotttt, name: S, abbreviation: sotttt}",
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "staff: [*i]",
    ]
)
CYRILLIC_A = "\u0430"
ZWSP = "\u200b"
SPECIALS = ["*", "(", ")", "\\\\", ",", "+", '\\"', "<", ">", ";", "=", "#"]

CASES: dict[str, tuple[dict[str, str | bytes], list[str]]] = {
    "alias bomb (billion laughs)": (
        {"agencies/sotttt.yaml": BOMB},
        [r"agencies/sotttt.yaml:2: anchor &a: anchors and aliases are not allowed"],
    ),
    "nesting 100,000 deep": (
        {"agencies/sotttt.yaml": "staff: " + "[" * 100_000 + "]" * 100_000 + "\n"},
        # the loader's bound or libyaml's own (PyYAML >= 6.0.4) may refuse it first: the test
        # holds the refusal, the file and the line, not one library's wording
        [r"agencies/sotttt.yaml:1: .*nest"],
    ),
    "NUL bytes in directory.yaml": (
        {"directory.yaml": DIRECTORY.encode() + b"reserved: [a\0b]\n"},
        [r"directory.yaml:4: NUL byte"],
    ),
    "UTF-16 agency file": (
        {"agencies/sotttt.yaml": agency(person("HG-1")).encode("utf-16")},
        [r"agencies/sotttt.yaml:1: (NUL byte|byte 0xFF)"],
    ),
    "empty directory.yaml": ({"directory.yaml": ""}, [r"directory.yaml:1: the file is empty"]),
    "CRLF line endings keep their line numbers": (
        {"agencies/sotttt.yaml": agency(person("HG-1") + person("HG-1")).replace("\n", "\r\n")},
        [r"agencies/sotttt.yaml:8: staff\[1\].id: staff id \"HG-1\" is already used at .*:6"],
    ),
    "homoglyph in staff id and abbreviation": (
        {"agencies/sotttt.yaml": agency(person(f"HG-{CYRILLIC_A}1"), abbr=f"sotttt{CYRILLIC_A}")},
        [
            r"sotttt.yaml:4: agency.abbreviation: .* Cyrillic look-alike",
            r"sotttt.yaml:6: staff\[0\].id: .* Cyrillic look-alike",
        ],
    ),
    "zero-width in agency id, unit id and abbreviation": (
        {
            "agencies/sotttt.yaml": agency(
                agency_id=f"sotttt{ZWSP}",
                abbr=f"so{ZWSP}tttt",
                extra=f"  units:\n    - {{id: vp{ZWSP}, name: Văn phòng, abbreviation: vp}}\n",
            )
        },
        [
            r":2: agency.id: .*U\+200B ZERO WIDTH SPACE",
            r":4: agency.abbreviation: .*U\+200B",
            r":6: agency.units\[0\].id: .*U\+200B",
        ],
    ),
    "two staff ids equal but for normalisation": (
        {
            "agencies/sotttt.yaml": agency(
                person(unicodedata.normalize("NFC", "HG-é"))
                + person(unicodedata.normalize("NFD", "HG-é"))
            )
        },
        [r":6: staff\[0\].id: .* is not valid", r":8: staff\[1\].id: .* is not valid"],
    ),
    "DN injection in ids and abbreviations": (
        {
            "agencies/sotttt.yaml": agency(
                person('"x,ou=people,dc=hagiang,dc=gov,dc=vn"') + person('"*)(uid=*"'),
                abbr='"so,dc=evil"',
                extra='  mailbox: "vp+uid=admin"\n  units:\n'
                '    - {id: "a=b", name: V, abbreviation: "v\\\\2c"}\n',
            )
        },
        [
            r":4: agency.abbreviation: .* only lower-case letters a-z and digits",
            r":5: agency.mailbox: .* lower-case letters, digits and single dots",
            r":7: agency.units\[0\].id: .* only lower-case letters a-z, digits and hyphens",
            r":7: agency.units\[0\].abbreviation: ",
            r":9: staff\[0\].id: .* only letters A-Z a-z, digits, dot, underscore and hyphen",
            r":11: staff\[1\].id: ",
        ],
    ),
    "path traversal in an agency id": (
        {"agencies/sotttt.yaml": agency(agency_id='"../../../etc/passwd"')},
        [r"sotttt.yaml:2: agency.id: \"../../../etc/passwd\" is not valid"],
    ),
    "huge name, title and id": (
        {
            "agencies/sotttt.yaml": agency(
                person(
                    "H" * 5000, "Nguyễn Văn " + "Sơn" * 300_000, f"    title: {'x' * 2_000_000}\n"
                )
            )
        },
        [
            r":6: staff\[0\].id: \"HHHH.*\(5,000 characters\) is longer than 256",
            r":7: staff\[0\].name: .*\(900,011 characters\) is longer than 256",
            r":8: staff\[0\].title: .*\(2,000,000 characters\) is longer than 256",
        ],
    ),
    "wrong types everywhere": (
        {
            "directory.yaml": "regulation: [hagiang-2024]\ndomain: 7\nbase_dn: true\n",
            "agencies/sotttt.yaml": "agency: sotttt\nstaff: {id: HG-1}\n",
        },
        [
            r"directory.yaml:1: regulation: \[\"hagiang-2024\"\] is not one of",
            r"directory.yaml:2: domain: expected text, got the number 7",
            r"agencies/sotttt.yaml:1: agency: expected a mapping",
            r"agencies/sotttt.yaml:2: staff: expected a list, got a mapping",
        ],
    ),
    "unknown keys at every level": (
        {
            "directory.yaml": DIRECTORY + "admin_password: x\n",
            "agencies/sotttt.yaml": agency(
                person("HG-1", more="    uid: root\n"), extra="  dn: x\n"
            )
            + "extra: 1\n",
        },
        [
            r"directory.yaml:4: admin_password: unknown key",
            r"sotttt.yaml:5: agency.dn: unknown key",
            r"sotttt.yaml:9: staff\[0\].uid: unknown key",
            r"sotttt.yaml:10: extra: unknown key",
        ],
    ),
}
for special in SPECIALS:
    CASES[f"LDAP special {special} in a staff id"] = (
        {"agencies/sotttt.yaml": agency(person(f'"HG-1{special}"'))},
        [r":6: staff\[0\].id: .* only letters A-Z a-z, digits, dot, underscore and hyphen"],
    )
CASES["leading space in an id"] = (
    {"agencies/sotttt.yaml": agency(person('" HG-1"'), abbr='" sotttt"')},
    [r":4: agency.abbreviation: ", r":6: staff\[0\].id: "],
)


#: The cases that attack memory or time: run in a process with a memory limit.
RESOURCE_ATTACKS = {
    "alias bomb (billion laughs)",
    "nesting 100,000 deep",
    "huge name, title and id",
}


def test_the_resource_attacks_are_cases() -> None:
    assert not RESOURCE_ATTACKS - CASES.keys()  # a renamed case would lose its memory limit


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_inventory_is_refused(case: str, tmp_path: Path) -> None:
    files, expected = CASES[case]
    refused(write(tmp_path / "inv", files), *expected, limited=case in RESOURCE_ATTACKS)


def test_ldap_specials_in_names_titles_and_unit_names(tmp_path: Path) -> None:
    """Free text takes them (written safely: see the LDAP safety test below); a person's name is
    letters only, so a name with them is refused with the character named."""
    text = ' *()\\,+"<>;=# x'
    ok = agency(
        person("HG-1", more=f"    title: '{text}'\n    unit: vp\n"),
        extra=f"  units:\n    - {{id: vp, name: '#{text}', abbreviation: vp}}\n",
    ).replace("name: Sở Thông tin và Truyền thông", f"name: '{text}'")
    folder = write(tmp_path / "ok", {"agencies/sotttt.yaml": ok})
    result, _ = validate(folder)
    assert result.returncode == 0, result.stderr
    bad = write(
        tmp_path / "bad", {"agencies/sotttt.yaml": agency(person("HG-1", "'Nguyễn *)(uid=*'"))}
    )
    refused(bad, r":7: staff\[0\].name: .*contains '\*' \(U\+002A ASTERISK\)")


def test_names_equal_but_for_normalisation_are_two_people(tmp_path: Path) -> None:
    nfc = "Nguyễn Văn Sơn"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    folder = write(
        tmp_path / "inv",
        {"agencies/sotttt.yaml": agency(person("HG-1", nfc) + person("HG-2", nfd))},
    )
    inv = inventory.load(folder)
    reg = regulations.get("hagiang-2024")
    assert not desired.check(inv, reg)
    boxes, _ = desired.mailboxes(inv, reg, {}, *desired.taken_addresses((), inv))
    assert boxes["HG-1"].name == boxes["HG-2"].name == nfc
    assert {str(boxes["HG-1"].address), str(boxes["HG-2"].address)} == {
        "nvson.sotttt@hagiang.gov.vn",
        "nvson1.sotttt@hagiang.gov.vn",
    }


def test_homoglyph_name_is_refused_even_when_the_rest_is_nfd(tmp_path: Path) -> None:
    name = unicodedata.normalize("NFD", f"Nguyễn Văn S{CYRILLIC_A}n")
    folder = write(tmp_path / "inv", {"agencies/sotttt.yaml": agency(person("HG-1", name))})
    refused(folder, r":7: staff\[0\].name: .*CYRILLIC SMALL LETTER A")


def test_200_mb_file_is_refused_by_its_size_without_being_read(tmp_path: Path) -> None:
    folder = write(tmp_path / "inv", {"agencies/sotttt.yaml": agency(person("HG-1"))})
    with (folder / "agencies" / "soyte.yaml").open("wb") as out:
        out.write(b"agency:\n")
        out.truncate(200 * 1024**2)  # sparse: nothing is written, nothing can be read fast
    refused(
        folder,
        r"agencies/soyte.yaml:1: the file is 209,715,200 bytes, over the limit",
        seconds=10,
        limited=True,
    )


@pytest.mark.slow
def test_a_million_records_under_the_size_bound(tmp_path: Path) -> None:
    """4 MB of `- 1` lines: a million wrong records, refused with 100 problems in about 2 s."""
    staff = "- 1\n" * 1_000_000
    folder = write(tmp_path / "inv", {"agencies/sotttt.yaml": agency() + "staff:\n" + staff})
    shown = refused(
        folder,
        r"sotttt.yaml:6: staff\[0\]: expected a mapping, got the number 1",
        r"too many problems in this file: only the first 100 are shown",
        seconds=30,
        limited=True,
    )
    assert len(shown) == 101


@pytest.mark.slow
def test_a_million_valid_records_over_ten_files_is_refused_before_memory_runs_out(
    tmp_path: Path,
) -> None:
    """Ten 4 MB files of 100,000 valid records each, every file under the size limit: refused at
    the file and line where the inventory's budget runs out, under the 1 GiB limit (it ended in a
    MemoryError after 45 s)."""
    files: dict[str, str | bytes] = {}
    for a in range(10):
        records = "".join(f"- {{id: Q{a}-{i}, name: Nguyễn Văn Sơn}}\n" for i in range(100_000))
        files[f"agencies/a{a}.yaml"] = (
            agency(agency_id=f"a{a}", abbr=f"a{a}") + "staff:\n" + records
        )
    folder = write(tmp_path / "inv", files)
    shown = refused(
        folder,
        r"agencies/a2.yaml:[0-9]+: the inventory holds more than 250,000 records",
        seconds=40,
    )
    assert len(shown) == 1


def test_inventory_files_over_the_total_size_are_refused_unread(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {"agencies/sotttt.yaml": agency(person("HG-1"))}
    comment = b"# " + b"x" * (19 * 1024**2) + b"\n"
    for a in range(4):
        files[f"agencies/a{a}.yaml"] = comment + agency(agency_id=f"a{a}", abbr=f"a{a}").encode()
    folder = write(tmp_path / "inv", files)
    shown = refused(folder, r"agencies/a3.yaml:1: the inventory's files come to more than")
    assert len(shown) == 1


def test_absurd_quotas_and_dates_are_refused(tmp_path: Path) -> None:
    more = (
        "    quota: 99999999999999999999999TB\n    quota_decision: QĐ 1\n    restored: 9999-01-01\n"
    )
    folder = write(
        tmp_path / "inv",
        {
            "directory.yaml": DIRECTORY + "quota: 11TB\n",
            "agencies/sotttt.yaml": agency(person("HG-1", more=more)),
        },
    )
    refused(
        folder,
        r"directory.yaml:[0-9]+: quota: \"11TB\" is not a quota: .* at most 10 TB",
        r"sotttt.yaml:[0-9]+: staff\[0\].quota: \"99999999999999999999999TB\" is not a quota",
        r"sotttt.yaml:[0-9]+: staff\[0\].restored: 9999-01-01 is outside the dates",
    )


@pytest.mark.slow
def test_a_million_reserved_names_are_valid_in_bounded_time(tmp_path: Path) -> None:
    reserved = "".join(f"- r{i}\n" for i in range(1_000_000))
    folder = write(tmp_path / "inv", {"directory.yaml": DIRECTORY + "reserved:\n" + reserved})
    result, elapsed = validate(folder, limited=True)
    assert result.returncode == 0, result.stderr[-500:]
    assert elapsed < 30, elapsed  # bounded, not a benchmark: about 5 s here


def test_symlinks_out_of_the_inventory(tmp_path: Path) -> None:
    outside = write(
        tmp_path / "elsewhere", {"agencies/soyte.yaml": agency(agency_id="soyte", abbr="soyte")}
    )
    folder = tmp_path / "inv"
    folder.mkdir()
    (folder / "directory.yaml").symlink_to("/etc/passwd")
    (folder / "agencies").symlink_to(outside / "agencies")
    refused(
        folder,
        r"directory.yaml:1: is a symbolic link to \"/etc/passwd\", outside the inventory folder",
        r"agencies:1: is a symbolic link to .*elsewhere/agencies.*outside the inventory folder",
    )
    # a link inside the folder is fine; a dangling one is named
    os.unlink(folder / "directory.yaml")
    (folder / "real.yaml").write_text(DIRECTORY, encoding="utf-8")
    (folder / "directory.yaml").symlink_to("real.yaml")
    os.unlink(folder / "agencies")
    (folder / "agencies").mkdir()
    (folder / "agencies" / "sotttt.yaml").symlink_to("nowhere.yaml")
    refused(folder, r"agencies/sotttt.yaml:1: is a symbolic link to a file that does not exist")


def test_a_fifo_or_a_device_named_like_an_agency_file_is_refused_not_read(
    tmp_path: Path,
) -> None:
    """Reading a FIFO would wait for a writer forever, a device would never end: neither is
    read (in a process of its own with a timeout: a hang fails the test)."""
    folder = write(tmp_path / "inv", {"agencies/sotttt.yaml": agency()})
    os.mkfifo(folder / "agencies" / "fifo.yaml")
    (folder / "agencies" / "zero.yaml").symlink_to("/dev/zero")
    refused(
        folder,
        r"agencies/fifo.yaml:1: agencies/fifo.yaml is not a regular file",
        r"agencies/zero.yaml:1: is a symbolic link to \"/dev/zero\", outside the inventory",
        limited=True,
    )


def test_file_names_that_are_not_agency_files(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "inv",
        {
            "agencies/sotttt.yaml": agency(),
            "agencies/so..%2f..%2fetc.yaml": agency(agency_id="etc", abbr="etc"),
        },
    )
    (folder / "agencies" / "sub.yaml").mkdir()
    refused(
        folder,
        r"agencies/so\.\.%2f\.\.%2fetc.yaml:2: agency.id: \"etc\" does not match the file name",
        r"agencies/sub.yaml:1: \"sub.yaml\" is not an agency file",
    )


LDAP_TEXT = ' *)(uid=*)\\, +"<>;=#x\\2a\x00'.replace("\x00", "") + "  (cn=*)"
VOLATILE = {"modifytimestamp", "entrycsn", "pwdlastsuccess"}


def _snapshot(directory: scenario.Directory, base: str) -> dict[str, dict[str, tuple[str, ...]]]:
    attrs = [*attributes.READ, "userPassword", "modifiersName"]
    return {
        e.dn.lower(): {k: v for k, v in e.attrs.items() if k not in VOLATILE}
        for e in directory.read(base, attrs)
    }


@pytest.mark.slapd
def test_ldap_specials_in_free_text_cannot_read_or_change_another_entry(
    slapd: Slapd, tmp_path: Path
) -> None:
    base = "dc=hagiang,dc=example,dc=gov,dc=vn"
    spec = scenario.hg(base)
    folder = scenario.write(spec, tmp_path / "inv")
    with scenario.connect(slapd) as d:
        scenario.apply(scenario.plan(folder, d), d, tmp_path / "out")
        before = _snapshot(d, slapd.suffix)
        spec["agencies"]["sotttt"]["staff"][0]["title"] = LDAP_TEXT
        spec["agencies"]["sotttt"]["staff"][0]["unit"] = "vanphong"
        spec["agencies"]["sotttt"]["units"][0]["name"] = "#" + LDAP_TEXT
        scenario.write(spec, folder)
        planned = scenario.plan(folder, d)
        assert {op.id for op in planned.operations} == {"HG-0001", "unit:sotttt/vanphong"}
        recap = scenario.apply(planned, d, tmp_path / "out")
        assert recap.failed == 0 and recap.changed == 2, recap.messages
        after = _snapshot(d, slapd.suffix)
        assert scenario.plan(folder, d).empty
    changed = {dn for dn in after if after[dn] != before.get(dn)}
    assert len(changed) == 2 and set(after) == set(before)
    for dn in changed:
        key = after[dn]["employeenumber"][0]
        if key == "HG-0001":
            assert after[dn]["title"] == (LDAP_TEXT,) and after[dn]["ou"] == ("#" + LDAP_TEXT,)
        else:
            assert key == "unit:sotttt/vanphong" and after[dn]["ou"] == ("#" + LDAP_TEXT,)
            assert after[dn]["cn"] == (f"#{LDAP_TEXT} – Sở Thông tin và Truyền thông",)
