"""Property-based fuzzing of the loader and of the desired-mailbox pipeline.

The loader, fed arbitrary bytes or YAML-ish text, either loads or raises InventoryError (never
another exception); the pipeline, fed arbitrary Unicode names, never issues an address outside
[a-z0-9.] nor two mailboxes on one address.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.errors import InventoryError
from reconciler.inventory import loader as inventory
from reconciler.inventory import yamlload
from reconciler.planning import desired
from reconciler.rules import regulations

DIRECTORY = {
    "hagiang-2024": b"regulation: hagiang-2024\ndomain: hagiang.gov.vn\nbase_dn: dc=hg,dc=vn\n",
    "quangnam-2020": b"regulation: quangnam-2020\ndomain: quangnam.gov.vn\nbase_dn: dc=qn,dc=vn\n",
}
LOCAL = re.compile(r"[a-z0-9]+(\.[a-z0-9]+)*\Z")

yamlish = st.text(
    alphabet=st.sampled_from(
        [*"abcXYZ019 -:'\"[]{}&*!|>#,?%@`\t\n\r\\", "\u200b", "ễ", "\u0430", "\0", "\ufeff"]
    ),
    max_size=300,
)
fuzz = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fuzz
@given(st.binary(max_size=400) | yamlish.map(lambda s: s.encode("utf-8")))
def test_parse_never_raises(data: bytes) -> None:
    parsed = yamlload.parse(data)
    assert (parsed.data is None) == bool(parsed.problems)
    for line, message in parsed.problems:
        assert line >= 1 and message


def _load(files: dict[str, bytes]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        (folder / "agencies").mkdir()
        for rel, data in files.items():
            (folder / rel).write_bytes(data)
        try:
            inventory.load(folder)
        except InventoryError as error:
            assert error.problems
            for problem in error.problems:
                assert problem.file.startswith(str(folder)) and problem.line >= 0
    finally:
        shutil.rmtree(folder)


AGENCY_HEAD = "agency:\n  id: sotttt\n  name: Sở\n  abbreviation: sotttt\n"


@fuzz
@given(
    st.binary(max_size=300) | yamlish.map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.sampled_from(["directory.yaml", "agencies/sotttt.yaml"]),
)
def test_load_never_raises_anything_but_inventory_error(data: bytes, rel: str) -> None:
    files = {"directory.yaml": DIRECTORY["hagiang-2024"], rel: data}
    _load(files)


@fuzz
@given(yamlish)
def test_load_of_a_fuzzed_staff_list(tail: str) -> None:
    text = AGENCY_HEAD + "staff:\n  - id: HG-1\n    " + tail
    _load({"directory.yaml": DIRECTORY["hagiang-2024"], "agencies/sotttt.yaml": text.encode()})


names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40
) | st.lists(
    st.sampled_from(["Nguyễn", "Văn", "Sơn", "H'Hen", "Niê", "Đặng", "ơ̆", "A", "Ư", "-", "’"]),
    min_size=1,
    max_size=6,
).map(" ".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(names, min_size=1, max_size=12), st.sampled_from(sorted(DIRECTORY)))
def test_pipeline_with_arbitrary_unicode_names(people: list[str], regulation: str) -> None:
    import json

    staff = "".join(
        f"  - id: P-{i}\n    name: {json.dumps(name)}\n    given: {json.dumps(name.split()[-1:])}\n"
        for i, name in enumerate(people)
    ).replace("given: []", "given: x")
    staff = re.sub(r"given: \[(.*)\]", r"given: \1", staff)
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        (folder / "agencies").mkdir()
        (folder / "directory.yaml").write_bytes(DIRECTORY[regulation])
        (folder / "agencies" / "sotttt.yaml").write_text(AGENCY_HEAD + "staff:\n" + staff, "utf-8")
        try:
            inv = inventory.load(folder)
        except InventoryError:
            return
        reg = regulations.get(regulation)
        desired.check(inv, reg)  # problems are fine; exceptions are not
        boxes, _ = desired.mailboxes(inv, reg, {}, *desired.taken_addresses((), inv))
        addresses = [str(box.address) for box in boxes.values()]
        assert len(addresses) == len(set(addresses)), "two mailboxes on one address"
        for box in boxes.values():
            assert LOCAL.match(box.address.local) and len(box.address.local) <= 64, box.address
            assert box.address.domain == inv.settings.domain
    finally:
        shutil.rmtree(folder)


#: Values at the edges of what the schemas allow: every JSON type, lengths, numbers.
EDGES = (
    *(None, True, False, 0, 1, 2, -1, 64, 65, "", "a", "ab", "x" * 64, "x" * 65, "x" * 256),
    *("x" * 257, "HG-1", "vp", "active", "x@hagiang.gov.vn", "12 months", "2026-01-31", [], {}),
    *(["a@b.vn"], [{"rule": "inactivity", "ref": "1"}], {"clause": "Đ8.1"}, {"zz": 1}),
)
#: Values of every JSON type, some of which the schemas allow somewhere.
json_values = st.recursive(
    st.sampled_from(EDGES) | st.integers(min_value=-3, max_value=70) | st.text(max_size=300),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["id", "name", "unit", "rank", "state", "rule", "ref", "clause", "zz"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=8,
)
STAFF_KEYS = (
    "id", "name", "unit", "title", "rank", "state", "suspension", "quota", "quota_decision",
    "address", "aliases", "family", "middle", "given", "restored", "restore_ref", "exempt",
    "new_request", "other",
)  # fmt: skip
staff_keys = st.sampled_from(STAFF_KEYS)


#: Records that pass the schema, the starting points of the mutations below.
VALID = (
    {"id": "HG-1", "name": "Nguyễn Văn Sơn"},
    {"id": "HG-2", "name": "Lò Thị Mai", "unit": "vp", "title": "Chuyên viên", "rank": 2},
    {"id": "HG-3", "name": "Vũ An", "state": "suspended", "suspension": {"clause": "Đ8.1"}},
    {"id": "HG-4", "name": "Hà Vy", "quota": "10 GB", "quota_decision": "12/QĐ-UBND"},
    {"id": "HG-5", "name": "Đỗ Hà", "address": "ha.do@hagiang.gov.vn", "aliases": ["a@b.vn"]},
    {"id": "HG-6", "name": "Sùng A Páo", "exempt": [{"rule": "inactivity", "ref": "CV 1"}]},
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(VALID),
    st.dictionaries(staff_keys, json_values, max_size=3),
    st.sets(staff_keys, max_size=2),
    st.booleans(),
)
def test_compiled_schema_check_agrees_with_jsonschema(
    base: dict[str, object], changed: dict[str, object], dropped: set[str], whole: bool
) -> None:
    """The loader's compiled yes/no check (`_fast`) says what jsonschema says of a valid staff
    record with some values changed or dropped (and of it as an agency header, and as a
    directory.yaml)."""
    _agree({k: v for k, v in {**base, **changed}.items() if k not in dropped})


def test_compiled_schema_check_agrees_with_jsonschema_at_every_edge() -> None:
    """The same, for each valid record with each key set to each edge value in turn."""
    keys = [*STAFF_KEYS, "mail_store", "quarantine", "regulation"]
    for base in VALID:
        for key in keys:
            for value in EDGES:
                _agree({**base, key: value})


def _agree(record: dict[str, object]) -> None:
    dir_validator, dir_fast = inventory._validator("directory.schema.json")
    validator, fast = inventory._validator("agency.schema.json")
    head = {"id": "sotttt", "name": "Sở", "abbreviation": "sotttt"}
    for data in ({"agency": head, "staff": [VALID[0], record]}, {"agency": record}):
        assert fast(data) == validator.is_valid(data), data
    assert dir_fast(record) == dir_validator.is_valid(record)
