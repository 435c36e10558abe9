"""Error-budget arithmetic for a period, from a load results file (``results/<run>/load/load.json``).

For every objective the run judged — availability over all requests, each endpoint's error rate, each
latency SLO (requests slower than the threshold are its bad events) — :func:`error_budgets` returns a
:class:`Budget`:

- ``error_ratio`` = bad / requests of the run, and ``burn_rate`` = error_ratio / (1 - target): 1.0
  spends the period's budget exactly over the period, 14.4 spends a 30-day budget in 50 hours;
- ``allowed_failures`` / ``consumed_failures`` / ``remaining_failures``: the run's own budget in requests
  (allowed = (1 - target) x requests, what load.json's ``budget`` reports);
- ``period_budget_s``: the period's budget as time at full outage, (1 - target) x period (43.2 min for
  99.9 % over 30 days); ``consumed_s`` = error_ratio x run duration, the share of it the run itself
  spent; ``remaining_s`` and ``consumed_pct`` follow; ``exhausted_in_s`` = period / burn_rate, how long
  the budget would last if the run's error ratio held.

Latency bad events are counted from the run's HDR histogram the way the verdict reads percentiles: a
sample is slow when the top of its histogram bucket is above the threshold (never flattering).
Usage: ``error_budgets(read_load(path), period_s=30 * 86400)`` (docs/observability/SLOs.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gate.errors import InvalidEvidence, UsageError
from gate.results import read_json

DEFAULT_PERIOD_S = 30 * 86400.0


@dataclass(frozen=True)
class Budget:
    slo: str
    target_pct: float  # share of good events the objective promises
    period_s: float
    run_s: float  # how long the run measured
    requests: int
    bad: int

    @property
    def allowed_ratio(self) -> float:
        return 1.0 - self.target_pct / 100.0

    @property
    def error_ratio(self) -> float | None:
        return self.bad / self.requests if self.requests else None

    @property
    def burn_rate(self) -> float | None:
        ratio = self.error_ratio
        return None if ratio is None else ratio / self.allowed_ratio

    @property
    def allowed_failures(self) -> float:
        return self.allowed_ratio * self.requests

    @property
    def remaining_failures(self) -> float:
        return self.allowed_failures - self.bad

    @property
    def period_budget_s(self) -> float:
        return self.allowed_ratio * self.period_s

    @property
    def consumed_s(self) -> float:
        return (self.error_ratio or 0.0) * self.run_s

    @property
    def remaining_s(self) -> float:
        return self.period_budget_s - self.consumed_s

    @property
    def consumed_pct(self) -> float:
        return 100.0 * self.consumed_s / self.period_budget_s

    @property
    def exhausted_in_s(self) -> float | None:
        burn = self.burn_rate
        return self.period_s / burn if burn else None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for name in (
            "allowed_ratio",
            "error_ratio",
            "burn_rate",
            "allowed_failures",
            "remaining_failures",
            "period_budget_s",
            "consumed_s",
            "remaining_s",
            "consumed_pct",
            "exhausted_in_s",
        ):
            value = getattr(self, name)
            out[name] = None if value is None else round(value, 6)
        out["consumed_failures"] = self.bad
        return out  # fmt: skip


def read_load(path: Path) -> dict[str, Any]:
    """A load.json document; UsageError when missing, InvalidEvidence when not one."""
    if not path.is_file():
        raise UsageError(f"{path} does not exist: give results/<run-id>/load/load.json")
    try:
        doc = read_json(path, "load")
    except ValueError as exc:
        raise InvalidEvidence(f"{path} is not a load results file: {exc}") from None
    return doc


def _slow_count(ep: dict[str, Any], basis: str, threshold_ms: float) -> int:
    from load import hdr  # hdrh is only needed for latency budgets

    histogram = hdr.decode(ep["hdr"][basis])
    limit_us = threshold_ms * 1000.0
    return sum(
        int(item.count_at_value_iterated_to)
        for item in histogram.get_recorded_iterator()
        if histogram.get_highest_equivalent_value(item.value_iterated_to) > limit_us
    )


def error_budgets(doc: dict[str, Any], *, period_s: float = DEFAULT_PERIOD_S) -> list[Budget]:
    """Availability, then each SLO of the run in load.json order (see the module docstring)."""
    if period_s <= 0:
        raise UsageError("the error-budget period must be longer than 0 s")
    try:
        model = doc.get("model") or {}
        run_s = float(model.get("elapsed_s") or model.get("run_time_s") or 0.0)
        total = doc["budget"]
        out = [
            Budget("availability", float(total["availability_pct"]), period_s, run_s,
                   int(total["requests"]), int(total["consumed"]))
        ]  # fmt: skip
        for slo in doc.get("slos") or []:
            name = f"{slo['endpoint']} {slo['slo']}"
            requests = int(slo.get("samples") or 0)
            if slo["kind"] == "error_rate":
                target, bad = 100.0 - float(slo["threshold_pct"]), int(slo["budget"]["consumed"])
            else:
                target = float(slo["percentile"])
                ep = doc["endpoints"].get(slo["endpoint"])
                bad = _slow_count(ep, slo["basis"], float(slo["threshold_ms"])) if ep and requests else 0
            out.append(Budget(name, target, period_s, run_s, requests, bad))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidEvidence(
            f"load.json lacks what the error budget needs ({type(exc).__name__}: {exc})"
        ) from None
    return out
