"""Pin the image's Python packages to the versions installed beside this Python.

    .venv/bin/python deploy/image/lock.py > deploy/image/requirements.txt

The image installs exactly these (``pip install --no-deps``, then ``pip
check``), so it runs what ``make test`` ran. The list is the closure of
``[project].dependencies`` in pyproject.toml (extras such as ``redis[hiredis]``
included) for the image's platform: Linux, this Python's minor version. Run it
again after changing a dependency; tests/deploy fails while the lock misses
one or pins a version outside pyproject's range.
"""

from __future__ import annotations

import importlib.metadata as md
import sys
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _environment(extra: str = "") -> dict[str, str]:
    env = {k: str(v) for k, v in default_environment().items()}
    env.update(sys_platform="linux", platform_system="Linux", os_name="posix", extra=extra)
    return env


def direct_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[Requirement]:
    project = tomllib.loads(pyproject.read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


def closure(roots: list[Requirement]) -> dict[str, str]:
    """Canonical name -> installed version of every package ``roots`` need on Linux."""
    pinned: dict[str, str] = {}
    todo: list[tuple[Requirement, str]] = [(r, "") for r in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate(_environment(extra)):
            continue
        name = canonicalize_name(req.name)
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        dist = md.distribution(req.name)
        pinned[name] = dist.version
        for dep in dist.requires or []:
            sub = Requirement(dep)
            for wanted in ("", *sorted(req.extras)):
                if sub.marker is None or sub.marker.evaluate(_environment(wanted)):
                    todo.append((sub, wanted))
                    break
    return pinned


def render(pins: dict[str, str]) -> str:
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    lines = [
        "# The image's Python packages, pinned (generated; do not edit).",
        "#   .venv/bin/python deploy/image/lock.py > deploy/image/requirements.txt",
        f"# Closure of pyproject.toml's dependencies for Linux, Python {py}.",
    ]
    lines += [f"{name}=={version}" for name, version in sorted(pins.items())]
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.stdout.write(render(closure(direct_requirements())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
