"""The import graph of the package (docs/design.md, "Layering"): acyclic, layered bottom-up, no
function-level imports of our own modules, and every module importable on its own and in any
order.

The graph is read from the source with `ast` (nothing is imported): an edge A -> B for every
`import yt8m_kd.B`, `from yt8m_kd.B import name` or `from yt8m_kd.P import B` (B a module of
package P; otherwise the edge goes to P, whose `__init__` defines the name) in A, wherever it
stands: at the top, under `if`/`try`, or inside a function. Relative imports resolve the same way.
Importing a module also runs its parent packages' `__init__`s; those implicit edges are left out,
as an `__init__` that re-exports its modules would otherwise close a cycle with each of them.
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import json
import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "yt8m_kd"
PACKAGE_DIR = REPO_ROOT / PACKAGE

# Layer of each part of the package, bottom (0) to top: a module may import its own layer and
# those below, never one above. A name stands for the module and, for a package, everything in it
# (its `__init__` included). The package's own `__init__` (yt8m_kd) is at the bottom: it holds
# the version and must import nothing of ours.
LAYERS = {
    "yt8m_kd": 0,
    "yt8m_kd.configs": 0,
    "yt8m_kd.files": 0,
    "yt8m_kd.cache_layout": 0,
    "yt8m_kd.machine": 0,
    "yt8m_kd.flags": 1,
    "yt8m_kd.flag_checks": 1,
    "yt8m_kd.data": 2,
    "yt8m_kd.data.data_service": 2,
    "yt8m_kd.metrics": 2,
    "yt8m_kd.modeling": 3,
    "yt8m_kd.distill": 4,
    "yt8m_kd.distill.ensemble": 4,
    "yt8m_kd.training": 5,
    "yt8m_kd.training.evaluation": 5,
    "yt8m_kd.export": 6,
    "yt8m_kd.inference": 6,
    "yt8m_kd.timing": 6,
    "yt8m_kd.run_logs": 6,
    "yt8m_kd.plots": 6,
    "yt8m_kd.tables": 6,
    "yt8m_kd.experiments": 7,
    "yt8m_kd.cli": 7,
    "yt8m_kd.fuzz": 7,
    "yt8m_kd.fuzz.tfrecord": 7,
    "yt8m_kd.fuzz.mutants": 7,
    "yt8m_kd.fuzz.yt8m_mutants": 7,
    "yt8m_kd.fuzz.ucf101_mutants": 7,
    "yt8m_kd.fuzz.oracle": 7,
    "yt8m_kd.fuzz.worker": 7,
    "yt8m_kd.fuzz.campaign": 7,
    "yt8m_kd.fuzz.entry_points": 7,
}

# The order of the import-everything-in-a-shuffled-order check; the failure message prints it.
SHUFFLE_SEED = 1729


@dataclasses.dataclass(frozen=True)
class Import:
    """One import of one of our modules: `source` imports `target` at `path`:`line`."""

    source: str
    target: str
    path: str
    line: int
    in_function: str | None  # the enclosing function's name, None at module level

    def __str__(self) -> str:
        where = f" in {self.in_function}()" if self.in_function else ""
        return f"{self.source} -> {self.target} ({self.path}:{self.line}{where})"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_files() -> dict[str, Path]:
    """Module name -> file, every .py under yt8m_kd/ (a package by its __init__.py)."""
    return {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


MODULES = module_files()


def is_ours(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def resolve(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool) -> list[str]:
    """The modules of ours an import statement in module `importer` names."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if is_ours(alias.name)]
    base = node.module or ""
    if node.level:  # relative: from the importer's package, one level up per extra dot
        package = importer.split(".") if is_package else importer.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    if not is_ours(base):
        return []
    targets = (f"{base}.{alias.name}" for alias in node.names)
    return list(dict.fromkeys(t if t in MODULES else base for t in targets))


