"""The saved plan: JSON, versioned, sorted and byte-stable for the same inputs, with a digest.

`to_json()` / `from_json()` are pure; `save()` / `load()` touch the file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from reconciler import csn
from reconciler.attributes import ALWAYS_WRITTEN, PASSWORD, misplaced
from reconciler.errors import ReconcilerError
from reconciler.model import (
    Action,
    Change,
    Contact,
    Deferred,
    Kind,
    Limits,
    Operation,
    Owner,
    Plan,
    ReadState,
    Refusal,
    Source,
    Value,
    builder,
)
from reconciler.text import all_strings

FORMAT = 1
_PASSWORD = PASSWORD.lower()


#: How a value that apply fills in is written in the plan file: {"deferred": "<what>"}, an
#: object, so that no string value (a title, a reason) can ever be taken for one.
DEFERRED = "deferred"


def _value(value: Value) -> str | dict[str, str]:
    return {DEFERRED: value.value} if isinstance(value, Deferred) else value


def _values(values: tuple[Value, ...]) -> list[str | dict[str, str]]:
    return [v if type(v) is str else _value(v) for v in values]


def _changes(changes: tuple[Change, ...]) -> dict[str, dict[str, Any]]:
    return {c.attr: {"before": list(c.before), "after": _values(c.after)} for c in changes}


def operation_dict(op: Operation) -> dict[str, Any]:
    d: dict[str, Any] = {"action": op.action.value, "id": op.id}
    if op.action is Action.RENAME:
        d["from"] = op.previous
        d["to"] = op.address
    else:
        d["address"] = op.address
    d["clause"] = op.clause
    if op.address_clause:
        d["address_clause"] = op.address_clause
    d["reason"] = op.reason
    d["kind"] = op.kind.value
    d["agency"] = op.agency
    d["name"] = op.name
    if op.dn:
        d["dn"] = op.dn
    if op.new_dn:
        d["new_dn"] = op.new_dn
    if op.changes:
        d["changes"] = _changes(op.changes)
    if op.attributes:
        d["attributes"] = {c.attr: _values(c.after) for c in op.attributes}
    if op.fingerprint:
        d["fingerprint"] = op.fingerprint
    if op.source is not None:
        d["source"] = {
            "dn": op.source.dn,
            "fingerprint": op.source.fingerprint,
            "login": op.source.login,
            "address": op.source.address,
        }
    return d


def _sealed(plan: Plan) -> tuple[dict[str, Any], str]:
    """The plan as a JSON-ready dict, without its digest, and its digest: the dict is built once
    for both (at 50,000 operations building it takes seconds)."""
    data = _digested(plan)
    sealed = _hashed(_listed(data, _CANONICAL, _CANONICAL, ","))
    if plan.directory_backend:
        data["directory"]["backend"] = plan.directory_backend
    return data, sealed


def _hashed(canonical: Iterable[str]) -> str:
    """The digest of a plan's canonical JSON, given in pieces (`_listed`): "sha256:" and the
    SHA-256 of its UTF-8, fed a piece at a time (the text of 20,000 creates whole is some
    100 MB). A lone surrogate in it is a UnicodeEncodeError."""
    hashed = hashlib.sha256()
    for piece in canonical:
        hashed.update(piece.encode())
    return "sha256:" + hashed.hexdigest()


def _digested(plan: Plan) -> dict[str, Any]:
    """What the digest covers: all of the plan but the library that read the directory (the same
    plan read through python-ldap or ldap3 has the same digest)."""
    return {
        "format": FORMAT,
        "regulation": plan.regulation,
        "domain": plan.domain,
        "base_dn": plan.base_dn,
        "now": plan.now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "inventory": {"digest": plan.inventory_digest, "commit": plan.inventory_commit},
        "directory": {
            "url": plan.directory_url,
            "identity": plan.directory_identity,
            "fingerprint": plan.directory_fingerprint,
            "accounts": plan.accounts,
        },
        "limits": _limits(plan.limits),
        "containers": list(plan.containers),
        "people": list(plan.people),
        "operations": [operation_dict(op) for op in plan.operations],
        "unmanaged": list(plan.unmanaged),
        "notes": list(plan.notes),
        # only when it runs: plans without one keep the digest they always had
        **({"mail_store": {"erase": list(plan.erase)}} if plan.erase else {}),
        # only when there are some: plans without one keep the digest they always had
        **({"refused": [_refusal(r) for r in plan.refused]} if plan.refused else {}),
        **({"notices": _notices(plan)} if plan.contacts or plan.owners else {}),
        # directory.yaml's audit settings, for apply (absent when not set)
        **({"audit": _audit(plan)} if _audit(plan) else {}),
        # only for a replicated directory (a server that keeps contextCSNs)
        **({"replication": _replication(plan.replication)} if plan.replication else {}),
        # a merger's source directory, only when the plan carries mailboxes over from one
        **(
            {"source": {"url": plan.source_url, "base_dn": plan.source_base_dn}}
            if plan.source_url
            else {}
        ),
    }


def _audit(plan: Plan) -> dict[str, Any]:
    pairs = (("log", plan.audit_log), ("keep_months", plan.audit_keep_months))
    return {k: v for k, v in pairs if v is not None}


def _notices(plan: Plan) -> dict[str, Any]:
    return {
        "relay": plan.relay,
        "from": plan.sender,
        "agencies": {c.agency: {"name": c.name, "to": list(c.to)} for c in plan.contacts},
        # only when there are some: plans without one keep the digest they always had
        **(
            {"owners": {o.id: {"agency": o.agency, "to": o.to} for o in plan.owners}}
            if plan.owners
            else {}
        ),
    }


def _refusal(r: Refusal) -> dict[str, str]:
    return {"id": r.id, "agency": r.agency, "name": r.name, "clause": r.clause, "reason": r.reason}


def _limits(limits: Limits | None) -> dict[str, Any] | None:
    if limits is None:
        return None
    return {
        "max_deletes": limits.max_deletes,
        "allow_deletes": limits.allow_deletes,
        "suspend_share": limits.suspend_share,
        "allow_suspends": limits.allow_suspends,
    }


def _read_limits(data: Any) -> Limits | None:
    if data is None:
        return None
    return Limits(
        max_deletes=int(data["max_deletes"]),
        allow_deletes=None if data["allow_deletes"] is None else int(data["allow_deletes"]),
        suspend_share=float(data["suspend_share"]),
        allow_suspends=None if data["allow_suspends"] is None else int(data["allow_suspends"]),
    )


def _time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _replication(state: ReadState) -> dict[str, Any]:
    return {
        "read_from": state.read_from,
        "read_at": _time(state.read_at),
        "held": list(state.held),
        "providers": list(state.providers),
    }


def _read_state(data: Any) -> ReadState | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValueError(f"replication must be an object, not {data!r}")
    held, providers = data["held"], data.get("providers", [])
    for values in (held, providers):
        if not isinstance(values, list) or not all(
            isinstance(v, str) and csn.valid(v) for v in values
        ):
            raise ValueError(f"replication states must be lists of CSNs, not {values!r}")
    return ReadState(
        read_from=str(data["read_from"]),
        read_at=dt.datetime.fromisoformat(str(data["read_at"]).replace("Z", "+00:00")),
        held=tuple(held),
        providers=tuple(providers),
    )


def digest(plan: Plan) -> str:
    """sha256 of the plan's canonical JSON: what reviewers saw is what `--expect-digest` checks."""
    return _sealed(plan)[1]


