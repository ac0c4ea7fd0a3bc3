"""The package layout holds: data flows one way between the subpackages, nobody reaches into another
module's private names, imports sit at module top unless a dependency is heavy or optional (said
so in a comment), every subpackage says what lives there and what it may import, and the command
line starts without loading torch."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "attentivenas"

BASE = {"errors", "io", "rng", "devices", "host_memory", "distributed", "config", "progress"}
#: unit -> the units it may import (besides itself); a row imports only rows below it (docs/design.md)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "io": {"errors"},
    "rng": set(),
    "progress": set(),
    "devices": {"errors"},
    "host_memory": {"errors"},
    "distributed": {"devices"},
    "config": {"errors", "io"},
    "space": {"errors", "io"},
    "data": {"config", "errors", "rng"},
    "costs": {"space", "errors", "io"},
    "nn": {"space", "costs", "errors", "io"},
    "runtimes": {"space", "costs", "nn", "config", "devices", "errors", "io"},
    "latency": {"space", "costs", "nn", "runtimes", "config", "devices", "errors", "io", "progress"},
    "accuracy": {"space", "costs", "nn", "runtimes", "config", "data", "devices", "host_memory", "distributed",
                 "errors", "io", "progress"},
    "export": {"space", "costs", "nn", "runtimes", "latency", "accuracy", "config", "data", "devices", "errors", "io",
               "progress"},
    "train": {"space", "costs", "nn", "runtimes", "latency", "accuracy", "export", "config", "data"} | BASE,
    "search": {"space", "costs", "nn", "runtimes", "latency", "accuracy", "export", "config"} | BASE,
    "pipeline": {"space", "costs", "nn", "runtimes", "accuracy", "export", "train", "search", "config", "data"} | BASE,
    "cli": {"space", "costs", "nn", "runtimes", "latency", "accuracy", "export", "train", "search", "pipeline", "data",
            "__init__"} | BASE,
    # deprecated aliases of the old flat modules (they warn on import; nothing in the project imports them)
    "cost": {"costs"},
    "supernet": {"nn", "space"},
    "checkpoint": {"nn"},
    "__init__": {"space", "export"},  # export: load_pretrained only, imported on first use (PEP 562 __getattr__)
    "__main__": {"cli"},
}


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py"))


def _unit(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _package_parts(path: Path) -> list[str]:
    """The dotted package a module belongs to (``attentivenas.nn`` for ``nn/export.py`` and ``nn/__init__.py``)."""
    return ["attentivenas", *path.relative_to(PKG).with_suffix("").parts][:-1]


def _imported(path: Path, node: ast.ImportFrom | ast.Import) -> list[str]:
    """Absolute dotted names of the attentivenas modules an import statement reads."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.startswith("attentivenas")]
    if node.level == 0:
        return [node.module] if node.module and node.module.startswith("attentivenas") else []
    pkg = _package_parts(path)
    base = pkg[: len(pkg) - (node.level - 1)]
    mod = ".".join(base + ([node.module] if node.module else []))
    return [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]


