"""``relay-gate selftest``: prove that the gate can fail.

Runs the acceptance scenarios against the clean reference stack (everything it runs must pass), then
against each deliberate defect of the service (gate/proof/catalogue.py) and of the backup/drill tooling
(gate/proof/defects_drill.py), each on a fresh stack and limited to the defect's area: every defect must make
at least one scenario fail. Prints, per defect, the scenarios that caught it.

--defect NAME (repeatable) and --area AREA (repeatable) select a subset: the defects named plus every
defect of the areas named; the clean run then covers only those areas. --list prints the catalogue.

Results: <results>/selftest/selftest.json (relay-gate/selftest@1) and each run's results folder under
<results>/selftest/runs/.

Exit: 0 the clean service passed and every defect was caught; 1 the clean service failed a scenario,
or a defect escaped (named); 2 bad usage (an unknown defect or area); 5 a run could not complete
(the stack did not start, pytest timed out).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from gate.errors import EXIT_OK
from gate.results import existing_run_id, new_run_id


def register(sub: Any) -> None:
    p = sub.add_parser(
        "selftest",
        help="prove the gate can fail: every deliberate defect must fail a scenario the clean stack passes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--defect", dest="defects", action="append", default=[], metavar="NAME",
        help="run this defect (repeatable; --list shows the names)",
    )  # fmt: skip
    p.add_argument(
        "--area", dest="areas", action="append", default=[], metavar="AREA",
        help="run every defect of this area: api, headers, rate_limit, signing, audit, drill (repeatable)",
    )  # fmt: skip
    p.add_argument("--list", action="store_true", help="print the catalogue of defects and exit")
    p.add_argument("--results", type=Path, default=None, help="results folder (default results/<run-id>)")
    p.add_argument(
        "--backend",
        choices=("embedded", "containers"),
        default=os.environ.get("RELAY_GATE_BACKEND", "embedded"),
        help="where each run's Redis and PostgreSQL come from",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # imported here: the catalogue builds on the service app, which other verbs need not load
    from gate.proof import selftest
    from gate.proof.report import render_catalogue, write_run_json

    subjects = selftest.select(args.defects, args.areas)  # UsageError -> exit 2
    if args.list:
        print(render_catalogue(subjects))
        return EXIT_OK
    fresh = new_run_id()
    results: Path = args.results or Path("results") / fresh
    owns_run_json = not (results / "run.json").exists()  # else it joins that run (e.g. relay-gate run)
    run_id = existing_run_id(results) or fresh
    if owns_run_json:
        write_run_json(results, run_id=run_id, backend=args.backend)
    report = selftest.run_selftest(
        subjects,
        results=results,
        run_id=run_id,
        backend=args.backend,
        whole_gate=not args.defects and not args.areas,
    )
    if owns_run_json:
        write_run_json(results, run_id=run_id, backend=args.backend, report=report)
    return report.exit_code
