"""Binds features/signing.feature."""

from pytest_bdd import scenarios

scenarios("signing.feature")
