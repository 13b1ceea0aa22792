"""Load an inventory folder: strict YAML, the JSON Schemas, then checks over the whole inventory.

`load(path)` is the only function here that touches the disk. It reads `directory.yaml` and every
`agencies/*.yaml`, and either returns the frozen `Inventory` or raises `InventoryError` with every
problem found, each as `FILE:LINE: message` where FILE is the user's path joined with the file.

The inventory is read before the rules and does not import them: what the loader asks of the
inventory's regulation (is this one of its clauses?) it asks of the `Regulation` its caller hands
in (`load(path, regulations.get)`).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import difflib
import functools
import hashlib
import itertools
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, cast

from reconciler import schemas_folder, text
from reconciler.ahead import Ahead, Send
from reconciler.dn import is_descendant, normalize_dn
from reconciler.errors import InventoryError, Problem, ReconcilerError
from reconciler.inventory import activity, yamlload
from reconciler.inventory.yamlload import Lines, describe
from reconciler.model import (
    NO_DETAILS,
    Agency,
    Details,
    Exemption,
    Inventory,
    Loc,
    Origin,
    Person,
    Request,
    Settings,
    State,
    Suspension,
    Unit,
    builder,
    details,
)
from reconciler.names import RESERVED, why_reserved

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

_STATES = {state.value: state for state in State}
_ACTIVE, _SUSPENDED = State.ACTIVE, State.SUSPENDED  # an enum member's lookup takes 0.15 us
#: The fields of the bulk of an inventory's staff records: a record stating none but these has
#: no `Details` to look for (`_Checks._person`)
_BULK = frozenset({"id", "name", "unit", "title", "rank"})
_new_person = builder(Person)  #: `Person(...)` at half the cost, every field given

SCHEMAS = schemas_folder()
DIRECTORY = "directory.yaml"
AGENCIES = "agencies"
MAX_PROBLEMS = 100  #: most problems reported per file; the rest are counted in one line
MAX_QUOTA = 10 * 1024**4  #: largest mailbox quota accepted: 10 TB
MAX_TOTAL_BYTES = 64 * 1024 * 1024  #: all files together (a 100,000-person province: 10 MB)
#: agency files coming to this many bytes or more, and this many files or more, are parsed
#: ahead in a second process inside `parsed_ahead` (`_Ahead`)
AHEAD_BYTES = 2 * 1024 * 1024
AHEAD_FILES = 2
#: the first files, this share of the bytes, are parsed here while the child parses ahead
AHEAD_HERE = 0.2
_AHEAD = contextvars.ContextVar("parsed_ahead", default=False)

_LOCAL = re.compile(r"[a-z0-9]+(?:\.[a-z0-9]+)*\Z")
_QUOTA = re.compile(r"([0-9]+) ?([KMGT]I?)?B\Z", re.IGNORECASE)
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_PATTERN_WORDS = {
    "^[a-z0-9-]+$": "only lower-case letters a-z, digits and hyphens",
    "^[a-z0-9]+$": "only lower-case letters a-z and digits",
    "^[A-Za-z0-9][A-Za-z0-9._-]*$": (
        "only letters A-Z a-z, digits, dot, underscore and hyphen, starting with a letter or digit"
    ),
    "^[a-z0-9]+(\\.[a-z0-9]+)*$": "lower-case letters, digits and single dots",
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}$": "a date written YYYY-MM-DD",
    "^[0-9]+ ?([KMGTkmgt][Ii]?)?[Bb]$": "a size like 5GB, 500 MB or 10 GiB, or a number of bytes",
    "^[0-9]+ (month|months|year|years)$": "a time like 12 months or 1 year",
    "^(/|~/)": "an absolute path (/var/lib/…) or one under the home folder (~/…), so that it "
    "does not depend on where the command runs",
}
_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "object": "a mapping",
    "array": "a list",
    "boolean": "true or false",
    "null": "nothing",
}


class Clauses(Protocol):
    """What the loader asks of a regulation (`reconciler.rules.regulations.Regulation`)."""

    @property
    def declared_suspend_clause(self) -> str: ...

    @property
    def quota_ceiling(self) -> int | None: ...

    @property
    def quota_clause(self) -> str: ...

    @property
    def manager_clause(self) -> str | None: ...

    def suspension_problem(self, clause: str) -> str | None: ...

    def decision_problem(self, decision: str) -> str | None: ...


def load(path: Path, regulation: Callable[[str], Clauses] | None = None) -> Inventory:
    """Read and check the inventory in folder `path`; raise InventoryError listing every problem.

    `regulation` gives the regulation of an id (`regulations.get`): with it, every suspension's
    clause must be one of the inventory's regulation; without it, clauses are not checked.
    (`pipeline.load` calls it with the garbage collector paused: millions of small objects.)"""
    return _Run(Path(path), regulation).load()


@contextlib.contextmanager
def parsed_ahead() -> Iterator[None]:
    """`load` inside parses the agency files ahead in a forked child while this process turns
    those already parsed into records (`_Ahead`): at 100,000 staff the parse is some 45 % of
    `validate`, and with a core to spare it is taken off its time. Asked by `validate`; not by
    `plan`, whose load already runs beside the directory read in a child of its own."""
    token = _AHEAD.set(True)
    try:
        yield
    finally:
        _AHEAD.reset(token)


def read_settings(path: Path) -> Settings | None:
    """`directory.yaml`'s settings alone, before the rest of the inventory is read (`plan` reads
    the directory meanwhile); None when they have a problem, which `load` reports."""
    run = _Run(Path(path), None)
    if not run.path.is_dir():
        return None
    settings = run.settings(run.read(DIRECTORY, run.path.resolve(), required=True))
    return None if run.problems else settings


Check = Callable[[Any], bool]


@functools.cache
def _schema(name: str) -> dict[str, Any]:
    """The JSON Schema `name` of schemas/."""
    schema: dict[str, Any] = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return schema


@functools.cache
def _check(name: str) -> Check:
    """The fast yes/no check of the JSON Schema `name` of schemas/ (`_fast`)."""
    return _fast(_schema(name), _schema(name))


@functools.cache
def _validator(name: str) -> tuple[Draft202012Validator, Check]:
    """The JSON Schema `name` of schemas/: jsonschema's validator and the fast check.

    jsonschema is imported here, for a file that fails the fast check, and not by a `validate`
    of a valid inventory (a tenth of a second of its start-up); the schemas themselves are
    checked against the metaschema by the tests (`test_every_schema_is_a_valid_schema`)."""
    from jsonschema import Draft202012Validator

    schema = _schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema), _check(name)


def read_document(path: Path, schema: str) -> tuple[Any, Lines]:
    """One YAML file other than an inventory's (a merge map), read as strictly as the inventory
    and checked against the JSON Schema `schema` of schemas/: its data and the lines of its
    values; InventoryError with every problem as FILE:LINE: message."""
    path = Path(path)
    run = _Run(path.parent, None)
    if not path.is_file():
        raise InventoryError([Problem(str(path), 0, "no such file")])
    f = run.read(path.name, path.parent.resolve(), required=True, schema=schema)
    if run.problems or f is None:
        raise InventoryError(run.problems)
    return f.data, f.lines


_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "title", "description"})
#: The test of each JSON type, as Python source on the value `v`.
_TYPES = {
    "string": "isinstance(v, str)",
    "integer": "(isinstance(v, int) and not isinstance(v, bool))",
    "object": "isinstance(v, dict)",
    "array": "isinstance(v, list)",
    "boolean": "isinstance(v, bool)",
}


def _fast(schema: dict[str, Any], root: dict[str, Any]) -> Check:
    """A yes/no check of `schema` (the subset of keywords our schemas use), compiled to Python
    functions, one per schema (`_Compiler`): jsonschema runs only on files that fail it, to word
    the errors. A keyword it does not know fails the check: jsonschema then decides."""
    return _Compiler(root).compile(schema)


class _Compiler:
    """Writes the source of one function per (sub)schema, each returning False at the first
    keyword the value fails, and runs it: no closure or generator per keyword and value, which
    took 13 % of validate at 100,000 staff when the checks were nested lambdas."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.names: dict[int, str] = {}  # id of a schema -> the name of its function
        self.source: list[str] = []
        self.tail: list[str] = []  # tables of property checks, made once every function exists
        self.env: dict[str, Any] = {}
        self.known: str | None = None  # the type of the value, once the function checked it

    def compile(self, schema: dict[str, Any]) -> Check:
        name = self.define(schema)
        exec("\n".join([*self.source, *self.tail]), self.env)  # our own source, of our schemas
        check: Check = self.env[name]
        return check

    def const(self, value: Any) -> str:
        name = f"_c{len(self.env)}"
        self.env[name] = value
        return name

    def define(self, schema: dict[str, Any]) -> str:
        if id(schema) in self.names:
            return self.names[id(schema)]
        name = self.names[id(schema)] = f"_f{len(self.names)}"
        outer = self.known  # of the function being written when this one is needed
        body = self.body(schema)
        self.known = outer
        if body is None:  # a keyword this check does not know: always ask jsonschema
            body = ["return False"]
        self.source += [f"def {name}(v):", *(f"    {line}" for line in body), "    return True"]
        return name

    def body(self, schema: dict[str, Any]) -> list[str] | None:
        lines: list[str] = []
        # the type first (every keyword must hold, so their order does not matter): the
        # keywords after it need not ask again whether the value is text, a mapping or a list
        self.known = None
        keys = sorted(schema, key=lambda k: k != "type")
        for key in keys:
            arg = schema[key]
            if key in _ANNOTATIONS or key in ("then", "else"):
                continue
            if key == "additionalProperties" and arg is False and "properties" in schema:
                continue  # enforced by `properties`
            found = self.keyword(key, arg, schema)
            if found is None:
                return None
            lines += found
            if key == "type" and arg in ("string", "object", "array"):
                self.known = _TYPES[arg]
        return lines

    def only(self, json_type: str) -> str:
        """The guard of a keyword that applies to values of one type: none once it is known."""
        test = _TYPES[json_type]
        return "True" if self.known == test else test

    def keyword(self, key: str, arg: Any, schema: dict[str, Any]) -> list[str] | None:
        if key == "$ref":
            target: Any = self.root
            for part in arg.removeprefix("#/").split("/"):
                target = target[part]
            return [f"if not {self.define(target)}(v): return False"]
        if key == "type":
            names = [arg] if isinstance(arg, str) else arg
            if any(t not in _TYPES for t in names):
                return None
            return [f"if not ({' or '.join(_TYPES[t] for t in names)}): return False"]
        if key == "enum":
            return [f"if not (isinstance(v, str) and v in {self.const(tuple(arg))}): return False"]
        if key == "pattern":
            rx = self.const(re.compile(arg).search)
            return [f"if {self.only('string')} and not {rx}(v): return False"]
        if key == "minimum":
            number = _TYPES["integer"]
            return [f"if {number} and not v >= {self.const(arg)}: return False"]
        if key == "minLength":
            return [f"if {self.only('string')} and len(v) < {self.const(arg)}: return False"]
        if key == "maxLength":
            return [f"if {self.only('string')} and len(v) > {self.const(arg)}: return False"]
        if key == "required":
            missing = " or ".join(f"{self.const(k)} not in v" for k in arg) or "False"
            return [f"if {self.only('object')} and ({missing}): return False"]
        if key == "properties":
            entries = ", ".join(f"{self.const(k)}: {self.define(sub)}" for k, sub in arg.items())
            table = f"_p{len(self.tail)}"  # named after the tables of the schemas inside it
            self.tail.append(f"{table} = {{{entries}}}.get")
            return [
                f"if {self.only('object')}:",
                "    for k, x in v.items():",
                f"        c = {table}(k)",
                "        if c is None or not c(x): return False",
            ]
        if key == "items":
            item = self.define(arg)
            return [
                "if isinstance(v, list):",
                "    for x in v:",
                f"        if not {item}(x): return False",
            ]
        if key == "if":
            cond, then = self.define(arg), self.define(schema.get("then", {}))
            other = self.define(schema.get("else", {}))
            return [f"if not ({then}(v) if {cond}(v) else {other}(v)): return False"]
        return None


