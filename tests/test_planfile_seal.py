"""The plan file's seal (issue 20): the digest is checked on the file's own JSON, not on the plan
dumped again, and a file passes only as the writer wrote it. Pure: no server."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.attributes import ALWAYS_WRITTEN, PASSWORD, carries, misplaced
from reconciler.errors import ReconcilerError
from reconciler.model import (
    Action,
    Change,
    Deferred,
    Kind,
    Operation,
    Owner,
    Plan,
    ReadState,
    Refusal,
    Source,
)
from reconciler.planning import planfile

CASES = Path(__file__).resolve().parent / "cases"
GOLDEN = sorted(CASES.glob("*/plan.json"))
CHANGED = "the plan's digest does not match its content; it was changed after `reconciler plan`"
A1 = "20261129173537.875493Z#000000#001#000000"
B1 = "20261129173932.747000Z#000000#002#000000"


def every_action() -> Plan:
    """A plan with an operation of every action (and a create carrying a password over from a
    source entry) and every part a plan file may hold."""
    base = planfile.load(CASES / "hagiang-changes" / "plan.json")
    restore = next(
        op
        for op in planfile.load(CASES / "quangnam-changes" / "plan.json").operations
        if op.action is Action.RESTORE
    )
    carried = Operation(
        action=Action.CREATE,
        id="HG-9001",
        address="nvan.sotttt@hagiang.gov.vn",
        clause="HG-2024 Đ7.1",
        address_clause="HG-2024 Đ5.2",
        reason="carried over from the merged directory",
        kind=Kind.PERSON,
        agency="sotttt",
        name="Nguyễn Văn An",
        new_dn="uid=nvan.sotttt,ou=people,dc=hagiang,dc=gov,dc=vn",
        attributes=(
            Change("cn", (), ("Nguyễn Văn An",)),
            Change(PASSWORD, (), (Deferred.CARRIED,)),
        ),
        source=Source("uid=an,ou=people,dc=old", "sha256:1", "an", "an@old.gov.vn"),
    )
    suspended = next(op for op in base.operations if op.action is Action.SUSPEND)
    return dataclasses.replace(
        base,
        operations=(*base.operations, restore, carried),
        erase=("/usr/local/bin/erase", "{address}"),
        refused=(Refusal("HG-1", "sotttt", "Lê Văn B", "HG-2024 Đ5.1", "no unit"),),
        owners=(Owner(suspended.id, suspended.agency, "b@example.org"),),
        audit_log="/var/log/reconciler/audit.log",
        audit_keep_months=60,
        replication=ReadState(
            "ldap://replica:389", dt.datetime(2026, 11, 29, 17, 40, tzinfo=dt.UTC), (A1,), (B1,)
        ),
        source_url="ldap://old:389",
        source_base_dn="dc=old",
        directory_backend="python-ldap",
    )


def texts() -> list[str]:
    return [path.read_text(encoding="utf-8") for path in GOLDEN] + [
        planfile.to_json(every_action())
    ]


def sealed(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with the digest of its own body, as an attacker who can write the file gives it."""
    covered = copy.deepcopy(data)
    covered.pop("digest", None)
    covered["directory"].pop("backend", None)
    canonical = json.dumps(covered, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    text = canonical.encode("utf-8", "surrogatepass")
    return {**data, "digest": "sha256:" + hashlib.sha256(text).hexdigest()}


def new_check(text: str) -> str | None:
    """The digest the reader returns, or None when it refuses the file."""
    try:
        return planfile._read(text, "plan")[1]
    except ReconcilerError:
        return None


def old_check(text: str) -> str | None:
    """The check before issue 20: the plan read, dumped again (`digest`) and hashed."""
    try:
        data = json.loads(text)
        plan = planfile._plan(data, "plan", [])
    except (ReconcilerError, ValueError, KeyError, TypeError, AttributeError):
        return None
    digest = planfile.digest(plan)
    return digest if data.get("digest") == digest else None


Edit = Callable[[dict[str, Any]], None]


def variants(data: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(what, text, as the writer writes it) of files made from the plan file's object `data`."""
    out: list[tuple[str, str, bool]] = [
        ("as written", json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True), True),
        ("compact", json.dumps(data, separators=(",", ":")), True),
        ("ASCII escapes", json.dumps(data, ensure_ascii=True, indent=3), True),
        ("keys in reverse", json.dumps(_reversed(data), ensure_ascii=False), True),
    ]

    def edited(what: str, edit: Edit, genuine: bool) -> None:
        changed = copy.deepcopy(data)
        edit(changed)
        out.append((what, json.dumps(changed, ensure_ascii=False), genuine))
        out.append((f"{what}, resealed", json.dumps(sealed(changed), ensure_ascii=False), genuine))

    edited("the domain", lambda d: d.update(domain="other.gov.vn"), True)
    edited("the accounts a string", lambda d: d["directory"].update(accounts="5"), False)
    edited("a key added", lambda d: d.update(added=1), False)
    edited("the limits left out", lambda d: d.pop("limits"), False)
    edited("now in another form", lambda d: d.update(now=d["now"].replace("Z", "+00:00")), False)
    for number, op in enumerate(data["operations"]):

        def at(edit: Edit, number: int = number) -> Edit:
            return lambda d: edit(d["operations"][number])

        edited(f"operation {number}'s reason", at(lambda o: o.update(reason="x")), True)
        edited(f"operation {number} with a key added", at(lambda o: o.update(x="")), False)
        edited(f"operation {number}'s id a number", at(lambda o: o.update(id=7)), False)
        always = {"action", "id", "clause", "reason", "kind", "agency", "name"} | (
            {"from", "to"} if op["action"] == "rename" else {"address"}
        )
        for key in op:  # one written only when it is set: an operation without it
            edited(f"operation {number} without {key}", at(lambda o, k=key: o.pop(k)),
                   key not in always)  # fmt: skip
        if "dn" in op:
            edited(f"operation {number}'s dn empty", at(lambda o: o.update(dn="")), False)
        for attr in op.get("changes", {}):

            def more(o: dict[str, Any], attr: str = attr) -> None:
                o["changes"][attr]["extra"] = []

            edited(f"operation {number}'s change of {attr} with a key added", at(more), False)
        if "source" in op:
            edited(f"operation {number}'s source login a number",
                   at(lambda o: o["source"].update(login=1)), False)  # fmt: skip
    return out


def _reversed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reversed(v) for k, v in reversed(value.items())}
    if isinstance(value, list):
        return [_reversed(v) for v in value]
    return value


