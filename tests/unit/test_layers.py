"""The package's layers: imports only run downward (profile -> knowledge -> plan -> render -> build ->
verify, the CLI on top), only the runner starts processes, and pyproject lists every subpackage."""

import ast
import tomllib
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "builder"
# Lower numbers may be imported by higher ones, never the reverse. native/ holds shared resources (the
# flush test's source and flags); runner is the one process gate that build and verify use.
LAYERS = {"profile": 0, "knowledge": 1, "native": 1, "plan": 2, "render": 3, "runner": 4, "build": 5,
          "verify": 6, "cli": 7}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int | None:
    """builder.plan.checks -> 2; builder itself (the version) belongs to no layer."""
    parts = module.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 else None


def imported_modules(source: str, module: str, is_package: bool) -> list[str]:
    """Absolute names of the builder modules that `source` (the text of `module`) imports."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append(target)
    return [name for name in found if name == "builder" or name.startswith("builder.")]


def wrong_arrows(source: str, module: str, is_package: bool = False) -> list[str]:
    own = layer_of(module)
    return [f"{module} imports {target}" for target in imported_modules(source, module, is_package)
            if own is not None and (layer_of(target) or -1) > own]


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_top_level_part_of_the_package_has_a_layer():
    parts = {p.name if p.is_dir() else p.stem for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    assert parts - {"__init__"} == set(LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_run_downward(path: Path):
    assert wrong_arrows(path.read_text(), module_name(path), path.name == "__init__.py") == []


def test_a_wrong_arrow_is_caught():
    """The checker itself: an upward import (profile -> verify) and a relative one are both reported."""
    assert wrong_arrows("from builder.verify.proof import judge\n", "builder.profile.model") == \
        ["builder.profile.model imports builder.verify.proof"]
    assert wrong_arrows("from ..build.pipeline import build\n", "builder.plan.planner") == \
        ["builder.plan.planner imports builder.build.pipeline"]
    assert wrong_arrows("from ..profile.errors import Problem\n", "builder.plan.planner") == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_runner_starts_processes(path: Path):
    tree = ast.parse(path.read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    starts = {"subprocess", "pty", "multiprocessing"} & set(names) or \
        ("os" in names and any(isinstance(n, ast.Attribute) and n.attr in ("system", "popen", "execv", "execvp")
                               for n in ast.walk(tree)))
    assert not starts or path == PACKAGE / "runner.py"


def test_pyproject_lists_every_subpackage():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    present = {module_name(p) for p in PACKAGE.rglob("__init__.py")} | {"builder.knowledge.fragments"}
    assert listed == present


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_under_300_lines(path: Path):
    assert len(path.read_text().splitlines()) < 300, f"{path.relative_to(ROOT)}: split it by what its parts do"
