"""Render a results folder into the evidence pack: Markdown documents, HTML pages, charts, manifest.

    results/<run-id>/  ──load_results──►  criteria + per-area context  ──Jinja──►  <DOC>.md
                                                                     ──markdown-it──► <DOC>.html
                                                                     ──manifest──►  manifest.json

Everything a document says comes from a results file (copied into the pack under ``results/``), so
the pack can be re-rendered and re-verified later from the same inputs.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import ChainableUndefined, Environment, FileSystemLoader
from markdown_it import MarkdownIt

from evidence import sections
from evidence.criteria import (
    AREAS,
    Criterion,
    catalogue,
    drill_criteria,
    feature_criteria,
    regression_criteria,
    slo_criteria,
    step_items,
    verdict,
)
from evidence.faults_document import faults_context, faults_criteria
from evidence.markdown import FILTERS
from evidence.model import Results, load_results
from gate.verdict import LABEL, Outcome, Verdict

TEMPLATES = Path(__file__).resolve().parent / "templates"
# document -> the areas it carries
DOCUMENTS: dict[str, tuple[str, ...]] = {
    "RATELIMIT-SMOKE": ("rate_limit",),
    "SIGNING-E2E": ("signing",),
    "SECURITY-HEADERS": ("headers",),
    "SMOKE-AUDIT": ("smoke", "audit", "api"),
    "RESTORE-DRILL-REPORT": ("drill",),
    "METRICS-SUMMARY": ("slo", "regression"),
    "FAULTS": ("faults",),
}


@dataclass(frozen=True)
class Rendered:
    out: Path
    code: int
    line: str
    criteria: list[Criterion]


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        # Markdown, not HTML: every value goes through a filter of evidence/markdown.py, and the HTML
        # pages come from markdown-it with raw HTML disabled
        autoescape=False,  # noqa: S701
        # results are loosely structured (a note may lack a field): a missing value renders as '—'
        undefined=ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(FILTERS)
    return env


def provenance(res: Results) -> dict[str, Any]:
    run = res.run or {}
    target = dict(run.get("target") or {})
    features_target = (res.features or {}).get("target") or {}
    servers = dict(features_target.get("versions") or target.get("versions") or {})
    tools = dict(run.get("versions") or {})
    for k in ("relay-gate", "python"):
        servers.pop(k, None)
    git = run.get("git") or {}
    return {
        "run_id": run.get("run_id") or res.root.name,
        "started_at": run.get("started_at"),
        "finished_at": run.get("finished_at"),
        "commit": git.get("commit"),
        "dirty": git.get("dirty"),
        "version": tools.get("relay-gate"),
        "target": target.get("name") or features_target.get("name") or "unknown",
        "backend": target.get("backend") or features_target.get("backend") or "unknown",
        # a reference stack's URLs are ephemeral (each step starts its own); a deployment's are not
        "base_urls": (features_target.get("base_urls") or target.get("base_urls") or [])
        if (target.get("backend") or features_target.get("backend")) == "external"
        else [],
        "servers": servers,
        "tools": tools,
        "missing": None if res.run else "run.json is missing: the provenance of these results is unknown",
        # a deliberate defect of gate/proof/catalogue.py was switched on (selftest, proof tests)
        "defect": features_target.get("defect")
        or target.get("defect")
        or (res.faults or {}).get("target", {}).get("defect"),
    }


def all_criteria(res: Results) -> list[Criterion]:
    found = (
        feature_criteria(res, catalogue())
        + drill_criteria(res)
        + slo_criteria(res, sections.default_slo_objectives())
        + regression_criteria(res)
        + _faults(res)
    )
    order = list(AREAS)
    return sorted(found, key=lambda c: order.index(c.area) if c.area in order else len(order))


def _faults(res: Results) -> list[Criterion]:
    found = faults_criteria(res.faults)
    if res.faults is None and provenance(res)["backend"] == "external":
        # a deployment's Redis and PostgreSQL are not ours to kill: not applicable, not missing
        why = "needs control of the target's Redis/PostgreSQL (only the reference stack has it)"
        return [Criterion(c.area, c.title, Outcome.NOT_APPLICABLE, why, c.doc) for c in found]
    return found


def judge(res: Results, criteria: list[Criterion] | None = None) -> Verdict:
    """The verdict of a results folder: its criteria and the steps its run.json records, by
    gate/verdict.py's one precedence. ``relay-gate run`` exits with this very verdict."""
    return verdict(all_criteria(res) if criteria is None else criteria, step_items(res))