def to_json(plan: Plan) -> str:
    """The plan file: sorted keys, one operation per line (readable in a diff, and a plan of
    100,000 operations stays a fraction of the size of a fully indented one)."""
    return _dumped(plan)[0]


def _dumped(plan: Plan) -> tuple[str, str]:
    """The plan file's text (`to_json`) and the plan's digest."""
    pieces, sealed = _pieces(plan)
    return "".join(pieces), sealed


def _pieces(plan: Plan) -> tuple[Iterator[str], str]:
    """The plan file's text in pieces, one operation at a time, and the plan's digest: a plan of
    10,000 operations held its canonical JSON, its text and the lines of both at once (some
    60 MB at 100,000 mailboxes); `save` writes the pieces as they come."""
    data, sealed = _sealed(plan)
    data["digest"] = sealed
    filed = _listed(data, _FILED, _OPERATION, ",\n  ", "[\n  ", "\n ]")
    return itertools.chain(filed, ["\n"]), sealed


#: How a plan is dumped for its digest (compact), and in its file (indented, an operation a line).
_CANONICAL: dict[str, Any] = {"ensure_ascii": False, "sort_keys": True, "separators": (",", ":")}
_FILED: dict[str, Any] = {"ensure_ascii": False, "sort_keys": True, "indent": 1}
_OPERATION: dict[str, Any] = {"ensure_ascii": False, "sort_keys": True, "separators": (", ", ": ")}