def quote(value: object) -> str:
    """A value for a message: text in double quotes with invisible characters spelt out."""
    if not isinstance(value, str):
        return json.dumps(value, ensure_ascii=False, default=str)
    shown = "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in value)
    return f'"{shown}"'


def where(path: tuple[str | int, ...] | list[str | int]) -> str:
    """`("staff", 3, "unit")` → `staff[3].unit`."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else step)
    return out or "(top level)"


def parse_quota(value: int | str) -> int | None:
    """Bytes of a quota (`5GB`, `500 MB`, `10 GiB`, or bytes); binary units; None if invalid
    or outside 1 byte … MAX_QUOTA."""
    if isinstance(value, int):
        size = value
    else:
        match = _QUOTA.match(value.strip())
        if not match or len(match.group(1)) > 20:
            return None
        size = int(match.group(1)) * _UNITS[(match.group(2) or "")[:1].upper()]
    return size if 0 < size <= MAX_QUOTA else None


def _size(size: int) -> str:
    """Bytes in the units people write (5 GB), binary as mail servers count them."""
    for unit, factor in (("TB", 1024**4), ("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def dn_problem(value: str) -> str | None:
    """Why `value` is not an RFC 4514 distinguished name (non-empty), or None."""
    if not value:
        return "is empty"
    i, n = 0, len(value)
    while True:  # one attributeTypeAndValue per turn
        m = re.compile(r"[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+").match(value, i)
        if not m or m.end() >= n or value[m.end()] != "=":
            return f"expected an attribute type and `=` at position {i + 1} (like `dc=example`)"
        i = m.end() + 1
        if i < n and value[i] == "#":
            h = re.compile(r"#(?:[0-9A-Fa-f]{2})+").match(value, i)
            if not h:
                return f"bad hex value at position {i + 1}"
            i = h.end()
        else:
            start = i
            while i < n and value[i] not in ",+":
                ch = value[i]
                if ch == "\\":
                    if i + 1 < n and value[i + 1] in ' "#+,;<=>\\':
                        i += 2
                        continue
                    if re.compile(r"[0-9A-Fa-f]{2}").match(value, i + 1):
                        i += 3
                        continue
                    return f"bad escape at position {i + 1}"
                if ch in '";<>\0' or (ch == "#" and i == start):
                    return f"character {ch!r} at position {i + 1} must be escaped with \\"
                i += 1
            if i == start:
                return f"empty value at position {i + 1}"
            if value[start] == " " or (value[i - 1] == " " and value[i - 2 : i] != "\\ "):
                return f"a value may not start or end with a space (near position {start + 1})"
        if i == n:
            return None
        i += 1  # the separator , or +
        if i == n:
            return "ends with a separator"


def address_problem(value: str, domain: str | None, former: tuple[str, ...] = ()) -> str | None:
    """Why `value` is not an address the inventory may declare, or None: in `domain`, or in one
    of the `former` domains of provinces merged in (aliases only)."""
    local, at, host = value.partition("@")
    if not at or "@" in host:
        return "is not an e-mail address (one @ needed)"
    if not _LOCAL.match(local) or len(local) > 64:
        return (
            "has an invalid local part: lower-case letters a-z, digits and single dots, "
            "no dot at either end, at most 64 characters"
        )
    if domain is not None and host != domain and host not in former:
        if former:
            return (
                f"is outside the directory's domain {quote(domain)} and its former domains "
                f"({', '.join(former)})"
            )
        return f"is outside the directory's domain {quote(domain)}"
    return None


class _File:
    """One parsed file: its name for messages, its data and the lines of its values."""

    def __init__(self, rel: str, shown: str, data: dict[str, Any], lines: Lines) -> None:
        self.rel, self.shown, self.data, self.lines = rel, shown, data, lines
        self.bad: set[tuple[str | int, ...]] = set()  # paths with a schema error at or below
        self.exact: set[tuple[str | int, ...]] = set()  # paths with a schema error right there

    def broken(self, path: tuple[str | int, ...]) -> bool:
        return path in self.bad

    def staff_lines(self) -> list[Lines]:
        """The lines of each staff record, of a file whose `staff` is a list: those of a record
        without a schema error are a mapping's."""
        staff = cast(dict[str, Lines], self.lines.children)["staff"]
        return cast(list[Lines], staff.children)

    def drop_staff(self) -> None:
        """Forget the staff records once they are checked and turned into `Person`s: only the
        agency's own values are looked at again (`_Checks.managers`)."""
        self.data = {k: v for k, v in self.data.items() if k != "staff"}
        children = self.lines.children
        if isinstance(children, dict):
            self.lines = Lines(self.lines.line, {k: v for k, v in children.items() if k != "staff"})


