"""The restore drill: restore the latest backup into an ephemeral database and prove it matches.

Phases: take the latest backup (gate/drill/backup.py) and check its size and SHA-256 against the manifest;
create an ephemeral database (on the source's server, on a throwaway embedded server, or on a server
the user names); ``pg_restore`` with exit-on-error semantics; count and digest every table *inside*
the restored database with the manifest's chunk plan; compare table by table, missing and extra tables
included; drop the ephemeral database whatever happened. Restore time (RTO) and backup age (RPO) are
measured against targets. The verdict is PASSED or FAILED with a one-line reason; ``drill.json``
(``relay-gate/drill@1``, docs/drill.md; written by gate/drill/record.py) records what was seen. The
counting and comparing of the restore is gate/drill/compare.py.
"""

from __future__ import annotations

import contextlib
import resource
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from gate import interrupts
from gate.drill.backup import sha256_of
from gate.drill.compare import ExpectedRows, check_expected, compare_tables, fingerprint_restore
from gate.drill.fingerprint import DEFAULT_JOBS, PgConn, connect, first_line
from gate.drill.layout import DEFAULT_RPO_S, DEFAULT_RTO_S, Backup, list_backups
from gate.errors import (
    EXIT_CRITERION,
    EXIT_INFRA,
    EXIT_OK,
    GateError,
    InfrastructureError,
    StackError,
    UsageError,
)
from gate.errors import CriterionFailed as Failed
from gate.results import utc_now
from gate.stack.postgres.tools import error_line, find_tool, no_space
from gate.stack.procs import tail
from gate.verdict import exit_code, outcome_of_exit, rank, worst

if TYPE_CHECKING:
    from gate.stack.postgres.server import EmbeddedPostgres

EPHEMERAL_PREFIX = "relay_gate_drill_"
BULK_TABLE = "bulk_events"
RESTORE_MODES = ("auto", "same", "embedded")
# RTO: from "restore it" to a restored database. Starting a throwaway server and verifying the restore
# are the drill's own work, not part of a real recovery.
RTO_PHASES = ("checksum", "create_db", "restore")
_INFRA, _INTEGRITY, _TARGET = 0, 1, 2  # failure ranks: the reason shown is the gravest failure


def seed_bulk_table(database_url: str, rows: int = 20_000) -> int:
    """Make sure ``bulk_events`` holds ids 1..``rows``, generated server-side with deterministic content
    (digests are the same on every run); idempotent. Returns the table's row count."""
    try:
        with psycopg.connect(PgConn.parse(database_url).dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {BULK_TABLE} (id bigint PRIMARY KEY, workspace text NOT NULL,"
                " kind text NOT NULL, payload text NOT NULL, amount numeric(12, 2) NOT NULL,"
                " created_at timestamptz NOT NULL)"
            )
            conn.execute(
                f"INSERT INTO {BULK_TABLE} SELECT g, 'ws-' || (g %% 7),"  # noqa: S608 - a constant
                " (ARRAY['execute', 'preview', 'deliver'])[1 + g %% 3], md5(g::text), (g %% 100000) / 100.0,"
                " timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second'"
                " FROM generate_series(1, %s::int) AS g ON CONFLICT (id) DO NOTHING",
                (rows,),
            )
            row = conn.execute(f"SELECT count(*) FROM {BULK_TABLE}").fetchone()  # noqa: S608
            return int(row[0]) if row else 0
    except psycopg.Error as exc:
        raise StackError("postgres", f"seeding {BULK_TABLE} failed: {first_line(exc)}") from None


def human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.2f} s"


