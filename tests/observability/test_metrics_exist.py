"""Every metric the rules and the dashboard query exists on the running reference service's /metrics.

A stack of its own (one replica, a limit of 2 executes a minute) is driven through every path that
creates a series — list, preview, executes with a delivered webhook, a 429, an unhandled 500, and an
execute while PostgreSQL is down (an audit write failure) — then /metrics is scraped and parsed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gate.observability import DASHBOARD, Generated, rules
from gate.observability.objectives import objectives
from gate.stack.reference import FAULT_PATH, Stack, StackConfig
from load import slos
from tests.observability.promql import all_names
from tests.windows import wait_for_window_room

pytestmark = pytest.mark.stack

SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
            "gauge": ("",), "summary": ("_count", "_sum", "_created"), "info": ("_info",)}  # fmt: skip
NOTIFY = {"action": "notify.send", "params": {"channel": "ops", "message": "observability test"}}


@pytest.fixture(scope="module")
def scraped() -> Iterator[tuple[str, set[str]]]:
    """The /metrics text after real traffic, and the names of the series that have samples."""
    with Stack(StackConfig(replicas=1, rate_limit=2, window_s=3600)) as stack:
        base = stack.base_url
        wait_for_window_room(3600, need_s=60)  # the execute, the 503 and the 429 in one window
        dev = {"Authorization": f"Bearer {stack.key('dev').key}"}
        with httpx.Client(base_url=base, timeout=10, trust_env=False) as client:
            assert client.get("/_stcore/health").status_code == 200
            assert client.get("/actions", headers=dev).status_code == 200
            assert client.post("/actions/preview", headers=dev, json=NOTIFY).status_code == 200
            assert client.post("/actions/execute", headers=dev, json=NOTIFY).status_code == 200
            assert client.get(FAULT_PATH).status_code == 500
            stack.stop_postgres()
            assert client.post("/actions/execute", headers=dev, json=NOTIFY).status_code == 503
            assert client.post("/actions/execute", headers=dev, json=NOTIFY).status_code == 429
            text = client.get("/metrics").text
    sampled = {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}
    yield text, sampled


def _exposed(text: str) -> set[str]:
    names: set[str] = set()
    for fam in text_string_to_metric_families(text):
        names.update(f"{fam.name}{suffix}" for suffix in SUFFIXES.get(fam.type, ("",)))
        names.update(s.name for s in fam.samples)
    return names


def _queried(generated: Generated) -> set[str]:
    """Metric names the rules and the dashboard read, less the ones the recording rules create (the
    rule structures are the committed files' content: test_rules checks the files are current)."""
    objs = objectives(slos.load())
    groups = rules.recording_groups(objs) + rules.burn_groups(objs) + rules.seed_groups(objs)
    exprs = [r["expr"] for g in groups for r in g["rules"]]
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    dashboard = json.loads(generated.outputs[DASHBOARD])
    exprs += [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return all_names(exprs) - recorded


def test_every_metric_the_rules_and_dashboard_query_is_exported(
    generated: Generated, scraped: tuple[str, set[str]]
) -> None:
    text, sampled = scraped
    queried = _queried(generated)
    expected = {
        "http_requests_total", "http_errors_total", "http_request_duration_seconds_bucket",
        "webhook_duration_seconds_bucket", "rate_limit_breaches_total", "rate_limiter_backend",
    }  # fmt: skip
    assert expected <= queried
    missing = sorted(queried - _exposed(text))
    assert not missing, f"queried but not exported by the service: {missing}"
    # and each has real samples after the traffic above (not only HELP/TYPE lines)
    assert not sorted(queried - sampled), f"no samples for {sorted(queried - sampled)}"


def test_the_seeds_wrong_metric_is_not_exported(scraped: tuple[str, set[str]]) -> None:
    text, _ = scraped
    assert "http_duration_seconds" not in _exposed(text)
