"""The catalogue of typical mistakes (docs/mistakes.md) and the tests that apply them agree.

Every exercise with a check lists at least three mistakes; every listed mistake has a test
labelled ``mistake("NN.N", "slug")`` (tests/mistakes.py), and every label is in the catalogue.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CATALOGUE = REPO / "docs" / "mistakes.md"
MIN_MISTAKES = 3

EXERCISE = re.compile(r'@exercise\(\s*"(\d\d\.\d)"')
HEADING = re.compile(r"^##+ (\d\d\.\d)\b")
ROW = re.compile(r"^\|\s*`([a-z0-9-]+)`\s*\|")
LABEL = re.compile(r'mistake\(\s*"(\d\d\.\d)"\s*,\s*"([a-z0-9-]+)"\s*\)')


def exercises() -> set[str]:
    found = set()
    for module in (REPO / "lab_env" / "course" / "checks").glob("*.py"):
        if module.name != "__init__.py":
            found |= set(EXERCISE.findall(module.read_text(encoding="utf-8")))
    return found


def catalogue() -> dict[str, list[str]]:
    """Exercise -> the slugs of its mistakes, in the catalogue's order."""
    listed: dict[str, list[str]] = defaultdict(list)
    current = None
    for line in CATALOGUE.read_text(encoding="utf-8").splitlines():
        if heading := HEADING.match(line):
            current = heading.group(1)
        elif (row := ROW.match(line)) and current:
            listed[current].append(row.group(1))
    return listed


def labels() -> dict[tuple[str, str], list[str]]:
    """(exercise, slug) -> the test files that apply it."""
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted((REPO / "tests").glob("test_*.py")):
        if path.name == Path(__file__).name:
            continue
        for exercise, slug in LABEL.findall(path.read_text(encoding="utf-8")):
            found[(exercise, slug)].append(path.name)
    return found


def test_there_are_the_exercises_of_m0_to_m7() -> None:
    assert len(exercises()) >= 32, sorted(exercises())


def test_every_exercise_lists_at_least_three_mistakes() -> None:
    listed = catalogue()
    short = {e: listed.get(e, []) for e in sorted(exercises()) if len(listed.get(e, [])) < 3}
    assert not short, f"exercises with fewer than {MIN_MISTAKES} mistakes listed: {short}"
    unknown = sorted(set(listed) - exercises())
    assert not unknown, f"{CATALOGUE.name} lists exercises no check has: {unknown}"
    for exercise, slugs in listed.items():
        assert len(slugs) == len(set(slugs)), f"{exercise} lists a mistake twice: {slugs}"


def test_every_listed_mistake_has_a_test() -> None:
    tested = labels()
    untested = [f"{e} {s}" for e, slugs in catalogue().items() for s in slugs
                if (e, s) not in tested]
    assert not untested, f"mistakes in {CATALOGUE.name} without a test: {untested}"


def test_every_mistake_test_is_in_the_catalogue() -> None:
    listed = {(e, s) for e, slugs in catalogue().items() for s in slugs}
    unlisted = sorted(f"{e} {s} ({', '.join(files)})" for (e, s), files in labels().items()
                      if (e, s) not in listed)
    assert not unlisted, f"mistake tests missing from {CATALOGUE.name}: {unlisted}"
