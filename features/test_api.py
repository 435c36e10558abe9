"""Binds features/api.feature."""

from pytest_bdd import scenarios

scenarios("api.feature")
