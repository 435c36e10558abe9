"""Skips that say what kind they are, decided where they are raised.

A scenario that cannot run is skipped with a reason *and* a category (gate/verdict.py's
:class:`~gate.verdict.SkipCategory`): ``not_applicable`` (the target cannot have it, e.g. no control
of a deployment's Redis), ``missing_config`` (the user did not supply a key, secret or receiver) or
``precondition`` (something this run needed did not hold, e.g. a window too long to wait for). The
category travels on the test report (``user_properties``) into ``summary.json``; nothing downstream
reads the reason's words to guess it. Every skip in features/ goes through these functions (a test
keeps it so).
"""

from __future__ import annotations

from typing import NoReturn

import pytest

from gate.verdict import SkipCategory

PROPERTY = "skip_category"


class CategorisedSkip(pytest.skip.Exception):  # type: ignore[name-defined,misc]
    """pytest's skip, carrying the category it was raised with."""

    def __init__(self, reason: str, category: SkipCategory) -> None:
        super().__init__(msg=reason)
        self.category = category


def skip(category: SkipCategory, reason: str) -> NoReturn:
    raise CategorisedSkip(reason, category)


def not_applicable(reason: str) -> NoReturn:
    """The target cannot have it: only this kind of skip may stand beside a pass."""
    skip(SkipCategory.NOT_APPLICABLE, reason)


def missing_config(reason: str) -> NoReturn:
    """The user did not give what the scenario needs: not a pass (exit 4)."""
    skip(SkipCategory.MISSING_CONFIG, reason)


def precondition(reason: str) -> NoReturn:
    """A precondition of this run did not hold: not a pass (exit 4)."""
    skip(SkipCategory.PRECONDITION, reason)


def category_of(excinfo: pytest.ExceptionInfo[BaseException] | None) -> SkipCategory | None:
    if excinfo is not None and isinstance(excinfo.value, CategorisedSkip):
        return excinfo.value.category
    return None
