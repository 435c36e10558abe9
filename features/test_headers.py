"""Binds features/headers.feature."""

from pytest_bdd import scenarios

scenarios("headers.feature")
