"""features/: the acceptance criteria, run by pytest-bdd against a Target.

The target is the session's reference stack unless ``--target-url`` (and optionally
``--target-config``) name a deployment. Scenarios tagged with a need the target cannot meet are
skipped with the reason and its category (features/support/skips.py) — never passed. With ``--results DIR``
every scenario's exchanges and notes go to ``DIR/features/scenarios/<slug>.json`` and the outcomes
to ``DIR/features/summary.json``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from features.support import quota, redaction, skips
from features.support.recording import ExchangeRecorder, slug
from gate.client.probe import probe
from gate.client.quota import PlanError
from gate.client.receiver import ReceiverClient
from gate.client.target import Target
from gate.errors import InfrastructureError, UsageError
from gate.results import Redactor, record_infrastructure_error, utc_now, write_json
from gate.verdict import SkipCategory

# tag -> (what the target must offer, the reason given when it does not)
NEEDS: dict[str, tuple[str, str]] = {
    "needs-control": (
        "control",
        "needs control of the target's Redis/PostgreSQL (only the reference stack has it)",
    ),
    "needs-receiver": (
        "receiver",
        "needs a webhook receiver to read deliveries from ([deliveries].receiver_url)",
    ),
    "needs-signing-secret": (
        "signing",
        "needs the signing secret to recompute signatures ([signing].secret_env)",
    ),
    "needs-fault-route": ("fault", "needs a path that answers an unhandled 500 ([headers].error_path)"),
    "needs-dev-key": ("dev", "needs a dev key ([credentials] with role dev, its variable set)"),
    "needs-admin-key": ("admin", "needs an admin key ([credentials].admin, its variable set)"),
    "needs-second-workspace": (
        "ws2",
        "needs keys for two workspaces ([credentials] with different workspaces)",
    ),
    "needs-rate-limit-policy": ("policy", "needs the rate-limit policy ([rate_limit] limit and window_s)"),
    "needs-database": ("db", "needs a database URL ([database].url_env)"),
}
# what a target without it is: only control of its dependencies and a route that answers an unhandled
# 500 are things a deployment cannot have; everything else the target config could have supplied
NEED_CATEGORY: dict[str, SkipCategory] = {
    need: SkipCategory.NOT_APPLICABLE if need in ("control", "fault") else SkipCategory.MISSING_CONFIG
    for need, _ in NEEDS.values()
}


def _has(target: Target, need: str) -> bool:
    if need == "control":
        return target.controllable
    if need == "receiver":
        return target.receiver_url is not None
    if need == "signing":
        return bool(target.signing_secrets)
    if need == "fault":
        return target.fault_path is not None
    if need == "dev":
        return target.credential("dev") is not None
    if need == "admin":
        return target.credential("admin") is not None
    if need == "ws2":
        first = target.credential("dev")
        return first is not None and target.credential("dev", exclude_workspace=first.workspace) is not None
    if need == "policy":
        return target.rate_limit is not None
    if need == "db":
        return target.database_url is not None
    raise AssertionError(need)


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    url = request.config.getoption("--target-url")
    config = request.config.getoption("--target-config")
    if url or config:
        try:
            t = Target.from_config(url, config)
        except UsageError as exc:
            pytest.exit(f"invalid target: {exc}", returncode=2)
        try:
            probe(t.base_url, t.transport)  # TLS verified, proxies as configured
        except InfrastructureError as exc:
            record_infrastructure_error(request.config.getoption("--results"), str(exc))
            pytest.exit(str(exc), returncode=5)
        return t
    return Target.from_stack(request.getfixturevalue("stack"))


@pytest.fixture(scope="session")
def redactor(target: Target) -> Redactor:
    return Redactor(target.secret_values())


@pytest.fixture(autouse=True)
def _requirements(request: pytest.FixtureRequest) -> None:
    """Skip, with the reason, a scenario whose tags ask for what the target does not offer."""
    tags = {m.name for m in request.node.iter_markers()}
    wanted = [NEEDS[t] for t in sorted(tags) if t in NEEDS]
    if not wanted:
        return
    target: Target = request.getfixturevalue("target")
    for need, reason in wanted:
        if not _has(target, need):
            skips.skip(NEED_CATEGORY[need], f"{target.name}: {reason}")


@pytest.fixture
def recorder(
    request: pytest.FixtureRequest, redactor: Redactor, target: Target
) -> Iterator[ExchangeRecorder]:
    rec = ExchangeRecorder(redactor, transport=target.transport)
    started = utc_now()
    t0 = time.monotonic()
    yield rec
    results: Path | None = request.config.getoption("--results")
    if results is None or _scenario_of(request.node) is None:
        return
    report = getattr(request.node, "rep_call", None)
    meta = _scenario_meta(request.node)
    meta.update(
        started_at=started,
        duration_s=round(time.monotonic() - t0, 3),
        outcome=report.outcome if report is not None else "error",
        error=_short_error(report) if report is not None and report.failed else None,
    )
    rec.write(results / "features" / "scenarios" / f"{meta['slug']}.json", meta=meta)


@pytest.fixture
def http(target: Target, recorder: ExchangeRecorder) -> Iterator[httpx.Client]:
    """A recorded client on the target's (first) base URL."""
    with recorder.client(target.base_url, timeout=target.request_timeout_s) as client:
        yield client


@pytest.fixture
def receiver(target: Target) -> Iterator[ReceiverClient]:
    if target.receiver_url is None:
        skips.missing_config(f"{target.name}: {NEEDS['needs-receiver'][1]}")
    if target.receiver_token is None:
        skips.missing_config(
            f"{target.name}: the receiver's token is unset (the variable [deliveries].token_env names)"
        )
    client = ReceiverClient(target.receiver_url, token=target.receiver_token, transport=target.transport)
    yield client
    client.close()


