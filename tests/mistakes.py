"""Label a test as the test of one typical mistake of an exercise (the catalogue: docs/mistakes.md).

``@mistake("03.3", "no-positive-price-rule")`` on a test function, or
``pytest.param(..., marks=mistake(...))`` on one case of a parametrised test. A test so
labelled applies the mistake to the solution, feeds it to the exercise's check the way the
notebook calls it, and asserts the check fails with a hint that names the mistake.
tests/test_mistakes_catalogue.py holds docs/mistakes.md and these labels equal.
"""

from __future__ import annotations

import pytest


def mistake(exercise: str, slug: str) -> pytest.MarkDecorator:
    """The ``mistake`` marker: this test applies mistake ``slug`` of ``exercise``."""
    return pytest.mark.mistake(exercise, slug)
