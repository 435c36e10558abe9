"""Binds features/smoke.feature."""

from pytest_bdd import scenarios

scenarios("smoke.feature")