# -- outcomes ---------------------------------------------------------------------------------------


def _scenario_of(item: pytest.Item) -> Any:
    # pytest-bdd keeps the scenario template of each generated test function in this registry
    from pytest_bdd.scenario import scenario_wrapper_template_registry

    fn = getattr(item, "function", None)
    return scenario_wrapper_template_registry.get(fn) if fn is not None else None


def _scenario_meta(item: pytest.Item) -> dict[str, Any]:
    scenario = _scenario_of(item)
    if scenario is None:
        return {"nodeid": item.nodeid}
    feature = scenario.feature
    return {
        "nodeid": item.nodeid,
        "feature": feature.name,
        "feature_file": Path(feature.filename).name,
        "scenario": scenario.name,
        "tags": sorted(set(scenario.tags) | set(feature.tags)),
        "slug": slug(f"{Path(feature.filename).stem}-{scenario.name}"),
    }


def _short_error(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0][:500] if crash.message else "failed"
    return str(report.longrepr).strip().splitlines()[-1][:500] if report.longrepr else "failed"


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    category = skips.category_of(call.excinfo)
    if category is not None:
        report.user_properties.append((skips.PROPERTY, str(category)))
    setattr(item, f"rep_{report.when}", report)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Plan the session's quota before the first request (features/support/quota.py), reorder as planned."""
    try:
        plan = quota.plan_session(config, items, _will_run)
    except PlanError as exc:
        quota.refuse(config, exc)
        return
    except UsageError as exc:  # the target config itself is wrong: the target fixture says so too
        pytest.exit(f"invalid target: {exc}", returncode=2)
    if plan is not None:
        quota.record(config, plan)


def _will_run(item: pytest.Item, target: Target | None) -> bool:
    """Whether the target meets the scenario's needs (the reference stack meets them all)."""
    if target is None:
        return True
    tags = {m.name for m in item.iter_markers()}
    return all(_has(target, NEEDS[t][0]) for t in tags if t in NEEDS)


_SKIP_PREFIX = re.compile(r"^(?:[\w.]*\.)?(?:Skipped|CategorisedSkip): ")


class _Summary:
    """Collects one outcome per scenario and writes features/summary.json at the end."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.started_at = utc_now()

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            meta = _scenario_meta(item)
            if "scenario" in meta:
                self.items[item.nodeid] = {
                    **meta,
                    "outcome": "not run",
                    "reason": None,
                    "category": None,
                    "duration_s": 0.0,
                }

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = self.items.get(report.nodeid)
        if entry is None:
            return
        if report.when == "call":  # setup/teardown time is the session stack's, not the scenario's
            entry["duration_s"] = round(report.duration, 3)
        if report.skipped:
            entry["outcome"] = "skipped"
            raw = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else "skipped"
            # pytest prefixes the exception's name ("Skipped: ", "features.support.skips.CategorisedSkip: ")
            entry["reason"] = _SKIP_PREFIX.sub("", raw, count=1)
            # decided where the skip was raised (features/support/skips.py); a bare pytest.skip has none
            entry["category"] = dict(report.user_properties).get(skips.PROPERTY)
        elif report.failed:
            entry["outcome"] = "failed"
            entry["reason"] = _short_error(report)
        elif report.when == "call" and entry["outcome"] == "not run":
            entry["outcome"] = "passed"

    def write(self, results: Path, target: dict[str, Any] | None, redactor: Redactor) -> None:
        features: dict[str, dict[str, Any]] = {}
        for e in self.items.values():
            f = features.setdefault(
                e["feature"], {"feature": e["feature"], "file": e["feature_file"], "scenarios": []}
            )
            f["scenarios"].append(
                {
                    k: e[k]
                    for k in (
                        "scenario",
                        "slug",
                        "tags",
                        "outcome",
                        "category",
                        "reason",
                        "duration_s",
                        "nodeid",
                    )
                }
            )
        payload = {
            "started_at": self.started_at,
            "finished_at": utc_now(),
            "target": target,
            "features": list(features.values()),
        }
        write_json(results / "features" / "summary.json", "features", 1, payload, redactor=redactor)


_SUMMARY_KEY = pytest.StashKey[_Summary]()
_TARGET_KEY = pytest.StashKey[tuple[dict[str, Any], Redactor]]()


def pytest_configure(config: pytest.Config) -> None:
    redaction.pytest_configure(config)  # secrets out of the terminal, junit.xml and cucumber.json
    if config.getoption("--results", default=None) is not None:
        summary = _Summary()
        config.stash[_SUMMARY_KEY] = summary
        config.pluginmanager.register(summary, "relay-gate-summary")


@pytest.fixture(scope="session", autouse=True)
def _remember_target(request: pytest.FixtureRequest) -> None:
    # only sessions that write results need the target described; others stay lazy (no stack)
    if _SUMMARY_KEY in request.config.stash:
        t: Target = request.getfixturevalue("target")
        request.config.stash[_TARGET_KEY] = (t.describe(), Redactor(t.secret_values()))


def pytest_sessionfinish(session: pytest.Session) -> None:
    summary = session.config.stash.get(_SUMMARY_KEY, None)
    results = session.config.getoption("--results", default=None)
    if summary is None or results is None:
        return
    described, redactor = session.config.stash.get(_TARGET_KEY, (None, Redactor(())))
    summary.write(results, described, redactor)