def test_a_plan_of_every_action_reads_back_with_its_digest() -> None:
    plan = every_action()
    assert {op.action for op in plan.operations} == set(Action)
    again, digest = planfile._read(planfile.to_json(plan), "plan")
    assert again == plan and digest == planfile.digest(plan)


@pytest.mark.parametrize("text", texts(), ids=[p.parent.name for p in GOLDEN] + ["every-action"])
def test_the_check_on_the_files_json_accepts_what_hashing_the_plan_read_accepted(
    text: str,
) -> None:
    """Every file the writer's form gives (whatever its layout, escapes and order of keys), and
    every edit of one, resealed or not: the new check accepts it exactly when the old one did,
    with the same digest. A file not in the writer's form is refused, resealed or not: the old
    check accepted some (a value that reads the same, a key it does not read, one left out that
    reads as its default), with the digest of another text."""
    data = json.loads(text)
    seen = taken = 0
    for what, variant, genuine in variants(data):
        new, old = new_check(variant), old_check(variant)
        if genuine:
            assert new == old, what
            seen += new is not None
        else:
            assert new is None, what
            taken += old is not None
    assert seen >= 5  # as written, its layouts, and the resealed edits of values
    assert taken >= 3  # what the old check took: the accounts "5", a key added, kind left out


@pytest.mark.parametrize(
    ("what", "edit", "reseal"),
    [
        ("an operation changed", lambda d: d["operations"][0].update(reason="x"), False),
        ("a value changed", lambda d: d["directory"].update(accounts=6), False),
        ("a key added", lambda d: d.update(extra=True), False),
        ("a key added, resealed", lambda d: d.update(extra=True), True),
        ("an operation's key added", lambda d: d["operations"][0].update(x="y"), False),
        ("an operation's key added, resealed", lambda d: d["operations"][0].update(x="y"), True),
        ("a key left out", lambda d: d["operations"][0].pop("kind"), False),
        ("a key left out, resealed", lambda d: d["operations"][0].pop("kind"), True),
        ("a number as a string", lambda d: d["directory"].update(accounts="5"), False),
        ("a number as a string, resealed", lambda d: d["directory"].update(accounts="5"), True),
        ("a number as a float", lambda d: d["directory"].update(accounts=5.0), False),
        ("the format a float", lambda d: d.update(format=1.0), True),
        ("the backend a number", lambda d: d["directory"].update(backend=5), True),
        ("the backend empty", lambda d: d["directory"].update(backend=""), True),
    ],
)
def test_a_file_not_as_the_writer_wrote_it_is_refused(
    tmp_path: Path, what: str, edit: Edit, reseal: bool
) -> None:
    data = json.loads((CASES / "hagiang-changes" / "plan.json").read_text(encoding="utf-8"))
    data["directory"]["accounts"] = 5
    data = sealed(data)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    planfile.load(path)  # the file as written (its accounts 5, resealed) passes
    edit(data)
    path.write_text(json.dumps(sealed(data) if reseal else data), encoding="utf-8")
    with pytest.raises(ReconcilerError, match="digest does not match") as refused:
        planfile.load(path)
    assert str(refused.value) == f"{path}: {CHANGED} wrote it. Make a new plan.", what


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["operations"][0].update(name="Lê \ud800"),
        lambda d: next(o for o in d["operations"] if o["action"] == "create")[
            "attributes"].update({"o\udc00": ["x"]}),
        lambda d: d.update(notes=["\udfff"]),
        lambda d: d["directory"].update(backend="\ud800"),  # outside the digest, still read
    ],
    ids=["a value", "a key", "a note", "the backend"],
)  # fmt: skip
def test_a_lone_surrogate_is_refused_in_plain_words(edit: Edit) -> None:
    """`"\\ud800"` in the file's JSON is half of a UTF-16 pair, which is not text: the reader
    says so (it was a UnicodeEncodeError out of the digest, a traceback, before issue 20)."""
    data = json.loads((CASES / "hagiang-changes" / "plan.json").read_text(encoding="utf-8"))
    edit(data)
    for each in (data, sealed(data)):
        with pytest.raises(ReconcilerError, match=r"not a valid plan file \(it holds '\\ud[8-f]"):
            planfile.from_json(json.dumps(each))  # ASCII: the surrogate as its \u escape