@dataclass
class DrillOptions:
    # the database the backups are of: their manifests must name it. None: the drill restores the
    # latest backup of the folder whatever it is of (a deployment whose backups are all the gate has)
    database_url: str | None
    backup_dir: Path
    restore_to: str = "auto"  # auto | same | embedded | a postgresql:// URL of a server to restore on
    rto_s: float = DEFAULT_RTO_S
    rpo_s: float = DEFAULT_RPO_S
    jobs: int = 1  # pg_restore: 1 = --single-transaction (measured fastest, bench/drill_bench.py)
    verify_jobs: int = DEFAULT_JOBS
    pg_bin: Path | None = None
    run_id: str = ""
    # "latest": the newest backup of the folder, whoever took it; "this_run": relay-gate run took it a
    # moment ago, so the RPO says the tooling timestamps its dumps, not that backups run on schedule
    rpo_scope: str = "latest"
    # rows known to be in the source when the backup was taken: each must be found in the restore
    expected: list[ExpectedRows] = field(default_factory=list)


@dataclass
class DrillResult:
    doc: dict[str, Any]
    exit_code: int
    backup: Backup | None
    secrets: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.exit_code == EXIT_OK

    @property
    def reason(self) -> str:
        return str(self.doc["reason"])


def resolve_restore_to(restore_to: str, src: PgConn | None) -> str:
    """``auto``: ``same`` for a source on this machine (the reference stack's server), else
    ``embedded`` — a remote source is only read, never asked to hold a database of ours."""
    if restore_to == "auto":
        return "same" if src is not None and src.is_local else "embedded"
    if restore_to == "same" and src is None:
        raise UsageError("--restore-to same needs the source's --database-url (or use embedded or a URL)")
    if restore_to not in RESTORE_MODES:
        PgConn.parse(restore_to)  # UsageError (exit 2) when it is no database URL either
    return restore_to


