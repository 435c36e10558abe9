"""Binds features/audit.feature."""

from pytest_bdd import scenarios

scenarios("audit.feature")
