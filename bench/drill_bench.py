"""Benchmark: backup + restore + verify through relay-gate against raw ``pg_dump -Fc`` + ``pg_restore``.

On one embedded PostgreSQL 16, per table size (``bulk_events``, seeded server-side):

- raw: ``pg_dump -Fc`` to a file, ``CREATE DATABASE``, ``pg_restore`` (pg_restore's defaults);
- relay-gate CLI: ``relay-gate backup`` (snapshot + dump + manifest of counts and digests) then
  ``relay-gate drill --restore-to same`` (checksum, create, restore, verify every table, drop), each a
  real CLI process, Python start-up and verb discovery included;
- relay-gate library: the same two steps in-process (``take_backup`` + ``run_drill``), without the
  ~0.3 s start-up of each CLI process;
- the two restore strategies the drill can use, on the same dump: ``--single-transaction
  --exit-on-error`` and ``--exit-on-error --jobs 2``.

Runs alternate raw / relay-gate so that neither always gets the warmer cache; medians are reported,
with the ratio relay-gate / raw measured in the same run. Peak RSS is the relay-gate process's own
(``ru_maxrss`` of the CLI process, not of pg_dump or pg_restore): it must not grow with the table.

Run: ``python bench/drill_bench.py [--rows 100000 1000000] [--runs 3] [--compress N]``. Takes about a
minute. ``--compress N`` runs relay-gate with ``--compress N`` (the raw side keeps pg_dump's default).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from gate.drill.backup import take_backup
from gate.drill.fingerprint import PgConn
from gate.drill.restore import DrillOptions, run_drill, seed_bulk_table
from gate.stack.postgres.server import EmbeddedPostgres
from gate.stack.postgres.tools import find_tool

# The CLI in a child process that reports its own peak RSS (KiB) on its last stderr line.
WRAPPER = (
    "import resource, sys\n"
    "from gate.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "print('peak_rss_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return elapsed, res.stderr


def relay_gate(args: list[str], env: dict[str, str]) -> tuple[float, int]:
    elapsed, stderr = timed([sys.executable, "-c", WRAPPER, *args], env)
    rss = int(stderr.strip().splitlines()[-1].split()[-1])
    return elapsed, rss


def recreate(pg: EmbeddedPostgres, name: str) -> None:
    pg.drop_database(name)
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE template0")


@dataclass
class Figures:
    rows: int
    dump_mb: float
    raw_s: float  # pg_dump -Fc + pg_restore
    cli_s: float  # relay-gate backup + relay-gate drill, CLI processes
    lib_s: float  # take_backup + run_drill in-process
    phases: dict[str, float]
    strategies: dict[str, float]
    rss_kib: dict[str, int]

    def report(self) -> str:
        cli, lib = self.cli_s / self.raw_s, self.lib_s / self.raw_s
        return "\n".join([
            f"{self.rows:>9,} rows ({self.dump_mb:.1f} MB dump): raw pg_dump + pg_restore {self.raw_s:.2f} s",
            f"    relay-gate backup + drill: CLI {self.cli_s:.2f} s (ratio {cli:.2f}); "
            f"in-process {self.lib_s:.2f} s (ratio {lib:.2f})",
            "    relay-gate phases (median s): " + ", ".join(f"{k} {v:.2f}" for k, v in self.phases.items()),
            "    pg_restore (median s): " + ", ".join(f"{k} {v:.2f}" for k, v in self.strategies.items()),
            f"    peak RSS of the relay-gate process: backup {self.rss_kib['backup']} KiB, "
            f"drill {self.rss_kib['drill']} KiB",
        ])  # fmt: skip


def bench_size(pg: EmbeddedPostgres, rows: int, runs: int, work: Path, compress: int | None) -> Figures:
    db = f"bench_{rows}"
    pg.drop_database(db)
    pg.create_database(db)
    url = pg.url(db)
    t0 = time.perf_counter()
    seed_bulk_table(url, rows=rows)
    print(f"  seeded {rows:,} rows in {time.perf_counter() - t0:.1f} s", flush=True)
    conn = PgConn.parse(url)
    env = {**os.environ, "DATABASE_URL": url, "PGPASSWORD": pg.password}
    pg_dump, _ = find_tool("pg_dump", at_least=16, pg_bin=None)
    pg_restore, _ = find_tool("pg_restore", at_least=16, pg_bin=None)
    target = conn.with_dbname("bench_restore").argv_dsn
    raw: list[float] = []
    gate: list[float] = []
    lib: list[float] = []
    strategies: dict[str, list[float]] = {"single transaction": [], "jobs 2": []}
    phases: list[dict[str, float]] = []
    rss: dict[str, list[int]] = {"backup": [], "drill": []}
    for i in range(runs):
        for side in ("raw", "gate", "lib") if i % 2 == 0 else ("lib", "gate", "raw"):
            if side == "raw":
                dump = work / "raw.dump"
                recreate(pg, "bench_restore")
                t_dump, _ = timed([str(pg_dump), "-Fc", f"--file={dump}", f"--dbname={conn.argv_dsn}"], env)
                t_restore, _ = timed([str(pg_restore), "--no-owner", f"--dbname={target}", str(dump)], env)
                raw.append(t_dump + t_restore)
                pg.drop_database("bench_restore")
            elif side == "lib":
                t0 = time.perf_counter()
                take_backup(url, work / f"lib-{i}", compress=compress)
                result = run_drill(DrillOptions(url, work / f"lib-{i}", restore_to="same"))
                lib.append(time.perf_counter() - t0)
                assert result.passed, result.reason
                shutil.rmtree(work / f"lib-{i}")
            else:
                backups, results = work / f"backups-{i}", work / f"results-{i}"
                z = ["--compress", str(compress)] if compress is not None else []
                t_backup, rss_b = relay_gate(["backup", "--dir", str(backups), "--no-prune", *z], env)
                drill_args = [
                    "drill",
                    "--dir",
                    str(backups),
                    "--restore-to",
                    "same",
                    "--results",
                    str(results),
                ]
                t_drill, rss_d = relay_gate(drill_args, env)
                gate.append(t_backup + t_drill)
                rss["backup"].append(rss_b)
                rss["drill"].append(rss_d)
                doc = json.loads((results / "drill" / "drill.json").read_text())
                assert doc["verdict"] == "PASSED", doc["reason"]
                phases.append({k: v["duration_s"] for k, v in doc["phases"].items()} | {"backup": t_backup})
                shutil.rmtree(backups)
    dump = work / "raw.dump"
    for _ in range(runs):
        for name, flags in (("single transaction", ["--single-transaction"]), ("jobs 2", ["--jobs=2"])):
            recreate(pg, "bench_restore")
            t, _ = timed(
                [str(pg_restore), "--exit-on-error", "--no-owner", *flags, f"--dbname={target}", str(dump)],
                env,
            )
            strategies[name].append(t)
    pg.drop_database("bench_restore")
    pg.drop_database(db)
    return Figures(
        rows=rows,
        dump_mb=dump.stat().st_size / 1e6,
        raw_s=statistics.median(raw),
        cli_s=statistics.median(gate),
        lib_s=statistics.median(lib),
        phases={k: statistics.median(p[k] for p in phases) for k in phases[0]},
        strategies={k: statistics.median(v) for k, v in strategies.items()},
        rss_kib={k: max(v) for k, v in rss.items()},
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--compress", type=int, default=None, help="relay-gate backup --compress (default: pg_dump's)"
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="relay-gate-drill-bench-"))
    try:
        with EmbeddedPostgres(work / "pg") as pg:
            z = "pg_dump's default" if args.compress is None else f"--compress {args.compress}"
            print(
                f"PostgreSQL {pg.version}, {os.cpu_count()} CPUs; medians of {args.runs} runs; relay-gate {z}"
            )
            for rows in args.rows:
                print(bench_size(pg, rows, args.runs, work, args.compress).report(), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
