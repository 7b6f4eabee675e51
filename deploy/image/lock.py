"""Pin the image's Python packages to the versions installed beside this Python.

    .venv/bin/python deploy/image/lock.py > deploy/image/requirements.txt
    .venv/bin/python deploy/image/lock.py --build > deploy/image/build-requirements.txt

The image installs exactly these (``pip install --no-deps``, then ``pip
check``), so it runs what ``make test`` ran. The list is the closure of
``[project].dependencies`` in pyproject.toml (extras such as ``redis[hiredis]``
included) for the image's platform: Linux, the image's Python (the Dockerfile's
``PYTHON_IMAGE``), with the versions installed beside this one. Run it
again after changing a dependency; tests/deploy fails while the lock misses
one or pins a version outside pyproject's range.

``--build``: what the build stage needs on top and removes again before the
runtime stage copies the venv — the build backend (``[build-system].requires``)
and ``grpcio-tools``, whose protoc compiles ``proto/`` (``proto/generate.py``).
``make lock`` writes both.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def image_python(dockerfile: Path = ROOT / "Dockerfile") -> str:
    """The Python version the image runs: the Dockerfile's ``ARG PYTHON_IMAGE=python:X.Y.Z-…``."""
    found = re.search(r"^ARG PYTHON_IMAGE=python:(\d+\.\d+\.\d+)", dockerfile.read_text(), re.M)
    if found is None:
        raise SystemExit("Dockerfile: no ARG PYTHON_IMAGE=python:X.Y.Z-…")
    return found.group(1)


def environment(extra: str = "") -> dict[str, str]:
    """Where the image's requirement markers are evaluated: Linux, the image's Python (not this one's: a
    dependency such as ``async-timeout; python_full_version < "3.11.3"`` depends on its patch release)."""
    env = {k: str(v) for k, v in default_environment().items()}
    full = image_python()
    env.update(sys_platform="linux", platform_system="Linux", os_name="posix", extra=extra,
               python_full_version=full, python_version=".".join(full.split(".")[:2]))
    return env


def direct_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[Requirement]:
    project = tomllib.loads(pyproject.read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


BUILD_TOOLS = ("grpcio-tools",)  # from the dev extra: what proto/generate.py runs


def build_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[Requirement]:
    """The build backend and the code generator, with pyproject's ranges."""
    doc = tomllib.loads(pyproject.read_text())
    dev = [Requirement(r) for r in doc["project"]["optional-dependencies"]["dev"]]
    return [Requirement(r) for r in doc["build-system"]["requires"]] + \
        [r for r in dev if canonicalize_name(r.name) in BUILD_TOOLS]


def closure(roots: list[Requirement]) -> dict[str, str]:
    """Canonical name -> installed version of every package ``roots`` need on Linux."""
    pinned: dict[str, str] = {}
    todo: list[tuple[Requirement, str]] = [(r, "") for r in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate(environment(extra)):
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
                if sub.marker is None or sub.marker.evaluate(environment(wanted)):
                    todo.append((sub, wanted))
                    break
    return pinned


def render(pins: dict[str, str], *, build: bool = False) -> str:
    py = image_python()
    if build:
        lines = [
            "# What the image's build stage adds to requirements.txt, pinned (generated; do not edit).",
            "#   .venv/bin/python deploy/image/lock.py --build > deploy/image/build-requirements.txt",
            f"# The build backend and grpcio-tools (proto/generate.py) for Linux, Python {py}; not in the runtime.",
        ]
    else:
        lines = [
            "# The image's Python packages, pinned (generated; do not edit).",
            "#   .venv/bin/python deploy/image/lock.py > deploy/image/requirements.txt",
            f"# Closure of pyproject.toml's dependencies for Linux, Python {py}.",
        ]
    lines += [f"{name}=={version}" for name, version in sorted(pins.items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    runtime = closure(direct_requirements())
    if args == ["--build"]:
        extra = {n: v for n, v in closure(build_requirements()).items() if n not in runtime}
        sys.stdout.write(render(extra, build=True))
    elif not args:
        sys.stdout.write(render(runtime))
    else:
        sys.stderr.write("usage: lock.py [--build]\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
