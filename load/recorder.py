"""Per-endpoint measurements of a load run: HDR histograms, outcome counts and a per-second series.

One :class:`Recorder` lives in every Locust process. A worker ships what it recorded since its last
report as a *delta* (:meth:`Recorder.export_delta`: encoded histograms, counts, seconds) and starts
afresh; the master adds every delta into its own recorder (:meth:`Recorder.merge`). HDR histograms
add exactly, so a merged percentile is the percentile of all samples — not an average of workers'
percentiles — and a distributed run yields the same form of verdict as a single process.

Outcomes: ``ok``; ``rate_limited`` (429: the limiter doing its job, not an error, counted apart and
kept out of the latency histograms, where cheap refusals would flatter the figures); ``server_error``
(5xx), ``transport_error`` (refused, reset, timed out) and ``bad_response`` (2xx with a body that is not
what the endpoint promises) — these three are the errors of the error-rate SLOs; ``client_error``
(other 4xx: the load test's own requests are wrong, e.g. a bad key; such a run is not evidence).

Histograms per endpoint: ``corrected`` (latency from the intended send time in the open model; the
same as ``uncorrected`` in the closed model), ``uncorrected`` (from the actual send: what a closed-loop
tool reports), ``lag`` (open model: how late requests were sent against their schedule).

This module does not import Locust: the CLI uses it to recompute verdicts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from load import hdr

OUTCOMES = ("ok", "rate_limited", "server_error", "transport_error", "bad_response", "client_error")
ERROR_OUTCOMES = frozenset({"server_error", "transport_error", "bad_response"})
# a second of the series is final once this many seconds have passed it: workers report every 3 s
SERIES_HORIZON_S = 15


def classify(status: int, *, failed: bool) -> str:
    """The outcome of one response (``status`` 0 = no response at all)."""
    if status == 0:
        return "transport_error"
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "client_error"
    return "bad_response" if failed else "ok"


def timings(response_time_ms: float, paced: tuple[float, float] | None) -> tuple[float, float, float | None]:
    """``(latency_s, corrected_s, lag_s)`` of one response from Locust's response time and, in the
    open model, its ``(intended, sent)`` times: the coordinated-omission correction. The corrected
    latency counts from when the schedule wanted the request sent, so time spent waiting for a free
    user (a stalled server holds them all) is charged to the request; ``lag_s`` is that wait (never
    negative: a request is never sent before it is due). Closed model: no lag, corrected = latency."""
    latency = max(0.0, response_time_ms) / 1000.0
    if paced is None:
        return latency, latency, None
    lag = max(0.0, paced[1] - paced[0])
    return latency, lag + latency, lag


def coarse_us(us: int) -> int:
    """Round up to 2 significant digits: the per-second series keeps small sparse histograms (the
    verdict never uses them; it reads the full HDR histograms)."""
    if us < 100:
        return max(us, 1)
    step = 10 ** (int(math.log10(us)) - 1)
    return -(-us // step) * step


def percentile_of(counts: dict[int, int], percentile: float) -> float | None:
    total = sum(counts.values())
    if not total:
        return None
    target = max(1, math.ceil(percentile / 100.0 * total))
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= target:
            return value / 1000.0
    return max(counts) / 1000.0


@dataclass
class EndpointRecord:
    corrected: HdrHistogram = field(default_factory=hdr.new)
    uncorrected: HdrHistogram = field(default_factory=hdr.new)
    lag: HdrHistogram = field(default_factory=hdr.new)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    statuses: dict[str, int] = field(default_factory=dict)
    clamped: int = 0
    unfinished: int = 0  # open model: in flight when the run stopped, charged (stop - intended)

    def export(self) -> dict[str, Any]:
        return {
            "corrected": hdr.encode(self.corrected),
            "uncorrected": hdr.encode(self.uncorrected),
            "lag": hdr.encode(self.lag),
            "counts": dict(self.counts),
            "statuses": dict(self.statuses),
            "clamped": self.clamped,
            "unfinished": self.unfinished,
        }

    def add(self, data: dict[str, Any]) -> None:
        for name in ("corrected", "uncorrected", "lag"):
            hdr.add_encoded(getattr(self, name), data[name])
        for k, v in data["counts"].items():
            self.counts[k] = self.counts.get(k, 0) + int(v)
        for k, v in data["statuses"].items():
            self.statuses[k] = self.statuses.get(k, 0) + int(v)
        self.clamped += int(data["clamped"])
        self.unfinished += int(data["unfinished"])


@dataclass
class _Second:
    count: int = 0
    errors: int = 0
    rate_limited: int = 0
    latency: dict[int, int] = field(default_factory=dict)  # coarse µs -> samples


# samples wait in a list and are added in batches of this many (or before anything reads the recorder)
DRAIN_EVERY = 128


class Recorder:
    """Every sample of a Locust process. :meth:`record` is on the request path, so it only keeps the
    sample; :meth:`drain` adds kept samples to the histograms, counts and series in a batch, which
    costs a fraction of doing it sample by sample (hdr.record_many). Whatever reads the recorder
    (``endpoints``, :meth:`export_delta`, :meth:`finalize`, :meth:`series_json`) drains first, so no
    reader ever sees a sample missing."""

    def __init__(self) -> None:
        self._endpoints: dict[str, EndpointRecord] = {}
        self._pending: list[tuple[str, int, str, float, float, float | None, float]] = []
        self._open: dict[int, dict[str, _Second]] = {}  # seconds still receiving samples
        # endpoint -> second -> [n, err, 429, p95, p50, p99]
        self.series: dict[str, dict[int, list[Any]]] = {}
        self._latest_second = 0

    @property
    def endpoints(self) -> dict[str, EndpointRecord]:
        self.drain()
        return self._endpoints

    def endpoint(self, name: str) -> EndpointRecord:
        rec = self._endpoints.get(name)
        if rec is None:
            rec = self._endpoints[name] = EndpointRecord()
        return rec

    # -- recording (every process) ---------------------------------------------------------------
    def record(
        self,
        endpoint: str,
        *,
        status: int,
        outcome: str,
        latency_s: float,
        corrected_s: float,
        lag_s: float | None,
        epoch_s: float,
    ) -> None:
        """One response: ``latency_s`` from the actual send, ``corrected_s`` from the intended send
        (open model; the same in the closed model), ``lag_s`` how late it left (None: closed model),
        ``epoch_s`` when it completed (its second in the series)."""
        pending = self._pending
        pending.append((endpoint, status, outcome, latency_s, corrected_s, lag_s, epoch_s))
        if len(pending) >= DRAIN_EVERY:
            self.drain()

    def drain(self) -> None:
        """Add the kept samples: what recording them one by one would have added, exactly."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        by_endpoint: dict[str, list[tuple[str, int, str, float, float, float | None, float]]] = {}
        for sample in pending:
            group = by_endpoint.get(sample[0])
            if group is None:
                group = by_endpoint[sample[0]] = []
            group.append(sample)
        for name, samples in by_endpoint.items():
            self._add(name, samples)

    def _add(self, name: str, samples: list[tuple[str, int, str, float, float, float | None, float]]) -> None:
        rec = self.endpoint(name)
        counts = rec.counts
        statuses: dict[int, int] = {}
        corrected: list[int] = []
        uncorrected: list[int] = []
        lags: list[int] = []
        low, high = hdr.LOWEST_US, hdr.HIGHEST_US
        clamped = 0
        last_sec, second = None, _Second()
        for _, status, outcome, latency_s, corrected_s, lag_s, epoch_s in samples:
            counts[outcome] += 1
            statuses[status] = statuses.get(status, 0) + 1
            limited = outcome == "rate_limited"
            if not limited:  # 429s stay out of the latency histograms
                c = round(corrected_s * 1_000_000)
                u = round(latency_s * 1_000_000)
                if c < low or c > high or u < low or u > high:
                    clamped += 1
                corrected.append(low if c < low else high if c > high else c)
                uncorrected.append(low if u < low else high if u > high else u)
            if lag_s is not None:
                lags.append(hdr.to_us(max(lag_s, 1e-6)))
            sec = int(epoch_s)
            if sec != last_sec:
                second, last_sec = self._second(sec, name), sec
            second.count += 1
            if limited:
                second.rate_limited += 1
                continue
            if outcome in ERROR_OUTCOMES:
                second.errors += 1
            k = coarse_us(c if c > 1 else 1)
            second.latency[k] = second.latency.get(k, 0) + 1
        for status, n in statuses.items():
            key = str(status)
            rec.statuses[key] = rec.statuses.get(key, 0) + n
        rec.clamped += clamped
        hdr.record_many(rec.corrected, corrected)
        hdr.record_many(rec.uncorrected, uncorrected)
        hdr.record_many(rec.lag, lags)

    def record_unfinished(self, endpoint: str, corrected_s: float) -> None:
        """A request still in flight when the run stopped: its latency is at least this long."""
        rec = self.endpoint(endpoint)
        rec.unfinished += 1
        if not hdr.record_seconds(rec.corrected, corrected_s):
            rec.clamped += 1

    def _second(self, second: int, endpoint: str) -> _Second:
        if second > self._latest_second:
            self._latest_second = second
        bucket = self._open.setdefault(second, {})
        s = bucket.get(endpoint)
        if s is None:
            s = bucket[endpoint] = _Second()
        return s

    # -- worker -> master ------------------------------------------------------------------------
    def export_delta(self) -> dict[str, Any]:
        """Everything recorded since the last call, encoded for a Locust message; then start afresh."""
        self.drain()
        delta = {
            "endpoints": {name: rec.export() for name, rec in self._endpoints.items()},
            "seconds": [
                [sec, name, s.count, s.errors, s.rate_limited, [[k, v] for k, v in s.latency.items()]]
                for sec, per in self._open.items()
                for name, s in per.items()
            ],
        }
        self._endpoints = {}
        self._open = {}
        return delta

    def merge(self, delta: dict[str, Any]) -> None:
        for name, data in delta.get("endpoints", {}).items():
            self.endpoint(name).add(data)
        for sec, name, count, errors, limited, latency in delta.get("seconds", []):
            s = self._second(int(sec), str(name))
            s.count += int(count)
            s.errors += int(errors)
            s.rate_limited += int(limited)
            for k, v in latency:
                s.latency[int(k)] = s.latency.get(int(k), 0) + int(v)
        self.finalize(horizon=SERIES_HORIZON_S)

    # -- the per-second series -----------------------------------------------------------------
    def finalize(self, *, horizon: int = 0) -> None:
        """Turn seconds older than ``horizon`` seconds into series rows and drop their sample
        counts, so memory stays flat over a long run."""
        self.drain()
        cutoff = self._latest_second - horizon
        for sec in [s for s in self._open if s <= cutoff]:
            for name, s in self._open.pop(sec).items():
                row = self.series.setdefault(name, {}).get(sec)
                if row is None:
                    figures = [percentile_of(s.latency, p) for p in (95.0, 50.0, 99.0)]
                    self.series[name][sec] = [s.count, s.errors, s.rate_limited, *figures]
                else:  # a late report for a finished second: counts stay exact, percentiles keep the first
                    row[0] += s.count
                    row[1] += s.errors
                    row[2] += s.rate_limited

    def series_json(self, start_epoch: float) -> dict[str, Any]:
        """Columnar per-second series per endpoint, ``t`` in seconds since ``start_epoch``."""
        self.finalize(horizon=0)
        out: dict[str, Any] = {}
        for name, rows in sorted(self.series.items()):
            secs = sorted(rows)
            out[name] = {
                "t": [sec - int(start_epoch) for sec in secs],
                "requests": [rows[s][0] for s in secs],
                "errors": [rows[s][1] for s in secs],
                "rate_limited": [rows[s][2] for s in secs],
                "p95_ms": [rows[s][3] for s in secs],
                "p50_ms": [rows[s][4] for s in secs],
                "p99_ms": [rows[s][5] for s in secs],
            }
        return out
