"""The API reference generated from docstrings (docs/reference/api.md) is current and complete."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "docs" / "gen_api_reference.py"


def generator():
    spec = importlib.util.spec_from_file_location("gen_api_reference", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_api_reference_is_current():
    page, _ = generator().render()
    committed = (ROOT / "docs" / "reference" / "api.md").read_text(encoding="utf-8")
    assert committed == page, "docs/reference/api.md is stale: run python docs/gen_api_reference.py"


def test_every_public_function_and_class_has_a_docstring():
    _, undocumented = generator().render()
    assert undocumented == []


def test_the_page_lists_every_top_level_name():
    import cosmobac

    page, _ = generator().render()
    for name in cosmobac.__all__:
        assert f"### `cosmobac.{name}`" in page
