"""What the drill checks a restore against: the restored database counted and digested in its
manifest's key order and chunks (any table the manifest does not name included), then compared with
the manifest table by table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from gate.drill.fingerprint import KeyCol, PgConn, TablePlan, TablePrint, connect, fingerprint, list_tables


def fingerprint_restore(
    target: PgConn, manifest_tables: list[dict[str, Any]], *, jobs: int
) -> list[TablePrint]:
    """Count and digest the restore in the manifest's key order and chunks, plus any extra table."""
    with connect(target, "relay-gate drill", role="restored database") as conn:
        present = {t.qualified: t for t in list_tables(conn)}
    plans = []
    for m in manifest_tables:
        t = present.pop(f"{m['schema']}.{m['table']}", None)
        if t is not None:
            same_key = [k.name for k in t.key] == m["key"]
            key = t.key if same_key else tuple(KeyCol(n, False, False) for n in m["key"])
            bounds = tuple((c["from"], c["to"]) for c in m["chunks"]) or ((None, None),)
            plans.append(TablePlan(t.schema, t.name, key, bounds))
    plans += present.values()  # extra tables, to be named
    return fingerprint(target, plans, jobs=jobs, tolerate_errors=True)


def compare_tables(
    manifest_tables: list[dict[str, Any]], restored: list[TablePrint]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Table by table, the manifest's counts and digests against the restore's; the problems in words."""
    got = {p.plan.qualified: p for p in restored}
    rows, problems = [], []
    for m in manifest_tables:
        name = f"{m['schema']}.{m['table']}"
        p = got.pop(name, None)
        entry: dict[str, Any] = {
            "table": name,
            "key": m["key"],
            "source": {"rows": m["rows"], "digest": m["digest"]},
        }
        if p is None or p.error:
            problems.append(f"{name} is missing from the restore" if p is None else f"{name}: {p.error}")
            entry.update(
                restored=None,
                rows_match=False,
                digest_match=False,
                status="missing" if p is None else "error",
            )
        else:
            bad = [
                {"from": c["from"], "to": c["to"]}
                for c, got_chunk in zip(m["chunks"], p.chunks, strict=False)
                if got_chunk != (c["rows"], c["digest"])
            ]
            rows_ok, digest_ok = p.rows == m["rows"], p.digest == m["digest"] and not bad
            entry.update(
                restored={"rows": p.rows, "digest": p.digest}, rows_match=rows_ok, digest_match=digest_ok
            )
            entry.update(chunks_differing=bad, status="match" if rows_ok and digest_ok else "differs")
            if not rows_ok:
                problems.append(f"{name} has {p.rows} rows, the backup {m['rows']}")
            elif not digest_ok:
                problems.append(f"{name} content differs from the backup ({len(bad)} chunk(s))")
        rows.append({**entry, "match": entry["status"] == "match"})
    for name, p in got.items():
        problems.append(f"{name} is in the restore but not in the manifest")
        extra = {"source": None, "restored": {"rows": p.rows, "digest": p.digest}, "status": "extra"}
        rows.append({"table": name, "key": [k.name for k in p.plan.key], **extra,
                     "rows_match": False, "digest_match": False, "match": False})  # fmt: skip
    return rows, problems


@dataclass(frozen=True)
class ExpectedRows:
    """Rows the caller knows the source held when the backup was taken (the request ids of executes
    made through the API): the restore must hold each of them, found by value, not by a row count."""

    table: str  # schema.table
    column: str
    values: tuple[str, ...]


def check_expected(target: PgConn, expected: list[ExpectedRows]) -> list[dict[str, Any]]:
    """For each :class:`ExpectedRows`, which of its values the restored database holds."""
    out = []
    with connect(target, "relay-gate drill", role="restored database") as conn:
        for e in expected:
            schema, _, table = e.table.partition(".")
            query = sql.SQL("SELECT DISTINCT {col}::text FROM {tbl} WHERE {col}::text = ANY(%s)").format(
                col=sql.Identifier(e.column), tbl=sql.Identifier(schema, table)
            )
            error: str | None = None
            try:
                found = {str(r[0]) for r in conn.execute(query, (list(e.values),)).fetchall()}
            except psycopg.Error as exc:
                conn.rollback()
                found, error = set(), str(exc).splitlines()[0]
            missing = [v for v in e.values if v not in found]
            found_n = len(e.values) - len(missing)
            out.append({"table": e.table, "column": e.column, "wanted": len(e.values), "found": found_n,
                        "missing": missing[:20], "error": error})  # fmt: skip
    return out
