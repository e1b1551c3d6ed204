"""Meta-tests: every hook has a test and a docs entry; every config key is in the reference."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from cosmobac import hookspecs
from cosmobac.config import _ALERT_CONVERTERS, _MONITORING_CONVERTERS, _RUN_CONVERTERS
from cosmobac.plugins import Plugins

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(
    name
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(fn, "cosmobac_spec")
)


def test_there_are_hooks_to_check():
    assert {
        "register_sensors",
        "register_stores",
        "register_transforms",
        "register_sinks",
        "register_commands",
    } <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook):
    this = Path(__file__).name
    tests = [p for p in (ROOT / "tests").rglob("test_*.py") if p.name != this]
    pattern = re.compile(rf"def test_{hook}\w*\(")
    assert any(pattern.search(p.read_text()) for p in tests), (
        f"no test function named test_{hook}... for hook {hook}"
    )


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_docs_entry(hook):
    reference = (ROOT / "docs" / "reference" / "hooks.md").read_text()
    assert f"## `{hook}`" in reference, f"docs/reference/hooks.md has no '## `{hook}`' section"


def config_keys() -> list[tuple[str, str]]:
    keys = [("[run]", key) for key in _RUN_CONVERTERS]
    keys += [("[monitoring]", key) for key in _MONITORING_CONVERTERS]
    keys += [("[[alerts]]", key) for key in _ALERT_CONVERTERS]
    for component in Plugins().components():
        for key in component.accepted_keys() or []:
            keys.append((f"{component.kind} `{component.name}`", key))
    return keys


def _level(line: str) -> int:
    return len(line) - len(line.lstrip("#")) if line.startswith("#") else 0


def section(text: str, marker: str, kind: str | None = None) -> str:
    """The part of ``text`` under a heading containing ``marker``, to the next heading of the same
    or a higher level: the first such heading, or with ``kind`` (``sensor``, ``sink``, …) the
    first whose own line or an enclosing heading names that kind (a ``csv`` sensor and a ``csv``
    sink each have their own section)."""
    lines = text.splitlines()
    found: list[int] = []
    for i, line in enumerate(lines):
        if line.startswith("#") and marker in line:
            found.append(i)
    if kind is not None and len(found) > 1:

        def names_kind(i: int) -> bool:
            level, context = _level(lines[i]), [lines[i]]
            for above in reversed(lines[:i]):
                if 0 < _level(above) < level:
                    context.append(above)
                    level = _level(above)
            return any(kind.lower() in heading.lower() for heading in context)

        found = [i for i in found if names_kind(i)] or found
    if not found:
        return ""
    start = found[0]
    level = _level(lines[start])
    body = []
    for following in lines[start + 1 :]:
        if following.startswith("#") and _level(following) <= level:
            break
        body.append(following)
    return "\n".join(body)


def reference_text() -> str:
    """The config reference: docs/reference/config.md and any docs/reference/config-*.md pages
    (one per plugin distribution)."""
    pages = sorted((ROOT / "docs" / "reference").glob("config*.md"))
    return "\n".join(page.read_text() for page in pages)


@pytest.mark.parametrize(("where", "key"), config_keys())
def test_every_config_key_is_in_the_reference(where, key):
    kind = None
    if where.endswith("`") and " `" in where:  # a component: "sensor `csv`"
        kind, where = where.split(" ", 1)
    body = section(reference_text(), where, kind)
    assert body, f"docs/reference/config*.md has no heading naming {where}"
    assert f"`{key}`" in body, f"docs/reference/config*.md, section {where}, lacks `{key}`"


def command_paths() -> list[str]:
    """Every command of the CLI, plugin commands included, as 'cosmobac a b'."""
    import click

    from cosmobac.cli import cli

    group = click.Group(commands=dict(cli.commands))
    Plugins().add_commands(group)
    paths = []

    def walk(command: click.Command, prefix: str) -> None:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, f"{prefix} {name}")
        else:
            paths.append(prefix)

    for name, command in group.commands.items():
        walk(command, f"cosmobac {name}")
    return sorted(paths)


@pytest.mark.parametrize("command", command_paths())
def test_every_command_is_documented(command):
    docs = "\n".join(p.read_text() for p in (ROOT / "docs").rglob("*.md"))
    assert f"`{command}" in docs, f"no page in docs/ shows `{command}`"