def imports_of(name: str, path: Path) -> Iterator[Import]:
    """Every import of one of our modules in a module, at any nesting."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    relative = str(path.relative_to(REPO_ROOT))

    def visit(node: ast.AST, function: str | None) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target in resolve(child, name, is_package):
                    yield Import(name, target, relative, child.lineno, function)
            inner = (
                child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else None
            )
            yield from visit(child, inner or function)

    yield from visit(tree, None)


def all_imports() -> list[Import]:
    return [imp for name, path in MODULES.items() for imp in imports_of(name, path)]


def layer(module: str) -> int | None:
    """The layer of a module: that of the longest LAYERS name it is or lies under (yt8m_kd
    itself only for the package's own __init__)."""
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or (prefix != PACKAGE and module.startswith(prefix + ".")):
            return LAYERS[prefix]
    return None


def cycles(imports: list[Import]) -> list[list[str]]:
    """One cycle [a, b, ..., a] through each strongly connected component of more than one
    module (or a module importing itself), by Tarjan's algorithm."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for imp in imports:
        graph.setdefault(imp.source, set()).add(imp.target)
        graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph[node]:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)

    found = []
    for component in components:
        members, start = set(component), component[0]
        # Shortest way back to `start` within the component, breadth first.
        previous: dict[str, str] = {}
        frontier = [start]
        while frontier and start not in previous:
            following = []
            for node in frontier:
                for successor in sorted(graph[node] & members):
                    if successor not in previous:
                        previous[successor] = node
                        following.append(successor)
            frontier = following
        path = [start]
        while len(path) == 1 or path[-1] != start:
            path.append(previous[path[-1]])
        found.append(path[::-1])
    return found


# ------------------------------------------------------------------------------------ the tests
def test_the_graph_reader_resolves_every_form_of_import(tmp_path):
    """`from P import m` names module P.m, `from P import f` names P, relative imports resolve
    from the importer's package; third-party imports are not ours."""
    source = textwrap.dedent(
        """
        import os
        import av
        import yt8m_kd.configs
        from yt8m_kd import flags, __version__
        from yt8m_kd.data import yt8m, videos
        from yt8m_kd.modeling import build_video_model
        from yt8m_kd.modeling.predict import make_predict_fn
        from . import losses
        from .. import metrics
        from ..data.sampling import select

        def f():
            import tensorflow as tf
            from yt8m_kd.training import loop
        """
    )
    path = PACKAGE_DIR / "distill" / "selection.py"  # a real module: its name and package
    tree = ast.parse(source)
    found = [
        target
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for target in resolve(node, module_name(path), is_package=False)
    ]
    assert found == [
        "yt8m_kd.configs",
        "yt8m_kd.flags",
        "yt8m_kd",
        "yt8m_kd.data.yt8m",
        "yt8m_kd.data.videos",
        "yt8m_kd.modeling",
        "yt8m_kd.modeling.predict",
        "yt8m_kd.distill.losses",
        "yt8m_kd.metrics",
        "yt8m_kd.data.sampling",
        "yt8m_kd.training.loop",
    ]
    init = PACKAGE_DIR / "modeling" / "__init__.py"
    (node,) = ast.parse("from .nextvlad import NeXtVLAD").body
    assert resolve(node, module_name(init), is_package=True) == ["yt8m_kd.modeling.nextvlad"]


def test_cycles_are_found_and_reported():
    def edge(source, target):
        return Import(source, target, "x.py", 1, None)

    chain = [edge("yt8m_kd.a", "yt8m_kd.b"), edge("yt8m_kd.b", "yt8m_kd.c")]
    assert cycles(chain) == []
    assert cycles([*chain, edge("yt8m_kd.c", "yt8m_kd.a")]) == [
        ["yt8m_kd.a", "yt8m_kd.b", "yt8m_kd.c", "yt8m_kd.a"]
    ]
    assert cycles([edge("yt8m_kd.a", "yt8m_kd.a")]) == [["yt8m_kd.a", "yt8m_kd.a"]]


def test_the_import_graph_is_acyclic():
    imports = all_imports()
    assert len({imp.source for imp in imports}) > 10  # the reader did find our imports
    found = cycles(imports)
    lines = []
    for cycle in found:
        lines.append("cycle: " + " -> ".join(cycle))
        for source, target in itertools.pairwise(cycle):
            lines += [f"  {imp}" for imp in imports if (imp.source, imp.target) == (source, target)]
    assert not found, "import cycles in yt8m_kd/:\n" + "\n".join(lines)


def test_layers_by_name():
    assert layer("yt8m_kd") == 0  # the package's own __init__
    assert layer("yt8m_kd.flags") == 1
    assert layer("yt8m_kd.modeling") == layer("yt8m_kd.modeling.video_models") == 3
    assert layer("yt8m_kd.training.loop") == 5
    assert layer("yt8m_kd.cli") == 7
    assert layer("yt8m_kd.flagsx") is None  # a name, not a prefix of one
    assert layer("yt8m_kd.new_module") is None


def test_every_module_has_a_layer():
    missing = sorted(name for name in MODULES if layer(name) is None)
    assert not missing, (
        f"modules without a layer: {', '.join(missing)}; add them to LAYERS in {__file__}"
        " (and to docs/design.md, Layering)"
    )
    unknown = sorted(
        prefix
        for prefix in LAYERS
        if not any(name == prefix or name.startswith(prefix + ".") for name in MODULES)
    )
    assert not unknown, f"LAYERS names modules that do not exist: {', '.join(unknown)}"


def test_no_module_imports_a_higher_layer():
    upward = [
        f"{imp} imports layer {layer(imp.target)} from layer {layer(imp.source)}"
        for imp in all_imports()
        if None not in (layer(imp.source), layer(imp.target))
        and layer(imp.target) > layer(imp.source)
    ]
    assert not upward, "imports against the layering (docs/design.md):\n" + "\n".join(upward)


def test_no_function_level_import_of_our_modules():
    nested = [str(imp) for imp in all_imports() if imp.in_function]
    assert not nested, (
        "function-level imports of yt8m_kd modules (a cycle or a layering problem dodged; "
        "import at the top of the module):\n" + "\n".join(nested)
    )


# Runs in a fresh interpreter: imports each named module, reports failures as JSON on stdout.
_IMPORT_SCRIPT = """
import importlib, json, sys, traceback
names, fresh, root = json.loads(sys.argv[1]), sys.argv[2] == "fresh", sys.argv[3]
failures = {}
for name in names:
    if fresh:  # as if alone: none of ours loaded (third-party modules stay, for speed)
        for key in [k for k in sys.modules if k == "yt8m_kd" or k.startswith("yt8m_kd.")]:
            del sys.modules[key]
    try:
        module = importlib.import_module(name)
        if not module.__file__.startswith(root):
            failures[name] = f"imported from {module.__file__}, not from {root}"
    except BaseException:
        failures[name] = traceback.format_exc(limit=-8)
print(json.dumps(failures))
"""


def import_in_fresh_interpreter(names: list[str], fresh: bool) -> dict[str, str]:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _IMPORT_SCRIPT,
            json.dumps(names),
            "fresh" if fresh else "cumulative",
            str(PACKAGE_DIR) + os.sep,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _failure_report(failures: dict[str, str]) -> str:
    return "\n".join(f"--- {name}\n{error}" for name, error in failures.items())


@pytest.mark.parametrize("order", ["each alone", "all, shuffled"])
def test_every_module_imports(order):
    names = sorted(MODULES)
    if order == "each alone":
        failures = import_in_fresh_interpreter(names, fresh=True)
        assert not failures, "modules that fail to import alone:\n" + _failure_report(failures)
    else:
        random.Random(SHUFFLE_SEED).shuffle(names)
        failures = import_in_fresh_interpreter(names, fresh=False)
        assert not failures, (
            f"imports that fail in this order (SHUFFLE_SEED = {SHUFFLE_SEED}): "
            f"{', '.join(names)}\n" + _failure_report(failures)
        )