class _Drill:
    def __init__(self, opts: DrillOptions) -> None:
        self.opts = opts
        # a UsageError before anything happens
        self.src = PgConn.parse(opts.database_url) if opts.database_url else None
        self.mode = resolve_restore_to(opts.restore_to, self.src)
        self.secrets = [s for s in (self.src.password if self.src else None, _password(opts.restore_to)) if s]
        self.failures: list[tuple[int, int, str]] = []  # (rank, exit code, one-line reason)
        self.backup: Backup | None = None
        self.embedded: EmbeddedPostgres | None = None
        self.t0 = time.monotonic()
        self.started = datetime.now(UTC)  # the RPO is the backup's age at this moment
        target = {"mode": self.mode if self.mode in RESTORE_MODES else "url", "database": None}
        self.doc: dict[str, Any] = {
            "run_id": opts.run_id, "started_at": _iso_ms(self.started), "finished_at": None, "verdict": None,
            "reason": None, "exit_code": None, "failures": [],
            "source": self.src.describe() if self.src is not None else None,
            "backup_dir": str(opts.backup_dir), "backup": None,
            "restore_target": {**target, "created": False, "dropped": None},
            "restore": None, "tables": [], "summary": None, "phases": {},
            "rto": {"target_s": opts.rto_s, "measured_s": None, "passed": False,
                    "definition": "checksum + create database + pg_restore"},
            "rpo": {"target_s": opts.rpo_s, "measured_s": None, "passed": False, "scope": opts.rpo_scope,
                    "definition": "drill start minus the backup's snapshot time"},
        }  # fmt: skip

    def fail(self, rank: int, code: int, reason: str) -> None:
        self.failures.append((rank, code, " ".join(reason.split())))

    @contextlib.contextmanager
    def phase(self, name: str, **info: Any) -> Iterator[None]:
        rec: dict[str, Any] = {"ok": False, **info}
        self.doc["phases"][name] = rec
        t = time.monotonic()
        try:
            yield
            rec["ok"] = True
        except Exception as exc:
            rec["error"] = " ".join(str(exc).split())[:300]
            raise
        finally:
            rec["duration_s"] = round(time.monotonic() - t, 3)

    def run(self) -> DrillResult:
        try:
            self._run()
        except GateError as exc:
            self.fail(_INFRA if exc.exit_code == EXIT_INFRA else _INTEGRITY, exc.exit_code, str(exc))
        except psycopg.Error as exc:  # a server that went away mid-drill
            self.fail(_INFRA, EXIT_INFRA, f"the database failed during the drill: {first_line(exc)}")
        except OSError as exc:  # an unreadable dump, a vanished directory
            self.fail(_INFRA, EXIT_INFRA, f"{type(exc).__name__}: {exc}")
        # the reason shown is the one that decides the exit code, then the gravest of its kind
        self.failures.sort(key=lambda f: (rank(outcome_of_exit(f[1])), f[0]))
        # gate/verdict.py's one precedence: a false criterion (1) outranks an infrastructure failure (5)
        code = exit_code(worst(outcome_of_exit(f[1]) for f in self.failures))
        s = self.doc["summary"]
        passed = (
            f"{s['tables']} tables, {s['rows_restored']} rows restored, all matching the backup" if s else ""
        )
        self.doc.update(
            verdict="PASSED" if code == EXIT_OK else "FAILED",
            exit_code=code,
            reason=self.failures[0][2] if self.failures else passed,
            failures=[f[2] for f in self.failures],
            finished_at=utc_now(),
            duration_s=round(time.monotonic() - self.t0, 3),
            process={"peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss},
        )
        return DrillResult(self.doc, code, self.backup, self.secrets)

    def _run(self) -> None:
        backup = self.backup = self._latest()
        manifest = backup.manifest()
        dump, totals = manifest.get("dump", {}), manifest.get("totals", {})
        self.doc["backup"] = {
            "file": str(backup.dump), "manifest": str(backup.manifest_path), "sha256": dump.get("sha256"),
            "size_bytes": dump.get("size_bytes"), "database": manifest.get("database"),
            "taken_at": manifest.get("taken_at"), "versions": manifest.get("versions"),
            "tables": totals.get("tables"), "rows": totals.get("rows"),
            "previously_verified": backup.verified,
        }  # fmt: skip
        self._check_database(manifest)
        self._rpo(str(manifest.get("taken_at")))
        with self.phase("checksum"):
            self._checksum(backup, dump)
        major = int(str(manifest.get("versions", {}).get("pg_dump", "0")).split(".")[0])
        pg_restore, version = find_tool("pg_restore", at_least=major, pg_bin=self.opts.pg_bin)
        with self._server() as admin:
            name = f"{EPHEMERAL_PREFIX}{secrets.token_hex(4)}"
            with self.phase("create_db"):
                self._create(admin, name, str(manifest.get("server_encoding", "UTF8")))
            try:
                with self.phase("restore"):
                    self._restore(pg_restore, version, admin.with_dbname(name), backup.dump)
                with self.phase("verify", jobs=self.opts.verify_jobs):
                    restored = fingerprint_restore(
                        admin.with_dbname(name), manifest["tables"], jobs=self.opts.verify_jobs
                    )
                    if self.opts.expected:
                        self.doc["expected_rows"] = check_expected(
                            admin.with_dbname(name), self.opts.expected
                        )
            finally:
                self._drop(admin, name)
        tables, problems = compare_tables(manifest["tables"], restored)
        self.doc["tables"] = tables
        self.doc["summary"] = {
            "tables": len(tables), "matching": sum(t["match"] for t in tables),
            "rows_source": sum(t["source"]["rows"] for t in tables if t["source"]),
            "rows_restored": sum(t["restored"]["rows"] for t in tables if t["restored"]),
        }  # fmt: skip
        for e in self.doc.get("expected_rows") or []:
            if e["found"] < e["wanted"]:
                why = e["error"] or f"missing {', '.join(e['missing'][:3])}"
                problems.append(
                    f"{e['table']}: {e['found']} of {e['wanted']} expected {e['column']} values ({why})"
                )
        if problems:
            more = f" (+{len(problems) - 2} more)" if len(problems) > 2 else ""
            self.fail(
                _INTEGRITY,
                EXIT_CRITERION,
                f"the restore differs from the backup: {'; '.join(problems[:2])}{more}",
            )
        rto = round(sum(self.doc["phases"][p]["duration_s"] for p in RTO_PHASES), 3)
        self.doc["rto"].update(measured_s=rto, passed=rto <= self.opts.rto_s)
        if rto > self.opts.rto_s:
            self.fail(
                _TARGET,
                EXIT_CRITERION,
                f"RTO exceeded: the restore took {human(rto)}, target {human(self.opts.rto_s)}",
            )

    def _latest(self) -> Backup:
        root = self.opts.backup_dir
        if not root.is_dir():
            raise Failed(
                f"backup directory {root} does not exist: no backup to restore (run relay-gate backup)"
            )
        backups = list_backups(root)
        if not backups:
            raise Failed(
                f"no backup in {root} (YYYY-MM-DD/<db>-<UTC>.dump with its manifest): run relay-gate backup"
            )
        return backups[-1]

    def _check_database(self, manifest: dict[str, Any]) -> None:
        """The backup must be of the source's database (when a source is named)."""
        if self.src is None:  # no source named: the manifest says what the backup is of
            self.doc["source"] = {**(manifest.get("source") or {}), "from": "the backup's manifest"}
        elif manifest.get("database") != self.src.dbname:
            raise Failed(
                f"wrong database: the latest backup is of {manifest.get('database')!r}, the source is "
                f"{self.src.dbname!r} (keep one --dir per database)"
            )

    def _rpo(self, taken_at: str) -> None:
        """Recorded now, judged with the other failures once the restore has run: an old backup is still
        proven restorable (or not) in the same run."""
        try:
            taken = datetime.fromisoformat(taken_at.replace("Z", "+00:00"))
        except ValueError:
            raise Failed(f"the manifest's taken_at {taken_at!r} is not a timestamp") from None
        age = round((self.started - taken).total_seconds(), 3)
        self.doc["rpo"].update(measured_s=age, passed=age <= self.opts.rpo_s, taken_at=taken_at)
        if age > self.opts.rpo_s:
            why = f"RPO exceeded: the latest backup is {human(age)} old, target {human(self.opts.rpo_s)}"
            self.fail(_TARGET, EXIT_CRITERION, why)

    def _checksum(self, backup: Backup, dump: dict[str, Any]) -> None:
        if not backup.dump.is_file():
            raise Failed(f"backup missing: {backup.dump} (named by its manifest) does not exist")
        sha, size = sha256_of(backup.dump)
        self.doc["backup"].update(sha256_actual=sha, size_actual=size, checksum_ok=False)
        if size < int(dump.get("size_bytes", 0)):
            raise Failed(
                f"truncated dump: {backup.dump.name} has {size} bytes, its manifest says {dump['size_bytes']}"
            )
        if sha != dump.get("sha256"):
            raise Failed(
                f"checksum mismatch: {backup.dump.name} has sha256 {sha[:16]}…, its manifest says "
                f"{str(dump.get('sha256'))[:16]}… (the file changed after the backup)"
            )
        self.doc["backup"]["checksum_ok"] = True

    @contextlib.contextmanager
    def _server(self) -> Iterator[PgConn]:
        """The server to restore on, as an admin connection (one that may CREATE DATABASE)."""
        if self.mode == "same":
            assert self.src is not None  # resolve_restore_to refuses "same" without a source
            yield self.src
            return
        if self.mode != "embedded":
            yield PgConn.parse(self.mode)
            return
        from gate.stack.postgres.server import EmbeddedPostgres

        workdir = Path(tempfile.mkdtemp(prefix="relay-gate-drill-"))
        try:
            self.embedded = EmbeddedPostgres(workdir / "pg")
            with self.phase("start_server"):
                self.embedded.start()
            self.secrets.append(self.embedded.password)
            yield PgConn.parse(self.embedded.url())
        finally:
            if self.embedded is not None:
                self.embedded.close()
                self.doc["restore_target"]["server_removed"] = True
            shutil.rmtree(workdir, ignore_errors=True)

    def _create(self, admin: PgConn, name: str, encoding: str) -> None:
        target = self.doc["restore_target"]
        target.update(admin.describe(), database=name)
        with connect(admin, "relay-gate drill", role="restore target") as conn:
            num = int(str(conn.execute("SHOW server_version_num").fetchone()[0]))  # type: ignore[index]
            target["server_version"] = str(conn.execute("SHOW server_version").fetchone()[0]).split()[0]  # type: ignore[index]
            # The source's encoding (digests hash stored bytes) with the C locale, valid with any
            # encoding: text keys are ordered COLLATE "C" on both sides anyway.
            locale = "LOCALE_PROVIDER libc LOCALE 'C'" if num >= 150000 else "LC_COLLATE 'C' LC_CTYPE 'C'"
            query = sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING {} ").format(
                sql.Identifier(name), sql.Literal(encoding)
            )
            try:
                conn.execute(query + sql.SQL(locale))
            except psycopg.Error as exc:
                raise InfrastructureError(
                    f"cannot create a database on the restore target {admin.where}: {first_line(exc)}"
                    " (grant CREATEDB, or use --restore-to embedded)"
                ) from None
        target["created"] = True

    def _restore(self, pg_restore: Path, version: str, target: PgConn, dump: Path) -> None:
        jobs = self.opts.jobs
        argv = restore_argv(pg_restore, jobs, target, dump)
        strategy = "single transaction" if jobs <= 1 else f"parallel, {jobs} jobs"
        self.doc["restore"] = {"pg_restore": version, "strategy": strategy, "jobs": jobs, "command": argv}
        env = target.child_env("relay-gate pg_restore")
        res = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            # Out of space, PostgreSQL PANICs on WAL: pg_restore only sees the connection drop, the
            # server log says why (readable when the server is ours).
            log = tail(self.embedded.log_path, 40) if self.embedded is not None else ""
            if no_space(res.stderr) or no_space(log):
                where = "set RELAY_GATE_PG_RUN_DIR to a bigger disk" if self.embedded else "free space there"
                raise InfrastructureError(
                    f"disk full on the restore target: {error_line(res.stderr)} ({where})"
                )
            raise Failed(f"pg_restore failed (exit {res.returncode}): {error_line(res.stderr)}")

    def _drop(self, admin: PgConn, name: str) -> None:
        """Always runs. A database left on a server we keep is a failure to report, never to hide."""
        target = self.doc["restore_target"]
        try:
            # a Ctrl-C that lands here waits until the database is gone (gate/interrupts.py)
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            with (
                interrupts.deferred(),
                self.phase("drop"),
                connect(admin, "relay-gate drill", role="restore target") as conn,
            ):
                conn.execute(drop)
            target["dropped"] = True
        except (GateError, psycopg.Error) as exc:
            target["dropped"] = False
            if self.embedded is None:  # an embedded server goes next, its database with it
                why = f"could not drop {name} on {admin.where} ({first_line(exc)}): drop it by hand"
                self.fail(_INFRA, EXIT_INFRA, why)


def restore_argv(pg_restore: Path, jobs: int, target: PgConn, dump: Path) -> list[str]:
    """The pg_restore command line: one transaction that stops at the first error (``jobs`` 1), or
    ``jobs`` parallel connections that stop at the first error (the ephemeral database is dropped)."""
    return [str(pg_restore), "--exit-on-error", "--no-owner", "--no-privileges", "--no-tablespaces",
            "--no-publications", "--no-subscriptions",
            *(["--single-transaction"] if jobs <= 1 else [f"--jobs={jobs}"]),
            f"--dbname={target.argv_dsn}", str(dump)]  # fmt: skip


def _iso_ms(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _password(url: str) -> str | None:
    if url in RESTORE_MODES:
        return None
    with contextlib.suppress(GateError):
        return PgConn.parse(url).password
    return None


def run_drill(opts: DrillOptions) -> DrillResult:
    """Run the drill. Failed criteria and infrastructure failures are in the result, never raised; a
    :class:`~gate.errors.UsageError` (bad URL, bad ``restore_to``) is raised before anything happens."""
    return _Drill(opts).run()