class _Run:
    def __init__(self, path: Path, regulation: Callable[[str], Clauses] | None) -> None:
        self.path = path
        self.regulation = regulation
        self.problems: list[Problem] = []
        self.counts: dict[str, int] = {}  # problems found per file
        self.found = 0  # problems found in all
        #: the inventory's digest over every file read, in the order of their names: the agency
        #: files (agencies/… sort before directory.yaml) as they are read, directory.yaml last
        self.digest = hashlib.sha256()
        self.directory_blob: bytes | None = None
        self.unsound: set[str] = set()  # staff ids whose record has a problem
        self.budget = yamlload.Budget()  # shared by every file: memory stays bounded
        self.total = 0  # bytes read so far
        self.spent = False  # the budget or MAX_TOTAL_BYTES ran out: no more files are read
        self.ahead: _Ahead | None = None  # the agency files parsed in a second process

    def add(self, rel: str, line: int, message: str) -> None:
        self.found += 1
        count = self.counts[rel] = self.counts.get(rel, 0) + 1
        if count <= MAX_PROBLEMS:
            self.problems.append(Problem(str(self.path / rel), line, message))
        elif count == MAX_PROBLEMS + 1:  # a hostile file must not print a million lines
            self.problems.append(
                Problem(
                    str(self.path / rel),
                    line,
                    f"too many problems in this file: only the first {MAX_PROBLEMS} are shown",
                )
            )

    def at(self, f: _File, path: tuple[str | int, ...], message: str) -> None:
        self.add(f.rel, f.lines.at(path), f"{where(path)}: {message}")

    # -- reading ---------------------------------------------------------------------------

    def load(self) -> Inventory:
        if not self.path.is_dir():
            raise InventoryError([Problem(str(self.path), 0, "no such inventory folder")])
        root = self.path.resolve()
        self.ahead = _Ahead.start(self.path / AGENCIES) if _AHEAD.get() else None
        try:
            directory = self.read(DIRECTORY, root, required=True)
            settings = self.settings(directory)
            # one agency file at a time: read, checked and turned into records, then its
            # parsed values are dropped (all of them at once were most of validate's peak
            # memory)
            files = (f for rel in self.agency_names(root) if (f := self.read(rel, root)))
            agencies, people = self.agencies(files, settings)
        finally:
            if self.ahead is not None:
                self.ahead.close()
        if self.problems or settings is None:
            partial = None
            if settings is not None:  # the records without a problem, for the later checks
                sound = tuple(p for p in people if p.id not in self.unsound)
                partial = Inventory(settings, tuple(agencies), sound, folder=str(self.path))
            raise InventoryError(self.problems, partial)
        if self.directory_blob is not None:
            self.hash(DIRECTORY, self.directory_blob)
        return Inventory(
            settings,
            tuple(agencies),
            tuple(people),
            f"sha256:{self.digest.hexdigest()}",
            folder=str(self.path),
        )

    def hash(self, rel: str, blob: bytes) -> None:
        self.digest.update(rel.encode() + b"\0" + len(blob).to_bytes(8, "big") + blob)

    def agency_names(self, root: Path) -> Iterator[str]:
        folder = self.path / AGENCIES
        if not folder.exists():
            return
        if not self.inside(AGENCIES, root) or not folder.is_dir():
            if folder.is_file():
                self.add(AGENCIES, 1, "must be a folder of agency files <id>.yaml")
            return
        for name in sorted(os.listdir(folder)):
            rel = f"{AGENCIES}/{name}"
            if name.startswith("."):
                if name.endswith((".yaml", ".yml")):
                    # a hidden agency file would be read by nobody: its staff would be deleted
                    self.add(
                        rel,
                        1,
                        f"{quote(name)} is a hidden file: an agency file is named <agency id>.yaml"
                        " (rename it, or move it out of agencies/ to drop the agency)",
                    )
                continue  # .gitkeep and editors' files
            if not name.endswith(".yaml") or (folder / name).is_dir():
                self.add(
                    rel,
                    1,
                    f"{quote(name)} is not an agency file: agency files are named "
                    "<agency id>.yaml (move it out of agencies/ or rename it)",
                )
                continue
            yield rel

    def inside(self, rel: str, root: Path) -> bool:
        real = (self.path / rel).resolve()
        if real == root or root in real.parents:
            return True
        link = self.path / rel
        target = os.readlink(link) if link.is_symlink() else str(real)
        self.add(rel, 1, f"is a symbolic link to {quote(target)}, outside the inventory folder")
        return False

    def read(
        self, rel: str, root: Path, required: bool = False, schema: str | None = None
    ) -> _File | None:
        file = self.path / rel
        if not file.exists():
            if file.is_symlink():
                self.add(rel, 1, "is a symbolic link to a file that does not exist")
            elif required:
                self.add(rel, 1, f"{rel} is missing: every inventory has one")
            return None
        if not self.inside(rel, root) or self.spent:
            return None
        if not file.is_file():  # a FIFO would hold the read forever, a device never end
            self.add(rel, 1, f"{rel} is not a regular file: an inventory holds YAML files only")
            return None
        size = file.stat().st_size
        if size > yamlload.MAX_BYTES:
            self.add(
                rel,
                1,
                f"the file is {size:,} bytes, over the limit of "
                f"{yamlload.MAX_BYTES:,} (20 MiB); split the agency",
            )
            return None
        self.total += size
        if self.total > MAX_TOTAL_BYTES:
            self.spent = True
            self.add(
                rel,
                1,
                f"the inventory's files come to more than {MAX_TOTAL_BYTES:,} bytes (64 MiB) with "
                "this one, more than the reconciler reads at once; it was not read",
            )
            return None
        blob = file.read_bytes()
        if rel == DIRECTORY:
            self.directory_blob = blob
        else:
            self.hash(rel, blob)
        ahead = self.ahead.take(file, blob) if self.ahead is not None else None
        if ahead is not None and self.budget.affords(ahead.spent):
            parsed = ahead.parsed
            self.budget.spend(*ahead.spent)
        else:
            parsed = yamlload.parse(blob, self.budget)
        del blob, ahead
        for line, message in parsed.problems:
            self.add(rel, line, message)
        if self.budget.exhausted:
            self.spent = True
        if parsed.data is None:
            return None
        f = _File(rel, str(file), parsed.data, parsed.lines)
        if schema is None:
            schema = "directory.schema.json" if rel == DIRECTORY else "agency.schema.json"
        if not _check(schema)(f.data):
            validator = _validator(schema)[0]
            errors = list(itertools.islice(validator.iter_errors(f.data), MAX_PROBLEMS + 1))
            for error in errors:
                self.schema_error(f, error)
            if len(errors) > MAX_PROBLEMS:
                return None  # not every broken value is known: check nothing more in it
        return f

    def schema_error(self, f: _File, error: Any) -> None:
        path = tuple(error.absolute_path)
        value, schema, kind = error.instance, error.schema, error.validator
        if kind != "additionalProperties":  # an unknown key does not spoil the other values
            f.exact.add(path)
            f.bad.update(path[:n] for n in range(len(path) + 1))
        if kind == "additionalProperties":
            allowed = sorted(schema.get("properties", {}))
            for key in value:
                if key not in allowed:
                    close = difflib.get_close_matches(key, allowed, n=1)
                    hint = (
                        f"did you mean `{close[0]}`?" if close else f"allowed: {', '.join(allowed)}"
                    )
                    self.at(f, (*path, key), f"unknown key `{key}` ({hint})")
        elif kind == "required":
            for key in error.validator_value:
                if key not in value:
                    self.at(f, path, f"`{key}` is missing")
        elif kind == "type":
            types = error.validator_value
            wanted = " or ".join(
                _TYPE_WORDS.get(t, t) for t in ([types] if isinstance(types, str) else types)
            )
            self.at(f, path, f"expected {wanted}, got {describe(value)}")
        elif kind == "enum":
            self.at(f, path, f"{quote(value)} is not one of: {', '.join(error.validator_value)}")
        elif kind == "pattern":
            odd = text.odd_characters(value)
            pattern = error.validator_value
            words = odd or _PATTERN_WORDS.get(pattern, f"must match {pattern}")
            self.at(f, path, f"{quote(value)} is not valid: {words}")
        elif kind == "minimum":
            self.at(f, path, f"must be at least {error.validator_value}, got {value}")
        elif kind == "minLength":
            self.at(f, path, "must not be empty")
        elif kind == "maxLength":
            self.at(
                f,
                path,
                f"{quote(value[:40])}… ({len(value):,} characters) is longer than "
                f"{error.validator_value} characters",
            )
        else:
            self.at(f, path, str(error.message))

    # -- directory.yaml ------------------------------------------------------------------------

    def settings(self, f: _File | None) -> Settings | None:
        key_fields = ("regulation", "domain", "base_dn")
        if f is None or () in f.exact or any(f.broken((k,)) for k in key_fields):
            return None
        d = f.data
        reason = dn_problem(d["base_dn"])
        if reason:
            self.at(f, ("base_dn",), f"{quote(d['base_dn'])} is not a distinguished name: {reason}")
        quota = None if f.broken(("quota",)) else self.quota(f, ("quota",), d.get("quota"))
        ceiling = self.ceiling(d.get("regulation"))
        if quota is not None and ceiling is not None and quota > ceiling[0]:
            self.at(
                f,
                ("quota",),
                f"{quote(d['quota'])} is above the {ceiling[1]} ceiling of {_size(ceiling[0])}: "
                "the default quota may not exceed it (give a person more with `quota` and the "
                "`quota_decision` that allows it)",
            )
        max_deletes = 10 if f.broken(("max_deletes",)) else d.get("max_deletes", 10)
        reserved = () if f.broken(("reserved",)) else tuple(d.get("reserved", ()))
        people = () if reason or f.broken(("people",)) else self.people(f, d["base_dn"])
        loc = Loc(f.rel, 1)
        quarantine = 12
        if "quarantine" in d and not f.broken(("quarantine",)):
            count, unit = d["quarantine"].split()
            quarantine = int(count) * (12 if unit.startswith("year") else 1)
        audit_log = None if f.broken(("audit_log",)) else d.get("audit_log")
        keep = None if f.broken(("audit_keep_months",)) else d.get("audit_keep_months")
        return Settings(
            d["regulation"],
            d["domain"],
            d["base_dn"],
            quota,
            max_deletes,
            reserved,
            loc,
            erase=self.erase(f),
            quarantine_months=quarantine,
            relay=(d.get("notices") or {}).get("relay", ""),
            sender=(d.get("notices") or {}).get("from", f"noreply@{d['domain']}"),
            audit_log=audit_log,
            audit_keep_months=keep,
            people=people,
            former_domains=self.former_domains(f),
        )

    def former_domains(self, f: _File) -> tuple[str, ...]:
        if f.broken(("former_domains",)):
            return ()
        found: list[str] = []
        for i, domain in enumerate(f.data.get("former_domains") or ()):
            if domain == f.data["domain"] or domain in found:
                self.at(f, ("former_domains", i), f"{quote(domain)} is listed twice")
            else:
                found.append(domain)
        return tuple(found)

    def erase(self, f: _File) -> tuple[str, ...]:
        path: tuple[str | int, ...] = ("mail_store", "erase")
        if f.broken(path):
            return ()
        command = tuple((f.data.get("mail_store") or {}).get("erase") or ())
        if "mail_store" in f.data and not command:
            self.at(f, path, "give the command that erases a deleted mailbox's mail, as a list")
        elif command and not command[0].startswith("/"):
            self.at(
                f,
                (*path, 0),
                f"{quote(command[0])} must be an absolute path: apply runs it without a shell "
                "or a search of PATH",
            )
        return command

    def ceiling(self, regulation_id: Any) -> tuple[int, str] | None:
        """The regulation's quota ceiling and its clause, when it has one."""
        if self.regulation is None or not isinstance(regulation_id, str):
            return None
        try:
            regulation = self.regulation(regulation_id)
        except ReconcilerError:
            return None  # the schema names the regulations the loader knows
        if regulation.quota_ceiling is None:
            return None
        return regulation.quota_ceiling, regulation.quota_clause

    def people(self, f: _File, base_dn: str) -> tuple[str, ...]:
        """The `people` containers as full DNs: each relative to base_dn, or a full DN under it."""
        raw = f.data.get("people", ())
        values = [raw] if isinstance(raw, str) else list(raw)
        if "people" in f.data and not values:
            self.at(f, ("people",), "must name at least one container (default: ou=people)")
        out: list[str] = []
        for i, value in enumerate(values):
            path: tuple[str | int, ...] = ("people",) if isinstance(raw, str) else ("people", i)
            reason = dn_problem(value)
            if reason:
                self.at(f, path, f"{quote(value)} is not a distinguished name: {reason}")
                continue
            full = value if is_descendant(value, base_dn) else f"{value},{base_dn}"
            if normalize_dn(full) in {normalize_dn(o) for o in out}:
                self.at(f, path, f"{quote(value)} is named twice")
                continue
            out.append(full)
        return tuple(out)

    def quota(self, f: _File, path: tuple[str | int, ...], value: int | str | None) -> int | None:
        if value is None:
            return None
        size = parse_quota(value)
        if size is None:
            self.at(
                f,
                path,
                f"{quote(value)} is not a quota: it must be more than 0 bytes and at most 10 TB",
            )
        return size

    # -- agencies ------------------------------------------------------------------------------

    def agencies(
        self, files: Iterable[_File], settings: Settings | None
    ) -> tuple[list[Agency], list[Person]]:
        checks = _Checks(self, settings)
        agencies: list[Agency] = []
        people: list[Person] = []
        read: list[_File] = []
        for f in files:
            read.append(f)
            agency = checks.agency(f)
            if agency is None:
                f.drop_staff()
                continue
            agencies.append(agency)
            units = {u.id for u in agency.units}
            staff = () if ("staff",) in f.exact else f.data.get("staff") or ()
            records = f.staff_lines() if staff else []
            for i, record in enumerate(staff):
                if f.broken(("staff", i)):
                    checks.staff_id(f, i, record)  # a broken record's id is still taken
                    if isinstance(record, dict) and not f.broken(("staff", i, "id")):
                        # and its sound fields are checked too: every problem in one run
                        checks.fields(f, ("staff", i), record, agency, units)
                else:
                    before = self.found
                    person = checks.person(f, i, record, records[i], agency, units)
                    if person is not None:
                        people.append(person)
                        if self.found > before:
                            self.unsound.add(person.id)
            f.drop_staff()
        checks.managers(agencies, read)
        return agencies, people