def _target_unit(dotted: str) -> str:
    """The unit a dotted name lives in (a name of the package itself, e.g. ``__version__``: ``__init__``)."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else "__init__"


def test_every_module_belongs_to_a_known_unit() -> None:
    units = {_unit(p) for p in _modules()}
    assert units <= set(ALLOWED), sorted(units - set(ALLOWED))


def test_data_flows_one_way() -> None:
    bad = []
    for path in _modules():
        unit = _unit(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for dotted in _imported(path, node):
                target = _target_unit(dotted)
                if target != unit and target not in ALLOWED[unit]:
                    bad.append(f"{path.relative_to(PKG)}:{node.lineno} ({unit}) imports {dotted} ({target})")
    assert not bad, "\n".join(bad)


def test_no_reaching_into_private_names_of_other_modules() -> None:
    bad = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level + (node.module or "").count("attentivenas") > 0:
                bad += [f"{path.relative_to(PKG)}:{node.lineno} imports {a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, "\n".join(bad)


def test_imports_inside_functions_say_why() -> None:
    """A function-level import is allowed for a heavy or optional dependency, and says so."""
    bad = []
    for path in _modules():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            imports = [s for s in node.body if isinstance(s, (ast.Import, ast.ImportFrom))]
            if imports and not any(w in lines[imports[0].lineno - 1] for w in ("# heavy", "# optional")):
                bad.append(f"{path.relative_to(PKG)}:{imports[0].lineno} in {node.name}()")
    assert not bad, "imports inside functions without a '# heavy' or '# optional' reason:\n" + "\n".join(bad)


@pytest.mark.parametrize("package", sorted({p.parent for p in PKG.rglob("__init__.py")} - {PKG}), ids=str)
def test_each_subpackage_says_what_lives_there_and_what_it_may_import(package: Path) -> None:
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    assert "Lives here" in doc and "May import" in doc, package


def _may_import(doc: str) -> set[str]:
    """The units a docstring's "May import:" line names: its ``names`` up to the first ';' or full stop
    (``attentivenas.x`` and ``x`` both name ``x``; ``attentivenas`` itself names ``__init__``)."""
    text = doc.split("May import:", 1)[1].split("\n\n", 1)[0]
    text = re.split(r";|\.(?:\s|$)", text, maxsplit=1)[0]
    return {"__init__" if n == "attentivenas" else n.removeprefix("attentivenas.")
            for n in re.findall(r"``([\w.]+)``", text)}


def _imported_units(paths: list[Path], unit: str) -> set[str]:
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found |= {_target_unit(d) for d in _imported(path, node)}
    return found - {unit}


@pytest.mark.parametrize("package", sorted({p.parent for p in PKG.rglob("__init__.py")} - {PKG}), ids=str)
def test_each_subpackage_may_import_line_agrees_with_the_table(package: Path) -> None:
    """A package's "May import" line names exactly its row of ``ALLOWED``; a nested package (``train/sampling``)
    names a part of its unit's row that covers what it imports."""
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    declared, unit = _may_import(doc), _unit(package / "__init__.py")
    assert declared <= set(ALLOWED), sorted(declared - set(ALLOWED))
    if package.parent == PKG:
        assert declared == ALLOWED[unit], (f"docstring names {sorted(declared - ALLOWED[unit])} beyond the table, "
                                           f"misses {sorted(ALLOWED[unit] - declared)}")
    else:
        used = _imported_units(sorted(package.rglob("*.py")), unit)
        assert used <= declared <= ALLOWED[unit], (sorted(used - declared), sorted(declared - ALLOWED[unit]))


