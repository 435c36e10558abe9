"""Binds features/rate_limit.feature."""

from pytest_bdd import scenarios

scenarios("rate_limit.feature")