def issued_before(record: dict[str, Any]) -> bool:
    """Whether a staff record says its addresses were issued before this inventory: `legacy:
    true` (its pin, kept by an import or through a merger) or a merger's `origin`."""
    return record.get("legacy") is True or "origin" in record


class _Checks:
    """Checks that need more than one value, or the whole inventory."""

    def __init__(self, run: _Run, settings: Settings | None) -> None:
        self.run = run
        self.settings = settings
        self.domain = settings.domain if settings else None
        self.former = settings.former_domains if settings else ()
        self.logins: dict[str, str] = {}  # pinned login → where first declared
        lookup = run.regulation
        self.regulation = lookup(settings.regulation) if lookup and settings else None
        self.inventory_regulation = self.regulation
        self.reserved = RESERVED | set(settings.reserved if settings else ())
        #: staff id → (file shown, line, state, agency id, rank)
        self.ids: dict[str, tuple[str, int, State, str, Any]] = {}
        self.addresses: dict[str, str] = {}  # address → where first declared
        self.abbreviations: dict[str, str] = {}
        self.mailboxes: dict[str, str] = {}
        #: one str object for each title and unit id however many records repeat it
        self.shared: dict[str, str] = {}
        self.checked_names: dict[str, str | None] = {}  # full name -> text.check_name's answer

    def at(self, f: _File, path: tuple[str | int, ...], message: str) -> None:
        self.run.at(f, path, message)

    def here(self, f: _File, path: tuple[str | int, ...]) -> str:
        return f"{f.shown}:{f.lines.at(path)}"

    def agency(self, f: _File) -> Agency | None:
        a = f.data.get("agency")
        header = (
            "id",
            "name",
            "abbreviation",
            "mailbox",
            "manager",
            "manager_delegation",
            "regulation",
        )
        if (
            not isinstance(a, dict)
            or ("agency",) in f.exact
            or any(f.broken(("agency", k)) for k in header)
        ):
            return None  # the agency itself is broken: its staff cannot be checked against it
        stem = f.rel.removeprefix(f"{AGENCIES}/").removesuffix(".yaml")
        if a["id"] != stem:
            self.at(
                f,
                ("agency", "id"),
                f"{quote(a['id'])} does not match the file name "
                f"{quote(stem + '.yaml')} (the file must be named "
                f"{AGENCIES}/{a['id']}.yaml)",
            )
        self.free_text(f, ("agency", "name"), a["name"])
        self.unique(
            self.abbreviations, a["abbreviation"], f, ("agency", "abbreviation"), "abbreviation"
        )
        if "mailbox" in a:
            self.unique(self.mailboxes, a["mailbox"], f, ("agency", "mailbox"), "mailbox")
        units: list[Unit] = []
        seen_ids: dict[str, str] = {}
        seen_abbr: dict[str, str] = {}
        declared = () if ("agency", "units") in f.exact else a.get("units") or ()
        for i, u in enumerate(declared):
            path = ("agency", "units", i)
            if f.broken(path):
                continue
            self.unique(seen_ids, u["id"], f, (*path, "id"), "unit id")
            self.unique(
                seen_abbr, u["abbreviation"], f, (*path, "abbreviation"), "unit abbreviation"
            )
            self.free_text(f, (*path, "name"), u["name"])
            unit_aliases = (
                ()
                if f.broken((*path, "aliases"))
                else self.addresses_of(f, (*path, "aliases"), u.get("aliases") or ())
            )
            units.append(
                Unit(
                    u["id"],
                    text.nfc(u["name"]),
                    u["abbreviation"],
                    Loc(f.rel, f.lines.at(path)),
                    unit_aliases,
                )
            )
        aliases = (
            ()
            if f.broken(("agency", "aliases"))
            else self.addresses_of(f, ("agency", "aliases"), a.get("aliases") or ())
        )
        loc = Loc(f.rel, f.lines.at(("agency",)))
        return Agency(
            a["id"],
            text.nfc(a["name"]),
            a["abbreviation"],
            tuple(units),
            a.get("mailbox"),
            a.get("manager"),
            a.get("manager_delegation"),
            aliases,
            loc,
            regulation=a.get("regulation"),
        )

    def unique(
        self, seen: dict[str, str], value: str, f: _File, path: tuple[str | int, ...], what: str
    ) -> None:
        if value in seen:
            self.at(f, path, f"{what} {quote(value)} is already used at {seen[value]}")
        else:
            seen[value] = self.here(f, path)

    def free_text(self, f: _File, path: tuple[str | int, ...], value: str) -> None:
        reason = text.check_text(value)
        if reason:
            self.at(f, path, f"{quote(value)} {reason}")

    def addresses_of(
        self, f: _File, path: tuple[str | int, ...], values: Any, issued: bool = False
    ) -> tuple[str, ...]:
        out: list[str] = []
        for j, value in enumerate(values):
            out.append(value)
            self.address(f, (*path, j), value, issued=issued)
        return tuple(out)

    def address(
        self,
        f: _File,
        path: tuple[str | int, ...],
        value: str,
        pinned: bool = False,
        issued: bool = False,
    ) -> bool:
        """An alias (in the domain or a former one), or with `pinned` the address a person's
        record pins (in the domain; its local part is checked by `pin`). An alias on a reserved
        local part is refused, except in a former domain on a record that says its addresses
        were issued before (`issued`: `legacy: true` or a merger's `origin`), where no address
        is issued any more: a legacy `admin@` mailbox's address kept through a merger. Whether
        `value` is an address the inventory may declare (a duplicate is one, reported as such)."""
        reason = address_problem(value, self.domain, () if pinned else self.former)
        local, _, host = value.partition("@")
        if (
            reason is None
            and not pinned
            and local in self.reserved
            and not (issued and host in self.former)
        ):
            reason = "uses a reserved local part"
        if reason:
            self.at(f, path, f"address {quote(value)} {reason}")
        elif value in self.addresses:
            self.at(
                f, path, f"address {quote(value)} is already declared at {self.addresses[value]}"
            )
        else:
            self.addresses[value] = self.here(f, path)
        return reason is None

    def pin(self, f: _File, p: tuple[str | int, ...], r: dict[str, Any], stated: bool) -> None:
        """The address staff record `r` pins, if any. One on a reserved local part is an address
        issued before this inventory (a legacy `admin@` mailbox an import kept) only when the
        record says so: `legacy: true`, or a merger's `origin`; the plan then keeps it only where
        the directory already gives it to this mailbox (an issued address is never taken back)
        and refuses it for a new one. Without the statement it cannot be issued: a problem of the
        record, as the plan words it. `stated` is False when `legacy` itself is broken (reported
        by the schema): nothing more is said of the pin then."""
        legacy = r.get("legacy") is True
        if "address" not in r:
            if legacy:
                self.at(
                    f,
                    (*p, "legacy"),
                    "`legacy: true` says the pinned `address` was issued before this inventory, "
                    "but the record pins none: add the address, or remove `legacy`",
                )
            return
        value = r["address"]
        local = value.partition("@")[0]
        if (
            self.address(f, (*p, "address"), value, pinned=True)
            and local in self.reserved
            and stated
            and not issued_before(r)
        ):
            self.run.add(
                f.rel,
                f.lines.at(p),
                f"staff {r['id']}: the pinned address {value} cannot be issued: "
                f"{why_reserved(local)} (an address issued before this inventory says so with "
                "`legacy: true`)",
            )

    def staff_id(self, f: _File, i: int, r: Any) -> None:
        path = ("staff", i, "id")
        if isinstance(r, dict) and isinstance(r.get("id"), str) and not f.broken(path):
            state = r.get("state")
            known = state in ("active", "suspended", "absent")
            agency = f.data.get("agency")
            agency_id = agency.get("id", "") if isinstance(agency, dict) else ""
            self.take_id(
                f, path, r["id"], State(state) if known else State.ACTIVE, agency_id, r.get("rank")
            )

    def take_id(
        self,
        f: _File,
        path: tuple[str | int, ...],
        pid: str,
        state: State,
        agency: str = "",
        rank: Any = None,
        line: int | None = None,
    ) -> None:
        """Take a staff id for the record at `path` (whose id is on `line`, when known)."""
        first = self.ids.get(pid)
        if first is not None:
            self.at(f, path, f"staff id {quote(pid)} is already used at {first[0]}:{first[1]}")
        else:
            self.ids[pid] = (
                f.shown,
                f.lines.at(path) if line is None else line,
                state,
                agency,
                rank,
            )

    def fields(
        self,
        f: _File,
        p: tuple[str | int, ...],
        r: dict[str, Any],
        agency: Agency,
        units: set[str],
    ) -> None:
        """The checks of each field of a staff record that has a schema error elsewhere: every
        field without one of its own, so that one run reports every problem of the record."""

        def sound(*keys: str) -> bool:
            return all(k in r and not f.broken((*p, k)) for k in keys)

        unit = r.get("unit") if sound("unit") else None
        if unit is not None and unit not in units:
            self.unknown_unit(f, p, unit, agency)
        if sound("name"):
            split = {k: text.nfc(r[k]) for k in ("family", "middle", "given") if sound(k)}
            self.names(f, p, text.nfc(r["name"]), split)
        if sound("title"):
            self.free_text(f, (*p, "title"), r["title"])
        if sound("suspension"):
            self.suspension(f, p, r["suspension"])
        if sound("quota"):
            self.run.quota(f, (*p, "quota"), r["quota"])
        if sound("address") or "address" not in r:
            self.pin(f, p, r, stated=not f.broken((*p, "legacy")))
        if sound("aliases"):
            self.addresses_of(f, (*p, "aliases"), r["aliases"] or (), issued_before(r))
        if sound("restored"):
            self.date(f, (*p, "restored"), r["restored"])

    def unknown_unit(self, f: _File, p: tuple[str | int, ...], unit: str, agency: Agency) -> None:
        known = ", ".join(u.id for u in agency.units) or "none"
        self.at(
            f,
            (*p, "unit"),
            f"unit {quote(unit)} does not exist in agency {quote(agency.id)} (units: {known})",
        )

    @contextlib.contextmanager
    def governed(self, regulation_id: str | None) -> Iterator[None]:
        """Check what follows under `regulation_id` (a former territory kept under its own
        regulation after a merger), else under the inventory's."""
        lookup = self.run.regulation
        if regulation_id and lookup is not None:
            self.regulation = lookup(regulation_id)
        try:
            yield
        finally:
            self.regulation = self.inventory_regulation

    def person(
        self, f: _File, i: int, r: dict[str, Any], lines: Lines, agency: Agency, units: set[str]
    ) -> Person | None:
        governing = r.get("regulation") or agency.regulation
        if not governing:  # the inventory's regulation: `governed` without a context manager
            try:
                return self._person(f, i, r, lines, agency, units)
            finally:
                self.regulation = self.inventory_regulation
        with self.governed(governing):
            return self._person(f, i, r, lines, agency, units)

    def _person(
        self, f: _File, i: int, r: dict[str, Any], lines: Lines, agency: Agency, units: set[str]
    ) -> Person | None:
        """The record at staff[i], which has no schema error and whose lines are `lines`,
        checked and made a `Person`.

        The common case (an active person with a name, a title, perhaps a unit and a rank) is
        the inventory's bulk: it builds no path and looks up no line unless there is a problem,
        and each field absent from the record costs one dict probe."""
        p: tuple[str | int, ...] = ("staff", i)
        pid: str = r["id"]
        state = _STATES[r["state"]] if "state" in r else _ACTIVE
        self.take_id(f, (*p, "id"), pid, state, agency.id, r.get("rank"), lines.key_line("id"))
        unit = r.get("unit")
        if unit is not None and unit not in units:
            self.unknown_unit(f, p, unit, agency)
        name = text.nfc(r["name"])
        split: dict[str, str] = {}
        if "family" in r or "middle" in r or "given" in r:
            split = {k: text.nfc(r[k]) for k in ("family", "middle", "given") if k in r}
        self.names(f, p, name, split)
        title = r.get("title")
        if title is not None:
            self.free_text(f, (*p, "title"), title)
        # the bulk of an inventory states nothing more: no other field is looked for
        stated = NO_DETAILS if r.keys() <= _BULK else self.details_of(f, p, r, state, split)
        shared = self.shared
        return _new_person(
            id=pid,
            name=name,
            agency=agency.id,
            unit=None if unit is None else shared.setdefault(unit, unit),
            title=None if title is None else shared.setdefault(title, title),
            rank=r.get("rank"),
            state=state,
            loc=Loc(f.rel, lines.line),
            regulation=r.get("regulation") or agency.regulation,
            details=stated,
        )

    def details_of(
        self,
        f: _File,
        p: tuple[str | int, ...],
        r: dict[str, Any],
        state: State,
        split: dict[str, str],
    ) -> Details:
        """The `Details` of staff record `r` (at path `p`, in `state`, with the `split` of its
        name), each checked: what a record states besides `_BULK`."""
        suspension = None
        if "suspension" in r:
            suspension = self.suspension(f, p, r["suspension"])
        if state is _SUSPENDED and suspension is None:
            example = (
                f', e.g. "{self.regulation.declared_suspend_clause}"' if self.regulation else ""
            )
            self.at(
                f,
                (*p, "state"),
                f"`state: suspended` needs `suspension.clause` (the regulation's clause{example})",
            )
        quota = None
        if "quota" in r:
            quota = self.run.quota(f, (*p, "quota"), r["quota"])
            if "quota_decision" not in r:
                self.at(
                    f,
                    (*p, "quota"),
                    "a quota override needs `quota_decision` (the deciding "
                    'document, e.g. "12/QĐ-UBND ngày 01/03/2026")',
                )
            elif quota is not None:
                self.quota_decision(f, p, quota, r["quota_decision"])
        if "address" in r or "legacy" in r:
            self.pin(f, p, r, stated=True)
        if "login" in r:
            self.unique(self.logins, r["login"].lower(), f, (*p, "login"), "login")
        external = r.get("external_email")
        if external is not None:
            reason = text.external_address_problem(external, self.domain or "")
            if reason:
                self.at(f, (*p, "external_email"), f"{quote(external)} {reason}")
                external = None
        aliases: tuple[str, ...] = ()
        if r.get("aliases"):
            aliases = self.addresses_of(f, (*p, "aliases"), r["aliases"], issued_before(r))
        restored = self.date(f, (*p, "restored"), r["restored"]) if "restored" in r else None
        new_request = None
        if "new_request" in r:
            request = r["new_request"]
            date = self.date(f, (*p, "new_request", "date"), request["date"])
            new_request = Request(text.nfc(request["ref"]), date)
        exemptions: tuple[Exemption, ...] = ()
        if "exempt" in r:
            exempt = r["exempt"]
            exemptions = tuple(
                Exemption(e["rule"], e["ref"])
                for e in ([exempt] if isinstance(exempt, dict) else exempt)
            )
        return details(
            family=split.get("family"),
            middle=split.get("middle"),
            given=split.get("given"),
            suspension=suspension,
            quota=quota,
            quota_decision=r.get("quota_decision"),
            address=r.get("address"),
            aliases=aliases,
            restored=restored,
            restore_ref=r.get("restore_ref"),
            exempt=exemptions,
            new_request=new_request,
            login=r.get("login"),
            origin=self.origin(f, p, r.get("origin")),
            external_email=external,
        )

    def origin(self, f: _File, p: tuple[str | int, ...], o: dict[str, Any] | None) -> Origin | None:
        if o is None:
            return None
        merged = self.date(f, (*p, "origin", "merged"), o["merged"]) if "merged" in o else None
        return Origin(o["domain"], o["id"], o.get("address", ""), o.get("agency", ""), merged)

    def names(self, f: _File, p: tuple[str | int, ...], name: str, split: dict[str, str]) -> None:
        reason = self.checked_names.get(name, False)
        if reason is False:  # a name seen before in this inventory is not checked again
            reason = self.checked_names[name] = text.check_name(name)
        if reason:
            self.at(f, (*p, "name"), f"name {quote(name)} {reason}")
            return
        for key, value in split.items():
            reason = text.check_name(value)
            if reason:
                self.at(f, (*p, key), f"{quote(value)} {reason}")
            elif not set(value.split(" ")) <= set(name.split(" ")):
                self.at(f, (*p, key), f"{quote(value)} is not part of the name {quote(name)}")
        if " " not in name and "given" not in split:  # one word
            self.at(
                f,
                (*p, "name"),
                f"{quote(name)} has one word: a one-word name needs `given` (and `family` if any)",
            )

    def suspension(
        self, f: _File, p: tuple[str | int, ...], s: dict[str, Any] | None
    ) -> Suspension | None:
        """The declared suspension: a ground of the regulation, or a lock found at import."""
        if s is None:
            return None
        path = (*p, "suspension")
        note = text.nfc(s.get("note", ""))
        found = None
        if "found_at_import" in s:
            found = self.date(f, (*path, "found_at_import"), s["found_at_import"])
            if "clause" in s:
                self.at(
                    f,
                    path,
                    "give either `clause` (the ground of the suspension) or `found_at_import` "
                    "(the day a lock was found when the directory was imported), not both",
                )
            return Suspension("", note, found)
        if "clause" not in s:
            self.at(f, path, "`clause` is missing (the ground of the suspension)")
            return Suspension("", note)
        clause = text.nfc(s["clause"])
        reason = self.regulation.suspension_problem(clause) if self.regulation else None
        if reason:
            self.at(f, (*path, "clause"), f"{quote(s['clause'])} {reason}")
        return Suspension(clause, note)

    def date(self, f: _File, path: tuple[str | int, ...], value: str) -> dt.date | None:
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            self.at(f, path, f"{quote(value)} is not a real date")
            return None
        reason = activity.out_of_range(day)
        if reason:
            self.at(f, path, reason)
            return None
        return day

    def quota_decision(self, f: _File, p: tuple[str | int, ...], quota: int, decision: str) -> None:
        """Above the regulation's ceiling, the decision must name its document and date."""
        regulation = self.regulation
        if regulation is None or regulation.quota_ceiling is None:
            return
        if quota <= regulation.quota_ceiling:
            return
        reason = regulation.decision_problem(decision)
        if reason:
            self.at(
                f,
                (*p, "quota_decision"),
                f"{quote(decision)} {reason}: the quota is above the {regulation.quota_clause} "
                f"ceiling of {_size(regulation.quota_ceiling)}",
            )

    def managers(self, agencies: list[Agency], files: list[_File]) -> None:
        by_rel = {f.rel: f for f in files}
        for agency in agencies:
            if agency.manager is None:
                continue
            f = by_rel[agency.loc.file]
            path = ("agency", "manager")
            known = self.ids.get(agency.manager)
            if known is None:
                self.at(
                    f, path, f"manager {quote(agency.manager)} is not a staff id in the inventory"
                )
            elif known[2] is State.ABSENT:
                self.at(f, path, f"manager {quote(agency.manager)} is marked `state: absent`")
            else:
                with self.governed(agency.regulation):
                    if self.regulation is not None and self.regulation.manager_clause:
                        self.manager_of(f, agency, known)

    def manager_of(self, f: _File, agency: Agency, known: tuple[str, int, State, str, Any]) -> None:
        """The regulation's rule on who manages an organisation mailbox (HG-2024 Đ11.2): the
        agency's head, or a person of the agency delegated in writing."""
        assert self.regulation is not None
        clause = self.regulation.manager_clause
        where, line, _, agency_id, rank = known
        path = ("agency", "manager")
        if agency_id != agency.id:
            self.at(
                f,
                path,
                f"manager {quote(agency.manager)} is staff of agency {quote(agency_id)} "
                f"({where}:{line}), not of {quote(agency.id)}: under {clause} the organisation "
                "mailbox is managed by the agency's head or by a person of the agency delegated "
                "in writing",
            )
        elif rank != 1 and not agency.manager_delegation:
            self.at(
                f,
                path,
                f"manager {quote(agency.manager)} is not the agency's head (rank 1): under "
                f"{clause} name the written delegation as `manager_delegation` (e.g. "
                '"Giấy ủy quyền 05/GUQ-STTTT ngày 01/03/2026")',
            )


