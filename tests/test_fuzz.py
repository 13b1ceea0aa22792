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