def _listed(
    data: dict[str, Any],
    how: dict[str, Any],
    each: dict[str, Any],
    between: str,
    start: str = "[",
    end: str = "]",
) -> Iterator[str]:
    """`json.dumps(data, **how)` in pieces: the plan around its operations, then each operation
    dumped with `each`, `between` them. Canonical (`_CANONICAL` for both, `between` ","), the
    pieces joined are exactly `json.dumps` of the whole. The operations stand in as NUL while the
    rest is dumped; as more NULs when another value of the plan is that very string."""
    hole = "\0"
    text = json.dumps({**data, "operations": hole}, **how)
    while text.count(json.dumps(hole)) != 1:
        hole += "\0"
        text = json.dumps({**data, "operations": hole}, **how)
    head, _, tail = text.partition(json.dumps(hole))
    yield head
    if data["operations"]:
        yield start
        for i, op in enumerate(data["operations"]):
            yield (between if i else "") + json.dumps(op, **each)
        yield end
    else:
        yield "[]"
    yield tail


def _optional(value: Any, kind: type) -> Any:
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise ValueError(f"{value!r} is not a {kind.__name__}")
    return value


def _read_value(value: Any) -> Value:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {DEFERRED}:
        try:
            return Deferred(value[DEFERRED])
        except ValueError:
            known = ", ".join(f'"{d.value}"' for d in Deferred)
            raise ValueError(
                f"unknown deferred value {value[DEFERRED]!r} (known: {known})"
            ) from None
    raise ValueError(f"an attribute value must be a string or {{{DEFERRED!r}: …}}, not {value!r}")


def _strings(values: Any) -> tuple[str, ...]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"the values before a change must be a list of strings, not {values!r}")
    return tuple(values)


def _change(attr: str, before: Any, after: Any) -> Change:
    if not isinstance(after, list):
        raise ValueError(f"the values of {attr} must be a list, not {after!r}")
    read = () if type(before) is list and not before else _strings(before)
    # the common case first (a plan's 20,000 creates hold 360,000 of them): strings only, which
    # `misplaced` finds fault with only in userPassword; anything else is read value by value
    if all_strings(after):
        change = _new_change(attr, read, tuple(after))
        if attr.lower() != _PASSWORD:
            return change
    else:
        change = _new_change(attr, read, tuple([_read_value(v) for v in after]))
    problem = misplaced(attr, change.after)
    if problem:
        raise ValueError(problem)
    return change


#: Constructors of the operations and changes read (`model.builder`: a plan of 20,000 creates
#: holds 360,000 changes).
_new_change = builder(Change)
_new_operation = builder(Operation)

#: A password carried over from a source entry, as the file writes it (`carries`).
_CARRIED = [{DEFERRED: Deferred.CARRIED.value}]


def _read_op(d: dict[str, Any]) -> tuple[Operation, bool]:
    """The operation `d` reads as (what is wrong with it a ValueError), and whether `d` is
    exactly what `operation_dict` writes for it: the keys every operation has (a rename "from"
    and "to" where the others have "address"), each other key only when its value is not empty,
    no key besides, every string a string, a source entry its four strings, a change its
    "before" and "after" (`_change` checks their values)."""
    action = Action(d["action"])
    changed, written = d.get("changes", {}), d.get("attributes", {})
    changes = tuple([_change(attr, v["before"], v["after"]) for attr, v in changed.items()])
    attributes = []
    for attr, after in written.items():
        # `_change(attr, [], after)`, its common case inline (360,000 calls for 20,000 creates)
        if type(after) is list and attr.lower() != _PASSWORD:
            try:
                "".join(after)
            except TypeError:
                pass
            else:
                attributes.append(_new_change(attr, (), tuple(after)))
                continue
        attributes.append(_change(attr, [], after))
    source = _source(d.get("source"))
    always = ALWAYS_WRITTEN.get(action, ())
    # `carries(attributes)`, from the file's value: the one that reads as (Deferred.CARRIED,)
    if action is Action.CREATE and written.get(PASSWORD) == _CARRIED:
        if source is None:
            raise ValueError(
                f"it carries {PASSWORD} over from a source entry, but names no source entry"
            )
        always = (PASSWORD,)  # the source's must-change state, as it is
    elif source is not None:
        raise ValueError("only a create that carries a password over names a source entry")
    left_out = [a for a in always if a not in written and a not in changed]
    if left_out:
        raise ValueError(
            f"it does not list {', '.join(left_out)}, which every {action.value} writes (a plan "
            "made by a reconciler from before plans listed every attribute apply writes)"
        )
    rename = action is Action.RENAME
    op = _new_operation(
        action=action,
        id=d["id"],
        address=d["to"] if rename else d["address"],
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
        attributes=tuple(attributes),
        fingerprint=d.get("fingerprint", ""),
        source=source,
    )
    # Every key read, those read with a default too, is there: the others number as many as
    # the optional values set, each of which is there, so they are those and none other.
    optional = (op.address_clause, op.dn, op.new_dn, op.fingerprint, changed, written, source)
    exact = (
        len(d) == (9 if rename else 8) + sum(map(bool, optional))
        and "kind" in d
        and "agency" in d
        and "name" in d
        and (not rename or "from" in d)
        and (
            source is None or (d["source"].keys() == _SOURCE and all_strings(d["source"].values()))
        )
        and all(len(change) == 2 for change in changed.values())
        and all_strings((op.id, op.address, op.previous, op.clause, op.address_clause, op.reason))
        and all_strings((op.agency, op.name, op.dn, op.new_dn, op.fingerprint))
    )
    return op, exact


