"""docs/configuration.md against app/config.py: every declared variable has a row with its
default, and the page names no variable that is not declared. The page stays hand-written;
only its tables' first two columns are checked."""

from __future__ import annotations

import functools
import re

import pytest

from app.config import SETTINGS_CLASSES, declarations
from tests.support.processes import ROOT

DOCS = ROOT / "docs" / "configuration.md"
DECLARED = {d.env: d for cls in SETTINGS_CLASSES for d in declarations(cls).values()}
NAME = re.compile(r"`([A-Z][A-Z0-9_]*)`")
# Anything in the page spelled like one of our variables, in a table or in prose.
VARIABLE_LIKE = re.compile(r"\b(?:OPS|SETTINGS|DEV|SUPABASE|WEB|FORWARDED|PROMETHEUS)_[A-Z0-9_]+")


@functools.cache
def documented() -> dict[str, str]:
    """Each variable a table row names in its first column, with the row's Default cell."""
    rows: dict[str, str] = {}
    for line in DOCS.read_text().splitlines():
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        for name in NAME.findall(cells[0]):
            assert name not in rows, f"{name} has two rows"
            rows[name] = cells[1].replace("`", "")
    return rows


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_each_declared_variable_has_a_row_with_its_default(name):
    assert name in documented(), f"docs/configuration.md has no row for {name}"
    assert documented()[name] == DECLARED[name].documented_default


def test_the_page_names_no_undeclared_variable():
    named = set(documented()) | set(VARIABLE_LIKE.findall(DOCS.read_text()))
    assert named - set(DECLARED) == set()


BOUNDS = re.compile(r"\b(\d[\d.]*)\s*(?:to|–)\s*(\d[\d.]*)\b")


@functools.cache
def stated_bounds() -> dict[str, tuple[float, float]]:
    """The ``low to high`` (or ``low–high``) a row's Meaning cell states, by variable."""
    bounds = {}
    for line in DOCS.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("|") and len(cells) > 2 and (found := BOUNDS.search(cells[2])):
            for name in NAME.findall(cells[0]):
                bounds[name] = (float(found[1]), float(found[2]))
    return bounds


def test_bounds_the_page_states_are_the_declared_ones():
    assert stated_bounds(), "the check found no bounds to compare"
    for name, (low, high) in stated_bounds().items():
        assert (DECLARED[name].low, DECLARED[name].high) == (low, high), name
