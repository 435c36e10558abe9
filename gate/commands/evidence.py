"""``relay-gate evidence render|verify``: the evidence pack from a results folder, and its check.

render: Markdown + self-contained HTML documents, charts, a copy of the results, manifest.json
(optionally signed). Exit: the verdict — 0 every criterion ran and held, 1 a criterion is false,
3 an SLO was breached, 4 a criterion was not run (or could not run for missing configuration);
2 when the results folder is missing, unreadable or of an unknown schema version.

verify: 0 intact (signature valid when a key is given), 1 tampered (names the file), 2 unreadable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gate.errors import EXIT_CRITERION, EXIT_OK, EXIT_USAGE


def register(sub: Any) -> None:
    p = sub.add_parser(
        "evidence",
        help="render the evidence pack from results, or verify a pack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = p.add_subparsers(dest="evidence_verb", metavar="VERB", required=True)

    r = verbs.add_parser("render", help="render results/<run-id> into an evidence pack")
    r.add_argument("--results", type=Path, required=True, help="the results folder (results/<run-id>)")
    r.add_argument("--out", type=Path, default=None, help="pack folder (default evidence/out/<run-id>)")
    _key_args(r)
    r.set_defaults(run=run_render)

    v = verbs.add_parser("verify", help="check every file of a pack against its manifest")
    v.add_argument("pack", type=Path, help="the pack folder (holding manifest.json)")
    _key_args(v)
    v.set_defaults(run=run_verify)


def _key_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--hmac-key-env", metavar="NAME", help="sign/verify with HMAC-SHA256; the key is in $NAME")
    g.add_argument(
        "--ed25519-key",
        type=Path,
        metavar="PEM",
        help="sign with an Ed25519 private key / verify with the public (or private) key",
    )


def _signer(args: argparse.Namespace) -> Any:
    from evidence.manifest import Ed25519Signer, HmacSigner

    if args.hmac_key_env:
        return HmacSigner.from_env(args.hmac_key_env)
    if args.ed25519_key:
        return Ed25519Signer.from_file(args.ed25519_key)
    return None


def print_verdict(rendered: Any) -> None:
    width = max((len(c.title) for c in rendered.criteria), default=20)
    width = min(width, 96)
    current = None
    for c in rendered.criteria:
        if c.area != current:
            current = c.area
            print(f"\n{c.area}")
        title = c.title if len(c.title) <= width else c.title[: width - 1] + "…"
        reason = f"  ({c.reason})" if c.reason and c.status != "PASS" else ""
        print(f"  {c.status:<14} {title}{reason[:160]}")


def run_render(args: argparse.Namespace) -> int:
    from evidence.manifest import ManifestError
    from evidence.model import ResultsError
    from evidence.render import render

    out = args.out or Path("evidence") / "out" / args.results.resolve().name
    try:
        rendered = render(args.results, out, signer=_signer(args))
    except (ResultsError, ManifestError) as exc:
        print(f"relay-gate evidence: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print_verdict(rendered)
    print(f"\n{rendered.line}\nevidence: {(rendered.out / 'index.html').resolve()}")
    return rendered.code


def run_verify(args: argparse.Namespace) -> int:
    from evidence.manifest import ManifestError, Tampered, verify

    try:
        notes = verify(args.pack, signer=_signer(args))
    except ManifestError as exc:
        print(f"relay-gate evidence verify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Tampered as exc:
        print(f"relay-gate evidence verify: TAMPERED: {exc}", file=sys.stderr)
        return EXIT_CRITERION
    for n in notes:
        print(n)
    print(f"{args.pack}: intact")
    return EXIT_OK
