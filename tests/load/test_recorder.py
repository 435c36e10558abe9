"""The recorder: outcome classes, and worker deltas that merge into exactly one recorder's data."""

from __future__ import annotations

import json
import random

import pytest

from load import hdr
from load.recorder import DRAIN_EVERY, Recorder, classify, coarse_us, percentile_of, timings


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


# -- batching: the request path only keeps a sample; nothing is lost or changed by adding them later --
def _one_by_one(samples: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    """What recording each sample as it came (hdrh's record_value, three times per sample) gives:
    the recorder before batching, written out as the reference."""
    out: dict[str, dict[str, object]] = {}
    for s in samples:
        e = out.setdefault(
            str(s["endpoint"]),
            {"corrected": hdr.new(), "uncorrected": hdr.new(), "lag": hdr.new(), "counts": {}, "statuses": {},
             "clamped": 0, "seconds": {}},
        )  # fmt: skip
        outcome, status = str(s["outcome"]), str(s["status"])
        e["counts"][outcome] = e["counts"].get(outcome, 0) + 1  # type: ignore[index,attr-defined]
        e["statuses"][status] = e["statuses"].get(status, 0) + 1  # type: ignore[index,attr-defined]
        if outcome != "rate_limited":
            ok = hdr.record_seconds(e["corrected"], s["corrected_s"])  # type: ignore[arg-type]
            ok = hdr.record_seconds(e["uncorrected"], s["latency_s"]) and ok  # type: ignore[arg-type]
            e["clamped"] += 0 if ok else 1  # type: ignore[operator]
        if s["lag_s"] is not None:
            hdr.record_seconds(e["lag"], max(s["lag_s"], 1e-6))  # type: ignore[arg-type,call-overload]
        sec = e["seconds"].setdefault(int(s["epoch_s"]), [0, 0, 0, {}])  # type: ignore[attr-defined,call-overload]
        sec[0] += 1
        sec[1] += outcome in ("server_error", "transport_error", "bad_response")
        sec[2] += outcome == "rate_limited"
        if outcome != "rate_limited":
            c = coarse_us(max(1, round(s["corrected_s"] * 1_000_000)))  # type: ignore[operator]
            sec[3][c] = sec[3].get(c, 0) + 1
    return out


def _samples_with_stalls_and_clamps(n: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    samples = [_sample(rng, i) for i in range(n)]
    for i in range(0, n, 97):  # a stall charged to the request, and samples outside the 1 µs .. 60 s range
        samples[i]["corrected_s"] = float(samples[i]["corrected_s"]) + 2.5  # type: ignore[arg-type]
    ok = {"status": 200, "outcome": "ok"}
    samples[5].update(ok, latency_s=0.0, corrected_s=0.0)
    samples[6].update(ok, corrected_s=75.0)
    samples[7].update(ok, latency_s=61.0, corrected_s=61.0, lag_s=None)
    samples[8].update(lag_s=None)
    return samples


def test_every_sample_lands_although_the_request_path_only_keeps_it() -> None:
    samples = _samples_with_stalls_and_clamps(1000, seed=3)
    rec = Recorder()
    for s in samples[: DRAIN_EVERY - 1]:  # fewer than a batch: nothing added yet, but nothing missing either
        rec.record(**s)  # type: ignore[arg-type]
    seen = sum(sum(e.counts.values()) for e in rec.endpoints.values())  # reading drains
    assert seen == DRAIN_EVERY - 1
    for s in samples[DRAIN_EVERY - 1 :]:
        rec.record(**s)  # type: ignore[arg-type]
    served = [s for s in samples if s["outcome"] != "rate_limited"]
    assert sum(e.corrected.get_total_count() for e in rec.endpoints.values()) == len(served)
    assert sum(e.uncorrected.get_total_count() for e in rec.endpoints.values()) == len(served)
    assert sum(e.lag.get_total_count() for e in rec.endpoints.values()) == sum(
        s["lag_s"] is not None for s in samples
    )
    assert sum(sum(e.counts.values()) for e in rec.endpoints.values()) == len(samples)
    series = rec.series_json(1_800_000_000)
    assert sum(sum(v["requests"]) for v in series.values()) == len(samples)


@pytest.mark.parametrize("drain_at", [[], [1, 2, 500], list(range(0, 3000, 7))])
def test_batched_recording_gives_the_histograms_counts_and_series_of_one_by_one(drain_at: list[int]) -> None:
    samples = _samples_with_stalls_and_clamps(3000, seed=5)
    rec = Recorder()
    for i, s in enumerate(samples):
        rec.record(**s)  # type: ignore[arg-type]
        if i in drain_at:
            rec.drain()
    want = _one_by_one(samples)
    assert set(rec.endpoints) == set(want)
    for name, e in rec.endpoints.items():
        w = want[name]
        for which in ("corrected", "uncorrected", "lag"):
            got, ref = getattr(e, which), w[which]
            assert list(got.counts) == list(ref.counts), which  # type: ignore[attr-defined]
            assert got.get_total_count() == ref.get_total_count()  # type: ignore[attr-defined]
            assert hdr.encode(got) == hdr.encode(ref), which  # type: ignore[arg-type]
        assert {k: v for k, v in e.counts.items() if v} == w["counts"]
        assert e.statuses == w["statuses"] and e.clamped == w["clamped"]
    assert sum(int(w["clamped"]) for w in want.values()) == 3  # type: ignore[call-overload]
    series = rec.series_json(1_800_000_000)
    for name, w in want.items():
        secs = sorted(w["seconds"])  # type: ignore[call-overload]
        rows = [w["seconds"][t] for t in secs]  # type: ignore[index]
        assert series[name]["requests"] == [r[0] for r in rows]
        assert series[name]["errors"] == [r[1] for r in rows]
        assert series[name]["rate_limited"] == [r[2] for r in rows]
        assert series[name]["p99_ms"] == [percentile_of(r[3], 99.0) for r in rows]


def test_a_worker_delta_holds_samples_not_yet_added() -> None:
    rec = Recorder()
    rec.record("list", status=200, outcome="ok", latency_s=0.002, corrected_s=0.003, lag_s=0.001, epoch_s=9.0)
    delta = rec.export_delta()  # one sample, far below a batch: it still travels
    master = Recorder()
    master.merge(delta)
    assert master.endpoints["list"].corrected.get_total_count() == 1
    assert rec.export_delta()["endpoints"] == {}


def test_the_coordinated_omission_correction_on_a_fixed_schedule() -> None:
    # 100 req/s; the server stalls from 0.5 s to 2.5 s: every request due in the stall leaves at 2.5 s
    # (all users were stuck), answered in 5 ms. Each is charged from its due time, not from its send.
    rec = Recorder()
    expected_ms = []
    for i in range(400):
        due = i / 100
        sent = 2.5 if 0.5 <= due < 2.5 else due
        latency, corrected, lag = timings(5.0, (due, sent))
        assert latency == 0.005 and lag == max(0.0, sent - due) and corrected == lag + latency
        expected_ms.append((sent - due) * 1000 + 5.0)
        rec.record("list", status=200, outcome="ok", latency_s=latency, corrected_s=corrected, lag_s=lag,
                   epoch_s=sent + latency)  # fmt: skip
    e = rec.endpoints["list"]
    assert e.corrected.get_total_count() == e.uncorrected.get_total_count() == 400
    # 200 requests were due during the 2 s stall: half of the run waited, up to 2 s
    assert hdr.value_ms(e.uncorrected, 99.9) == pytest.approx(5.0, rel=1e-3)
    assert hdr.value_ms(e.corrected, 50.0) == pytest.approx(sorted(expected_ms)[199], rel=1e-3)
    assert hdr.value_ms(e.corrected, 99.0) == pytest.approx(sorted(expected_ms)[395], rel=1e-3)
    assert 1990.0 < (hdr.value_ms(e.corrected, 100.0) or 0) < 2010.0
    reference = hdr.new()
    for ms in expected_ms:
        reference.record_value(round(ms * 1000))
    assert list(e.corrected.counts) == list(reference.counts)


def test_the_closed_model_has_no_lag_and_no_correction() -> None:
    assert timings(12.5, None) == (0.0125, 0.0125, None)
    assert timings(-1.0, None) == (0.0, 0.0, None)  # Locust never reports less than 0 ms
    assert timings(1.0, (10.0, 9.999)) == (0.001, 0.001, 0.0)  # never sent before it was due