def render(results_dir: Path, out_dir: Path, *, signer: Any = None) -> Rendered:
    """Render ``results_dir`` into ``out_dir`` (replaced whole). ResultsError for unusable input."""
    from evidence.manifest import write_manifest

    res = load_results(results_dir)
    criteria = all_criteria(res)
    judged = judge(res, criteria)
    code, line = judged.exit_code, judged.line
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        shutil.copytree(res.root, stage / "results", ignore=shutil.ignore_patterns(".*"))
        (stage / "charts").mkdir()
        ctx = _context(res, criteria, code, line, stage / "charts")
        env = _env()
        pages: dict[str, str] = {}
        for doc in ("INDEX", *DOCUMENTS):
            md = env.get_template(f"{doc}.md.j2").render(**ctx, criteria=ctx["criteria_of"](doc))
            md = re.sub(r"\n{3,}", "\n\n", md)
            (stage / f"{doc}.md").write_text(md, encoding="utf-8")
            pages[doc] = md
        page = env.get_template("page.html.j2")
        for doc, md in pages.items():
            html_name = "index.html" if doc == "INDEX" else f"{doc}.html"
            body = _html_body(md, stage / "charts")
            style = (TEMPLATES / "pack.css").read_text(encoding="utf-8")
            style_hash = "sha256-" + _b64(hashlib.sha256(style.encode()).digest())
            html = page.render(
                title=doc,
                body=body,
                style=style,
                style_hash=style_hash,
                docs=DOCUMENTS,
                current=doc,
                verdict_line=line,
                verdict_code=code,
            )
            (stage / html_name).write_text(html, encoding="utf-8")
        write_manifest(stage, prov=ctx["prov"], verdict={"code": code, "line": line}, signer=signer)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        stage.rename(out_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return Rendered(out_dir, code, line, criteria)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _context(
    res: Results, criteria: list[Criterion], code: int, line: str, chart_dir: Path
) -> dict[str, Any]:
    def criteria_of(doc: str) -> list[Criterion]:
        areas = DOCUMENTS.get(doc)
        return criteria if areas is None else [c for c in criteria if c.area in areas]

    areas = []
    for area, (title, doc) in AREAS.items():
        items = [c for c in criteria if c.area == area]
        if items:
            areas.append((area, title, doc, items))
    return {
        "prov": provenance(res),
        "verdict_code": code,
        "verdict_line": line,
        "counts": [(LABEL[o], n) for o, n in _counts(criteria)],
        "areas": areas,
        "documents": list(DOCUMENTS),
        "criteria_of": criteria_of,
        "rl": sections.rate_limit(res, chart_dir),
        "sig": sections.signing(res),
        "hdr": sections.headers(res),
        "aud": sections.audit(res),
        "drill": sections.drill(res, chart_dir),
        "metrics": sections.metrics(res, chart_dir),
        "faults": faults_context(res.faults, chart_dir),
    }


def _counts(criteria: list[Criterion]) -> list[tuple[Outcome, int]]:
    """Criteria per outcome, in the verdict's order; passes and failures always shown."""
    found = Counter(c.outcome for c in criteria)
    return [(o, found[o]) for o in Outcome if found[o] or o in (Outcome.PASS, Outcome.FAIL)]


_MD = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")
_IMG = re.compile(r'<img src="charts/([A-Za-z0-9_.-]+\.svg)" alt="([^"]*)" */?>')


def _html_body(md: str, chart_dir: Path) -> str:
    html = _MD.render(md)
    html = re.sub(r'href="([A-Z][A-Z0-9-]*)\.md"', r'href="\1.html"', html)
    html = html.replace('href="INDEX.html"', 'href="index.html"')

    def inline(m: re.Match[str]) -> str:
        path = chart_dir / m.group(1)
        # our own generated SVG, inlined so the page needs no external asset
        return f'<figure class="chart">{path.read_text(encoding="utf-8")}</figure>' if path.exists() else ""

    return _IMG.sub(inline, html)
