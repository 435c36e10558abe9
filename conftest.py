"""Root conftest: fixture plugins shared by tests/ and features/."""

pytest_plugins = [
    "tests.plugins.redis_fixtures",
    "tests.plugins.pg_fixtures",
]