def _source(d: Any) -> Source | None:
    if d is None:
        return None
    if not isinstance(d, dict) or not isinstance(d.get("dn"), str) or not d.get("fingerprint"):
        raise ValueError(f"a source entry is {{dn, fingerprint, login, address}}, not {d!r}")
    return Source(
        str(d["dn"]), str(d["fingerprint"]), str(d.get("login", "")), str(d.get("address", ""))
    )


#: A source entry's keys in the file.
_SOURCE = frozenset({"dn", "fingerprint", "login", "address"})


def _operations(ops: list[dict[str, Any]], source: str, odd: list[int]) -> tuple[Operation, ...]:
    """The operations read, each checked (`_read_op`); the number of each that is not exactly
    what the writer writes goes to `odd`."""
    out = []
    for number, op in enumerate(ops, 1):
        try:
            read, exact = _read_op(op)
        except ValueError as error:
            raise ReconcilerError(
                f"{source}: operation {number} ({op.get('action')} {op.get('id')}): {error}. "
                "Only `reconciler plan` writes plan files; make a new plan."
            ) from None
        out.append(read)
        if not exact:
            odd.append(number)
    return tuple(out)


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object of the plan file, whose keys are each given once: `json` keeps the last of a
    key given twice, and someone reading the file may see the first."""
    d = dict(pairs)
    if len(d) != len(pairs):
        keys = [key for key, _ in pairs]
        twice = next(key for key in keys if keys.count(key) > 1)
        raise ValueError(f"the key {twice!r} is given twice in one object")
    return d


def from_json(text: str, source: str = "plan") -> Plan:
    """Read a plan back; refuses a file that is not a plan, of another format, or edited by hand."""
    return _read(text, source)[0]


def _no_constant(name: str) -> Any:
    """`json` reads NaN, Infinity and -Infinity, which are no JSON and no number a plan holds."""
    raise ValueError(f"it holds {name}, which is not a number a plan holds")


def _finite(text: str) -> float:
    """A number of the file with a fraction or an exponent, refused past a float's range
    (`1e400` reads as infinity, which no limit of a plan is)."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"it holds {text}, a number past any a plan holds")
    return value


def _read(text: str, source: str) -> tuple[Plan, str]:
    """The plan in `text` (`from_json`) and its digest, checked against the one it carries."""
    odd: list[int] = []  # the operations not as the writer writes them
    try:
        data = json.loads(
            text, object_pairs_hook=_unique, parse_constant=_no_constant, parse_float=_finite
        )
        plan = _plan(data, source, odd)
    except ReconcilerError:
        raise
    except RecursionError:
        raise ReconcilerError(
            f"{source}: not a valid plan file (its values are nested deeper than a plan's)"
        ) from None
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as error:
        if "int_max_str_digits" in str(error):  # Python's own advice, not for an admin
            error = ValueError("it holds a number of thousands of digits")
        raise ReconcilerError(f"{source}: not a valid plan file ({error})") from None
    return plan, _checked(data, plan, odd, source)