class _Ahead:
    """The agency files parsed ahead in a second process (`reconciler.ahead`), forked, while
    this one turns the file before into records; each parse comes back pickled in a sixth of
    its time.

    The child reads the regular files among `agencies/*.yaml` in the order the loader reads
    them, but for the first ones (`AHEAD_HERE` of the bytes), which the loader parses itself
    meanwhile: the child, pickling what it parses, has more to do per file than the loader
    checking it, and so both end about together. It parses each file as `yamlload.parse` does
    and sends (sha256 of the bytes, the parse, what it spent of the inventory's budget), or None
    for a file it could not read. It spends a budget of its own over every file it reads, and
    stops where it or `MAX_TOTAL_BYTES` runs out: it holds no more than this process would. The
    loader uses a result only for the very bytes it read itself, and only when its own budget
    affords it (`Budget.affords`: then parsing here would have found the same); any other file,
    and every file after the child stops or fails, is parsed here. The child does not outlive
    `close`."""

    def __init__(self, paths: list[Path], child: Ahead[None]) -> None:
        self.index = {path: at for at, path in enumerate(paths)}
        self.child = child
        #: one per path, in their order, until the child stops
        self.parts: Iterator[_Parsed | None] = child.parts()
        self.next = 0  # the index in `paths` of the next part

    @classmethod
    def start(cls, folder: Path) -> _Ahead | None:
        """The child parsing the agency files in `folder` after the first (`AHEAD_HERE`), when
        they are worth it (`AHEAD_BYTES`, `AHEAD_FILES`) and a process may be forked
        (`Ahead.start`) to run on a second core."""
        if _cores() < 2 or not Ahead.possible():  # on one core, the child's pickling is lost
            return None
        if folder.is_symlink():  # the loader follows it only inside the inventory: its own
            return None
        try:
            paths = [folder / n for n in sorted(os.listdir(folder)) if _agency_file(n)]
            sizes = [p.stat().st_size if p.is_file() else 0 for p in paths]
        except OSError:
            return None
        total = sum(sizes)
        if len(paths) < AHEAD_FILES or total < AHEAD_BYTES:
            return None
        here = sum(1 for size in itertools.accumulate(sizes) if size < total * AHEAD_HERE)
        child = Ahead.start(functools.partial(_parse_ahead, paths[here:]))
        return None if child is None else cls(paths[here:], child)

    def take(self, path: Path, blob: bytes) -> _Parsed | None:
        """The child's parse of `path`, if it parsed these very bytes (the parts of the files
        before it that the loader did not read are dropped)."""
        at = self.index.get(path, -1)
        if at < self.next:
            return None
        for found in self.parts:
            self.next += 1
            if self.next > at:
                if found is None or found.digest != hashlib.sha256(blob).digest():
                    return None
                return found
        return None  # the child stopped (its budget ran out) or failed: the rest is parsed here

    def close(self) -> None:
        self.child.cancel()


