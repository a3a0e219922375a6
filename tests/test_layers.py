"""Imports run one way: docs/architecture.md lists the layers; no module imports a higher one."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app"


def documented_layers() -> list[list[str]]:
    """The ``## Layers`` list of docs/architecture.md, top first: the modules of each layer."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    layers = [re.findall(r"`(app[\w.]*)`", line)
              for line in section.splitlines() if re.match(r"\d+\. ", line)]
    assert layers and all(layers), "docs/architecture.md: no numbered layer list"
    return layers


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imported_modules(path: Path) -> set[str]:
    """Every ``app`` module the file imports, at any depth of its code."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return imports_in(path.read_text(), package)


def imports_in(source: str, package: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if is_module(target) else base)
    return {name for name in found if name == "app" or name.startswith("app.")}


def layer_of(name: str, layers: list[list[str]]) -> int:
    best, rank = "", None
    for index, modules in enumerate(layers):
        for prefix in modules:
            # ``app`` alone is the factory's module, not every module of the package
            inside = name == prefix or (prefix != "app" and name.startswith(prefix + "."))
            if inside and len(prefix) > len(best):
                best, rank = prefix, index
    assert rank is not None, f"{name} is in no layer of docs/architecture.md"
    return rank


def test_every_module_is_in_a_documented_layer():
    layers = documented_layers()
    for path in APP.rglob("*.py"):
        layer_of(module_name(path), layers)


def test_no_module_imports_a_higher_layer():
    layers = documented_layers()
    upward = []
    for path in sorted(APP.rglob("*.py")):
        importer = module_name(path)
        rank = layer_of(importer, layers)
        for target in imported_modules(path):
            if layer_of(target, layers) < rank:
                upward.append(f"{importer} imports {target}")
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


def test_the_check_sees_relative_imports_inside_functions():
    """As the factory's are; ``from .. import x`` names the module x."""
    code = "def f():\n    from ..http import errors\n    from .. import logs\n    import json\n"
    assert imports_in(code, "app.store") == {"app.http.errors", "app.logs"}
    layers = documented_layers()
    assert layer_of("app.http.errors", layers) < layer_of("app.store.base", layers)
