"""The recorder: outcome classes, and worker deltas that merge into exactly one recorder's data."""

from __future__ import annotations

import json
import random

import pytest

from load import hdr
from load.recorder import Recorder, classify, coarse_us, percentile_of


@pytest.mark.parametrize(
    ("status", "failed", "outcome"),
    [
        (200, False, "ok"),
        (200, True, "bad_response"),
        (429, True, "rate_limited"),
        (500, True, "server_error"),
        (502, True, "server_error"),
        (0, True, "transport_error"),
        (401, True, "client_error"),
        (422, True, "client_error"),
    ],
)
def test_classify(status: int, failed: bool, outcome: str) -> None:
    assert classify(status, failed=failed) == outcome


def _sample(rng: random.Random, i: int) -> dict[str, object]:
    status = rng.choice([200] * 40 + [429, 500, 0])
    ms = rng.lognormvariate(1.5, 1.0)
    return {
        "endpoint": rng.choice(["list", "preview", "execute"]),
        "status": status,
        "outcome": classify(status, failed=status != 200),
        "latency_s": ms / 1000,
        "corrected_s": (ms + rng.random()) / 1000,
        "lag_s": rng.random() / 1000,
        "epoch_s": 1_800_000_000 + i // 150,  # 150 req/s, in time order as a run delivers them
    }


def test_merged_worker_deltas_equal_a_single_process() -> None:
    rng = random.Random(7)
    samples = [_sample(rng, i) for i in range(6000)]
    single, master = Recorder(), Recorder()
    workers = [Recorder(), Recorder()]
    for i, s in enumerate(samples):
        single.record(**s)  # type: ignore[arg-type]
        workers[i % 2].record(**s)  # type: ignore[arg-type]
        if i % 1000 == 999:  # periodic reports, as Locust's report_to_master does
            for w in workers:
                # through JSON, as close to a msgpack round trip as matters here
                master.merge(json.loads(json.dumps(w.export_delta())))
    for w in workers:
        master.merge(w.export_delta())
    assert set(master.endpoints) == set(single.endpoints)
    for name, rec in single.endpoints.items():
        merged = master.endpoints[name]
        assert merged.counts == rec.counts and merged.statuses == rec.statuses
        for which in ("corrected", "uncorrected", "lag"):
            a, b = getattr(merged, which), getattr(rec, which)
            assert a.get_total_count() == b.get_total_count()
            for p in (50.0, 90.0, 99.0, 99.9):
                assert hdr.value_ms(a, p) == hdr.value_ms(b, p)
    assert master.series_json(1_800_000_000) == single.series_json(1_800_000_000)


def test_429s_are_counted_apart_and_kept_out_of_the_latency_histograms() -> None:
    rec = Recorder()
    kw = {"latency_s": 0.001, "corrected_s": 0.001, "lag_s": None, "epoch_s": 1.0}
    rec.record("execute", status=429, outcome="rate_limited", **kw)  # type: ignore[arg-type]
    rec.record("execute", status=200, outcome="ok", **kw)  # type: ignore[arg-type]
    e = rec.endpoints["execute"]
    assert e.counts["rate_limited"] == 1 and e.counts["ok"] == 1
    assert e.corrected.get_total_count() == 1 and e.uncorrected.get_total_count() == 1
    series = rec.series_json(0)["execute"]
    assert series["requests"] == [2] and series["rate_limited"] == [1] and series["errors"] == [0]


def test_unfinished_requests_count_in_the_corrected_histogram_only() -> None:
    rec = Recorder()
    rec.record_unfinished("list", 2.0)
    e = rec.endpoints["list"]
    assert e.unfinished == 1 and e.corrected.get_total_count() == 1 and e.uncorrected.get_total_count() == 0
    assert sum(e.counts.values()) == 0


def test_the_series_keeps_memory_flat_by_finalising_old_seconds() -> None:
    rec = Recorder()
    for sec in range(100):
        rec.record(
            "list", status=200, outcome="ok", latency_s=0.002, corrected_s=0.002, lag_s=None, epoch_s=sec
        )
        rec.finalize(horizon=15)
    assert len(rec._open) <= 16
    assert len(rec.series_json(0)["list"]["t"]) == 100


def test_coarse_buckets_round_up_to_two_digits() -> None:
    assert coarse_us(7) == 7 and coarse_us(1249) == 1300 and coarse_us(1_249_000) == 1_300_000
    assert percentile_of({1000: 95, 2000: 5}, 95.0) == 1.0
    assert percentile_of({}, 95.0) is None


def test_the_series_has_p50_p95_p99_per_second() -> None:
    rec = Recorder()
    for i in range(100):  # second 0: 1 .. 100 ms; second 1: all 7 ms
        for sec, ms in ((0, i + 1), (1, 7)):
            rec.record(
                "list", status=200, outcome="ok", latency_s=ms / 1000, corrected_s=ms / 1000, lag_s=None,
                epoch_s=sec,
            )  # fmt: skip
    series = rec.series_json(0)["list"]
    assert series["t"] == [0, 1]
    assert series["p50_ms"] == [50.0, 7.0] and series["p95_ms"] == [95.0, 7.0]
    assert series["p99_ms"] == [99.0, 7.0]