def _design_table() -> dict[str, str]:
    """docs/design.md's module table: first cell -> second cell."""
    rows = {}
    for line in (PKG.parents[1] / "docs" / "design.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 2:
            rows[cells[0]] = cells[1]
    return rows


def test_design_module_table_names_every_module() -> None:
    """Each package's row of docs/design.md names each of its modules (and subpackages); the base modules and
    ``pipeline`` have their rows."""
    rows = _design_table()
    missing = []
    for package in sorted(p for p in PKG.iterdir() if (p / "__init__.py").exists()):
        row = rows.get(f"`{package.name}/`", "") or next((v for k, v in rows.items() if f"`{package.name}/`" in k), "")
        names = {p.stem for p in package.rglob("*.py") if p.stem != "__init__"}
        names |= {f"{p.parent.name}/" for p in package.rglob("*/__init__.py")}
        missing += [f"{package.name}/{n}" for n in sorted(names) if f"`{n}`" not in row]
    first_cells = " ".join(rows)
    aliases = {"cost", "supernet", "checkpoint", "__init__", "__main__"}
    missing += [p.stem for p in sorted(PKG.glob("*.py")) if p.stem not in aliases and f"`{p.stem}`" not in first_cells]
    assert not missing, "docs/design.md's module table misses " + ", ".join(missing)


def test_the_command_line_starts_without_torch() -> None:
    code = ("import sys, attentivenas.cli; "
            "print(sorted(m for m in ('torch', 'sklearn', 'lightgbm', 'pymoo', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


ALIASES = {"cost": "attentivenas.costs", "supernet": "attentivenas.nn", "checkpoint": "attentivenas.nn.checkpoint"}


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_old_import_paths_warn_naming_the_new_path(alias: str) -> None:
    sys.modules.pop(f"attentivenas.{alias}", None)
    with pytest.warns(DeprecationWarning, match=re.escape(f"attentivenas.{alias} is deprecated: import from "
                                                          f"{ALIASES[alias]}")) as caught:
        importlib.import_module(f"attentivenas.{alias}")
    # each names the release that removes it: a later one than this version, the one docs/design.md names
    removed = re.search(r"attentivenas (\d+)\.(\d+)\.(\d+) removes this alias", str(caught[0].message))
    assert removed is not None, caught[0].message
    from attentivenas import __version__

    assert tuple(map(int, removed.groups())) > tuple(map(int, __version__.split(".")[:3]))
    assert f"attentivenas {'.'.join(removed.groups())}" in (PKG.parents[1] / "docs" / "design.md").read_text()


def test_nothing_imports_the_old_paths() -> None:
    """Only the tests above import the deprecated aliases."""
    root = PKG.parents[1]
    bad = []
    for path in sorted([*PKG.rglob("*.py"), *(root / "tests").rglob("*.py"), *(root / "benchmarks").rglob("*.py")]):
        if path == Path(__file__).resolve():
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            names = _imported(path, node) if path.is_relative_to(PKG) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else
                [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names])
            bad += [f"{path.relative_to(root)}:{node.lineno} imports {n}" for n in names
                    if n in {f"attentivenas.{a}" for a in ALIASES}]
    assert not bad, "\n".join(bad)


@pytest.mark.filterwarnings("ignore:attentivenas.(cost|supernet|checkpoint) is deprecated:DeprecationWarning")
def test_old_import_paths_still_work() -> None:
    from attentivenas.checkpoint import load_supernet
    from attentivenas.cost import CostModel, count_flops
    from attentivenas.nn import Supernet as NewSupernet
    from attentivenas.nn import load_supernet as new_load
    from attentivenas.space import ATTENTIVENAS_SPACE, named_arch
    from attentivenas.supernet import StaticSubnet, Supernet

    assert Supernet is NewSupernet and load_supernet is new_load and StaticSubnet.__module__ == "attentivenas.nn.static"
    assert round(count_flops(ATTENTIVENAS_SPACE, named_arch("a0")), 2) == 203.39
    assert CostModel.__module__ == "attentivenas.costs.model"


SYS_PATH_EDITS = {"insert", "append", "extend", "remove", "pop", "clear", "__setitem__", "__iadd__"}


def _benchmark_problems(source: str, scripts: set[str]) -> list[str]:
    """What a benchmark script must not do: edit ``sys.path`` (except a line marked ``# foreign
    checkout``, code of another project), import another script's private (``_name``) names, or
    assign to (or ``setattr``/``del``) an attribute of something imported from attentivenas."""
    tree, lines = ast.parse(source), source.splitlines()
    from_package = {a.asname or (a.name if isinstance(node, ast.ImportFrom) else a.name.split(".")[0])
                    for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                    and ((node.module or "") if isinstance(node, ast.ImportFrom) else node.names[0].name)
                    .split(".")[0] == "attentivenas" for a in node.names}

    def root(node: ast.AST) -> str | None:
        while isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        return node.id if isinstance(node, ast.Name) else None

    def is_sys_path(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "path" and root(node) == "sys"

    bad = []
    for node in ast.walk(tree):
        where = f"line {getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if is_sys_path(node.func.value) and node.func.attr in SYS_PATH_EDITS and \
                    "# foreign checkout" not in lines[node.lineno - 1]:
                bad.append(f"{where}: edits sys.path")
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for t in targets:
                if is_sys_path(t) or (isinstance(t, ast.Subscript) and is_sys_path(t.value)):
                    bad.append(f"{where}: edits sys.path")
                elif isinstance(t, (ast.Attribute, ast.Subscript)) and root(t) in from_package:
                    bad.append(f"{where}: assigns to {ast.unparse(t)}, from attentivenas")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {"setattr", "delattr"} \
                and node.args and root(node.args[0]) in from_package:
            bad.append(f"{where}: {node.func.id} on {ast.unparse(node.args[0])}, from attentivenas")
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] in scripts:
            bad += [f"{where}: imports {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    return sorted(bad, key=lambda b: int(b.split(":")[0].split()[1]))


def test_benchmarks_import_the_package_without_path_edits_private_names_or_patches() -> None:
    """Benchmark scripts import the installed package and the helpers beside them (``python
    benchmarks/x.py`` puts that folder on ``sys.path``): no ``sys.path`` edits, no other script's
    private names, no attentivenas attribute replaced."""
    bench = PKG.parents[1] / "benchmarks"
    scripts = {p.stem for p in bench.glob("*.py")}
    bad = [f"benchmarks/{p.name} {problem}" for p in sorted(bench.glob("*.py"))
           for problem in _benchmark_problems(p.read_text(), scripts)]
    assert not bad, "\n".join(bad)
    # and the check sees each of them
    found = _benchmark_problems("import sys\nfrom pathlib import Path\nfrom attentivenas.nn import layers\n"
                                "import attentivenas.runtimes.runners as rr\nfrom timing import _median\n"
                                "sys.path.insert(0, str(Path(__file__).parent))\nsys.path[:0] = ['x']\n"
                                "layers._SharedSlice.apply = len\nsetattr(rr, 'load_program', len)\n"
                                "sys.path.append('authors')  # foreign checkout\n", {"timing"})
    assert [f.split(": ", 1)[1] for f in found] == [
        "imports timing._median", "edits sys.path", "edits sys.path", "assigns to layers._SharedSlice.apply, from "
        "attentivenas", "setattr on rr, from attentivenas"], found
