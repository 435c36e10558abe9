"""Binds features/restore_drill.feature."""

from pytest_bdd import scenarios

scenarios("restore_drill.feature")
