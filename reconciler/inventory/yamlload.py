"""A strict YAML loader that remembers the line of every value.

Built on libyaml's event stream (`yaml.CSafeLoader`): the parser runs in C and this module turns
the events into plain dicts, lists, strings, ints, bools and None, while a side table (`Lines`)
keeps the line of each value. It does not build PyYAML's node graph, which costs several hundred
megabytes for 100,000 staff records.

Refused, each with the line: bytes that are not UTF-8, NUL bytes, tabs in indentation, duplicate
mapping keys, anchors and aliases, explicit tags other than `!!str`, more than one document,
non-scalar keys, nesting deeper than `MAX_DEPTH`, empty files and files over `MAX_BYTES`.
A UTF-8 byte order mark is accepted and skipped.

Scalars follow the YAML 1.2 core schema, narrowed: only `true`/`false` are booleans (so `no` and
`on` stay text), only plain decimal numbers without leading zeros are integers (`0012` stays
text), `null`, `~` and empty values are None; dates stay text (`2026-12-01`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_BYTES = 20 * 1024 * 1024  #: largest file accepted (20 MiB, about 150,000 staff records)
MAX_DEPTH = 16  #: deepest nesting of mappings and sequences (the format needs 4)
MAX_REPORTED = 20  #: most problems of one kind reported per file


MAX_MAPPINGS = 250_000  #: mappings in one inventory, all files together
MAX_VALUES = 2_500_000  #: values in one inventory, all files together


@dataclass(slots=True)
class Budget:
    """What every file of one inventory may hold together, spent as the files are parsed: a
    million valid records spread over files under the size limit must be refused before memory
    runs out, not after (a 100,000-person province: some 100,000 mappings and 500,000 values)."""

    mappings: int = MAX_MAPPINGS  #: staff records, agencies, units, suspensions, …
    values: int = MAX_VALUES  #: every scalar, mapping and list

    @property
    def exhausted(self) -> bool:
        """Whether it was spent beyond what it holds: no more files are read."""
        return self.mappings < 0 or self.values < 0

    def affords(self, spent: tuple[int, int]) -> bool:
        """Whether `spend(*spent)` leaves the budget unspent."""
        return spent[0] <= self.mappings and spent[1] <= self.values

    def spend(self, mappings: int, values: int) -> str | None:
        """Take from the budget; the reason when it is spent."""
        self.mappings -= mappings
        self.values -= values
        if self.mappings < 0:
            return (
                f"the inventory holds more than {MAX_MAPPINGS:,} records (mappings) across "
                "its files, more than the reconciler reads at once; split the province"
            )
        if self.values < 0:
            return (
                f"the inventory holds more than {MAX_VALUES:,} values across its files, "
                "more than the reconciler reads at once; split the province"
            )
        return None


BOM = b"\xef\xbb\xbf"
_TAB_INDENT = re.compile(r"^[ ]*\t", re.MULTILINE)
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_STR_TAGS = frozenset({"tag:yaml.org,2002:str", "!"})
#: Plain scalars that may not be text (`_Builder._scalar` decides): nulls, booleans, and
#: whatever starts like an integer. Any other plain scalar is text as it is.
_SPECIAL = frozenset(_NULLS | _BOOLS.keys())
_NUMERIC = frozenset("-0123456789")
_MAP_TAGS = frozenset({"tag:yaml.org,2002:map"})
_SEQ_TAGS = frozenset({"tag:yaml.org,2002:seq"})


@dataclass(slots=True)
class Lines:
    """Where a mapping or sequence starts, and the lines of its values (by key or index)."""

    line: int
    children: dict[str, int | Lines] | list[int | Lines] = field(default_factory=dict)

    def at(self, path: tuple[str | int, ...] | list[str | int]) -> int:
        """The line of the value at `path`, or of its deepest existing parent."""
        node: int | Lines = self
        for step in path:
            if isinstance(node, int):
                return node
            children = node.children
            if isinstance(children, dict):
                if not (isinstance(step, str) and step in children):
                    return node.line
                node = children[step]
            else:
                if not (isinstance(step, int) and step < len(children)):
                    return node.line
                node = children[step]
        return node if isinstance(node, int) else node.line

    def key_line(self, key: str) -> int:
        """The line of a mapping's value (= its key's line for scalars), or of the mapping:
        `at((key,))`, asked of every staff record."""
        children = self.children
        node = children.get(key) if isinstance(children, dict) else None
        if node is None:
            return self.line
        return node if isinstance(node, int) else node.line


@dataclass(slots=True)
class Parsed:
    """The outcome of `parse`: the data (None when unusable) and the problems as (line, text)."""

    data: Any = None
    lines: Lines = field(default_factory=lambda: Lines(1))
    problems: list[tuple[int, str]] = field(default_factory=list)


def line_of_offset(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def parse(data: bytes, budget: Budget | None = None) -> Parsed:
    """Parse one file's bytes. Any problem leaves `data` None; every problem found is listed.
    With `budget` (shared by the files of an inventory), parsing stops at the line where the
    inventory's mappings or values run out."""
    if len(data) > MAX_BYTES:
        return _fail(
            1,
            f"the file is {len(data):,} bytes, over the limit of {MAX_BYTES:,} "
            "(20 MiB); split the agency",
        )
    if data.startswith(BOM):
        data = data[len(BOM) :]
    nul = data.find(b"\0")
    if nul >= 0:
        return _fail(
            line_of_offset(data, nul),
            f"NUL byte at byte offset {nul}: this is not a text file (UTF-16 or binary?); "
            "save it as UTF-8",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = data[error.start]
        return _fail(
            line_of_offset(data, error.start),
            f"byte 0x{bad:02X} at byte offset {error.start} is not UTF-8: save the file "
            "as UTF-8 (was it exported in TCVN3/ABC, VNI or Windows-1258?)",
        )
    if not text.strip():
        return _fail(1, "the file is empty")
    tabs = [m.start() for m in _TAB_INDENT.finditer(text)] if "\t" in text else []
    if tabs:
        problems = [
            (text.count("\n", 0, at) + 1, "tab used for indentation: YAML indents with spaces only")
            for at in tabs[:MAX_REPORTED]
        ]
        return Parsed(problems=problems)
    return _Builder(data, budget).run()


def _fail(line: int, message: str) -> Parsed:
    return Parsed(problems=[(line, message)])


class _Fatal(Exception):
    """Stops the event loop: the rest of the file cannot be read."""


class _Builder:
    """Turns libyaml events into data and `Lines`, with an explicit stack (no recursion)."""

    def __init__(self, data: bytes, budget: Budget | None) -> None:
        self.data = data
        self.budget = budget
        self.problems: list[tuple[int, str]] = []
        self.keys: dict[str, str] = {}  # interned mapping keys: one str object per distinct key

    def problem(self, line: int, message: str) -> None:
        self.problems.append((line, message))

    def run(self) -> Parsed:
        root: list[Any] = []
        root_lines: list[int | Lines] = []
        try:
            self._events(root, root_lines)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            line = mark.line + 1 if mark is not None else 1
            what = error.problem or error.context or "invalid YAML"
            if "nest" in what:
                # libyaml's own bound (PyYAML 6.0.4 and later) can fire before the events reach
                # ours, e.g. when its scanner reads 100,000 `[` ahead: the same refusal, in our
                # words, whichever library version is installed
                self.problem(line, f"nesting deeper than {MAX_DEPTH} levels")
            else:
                self.problem(line, f"YAML syntax error: {what}")
        except yaml.YAMLError as error:
            self.problem(1, f"YAML error: {error}")
        except _Fatal:
            pass
        if self.problems:
            return Parsed(problems=self.problems)
        if not root or root[0] is None:
            return _fail(1, "the file is empty (only comments)")
        lines = root_lines[0]
        if not isinstance(root[0], dict) or not isinstance(lines, Lines):
            line = lines if isinstance(lines, int) else lines.line
            return _fail(
                line,
                f"the top level must be a mapping of `key: value` lines, not {describe(root[0])}",
            )
        return Parsed(root[0], lines)

    def _events(self, root: list[Any], root_lines: list[int | Lines]) -> None:
        """The event loop. Scalars, most of the events, are handled inline (plain scalars that
        are text need no more than a set probe): at 100,000 staff the method calls per event
        took as long as libyaml's parsing itself."""
        loader = yaml.CSafeLoader(self.data)
        try:
            # Each frame: [container, its Lines' children, pending key (mappings only), Lines]
            stack: list[list[Any]] = [[root, root_lines, None, Lines(1, root_lines)]]
            documents = 0
            mappings = values = 0  # spent since the budget was last charged
            get_event = loader.get_event
            scalar_t, map_t = yaml.ScalarEvent, yaml.MappingStartEvent
            seq_t = yaml.SequenceStartEvent
            end_t = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
            keys = self.keys
            special, numeric = _SPECIAL, _NUMERIC
            frame = stack[-1]
            while True:
                event: Any = get_event()
                kind = type(event)
                if kind is scalar_t:
                    if event.anchor is not None:
                        self._anchor(event, event.start_mark.line + 1)
                    container = frame[0]
                    value: Any = event.value
                    in_map = type(container) is dict
                    if in_map:
                        key = frame[2]
                        if key is None:  # a key (its line is asked only of a duplicate)
                            key = keys.setdefault(value, value)  # one str per distinct key
                            if key in container:
                                self._duplicate(key, event.start_mark.line + 1)
                            frame[2] = key
                            continue
                        frame[2] = None
                    line = event.start_mark.line + 1
                    if event.tag is not None or (
                        not event.style and (value in special or value[:1] in numeric)
                    ):
                        value = self._scalar(event, line)
                    if in_map:
                        container[key] = value
                        frame[1][key] = line
                    else:
                        container.append(value)
                        frame[1].append(line)
                    values += 1
                elif kind is map_t or kind is seq_t:
                    line = event.start_mark.line + 1
                    values += 1
                    if kind is map_t:
                        mappings += 1
                    if values >= 4096 or mappings >= 1024:
                        self._spend(mappings, values, line)
                        mappings = values = 0
                    if event.anchor is not None:
                        self._anchor(event, line)
                    if type(frame[0]) is dict and frame[2] is None:
                        self.problem(
                            line,
                            "a mapping key must be a plain word, not a "
                            f"{'mapping' if kind is map_t else 'list'}",
                        )
                        raise _Fatal
                    if len(stack) > MAX_DEPTH:
                        self.problem(line, f"nesting deeper than {MAX_DEPTH} levels")
                        raise _Fatal
                    tags = _MAP_TAGS if kind is map_t else _SEQ_TAGS
                    if event.tag is not None and not event.implicit and event.tag not in tags:
                        self.problem(line, f"YAML tag {_short(event.tag)} is not allowed")
                    new: dict[str, Any] | list[Any] = {} if kind is map_t else []
                    new_lines = Lines(line, {} if kind is map_t else [])
                    self._add(frame, new, new_lines)
                    frame = [new, new_lines.children, None, new_lines]
                    stack.append(frame)
                elif kind in end_t:
                    stack.pop()
                    frame = stack[-1]
                elif kind is yaml.AliasEvent:
                    line = event.start_mark.line + 1
                    self.problem(
                        line,
                        f"alias *{event.anchor}: anchors and aliases are not "
                        "allowed; write the value out in full",
                    )
                    self._add(frame, None, line)
                elif kind is yaml.DocumentStartEvent:
                    documents += 1
                    if documents > 1:
                        self.problem(
                            event.start_mark.line + 1,
                            "a second YAML document (---): one document per file",
                        )
                        raise _Fatal
                elif kind is yaml.StreamEndEvent:
                    self._spend(mappings, values, event.start_mark.line + 1)
                    return
        finally:
            loader.dispose()

    def _spend(self, mappings: int, values: int, line: int) -> None:
        if self.budget is None:
            return
        spent = self.budget.spend(mappings, values)
        if spent:
            self.problem(line, spent)
            raise _Fatal

    def _anchor(self, event: Any, line: int) -> None:
        self.problem(
            line,
            f"anchor &{event.anchor}: anchors and aliases are not allowed; "
            "write the value out in full",
        )

    def _duplicate(self, key: str, line: int) -> None:
        self.problem(
            line,
            f"duplicate key `{key}`: it is already set in this mapping "
            "(YAML would silently keep only the last one)",
        )

    def _scalar(self, event: Any, line: int) -> Any:
        value: str = event.value
        tag = event.tag
        if tag is not None and not (event.implicit[0] or event.implicit[1]):
            if tag not in _STR_TAGS:
                self.problem(line, f"YAML tag {_short(tag)} is not allowed")
            return value
        if event.style:  # quoted or block ('' = plain): always text
            return value
        if value in _NULLS:
            return None
        if value in _BOOLS:
            return _BOOLS[value]
        if _INT.match(value):
            return int(value)
        return value

    @staticmethod
    def _add(frame: list[Any], value: Any, line: int | Lines) -> None:
        container = frame[0]
        if type(container) is dict:
            key = frame[2]
            frame[2] = None
            container[key] = value
            frame[1][key] = line
        else:
            container.append(value)
            frame[1].append(line)


def _short(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


def describe(value: Any) -> str:
    """A value's kind in plain words, for messages."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