@pytest.mark.parametrize(
    ("key", "where"),
    [
        ('"domain": ', "the plan"),
        ('"reason": ', "an operation"),
        ('"cn": ', "an operation's attributes"),
    ],
)
def test_a_key_given_twice_is_refused(key: str, where: str) -> None:
    """`json` keeps the last of a key given twice; someone reading the file sees the first. The
    twice-given key is refused whatever its two values (it was read as its last before)."""
    text = (CASES / "hagiang-empty" / "plan.json").read_text(encoding="utf-8")
    data = json.loads(text)
    assert key in text, where
    doubled = text.replace(key, f'{key}"forged", {key}', 1)
    assert json.loads(doubled) == data  # the last one wins: the same plan, the same digest
    with pytest.raises(ReconcilerError, match=f"the key '{key[1:-3]}' is given twice"):
        planfile.from_json(doubled)


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ('"suspend_share": 0.1', '"suspend_share": NaN', "it holds NaN, which is not a number"),
        ('"max_deletes": 10', '"max_deletes": Infinity', "it holds Infinity, which is not a"),
        ('"max_deletes": 10', '"max_deletes": -Infinity', "it holds -Infinity, which is not"),
        ('"max_deletes": 10', '"max_deletes": 1e400', "it holds 1e400, a number past any"),
        ('"suspend_share": 0.1', '"suspend_share": -1e999', "it holds -1e999, a number past"),
        ('"max_deletes": 10', '"max_deletes": ' + "9" * 5000, "a number of thousands of digits"),
        ('"notes": []', '"notes": ' + "[" * 100_000 + "]" * 100_000, "nested deeper than a plan"),
    ],
    ids=["NaN", "Infinity", "-Infinity", "1e400", "-1e999", "5,000 digits", "nested"],
)
def test_a_number_no_plan_holds_or_a_nest_too_deep_is_refused_in_words(
    old: str, new: str, words: str
) -> None:
    """`json` reads NaN and Infinity (no JSON), numbers past a float or past Python's digits
    for an int, and arrays nested as deep as the text goes: each is refused as no valid plan
    file, in words (NaN read as a limit crashed apply's invariants; the others were tracebacks)."""
    text = (CASES / "hagiang-empty" / "plan.json").read_text(encoding="utf-8")
    assert old in text
    with pytest.raises(ReconcilerError, match="not a valid plan file") as refused:
        planfile.from_json(text.replace(old, new, 1), "p.json")
    assert words in str(refused.value)
    assert "set_int_max_str_digits" not in str(refused.value)


def test_an_edited_operation_is_refused_with_the_words_it_had() -> None:
    text = (CASES / "quangnam-changes" / "plan.json").read_text(encoding="utf-8")
    data = json.loads(text)
    data["operations"][1]["clause"] = "QN-2020 Đ1"
    with pytest.raises(ReconcilerError) as refused:
        planfile.from_json(json.dumps(data), "p.json")
    assert str(refused.value) == f"p.json: {CHANGED} wrote it. Make a new plan."


# The operation reader as it was before issue 20 (main at bf3d6b3), the reference the faster one
# (`planfile._read_op`) is held to: the same operations, the same errors in the same words.


def _old_change(attr: str, before: Any, after: Any) -> Change:
    if not isinstance(after, list):
        raise ValueError(f"the values of {attr} must be a list, not {after!r}")
    plain = all(type(v) is str for v in after)
    change = Change(
        attr,
        () if type(before) is list and not before else planfile._strings(before),
        tuple(after) if plain else tuple(planfile._read_value(v) for v in after),
    )
    problem = None if plain and attr.lower() != "userpassword" else misplaced(attr, change.after)
    if problem:
        raise ValueError(problem)
    return change


