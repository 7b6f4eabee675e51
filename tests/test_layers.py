"""The packages import one way: core <- translator, settler, portal <- tokengate.

docs/architecture.md ("Layers") draws it. Every import counts, including the
ones inside functions, so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = {"core", "translator", "settler", "portal", "tokengate", "fakes", "bench"}

# What each package may import besides itself.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "translator": {"core"},
    "settler": {"core"},
    "portal": {"core"},
    "tokengate": {"core", "translator", "settler", "portal"},
    "fakes": set(),  # the fake providers stand alone: they speak wire formats, not our code
    "bench": {"core", "translator", "settler", "tokengate", "fakes"},  # bench.scale times the reaper
}


def tracked(pattern: str) -> list[str]:
    """The repository's files matching ``pattern`` (git pathspec: ``*`` crosses folders)."""
    out = subprocess.run(["git", "ls-files", pattern], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.split()


def imported_packages(source: str) -> set[str]:
    """The first-party top-level packages that ``source`` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(top for n in names if (top := n.split(".")[0]) in FIRST_PARTY)
    return found


def test_checker_sees_every_kind_of_import() -> None:
    src = "import core.store\nfrom portal import app\ndef f():\n    from tokengate.cli import main\n"
    assert imported_packages(src) == {"core", "portal", "tokengate"}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_the_layers_below(package: str) -> None:
    wrong = []
    for path in tracked(f"{package}/*.py"):
        for imported in imported_packages((ROOT / path).read_text()) - {package} - ALLOWED[package]:
            wrong.append(f"{path} imports {imported}")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_every_first_party_package_has_a_layer() -> None:
    packages = {p.split("/")[0] for p in tracked("*/__init__.py")} - {"tests"}
    assert packages <= set(ALLOWED), packages - set(ALLOWED)
