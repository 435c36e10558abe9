"""The audit migrations, in the style of pytest-alembic, against a real PostgreSQL.

- one head, one base, a straight line between them (no branches to merge at deploy time);
- upgrade base -> head and downgrade head -> base, leaving nothing behind;
- up/down/up for every revision (the "stairway"): each downgrade undoes its upgrade exactly, and the
  upgrade can run again after it;
- the schema the migrations build is the one the code expects: Alembic's autogenerate comparison
  against the table the service's SQL is written for finds no difference;
- ``alembic upgrade head --sql`` (offline mode, for DBAs who review DDL first) renders the DDL.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from contextlib import redirect_stdout
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import postgresql
from sqlalchemy.pool import NullPool

from gate.stack.postgres.server import EmbeddedPostgres
from service import audit
from service.audit import current_revision, downgrade, head_revisions, migrate, sqlalchemy_url


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(audit._alembic_config("postgresql://unused"))


def _revisions_base_first() -> list[str]:
    return [r.revision for r in reversed(list(_script().walk_revisions("base", "heads")))]


@pytest.fixture
def empty_db(pg_server: EmbeddedPostgres) -> Iterator[str]:
    name = f"mig_{uuid.uuid4().hex[:12]}"
    pg_server.create_database(name)
    yield pg_server.url(name)
    pg_server.drop_database(name)


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return list(conn.execute(query).fetchall())


SNAPSHOT = {
    "tables": "SELECT tablename FROM pg_tables "
    "WHERE schemaname = 'public' AND tablename <> 'alembic_version' ORDER BY 1",
    "columns": "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity, "
    "identity_generation FROM information_schema.columns "
    "WHERE table_schema = 'public' AND table_name <> 'alembic_version' ORDER BY 1, 2",
    "indexes": "SELECT indexname, indexdef FROM pg_indexes "
    "WHERE schemaname = 'public' AND tablename <> 'alembic_version' ORDER BY 1",
    "constraints": "SELECT c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
    "JOIN pg_namespace n ON n.oid = c.connamespace "
    "WHERE n.nspname = 'public' AND c.conrelid::regclass::text <> 'alembic_version' ORDER BY 1",
    "sequences": "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1",
    # enums, domains and free-standing composite types (a table's row type comes and goes with it)
    "types": "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
    "WHERE n.nspname = 'public' AND (t.typtype IN ('e', 'd') "
    "OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')) ORDER BY 1",
}


def schema(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the migrations own in the public schema, alembic's own bookkeeping aside."""
    return {name: _rows(url, query) for name, query in SNAPSHOT.items()}


def _empty(snapshot: dict[str, list[tuple[Any, ...]]]) -> bool:
    return not any(snapshot.values())


# -- the revision graph ------------------------------------------------------------------------------------


def test_single_head_single_base_no_branches() -> None:
    script = _script()
    assert len(script.get_heads()) == 1, f"several heads {script.get_heads()}: merge them"
    assert len(script.get_bases()) == 1
    assert head_revisions() == tuple(script.get_heads())
    for rev in script.walk_revisions():
        assert not rev.is_branch_point, f"{rev.revision} has several children"
        assert not rev.is_merge_point or rev.revision == script.get_current_head()
    order = _revisions_base_first()
    assert order[0] == script.get_bases()[0] and order[-1] == script.get_current_head()


# -- upgrade / downgrade -----------------------------------------------------------------------------------


def test_upgrade_base_to_head(empty_db: str) -> None:
    assert current_revision(empty_db) is None
    migrate(empty_db, "head")
    assert current_revision(empty_db) == _script().get_current_head()
    assert [t[0] for t in schema(empty_db)["tables"]] == ["audit_log"]


def test_downgrade_head_to_base_leaves_nothing(empty_db: str) -> None:
    migrate(empty_db, "head")
    downgrade(empty_db, "base")
    assert current_revision(empty_db) is None
    left = schema(empty_db)
    assert _empty(left), f"the downgrade left objects behind: {left}"


def test_up_down_up_for_every_revision(empty_db: str) -> None:
    """The stairway: for each revision, upgrade to it, step back one, and upgrade again; the schema
    after the second upgrade is identical to the one after the first."""
    script = _script()
    previous_snapshot = schema(empty_db)
    for rev in _revisions_base_first():
        migrate(empty_db, rev)
        after_up = schema(empty_db)
        assert after_up != previous_snapshot, f"revision {rev} changed nothing"
        down_to = script.get_revision(rev).down_revision or "base"
        assert isinstance(down_to, str), f"{rev} is a merge point; step through it by hand"
        downgrade(empty_db, down_to)
        assert current_revision(empty_db) == (None if down_to == "base" else down_to)
        assert schema(empty_db) == previous_snapshot, f"downgrading {rev} did not undo it exactly"
        migrate(empty_db, rev)
        assert schema(empty_db) == after_up, f"{rev} upgraded twice gives a different schema"
        previous_snapshot = after_up


# -- the schema the code expects -------------------------------------------------------------------------


def expected_metadata() -> sa.MetaData:
    """The audit_log the service's SQL is written for (service/audit.py reads and writes these)."""
    md = sa.MetaData()
    sa.Table(
        "audit_log",
        md,
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column("request_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("webhook_id", sa.Text, nullable=False),
        sa.Column("workspace", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("delivery_status", sa.Text, nullable=False),
        sa.Column("http_status", sa.Integer, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("latency_ms", sa.Double, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
        sa.UniqueConstraint("request_id", name="uq_audit_log_request_id"),
        sa.Index("ix_audit_log_workspace_created_at", "workspace", "created_at"),
    )
    return md


def test_the_migrated_schema_matches_what_the_code_expects(empty_db: str) -> None:
    migrate(empty_db, "head")
    md = expected_metadata()
    engine = sa.create_engine(sqlalchemy_url(empty_db), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            diff = compare_metadata(ctx, md)
    finally:
        engine.dispose()
    # the newest-first index is on expressions (created_at DESC, id DESC), which autogenerate does not
    # model; it is checked by its definition below instead
    diff = [d for d in diff if not (d[0] == "remove_index" and d[1].name == "ix_audit_log_created_at_id")]
    assert diff == [], f"the migrations and the code's schema differ: {diff}"

    snapshot = schema(empty_db)
    indexes = dict(snapshot["indexes"])
    assert "(created_at DESC, id DESC)" in indexes["ix_audit_log_created_at_id"]
    checks = {name: ddl for name, ddl in snapshot["constraints"] if name.startswith("ck_")}
    assert set(checks) == {"ck_audit_log_status", "ck_audit_log_attempts", "ck_audit_log_completed"}
    # every column the service selects exists
    columns = {c[1] for c in snapshot["columns"]}
    assert {c.strip() for c in audit._COLUMNS.split(",")} <= columns


def test_offline_mode_renders_the_ddl() -> None:
    cfg = audit._alembic_config("postgresql://user:secret@db.invalid/relay")
    out = io.StringIO()
    cfg.stdout = out
    with redirect_stdout(out):
        command.upgrade(cfg, "head", sql=True)
    ddl = out.getvalue()
    assert "CREATE TABLE audit_log" in ddl and "CREATE INDEX ix_audit_log_created_at_id" in ddl
    assert "secret" not in ddl