def _old_op(d: dict[str, Any]) -> Operation:
    action = Action(d["action"])
    changes = tuple(
        _old_change(attr, v["before"], v["after"]) for attr, v in d.get("changes", {}).items()
    )
    attributes = tuple(_old_change(attr, [], v) for attr, v in d.get("attributes", {}).items())
    listed = {c.attr for c in (*changes, *attributes)}
    source = planfile._source(d.get("source"))
    always = ALWAYS_WRITTEN.get(action, ())
    if action is Action.CREATE and carries(attributes):
        if source is None:
            raise ValueError(
                f"it carries {PASSWORD} over from a source entry, but names no source entry"
            )
        always = (PASSWORD,)
    elif source is not None:
        raise ValueError("only a create that carries a password over names a source entry")
    left_out = [a for a in always if a not in listed]
    if left_out:
        raise ValueError(
            f"it does not list {', '.join(left_out)}, which every {action.value} writes (a plan "
            "made by a reconciler from before plans listed every attribute apply writes)"
        )
    return Operation(
        action=action,
        id=d["id"],
        address=d["to"] if action is Action.RENAME else d["address"],
        previous=d.get("from", ""),
        clause=d["clause"],
        address_clause=d.get("address_clause", ""),
        reason=d["reason"],
        kind=Kind(d.get("kind", "person")),
        agency=d.get("agency", ""),
        name=d.get("name", ""),
        dn=d.get("dn", ""),
        new_dn=d.get("new_dn", ""),
        changes=changes,
        attributes=attributes,
        fingerprint=d.get("fingerprint", ""),
        source=source,
    )


def _outcome(read: Callable[[dict[str, Any]], Operation], op: dict[str, Any]) -> Any:
    try:
        return read(copy.deepcopy(op))
    except Exception as error:  # the kind and the words are what is compared
        return (type(error).__name__, str(error))


ODD_VALUES: list[Any] = [
    "x",
    None,
    5,
    {},
    [],
    ["a", "b"],
    ["a", 5],
    [None],
    [["a"]],
    [{"deferred": "issued password"}],
    [{"deferred": "carried password"}],
    [{"deferred": "time of apply"}],
    [{"deferred": "time of apply"}, "b"],
    ["b", {"deferred": "time of apply"}],
    [{"deferred": "admin password"}],
    [{"deferred": ["issued password"]}],
    [{"deferred": "issued password", "x": 1}],
    [{"deferred": "issued password"}, {"deferred": "issued password"}],
]
ODD_NAMES = [PASSWORD, "userpassword", "USERPASSWORD", "govMailPasswordIssuedAt", "title", ""]


def _mutations(op: dict[str, Any]) -> list[dict[str, Any]]:
    out = [op]
    for field in ("attributes", "changes"):
        for attr in [*op.get(field, {}), *ODD_NAMES]:
            for value in ODD_VALUES:
                changed = copy.deepcopy(op)
                written = changed.setdefault(field, {})
                if field == "attributes":
                    written[attr] = value
                else:
                    written[attr] = {"before": [], "after": value}
                out.append(changed)
            if field == "changes":
                for before in ("x", None, [5], ["a"], [{"deferred": "issued password"}]):
                    changed = copy.deepcopy(op)
                    changed.setdefault("changes", {})[attr] = {"before": before, "after": 5}
                    out.append(changed)
                    changed = copy.deepcopy(op)
                    changed.setdefault("changes", {})[attr] = {"before": before, "after": ["x"]}
                    out.append(changed)
            if attr in op.get(field, {}):
                changed = copy.deepcopy(op)
                del changed[field][attr]
                out.append(changed)
    for key in list(op):
        changed = copy.deepcopy(op)
        del changed[key]
        out.append(changed)
    for source in (None, "x", {"dn": "d", "fingerprint": "f"}, {"dn": 5, "fingerprint": "f"}):
        changed = copy.deepcopy(op)
        changed["source"] = source
        out.append(changed)
    return out


@pytest.mark.parametrize("text", texts(), ids=[p.parent.name for p in GOLDEN] + ["every-action"])
def test_operations_read_as_they_did_with_the_same_errors(text: str) -> None:
    """Every operation of the plan and thousands of edits of each (odd values, markers out of
    place, keys left out, sources): the faster reader makes the same `Operation`, or refuses it
    with the same error in the same words, as the reader before it."""
    compared = 0
    for op in json.loads(text)["operations"]:
        for each in _mutations(op):
            assert _outcome(lambda d: planfile._read_op(d)[0], each) == _outcome(_old_op, each), (
                each
            )
            compared += 1
    assert compared > 500
