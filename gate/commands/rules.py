"""``relay-gate rules``: Prometheus rules, their promtool tests, a Grafana dashboard and SLOs.md, from
the SLO spec.

From ``load/slos.toml`` (or --slos) it writes into --out (default ``observability/``):
``prometheus/slo-recording.rules.yml`` (the SLIs), ``prometheus/slo-burn.rules.yml`` (multiwindow,
multi-burn-rate alerts per SLO), ``prometheus/seed-alerts.rules.yml`` (ActionsErrorRate, WebhookP95,
LightEndpointP99, RateLimitBreaches), ``prometheus/tests/*.test.yml`` (``promtool test rules``) and
``grafana/golden-signals.json``; and --doc (default ``docs/observability/SLOs.md``). Paths are relative
to the current directory. --check writes nothing and fails when a file differs from what the spec
generates.

Exit: 0 written (or up to date with --check); 1 --check found a stale or missing file; 2 the spec is
invalid, or holds an SLO the generator cannot express (a latency threshold with no histogram bucket),
the message naming the key.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from gate.errors import EXIT_CRITERION, EXIT_OK
from gate.observability import DOC_PATH, generate
from load import slos


def register(sub: Any) -> None:
    p = sub.add_parser(
        "rules",
        help="generate Prometheus rules + tests, the Grafana dashboard and SLOs.md from the SLO spec",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--slos", type=Path, default=None, help="the SLO spec (default load/slos.toml)")
    p.add_argument("--out", type=Path, default=Path("observability"), help="output folder (observability/)")
    p.add_argument("--doc", type=Path, default=DOC_PATH, help=f"the rendered SLO page (default {DOC_PATH})")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if any output is stale")
    p.set_defaults(run=run)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    spec = slos.load(args.slos)  # SloSpecError -> exit 2, naming the key
    generated = generate(spec)  # likewise for an SLO with no Prometheus expression
    files = {args.out / rel: text for rel, text in generated.outputs.items()}
    files[args.doc] = generated.doc
    if args.check:
        stale = [p for p, text in files.items() if not p.is_file() or p.read_text(encoding="utf-8") != text]
        for p in stale:
            print(f"relay-gate rules: {p} is {'stale' if p.exists() else 'missing'}", file=sys.stderr)
        if stale:
            print("run `relay-gate rules` and commit the result", file=sys.stderr)
            return EXIT_CRITERION
        print(f"relay-gate rules: {len(files)} files up to date with {spec.source}")
        return EXIT_OK
    for path, text in files.items():
        _write(path, text)
        print(f"wrote {path}")
    return EXIT_OK
