"""Regulation knowledge stays in `reconciler/rules/regulations/`: no other module of the package
writes a clause ("HG-2024 Đ8.4") in a string, f-strings included (docstrings and comments aside),
and no command's --help shows one. A caller asks the `Regulation` instead."""

from __future__ import annotations

import ast
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from reconciler.cli import main
from reconciler.errors import InventoryError
from reconciler.inventory import loader
from reconciler.rules import regulations

PACKAGE = Path(__file__).resolve().parent.parent / "reconciler"
REGULATIONS = PACKAGE / "rules" / "regulations"
CLAUSE = re.compile(r"(?:QN|HG)-20[0-9]{2} Đ")


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the string constants that are docstrings (of the module, a class, a function)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                found.add(id(first.value))
    return found


def clause_literals(source: str) -> Iterator[tuple[int, str]]:
    """(line, text) of every string constant, or constant part of an f-string, that holds a
    clause; docstrings left out (comments are not in the tree)."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and CLAUSE.search(node.value)
        ):
            yield node.lineno, node.value


def test_the_finder_finds_strings_and_f_strings_but_not_docstrings_or_comments() -> None:
    source = '''
"""Module docstring: HG-2024 Đ8.4."""
A = "HG-2024 Đ8.4"  # a comment: QN-2020 Đ7.2
def f(n):
    """Docstring: QN-2020 Đ7.2."""
    return f"{n} deleted (QN-2020 Đ7.1)", "QN-2020 " "Đ4.1"
class C:
    """HG-2024 Đ5.2"""
    x = "nothing to see"
'''
    assert [line for line, _ in clause_literals(source)] == [3, 6, 6]


def test_no_clause_is_written_outside_the_regulations() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if REGULATIONS not in path.parents
        for line, text in clause_literals(path.read_text(encoding="utf-8"))
    ]
    assert found == []


def test_the_regulations_do_write_clauses() -> None:
    """The test above reads the right tree: the clauses are where they belong."""
    found = [
        line
        for path in REGULATIONS.glob("*.py")
        for line, _ in clause_literals(path.read_text(encoding="utf-8"))
    ]
    assert len(found) > 20


def test_no_command_help_shows_a_clause() -> None:
    root = click.Context(main, info_name="reconciler")
    helps = {"reconciler": main.get_help(root)}
    for name, command in main.commands.items():
        helps[name] = command.get_help(click.Context(command, info_name=name, parent=root))
    assert len(helps) > 5
    assert {name: CLAUSE.findall(text) for name, text in helps.items() if CLAUSE.search(text)} == {}


# ---------------------------------------------------------------------------------------------
# The loader asks the inventory's regulation about a suspension's clause


FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.mark.parametrize(
    ("fixture", "clause", "expected"),
    [
        ("minimal-qn", "HG-2024 Đ8.2.b", '"HG-2024 Đ8.2.b" is a clause of another regulation'),
        ("minimal-qn", "Điều 7", '"Điều 7" is not a clause: write it like "QN-2020 Đ7.2"'),
        ("minimal-hg", "Điều 7", '"Điều 7" is not a clause: write it like "HG-2024 Đ8.1"'),
        ("minimal-qn", None, '(the regulation\'s clause, e.g. "QN-2020 Đ7.2")'),
        ("minimal-hg", None, '(the regulation\'s clause, e.g. "HG-2024 Đ8.1")'),
    ],
)
def test_the_loader_asks_the_inventorys_regulation_about_clauses(
    fixture: str, clause: str | None, expected: str, tmp_path: Path
) -> None:
    folder = tmp_path / fixture
    shutil.copytree(FIXTURES / fixture, folder)
    agency_file = next((folder / "agencies").iterdir())
    text = agency_file.read_text(encoding="utf-8")
    record = "\n".join(text.split("\n")[text.split("\n").index("staff:") + 1 :][:2])
    suspended = record + "\n    state: suspended"
    if clause is not None:
        suspended += f'\n    suspension: {{clause: "{clause}"}}'
    agency_file.write_text(text.replace(record, suspended, 1), encoding="utf-8")
    with pytest.raises(InventoryError) as refused:
        loader.load(folder, regulations.get)
    (problem,) = refused.value.problems
    assert expected in problem.message
    other = "HG-2024" if fixture == "minimal-qn" else "QN-2020"
    if not (clause or "").startswith(other):
        assert other not in problem.message  # each inventory is shown its own regulation's
