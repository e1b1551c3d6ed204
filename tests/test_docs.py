"""Every fenced code block in the documentation is real.

For each Markdown file under ``docs/`` and the README:

* ```` ```python ```` blocks run, in order, in one namespace per file, in a temporary working
  directory. Tracebacks point at the Markdown file and line.
* ```` ```toml ```` blocks parse with :mod:`tomllib`; a block holding a pipeline (a ``[sensor]``,
  ``[store]``, ``[[transforms]]``, ``[[sinks]]`` or ``[run]`` section) is checked with
  :func:`cosmobac.config.parse_config`, with every ``${VAR}`` that has no default set to ``"1"``.
  When it needs no such stand-in, its sensor and transforms (which touch no files) are also built,
  so a wrong value fails here too.
* ```` ```console ```` and ```` ```bash ```` blocks are not run, but every ``cosmobac`` command line in
  them must name a real command and real options.

A block preceded by the line ``<!-- skip-test -->`` is left out. A block preceded by
``<!-- same-as: PATH -->`` must equal that file of the repository (and still runs as above), so a
listing of real code cannot drift from the code.
"""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path

import attrs
import click
import pytest

from cosmobac.cli import cli
from cosmobac.config import parse_config
from cosmobac.plugins import Plugins, set_plugins

pytestmark = pytest.mark.needs_plugins  # the docs use every distribution

ROOT = Path(__file__).resolve().parent.parent
DOCS = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
SKIP_MARK = "<!-- skip-test -->"
_SAME_AS = re.compile(r"^<!-- same-as: (?P<path>\S+) -->$")
PIPELINE_SECTIONS = frozenset({"sensor", "store", "transforms", "sinks", "run"})
_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*?)\s*$")
_VAR_NO_DEFAULT = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


@attrs.frozen
class Block:
    path: Path
    line: int  # 1-based line of the first line of code (after the opening fence)
    lang: str
    code: str
    skip: bool
    same_as: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of one Markdown file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = _OPEN.match(lines[i])
        if match is None:
            i += 1
            continue
        indent, fence = match["indent"], match["fence"]
        lang = match["info"].split()[0].lower() if match["info"].split() else ""
        before = lines[i - 1].strip() if i > 0 else ""
        skip = before == SKIP_MARK
        same_as = _SAME_AS.match(before)
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            stripped = lines[j].strip()
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
                break
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        code = "\n".join(body) + "\n"
        found.append(Block(path, i + 2, lang, code, skip, same_as and same_as["path"]))
        i = j + 1
    return found


def docs_ids() -> list[str]:
    return [str(p.relative_to(ROOT)) for p in DOCS]


def of_lang(path: Path, *langs: str) -> Iterator[Block]:
    return (b for b in blocks(path) if b.lang in langs and not b.skip)


# -- python ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", DOCS, ids=docs_ids())
def test_python_blocks_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    saved_env = dict(os.environ)
    previous_plugins = set_plugins(None)  # each file starts from a fresh process-wide registry
    namespace: dict[str, object] = {"__name__": "__docs__"}
    try:
        for block in of_lang(path, "python", "py"):
            # pad so line numbers in tracebacks are the Markdown file's own
            code = compile("\n" * (block.line - 1) + block.code, str(block.path), "exec")
            try:
                exec(code, namespace)
            except BaseException as exc:
                exc.add_note(f"in the python block at {block.where}")
                raise
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        set_plugins(previous_plugins)


# -- toml -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return Plugins()