def _plan(data: Any, source: str, odd: list[int]) -> Plan:
    """The plan the file's object `data` holds (its digest unchecked); the operations not as the
    writer writes them go to `odd` (`_operations`)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ReconcilerError(
            f"{source}: not a reconciler plan of format {FORMAT} (make it with "
            "`reconciler plan --out`)"
        )
    return Plan(
        regulation=data["regulation"],
        domain=data["domain"],
        base_dn=data["base_dn"],
        now=dt.datetime.fromisoformat(data["now"].replace("Z", "+00:00")),
        inventory_digest=data["inventory"]["digest"],
        inventory_commit=data["inventory"]["commit"],
        directory_url=data["directory"]["url"],
        directory_fingerprint=data["directory"]["fingerprint"],
        accounts=int(data["directory"].get("accounts", 0)),
        directory_backend=str(data["directory"].get("backend", "")),
        containers=tuple(data.get("containers", ())),
        people=tuple(data.get("people", ())),
        directory_identity=str(data["directory"].get("identity", "")),
        limits=_read_limits(data.get("limits")),
        operations=_operations(data["operations"], source, odd),
        unmanaged=tuple(data.get("unmanaged", ())),
        notes=tuple(data.get("notes", ())),
        erase=tuple(str(part) for part in data.get("mail_store", {}).get("erase", ())),
        refused=tuple(Refusal(**r) for r in data.get("refused", ())),
        contacts=tuple(
            Contact(agency, c["name"], tuple(c["to"]))
            for agency, c in data.get("notices", {}).get("agencies", {}).items()
        ),
        owners=tuple(
            Owner(str(key), str(o["agency"]), str(o["to"]))
            for key, o in data.get("notices", {}).get("owners", {}).items()
        ),
        relay=data.get("notices", {}).get("relay", ""),
        sender=data.get("notices", {}).get("from", ""),
        audit_log=_optional(data.get("audit", {}).get("log"), str),
        audit_keep_months=_optional(data.get("audit", {}).get("keep_months"), int),
        replication=_read_state(data.get("replication")),
        source_url=str(data.get("source", {}).get("url", "")),
        source_base_dn=str(data.get("source", {}).get("base_dn", "")),
    )


def _checked(data: dict[str, Any], plan: Plan, odd: list[int], source: str) -> str:
    """The digest of the plan file's object `data`, read as `plan`, if it is the one the file
    carries; else the file is refused.

    The digest is the SHA-256 of the canonical JSON of `data` itself, less its digest and the
    directory's backend: the plan is not dumped again. This is as strong as hashing the plan read
    (`digest(plan)`, which the writer hashes, and which this check did until issue 20): a file
    passes only when `data` is exactly, as JSON, what the writer writes for `plan`
    (`_digested(plan)`: every key, none other, each value of its type; the operations checked one
    by one as they are read, `_read_op`, the rest against the writer's own dump of it), no key
    given twice (`_unique`), and its digest is the SHA-256 of that. The canonical JSON of `data`
    is then the text the writer hashed, so the digest is `digest(plan)`, the one `--expect-digest`
    compares: a file passes with the reviewed digest only if it reads as the reviewed plan
    reads. Hashing the plan read accepted more: a file whose values read as the plan's without
    being its (an "accounts" of "5", a key left out that reads as its default, one added that is
    not read) passed with the digest of another text, and a key given twice read as its last."""
    covered = {key: value for key, value in data.items() if key != "digest"}
    directory = covered["directory"] = dict(data["directory"])
    backend = directory.pop("backend", "")
    # hashed an operation at a time, as the writer hashes it (`_sealed`): the canonical text of
    # 20,000 creates whole, and its bytes, were 40 MB more at apply's peak
    pieces = (
        _listed(covered, _CANONICAL, _CANONICAL, ",")
        if type(covered["operations"]) is list
        else [json.dumps(covered, **_CANONICAL)]
    )
    try:
        sealed = _hashed(pieces)
        if type(backend) is str:
            backend.encode()
    except UnicodeEncodeError as error:
        raise ReconcilerError(
            f"{source}: not a valid plan file (it holds {error.object[error.start]!r}, half of a "
            "UTF-16 surrogate pair, which is not text)"
        ) from None
    exact = (
        not odd
        and type(data["operations"]) is list
        and ("backend" not in data["directory"] or (type(backend) is str and backend != ""))
        and json.dumps({**covered, "operations": []}, **_CANONICAL)
        == json.dumps(_digested(dataclasses.replace(plan, operations=())), **_CANONICAL)
    )
    if not exact or data.get("digest") != sealed:
        raise ReconcilerError(
            f"{source}: the plan's digest does not match its content; it was changed after "
            "`reconciler plan` wrote it. Make a new plan."
        )
    return sealed


def save(plan: Plan, path: Path) -> str:
    """Write atomically: a reader never sees half a plan (a full disk leaves no file). Returns
    the plan's digest."""
    pieces, sealed = _pieces(plan)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise ReconcilerError(f"cannot write the plan {path}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(pieces)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise ReconcilerError(f"cannot write the plan {path}: {error.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return sealed


def load(path: Path) -> Plan:
    """The plan saved at `path` (`from_json`)."""
    return load_sealed(path)[0]


def load_sealed(path: Path) -> tuple[Plan, str]:
    """The plan saved at `path` and its digest, checked (computed once: the callers that need
    the digest need not make it again)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ReconcilerError(f"cannot read the plan {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ReconcilerError(f"{path}: not a reconciler plan (not UTF-8 text)") from None
    return _read(text, str(path))
