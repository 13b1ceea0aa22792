"""The shape of the package: the pipeline's stages as folders, imports that flow one way, no
cycle, and the pure core free of I/O libraries. Read from the source (every import statement,
those inside functions and under TYPE_CHECKING included), not from what happens to be loaded."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "reconciler"

#: Stages in the order data flows; a module may import its own stage and the ones before it.
#: The ground floor is the package's top-level modules.
LAYERS = (
    "ground",
    "inventory",
    "rules",
    "directory",
    "planning",
    "applying",
    "outputs",
    "cli",
    "devtools",
)
#: Modules that compute without I/O: neither ldap3 nor click, nor the directory package.
PURE = (
    "reconciler.model",
    "reconciler.names",
    "reconciler.attributes",
    "reconciler.rules",
    "reconciler.planning.desired",
    "reconciler.planning.plan",
    "reconciler.planning.render",
)


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = modules()


def imports(name: str) -> Iterator[str]:
    """Every module `name` imports, resolved to a module of ours where it is one."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield sub if sub in MODULES else base


def graph() -> dict[str, set[str]]:
    return {name: {m for m in imports(name) if m in MODULES} - {name} for name in MODULES}


def layer(name: str) -> str:
    if name == "reconciler.__main__":
        return "cli"  # `python -m reconciler` is the command line
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else "ground"


def test_no_import_cycle() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                pytest.fail("import cycle: " + " → ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name)


def test_imports_flow_with_the_pipeline() -> None:
    wrong = [
        f"{name} ({layer(name)}) imports {dep} ({layer(dep)})"
        for name, deps in graph().items()
        for dep in deps
        if LAYERS.index(layer(dep)) > LAYERS.index(layer(name))
    ]
    assert wrong == []


def test_the_stages_are_folders() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert set(LAYERS) - {"ground"} <= folders


@pytest.mark.parametrize("prefix", PURE)
def test_the_core_is_pure(prefix: str) -> None:
    for name in MODULES:
        if name == prefix or name.startswith(prefix + "."):
            bad = {
                m
                for m in imports(name)
                if m.split(".")[0] in {"ldap3", "ldap", "click", "socket", "subprocess"}
                or m.startswith("reconciler.directory")
            }
            assert not bad, (name, bad)


def called(path: Path) -> set[str]:
    """The names of the functions `path` calls (`f(…)` or `x.f(…)`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                found.add(func.id)
            elif isinstance(func, ast.Attribute):
                found.add(func.attr)
    return found


#: The calls that read the tool's part of the directory (`directory.snapshot`).
READING = {"read_tree", "stream_tree", "read_tree_into"}


def test_one_module_wires_the_pipeline() -> None:
    """Reading the directory and computing the plan meet in `planning.pipeline` alone: the
    commands, the report, publish and the tests call its steps instead of wiring them again."""
    sources = [*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "tests").rglob("*.py")]
    wiring = sorted(
        str(path.relative_to(PACKAGE.parent))
        for path in sources
        if "compute" in called(path) and called(path) & READING
    )
    assert wiring == ["reconciler/planning/pipeline.py"]


def test_devtools_are_imported_by_no_core_module() -> None:
    users = [
        name
        for name, deps in graph().items()
        if not name.startswith("reconciler.devtools")
        and any(d.startswith("reconciler.devtools") for d in deps)
    ]
    assert users == []
