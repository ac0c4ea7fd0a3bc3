"""Settings live in ``config/`` (issue 39, item 4): a settings dataclass or model defined anywhere else in
the package fails this test.

What counts as settings: a class named ``*Settings``, ``*Config``, ``*Recipe``, ``*Options`` or ``*Params``
(a dataclass, a pydantic model or a plain class), and any class deriving from pydantic's ``BaseModel``, from
``config.Section`` or from one of those named classes. Results and records (``FinetuneResult``,
``Int8Images``, ``Runtime``) are not settings."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "attentivenas"
SUFFIXES = ("Settings", "Config", "Recipe", "Options", "Params")
#: module (relative to the package) -> class -> why it is not a setting
EXCEPTIONS: dict[str, dict[str, str]] = {
    "space/plan.py": {
        "BlockConfig": "the shapes of one MBConv block of a subnet, derived from an arch (the network's plan, "
                       "not something a user sets)",
        "SlotConfig": "the largest shapes a supernet's block slot takes over the space (derived, not set)",
    },
}


def settings_classes(source: str) -> list[str]:
    """The names of the settings classes ``source`` defines (see the module docstring)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        bases = [ast.unparse(b).split(".")[-1] for b in node.bases]
        if node.name.endswith(SUFFIXES) or any(b in ("BaseModel", "Section") or b.endswith(SUFFIXES) for b in bases):
            found.append(node.name)
    return found


def test_the_detector_finds_dataclasses_models_and_subclasses() -> None:
    source = ("from dataclasses import dataclass\nfrom pydantic import BaseModel\n"
              "@dataclass\nclass FooSettings:\n    x: int = 1\n"
              "class Bar(BaseModel):\n    y: int = 2\n"
              "class Baz(MeasureSettings):\n    pass\n"
              "class Qux(config.Section):\n    pass\n"
              "@dataclass\nclass FooResult:\n    z: int = 3\n")
    assert settings_classes(source) == ["FooSettings", "Bar", "Baz", "Qux"]


def test_settings_are_defined_in_config_only() -> None:
    outside = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        if rel.startswith("config/"):
            continue
        allowed = EXCEPTIONS.get(rel, {})
        outside += [f"{rel}: {name}" for name in settings_classes(path.read_text()) if name not in allowed]
    assert not outside, "settings defined outside config/ (move them there, or list a reason in EXCEPTIONS): " + \
        ", ".join(outside)


def test_the_exceptions_still_exist() -> None:
    """An exception for a class that is gone (or moved) is removed from the list, not kept."""
    for rel, names in EXCEPTIONS.items():
        defined = settings_classes((PKG / rel).read_text())
        assert set(names) <= set(defined), (rel, set(names) - set(defined))