class _Parsed(NamedTuple):
    """What the child sends for one file: the sha256 of its bytes, their parse and what it
    spent of the budget (mappings, values)."""

    digest: bytes
    parsed: yamlload.Parsed
    spent: tuple[int, int]


def _cores(cgroups: Path = Path("/sys/fs/cgroup"), mine: Path = Path("/proc/self/cgroup")) -> int:
    """How many cores this process may run on: the CPUs it may be scheduled on, fewer when its
    cgroup (v2, `cgroups`; `mine` names it) or one above it allows less time than that
    (`cpu.max`, as a container's `--cpus` sets it: 1.5 CPUs is one whole core here)."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    count = count or 1
    try:
        line = next(x for x in mine.read_text().splitlines() if x.startswith("0::"))
    except (OSError, UnicodeDecodeError, StopIteration):
        return count  # no cgroup v2 here: the CPUs say it
    group = cgroups / line[3:].strip().lstrip("/")
    for folder in (group, *group.parents):
        if not folder.is_relative_to(cgroups):
            break
        try:
            quota, period = (folder / "cpu.max").read_text().split()
            count = min(count, max(1, int(quota) // int(period)))
        except (OSError, UnicodeDecodeError, ValueError, ZeroDivisionError):
            continue  # no limit here ("max"), or none readable
    return count


def _agency_file(name: str) -> bool:
    return name.endswith(".yaml") and not name.startswith(".")


def _parse_ahead(paths: list[Path], send: Send) -> None:
    """The child of `_Ahead`: each file parsed, in order, sent (None for a file it could not
    read), until the budget or `MAX_TOTAL_BYTES` runs out."""
    budget = yamlload.Budget()
    total = 0
    for path in paths:
        blob = _regular_file(path)
        found = None
        if blob is not None:
            total += len(blob)
            if total > MAX_TOTAL_BYTES:
                return
            before = budget.mappings, budget.values
            parsed = yamlload.parse(blob, budget)
            if budget.exhausted:
                return
            spent = before[0] - budget.mappings, before[1] - budget.values
            found = _Parsed(hashlib.sha256(blob).digest(), parsed, spent)
        send(found)


def _regular_file(path: Path) -> bytes | None:
    """The bytes of `path` if it is a regular file of at most `yamlload.MAX_BYTES` (it never
    waits on a FIFO or a device named like an agency file), and not a symbolic link: the
    loader follows a link only inside the inventory (`_Run.inside`), and parses it itself."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        blob = f.read(yamlload.MAX_BYTES + 1)
    return blob if len(blob) <= yamlload.MAX_BYTES else None
