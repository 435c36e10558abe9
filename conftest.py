"""Root conftest: fixture plugins shared by tests/ and features/.

The options, markers and session ``stack`` fixture the scenarios need live in features/plugin.py, an
importable module, so that an installed gate (``relay-gate check`` from a wheel, no source checkout)
has them too; here they are loaded like the test suite's own fixture plugins.
"""

pytest_plugins = [
    "tests.plugins.redis_fixtures",
    "tests.plugins.pg_fixtures",
    "tests.plugins.wheel_fixtures",
    "features.plugin",
]
