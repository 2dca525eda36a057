"""The code the user pages show runs as shown: every ```python block of the pages below, and the examples
in the docstrings of the modules below (doctest)."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = ["solver.md", "simulator.md", "wages.md", "panel.md", "architecture.md"]
MODULES = ["lotj.sim.market"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks(page: str) -> list[str]:
    return BLOCK.findall((DOCS / page).read_text())


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)])
def test_the_code_blocks_of_a_page_run(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for k, code in enumerate(blocks(page)):
        exec(compile(code, f"{page}[{k}]", "exec"), {"__name__": f"docs_{k}"})
    assert capsys.readouterr().out  # each page's example prints what it computed


@pytest.mark.parametrize("name", MODULES)
def test_the_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
