"""Alembic environment for the audit schema.

The database URL comes from, in order: the ``database_url`` attribute set by
:func:`service.audit.migrate` (programmatic runs), the ``DATABASE_URL`` environment variable
(operators: ``DATABASE_URL=... alembic upgrade head``), or ``sqlalchemy.url`` in alembic.ini.
``postgresql://`` URLs are run through SQLAlchemy's psycopg 3 driver. No ORM metadata: the
migrations are written by hand, so autogenerate is not used.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from service.audit import sqlalchemy_url

config = context.config

# Only the CLI (which has an ini file) configures logging; programmatic runs leave the app's alone.
if config.config_file_name is not None and config.attributes.get("database_url") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _database_url() -> str:
    url = (
        config.attributes.get("database_url")
        or os.environ.get("DATABASE_URL")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise RuntimeError("no database to migrate: set DATABASE_URL (postgresql://user:password@host/db)")
    return sqlalchemy_url(url)


def run_migrations_offline() -> None:
    """``alembic upgrade head --sql``: print the SQL instead of running it."""
    context.configure(url=_database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # NullPool: a migration run must leave no connection behind (a database with open sessions
    # cannot be used as a template or dropped).
    engine = create_engine(_database_url(), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, transaction_per_migration=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
