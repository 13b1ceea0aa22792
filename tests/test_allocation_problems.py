"""A record that cannot have the address it asks for is a problem of that record: `validate` and
`plan` print `FILE:LINE: message` and exit 1, never a traceback. Run on copies of the example
inventories, under both regulations, through the command line (in this process)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from reconciler.inventory import loader
from reconciler.names import RESERVED
from reconciler.rules import regulations

from .helpers import run_cli

EXAMPLES = Path(__file__).resolve().parent.parent / "inventory"
FOLDER = {"quangnam-2020": "quangnam", "hagiang-2024": "hagiang"}
#: (regulation, local part, where the list is): every built-in reserved local part and every one
#: the example inventory reserves in its directory.yaml
RESERVED_CASES = [
    (reg_id, local, where)
    for reg_id, folder in FOLDER.items()
    for local, where in [
        *((local, "always reserved") for local in sorted(RESERVED)),
        *(
            (local, "reserved in directory.yaml")
            for local in loader.load(EXAMPLES / folder).settings.reserved
        ),
    ]
]
CASE_IDS = [f"{reg_id}-{local}" for reg_id, local, _ in RESERVED_CASES]


def run(*args: str) -> tuple[int, str]:
    """`reconciler ARGS`: the exit status and stderr; an exception other than an exit (a
    traceback for the user) fails the test (`run_cli` raises it)."""
    result = run_cli(*args)
    return result.returncode, result.stderr


def example(reg_id: str, tmp_path: Path) -> Path:
    folder = tmp_path / "inv"
    shutil.copytree(EXAMPLES / FOLDER[reg_id], folder)
    return folder


def edit(path: Path, find: str, replace: str) -> int:
    """Replace the first line that is `find` by `replace` (one line or more); the line number of
    the first line written."""
    lines = path.read_text(encoding="utf-8").split("\n")
    at = lines.index(find)
    lines[at : at + 1] = replace.split("\n")
    path.write_text("\n".join(lines), encoding="utf-8")
    return at + 1


def line_of(path: Path, text: str) -> int:
    return path.read_text(encoding="utf-8").split("\n").index(text) + 1


def both(folder: Path, tmp_path: Path) -> list[str]:
    """`validate` and `plan` of `folder` (against an empty LDIF directory): each exits 1 with the
    same problems; those problems."""
    empty = tmp_path / "empty.ldif"
    empty.write_text("version: 1\n", encoding="utf-8")
    outputs = []
    for args in (("validate", str(folder)), ("plan", str(folder), "--directory", f"ldif:{empty}")):
        code, err = run(*args)
        assert code == 1, (args, err)
        assert "Traceback" not in err
        outputs.append(err)
    assert outputs[0] == outputs[1]
    *problems, summary = outputs[0].splitlines()
    assert summary == f"{folder}: {len(problems)} problem{'s' if len(problems) > 1 else ''} found"
    return problems


def first_staff_name(agency_file: Path) -> str:
    lines = agency_file.read_text(encoding="utf-8").split("\n")
    return next(line for line in lines[lines.index("staff:") :] if line.startswith("    name: "))


@pytest.mark.parametrize(("reg_id", "local", "where"), RESERVED_CASES, ids=CASE_IDS)
def test_a_pinned_reserved_address_is_a_problem_of_its_record_unless_it_says_it_was_issued(
    reg_id: str, local: str, where: str, tmp_path: Path
) -> None:
    """Issue 14: a pin on a reserved local part is a problem of its record for `validate` (no
    directory) and `plan` alike: FILE:LINE, a plain message, exit 1. A record that states the
    address was issued before this inventory (`legacy: true`, which `reconciler import` writes on
    a legacy `admin@` mailbox) passes validate; the plan keeps such a pin only where the directory
    already gives it to this mailbox (an issued address is never taken back; tests/test_import.py
    adopts one) and still refuses it for a new mailbox, at its record."""
    folder = example(reg_id, tmp_path)
    agency_file = folder / "agencies" / "sotttt.yaml"
    address = f"{local}@{regulations.get(reg_id).domain}"
    name = first_staff_name(agency_file)
    line = edit(agency_file, name, f"{name}\n    address: {address}") - 1
    staff = agency_file.read_text(encoding="utf-8").split("\n")[line - 1].removeprefix("  - id: ")
    refused = (
        f"{agency_file}:{line}: staff {staff}: the pinned address {address} cannot be issued: "
        f'"{local}" is {where}'
    )
    assert both(folder, tmp_path) == [
        f"{refused} (an address issued before this inventory says so with `legacy: true`)"
    ]
    # the statement: validate accepts the pin, the plan of a new mailbox refuses it
    edit(agency_file, f"    address: {address}", f"    address: {address}\n    legacy: true")
    assert run("validate", str(folder)) == (0, "")
    empty = tmp_path / "empty.ldif"
    code, err = run("plan", str(folder), "--directory", f"ldif:{empty}")
    assert code == 1
    assert err.splitlines()[0] == refused


@pytest.mark.parametrize(("reg_id", "local", "where"), RESERVED_CASES, ids=CASE_IDS)
def test_an_organisation_mailbox_on_a_reserved_local_part_is_a_problem_of_its_agency(
    reg_id: str, local: str, where: str, tmp_path: Path
) -> None:
    regulation = regulations.get(reg_id)
    folder = example(reg_id, tmp_path)
    agency_file = folder / "agencies" / "sotttt.yaml"
    if regulation.agency_mailboxes:  # hagiang-2024: the abbreviation is the mailbox
        edit(agency_file, "  abbreviation: sotttt", f"  abbreviation: {local}")
        change = "another agency abbreviation"
    else:  # quangnam-2020: the `mailbox` the inventory declares
        edit(agency_file, "  mailbox: vanphongsotttt", f"  mailbox: {local}")
        change = "another `mailbox`"
    line = line_of(agency_file, "  id: sotttt")
    assert both(folder, tmp_path) == [
        f"{agency_file}:{line}: agency sotttt: its organisation mailbox would be "
        f'{local}@{regulation.domain}, but "{local}" is {where}: choose {change}'
    ]


def test_a_unit_mailbox_on_a_reserved_local_part_is_a_problem_of_its_unit(tmp_path: Path) -> None:
    folder = example("hagiang-2024", tmp_path)
    edit(folder / "directory.yaml", "reserved: [hotro, quantri]", "reserved: [cntt.sotttt]")
    agency_file = folder / "agencies" / "sotttt.yaml"
    unit = "    - {id: cntt, name: Phòng Công nghệ thông tin, abbreviation: cntt}"
    assert both(folder, tmp_path) == [
        f"{agency_file}:{line_of(agency_file, unit)}: unit cntt: its unit mailbox would be "
        'cntt.sotttt@hagiang.gov.vn, but "cntt.sotttt" is reserved in directory.yaml: choose '
        "another unit abbreviation"
    ]


def test_an_abbreviation_too_long_for_an_address_is_a_problem_of_each_record(
    tmp_path: Path,
) -> None:
    folder = example("hagiang-2024", tmp_path)
    agency_file = folder / "agencies" / "soyte.yaml"
    long = "soyte" + "x" * 65
    edit(agency_file, "  abbreviation: soyte", f"  abbreviation: {long}")
    problems = both(folder, tmp_path)
    where = re.compile(re.escape(str(agency_file)) + r":[0-9]+: ")
    assert all(where.match(p) for p in problems)
    assert problems[0].endswith(
        f"agency soyte: its organisation mailbox {long}@hagiang.gov.vn would have 70 characters "
        "before the @, more than 64: choose another agency abbreviation"
    )
    said = "\n".join(problems)
    assert "unit vanphong: its unit mailbox vanphong." in said
    assert "staff HG-0022: no address fits: " in said and "leaves no room for the name" in said
    # every unit and every staff member of the agency, none of the other agencies
    text = agency_file.read_text(encoding="utf-8")
    assert len(problems) == 1 + text.count("    - {id: ") + text.count("  - id: ")


def test_an_organisation_mailbox_held_by_a_pinned_address_names_the_record(
    tmp_path: Path,
) -> None:
    folder = example("quangnam-2020", tmp_path)
    agency_file = folder / "agencies" / "sotttt.yaml"
    edit(agency_file, "  mailbox: vanphongsotttt", "  mailbox: tvbinh")  # pinned on QN-0012
    problems = both(folder, tmp_path)
    assert problems == [
        f"{agency_file}:{line_of(agency_file, '  id: sotttt')}: agency sotttt: its organisation "
        "mailbox would be tvbinh@quangnam.gov.vn, already held by the mailbox of staff "
        f"{_pinned_on(agency_file, 'tvbinh@quangnam.gov.vn')}: choose another `mailbox` (an "
        "address is never taken back)"
    ]


def test_an_organisation_mailbox_held_by_an_alias_names_the_record(tmp_path: Path) -> None:
    folder = example("hagiang-2024", tmp_path)
    agency_file = folder / "agencies" / "soyte.yaml"
    # vuducthinh@hagiang.gov.vn is an alias of HG-0008 in agencies/sotttt.yaml
    edit(agency_file, "  abbreviation: soyte", "  abbreviation: vuducthinh")
    problems = both(folder, tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{agency_file}:{line_of(agency_file, '  id: soyte')}: ")
    assert "already held by the mailbox of staff HG-0008" in problems[0]


def _pinned_on(agency_file: Path, address: str) -> str:
    lines = agency_file.read_text(encoding="utf-8").split("\n")
    at = lines.index(f"    address: {address}")
    return next(
        line.removeprefix("  - id: ") for line in reversed(lines[:at]) if line.startswith("  - id:")
    )


# ---------------------------------------------------------------------------------------------
# Problems that only the directory reveals: `plan`


def ldif(*entries: str) -> str:
    base = (
        "version: 1\n\ndn: dc=hagiang,dc=gov,dc=vn\nobjectClass: top\nobjectClass: dcObject\n"
        "objectClass: organization\ndc: hagiang\no: hagiang\n\n"
        "dn: ou=people,dc=hagiang,dc=gov,dc=vn\nobjectClass: top\n"
        "objectClass: organizationalUnit\nou: people\n"
    )
    return base + "".join("\n" + entry for entry in entries)


def person_entry(uid: str, mail: str, *, key: str | None = None) -> str:
    managed = f"objectClass: govMailAccount\nemployeeNumber: {key}\n" if key else ""
    return (
        f"dn: uid={uid},ou=people,dc=hagiang,dc=gov,dc=vn\nobjectClass: top\n"
        "objectClass: person\nobjectClass: organizationalPerson\nobjectClass: inetOrgPerson\n"
        f"{managed}cn: Someone\nsn: Someone\nuid: {uid}\nmail: {mail}\n"
    )


def plan(folder: Path, directory: Path) -> list[str]:
    code, err = run("plan", str(folder), "--directory", f"ldif:{directory}")
    assert code == 1, err
    assert "Traceback" not in err and "Error:" not in err
    *problems, summary = err.splitlines()
    assert summary == f"{folder}: {len(problems)} problem{'s' if len(problems) > 1 else ''} found"
    return problems


def test_an_organisation_mailbox_held_in_the_directory_is_a_problem_of_its_agency(
    tmp_path: Path,
) -> None:
    folder = example("hagiang-2024", tmp_path)
    directory = tmp_path / "directory.ldif"
    directory.write_text(ldif(person_entry("soyte", "soyte@hagiang.gov.vn")), encoding="utf-8")
    agency_file = folder / "agencies" / "soyte.yaml"
    assert plan(folder, directory) == [
        f"{agency_file}:{line_of(agency_file, '  id: soyte')}: agency soyte: its organisation "
        "mailbox would be soyte@hagiang.gov.vn, already held by an entry the tool does not "
        "manage: choose another agency abbreviation (an address is never taken back)"
    ]


def test_a_pinned_address_another_mailbox_holds_is_a_problem_of_its_line(
    tmp_path: Path,
) -> None:
    folder = example("hagiang-2024", tmp_path)
    directory = tmp_path / "directory.ldif"
    held = "dungbs@hagiang.gov.vn"
    directory.write_text(ldif(person_entry("dungbs", held, key="HG-0022")), encoding="utf-8")
    agency_file = folder / "agencies" / "soyte.yaml"
    edit(agency_file, "    name: Vàng Thị Mỷ", f"    name: Vàng Thị Mỷ\n    address: {held}")
    assert plan(folder, directory) == [
        f"{agency_file}:{line_of(agency_file, '  - id: HG-0023')}: staff HG-0023: the pinned "
        f"address {held} is already held by the mailbox of staff HG-0022"
    ]
    # the same inventory is valid: only the directory shows the address is taken
    assert run("validate", str(folder))[0] == 0


def test_a_domain_with_a_double_hyphen_is_valid(tmp_path: Path) -> None:
    """Punycode (xn--): the schema accepts it, and so does the allocator."""
    folder = example("quangnam-2020", tmp_path)
    domain = "xn--qung-nam-9za.gov.vn"
    for path in [folder / "directory.yaml", *(folder / "agencies").iterdir()]:
        text = path.read_text(encoding="utf-8").replace("quangnam.gov.vn", domain)
        path.write_text(text, encoding="utf-8")
    code, err = run("validate", str(folder))
    assert (code, err) == (0, "")


def test_the_schema_names_every_always_reserved_local_part() -> None:
    """One list (`names.RESERVED`): the schema's description of `reserved` tells all of it."""
    schema = json.loads((loader.SCHEMAS / "directory.schema.json").read_text(encoding="utf-8"))
    described = schema["properties"]["reserved"]["description"]
    assert {local for local in RESERVED if local not in described} == set()