@pytest.mark.parametrize("path", DOCS, ids=docs_ids())
def test_toml_blocks_are_valid(path, plugins, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for block in of_lang(path, "toml"):
        try:
            data = tomllib.loads(block.code)
        except tomllib.TOMLDecodeError as exc:
            pytest.fail(f"{block.where}: not valid TOML: {exc}")
        if not PIPELINE_SECTIONS & set(data):
            continue
        env = {name: "1" for name in _VAR_NO_DEFAULT.findall(block.code)}  # defaults apply
        config = parse_config(data, source=block.where, env=env, plugins=plugins)
        if env:
            continue  # "1" stands in for values the reader supplies: check keys, not values
        for component in [config.sensor, *config.transforms]:
            if component is not None:
                built = component.build(plugins)
                close = getattr(built, "close", None)
                if callable(close):
                    close()


# -- console --------------------------------------------------------------------------------------
def command_lines(code: str) -> Iterator[list[str]]:
    """Token lists of the ``cosmobac`` invocations in a shell snippet."""
    text = code.replace("\\\n", " ")
    for line in text.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        try:
            tokens = list(lexer)
        except ValueError:
            continue
        segment: list[str] = []
        for token in [*tokens, ";"]:
            if token in {"&&", "||", "|", ";", "&", "(", ")"}:
                while segment and _ENV_ASSIGNMENT.match(segment[0]):
                    segment.pop(0)
                if segment[:1] == ["$"]:
                    segment.pop(0)
                if segment[:1] == ["cosmobac"]:
                    yield segment
                segment = []
            else:
                segment.append(token)


def check_command(group: click.Group, tokens: list[str], where: str) -> None:
    command: click.Command = group
    names = ["cosmobac"]
    for token in tokens[1:]:
        if token.startswith("-"):
            option = token.split("=", 1)[0]
            known = {
                opt
                for param in command.params
                for opt in (*param.opts, *getattr(param, "secondary_opts", ()))
            } | {"-h", "--help"}
            if option == "-vv" and "-v" in known:
                continue
            assert option in known, (
                f"{where}: `{' '.join(names)}` has no option {option}; it has {sorted(known)}"
            )
        elif isinstance(command, click.Group):
            sub = command.commands.get(token)
            assert sub is not None, (
                f"{where}: `{' '.join(names)}` has no command {token!r}; it has "
                f"{sorted(command.commands)}"
            )
            command = sub
            names.append(token)


@pytest.mark.parametrize("path", DOCS, ids=docs_ids())
def test_console_blocks_name_real_commands_and_options(path):
    group = click.Group(name="cosmobac", commands=dict(cli.commands), params=list(cli.params))
    Plugins().add_commands(group)
    for block in of_lang(path, "console", "bash", "sh", "shell"):
        for tokens in command_lines(block.code):
            check_command(group, tokens, block.where)


# -- listings of repository files -----------------------------------------------------------------
@pytest.mark.parametrize("path", DOCS, ids=docs_ids())
def test_listings_match_the_files_they_show(path):
    for block in blocks(path):
        if block.same_as is None:
            continue
        source = ROOT / block.same_as
        assert source.is_file(), f"{block.where}: same-as names a missing file {block.same_as}"
        assert block.code == source.read_text(encoding="utf-8"), (
            f"{block.where}: the listing differs from {block.same_as}; copy the file again"
        )


# -- links ----------------------------------------------------------------------------------------
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*$")


def anchors(path: Path) -> set[str]:
    """GitHub-style anchors of a Markdown file's headings (outside code blocks)."""
    found: set[str] = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match:
            found.add(re.sub(r"[^\w\- ]", "", match[1].lower()).replace(" ", "-"))
    return found


@pytest.mark.parametrize("path", DOCS, ids=docs_ids())
def test_relative_links_resolve(path):
    for link in _LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", link):
            continue  # http(s), mailto: not checked here
        target, _, fragment = link.partition("#")
        resolved = (path.parent / target).resolve() if target else path
        assert resolved.exists(), f"{path.relative_to(ROOT)}: broken link {link}"
        if fragment and resolved.is_file() and resolved.suffix == ".md":
            assert fragment in anchors(resolved), (
                f"{path.relative_to(ROOT)}: link {link} names no heading of {target or 'this page'}"
            )


# -- the checker itself ---------------------------------------------------------------------------
def test_blocks_are_found_with_their_language_line_and_skip_mark(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n```python\nx = 1\n```\n\n<!-- skip-test -->\n```toml\na = 1\n```\n\n"
        "- item\n\n  ```console\n  cosmobac plugins\n  ```\n"
        "<!-- same-as: noxfile.py -->\n```python\nx = 2\n```\n"
    )
    found = [(b.lang, b.line, b.code, b.skip, b.same_as) for b in blocks(page)]
    assert found == [
        ("python", 4, "x = 1\n", False, None),
        ("toml", 9, "a = 1\n", True, None),
        ("console", 15, "cosmobac plugins\n", False, None),
        ("python", 19, "x = 2\n", False, "noxfile.py"),
    ]


def test_command_lines_are_split_and_checked():
    code = "OUT=x cosmobac run a.toml --duration 1h && cosmobac status a.toml --json  # note\n"
    assert list(command_lines(code)) == [
        ["cosmobac", "run", "a.toml", "--duration", "1h"],
        ["cosmobac", "status", "a.toml", "--json"],
    ]
    with pytest.raises(AssertionError, match="no option --durations"):
        check_command(cli, ["cosmobac", "run", "a.toml", "--durations", "1h"], "here")
    with pytest.raises(AssertionError, match="no command 'launch'"):
        check_command(cli, ["cosmobac", "launch"], "here")


def test_anchors_follow_github_rules(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Getting started\n## `register_sinks`\n```text\n# not a heading\n```\n"
        "## The example plugin, walked through\n"
    )
    assert anchors(page) == {
        "getting-started",
        "register_sinks",
        "the-example-plugin-walked-through",
    }
