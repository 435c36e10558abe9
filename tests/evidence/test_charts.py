"""The evidence pack's latency charts (evidence/charts.py): a percentile spectrum on a log "nines"
axis and per-second lines with the fault windows shaded -- drawn from what the results files hold."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest

from evidence import charts
from evidence.faults_document import fault_windows
from evidence.sections import spectrum_points
from load import hdr

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)  # noqa: S314 -- our own output: well-formed XML, or this raises


def _points(polyline: ElementTree.Element) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (p.split(",") for p in polyline.attrib["points"].split())]


NINES = [(50, 0.30103), (90, 1), (99, 2), (99.9, 3), (99.99, 4)]


@pytest.mark.parametrize(("percentile", "coordinate"), NINES)
def test_the_nines_axis(percentile: float, coordinate: float) -> None:
    assert charts.nines(percentile) == pytest.approx(coordinate, abs=1e-4)


def test_the_spectrum_percentiles_run_from_50_to_99_99_evenly_in_nines() -> None:
    ps = charts.SPECTRUM_PERCENTILES
    assert ps[0] == pytest.approx(50, abs=0.01) and ps[-1] == pytest.approx(99.99, abs=0.001)
    steps = [charts.nines(b) - charts.nines(a) for a, b in itertools.pairwise(ps)]
    assert max(steps) - min(steps) < 0.01


def _histogram(ms_values: list[float]) -> str:
    h = hdr.new()
    for ms in ms_values:
        hdr.record_seconds(h, ms / 1000)
    return hdr.encode(h)


def test_spectrum_points_read_the_histogram_and_nothing_else() -> None:
    blob = _histogram([2.0] * 900 + [40.0] * 99 + [500.0])  # p50 2 ms, p99 40 ms, the max 500 ms
    pts = dict(spectrum_points(blob))
    assert pts[min(pts)] == pytest.approx(2.0, rel=0.01)
    p99 = min(p for p in pts if p >= 99)
    assert pts[p99] == pytest.approx(40.0, rel=0.01) and pts[max(pts)] == pytest.approx(500.0, rel=0.01)
    assert [ms for _, ms in sorted(pts.items())] == sorted(pts.values())  # a spectrum never falls
    assert spectrum_points("not a histogram") == [] and spectrum_points(None) == []
    assert spectrum_points(_histogram([])) == []


def test_a_spectrum_draws_each_run_and_the_slo() -> None:
    run = [(50.0, 2.0), (99.0, 40.0), (99.99, 500.0)]
    baseline = [(50.0, 2.0), (99.0, 20.0), (99.99, 250.0)]
    svg = charts.percentile_spectrum("list <latency>", [("this run", run), ("baseline", baseline)],
                                     threshold=(99.0, 50.0))  # fmt: skip
    root = _parse(svg)
    lines = root.findall(f"{SVG}polyline")
    assert len(lines) == 2 and "stroke-dasharray" in lines[1].attrib  # the baseline dashed
    xs = [x for x, _ in _points(lines[0])]
    assert xs == sorted(xs) and xs[0] == pytest.approx(56) and xs[-1] == pytest.approx(640 - 16)
    ys = [y for _, y in _points(lines[0])]
    assert ys == sorted(ys, reverse=True)  # higher latency is drawn higher up
    assert "SLO: p99 &lt;= 50 ms" in svg and root.find(f"{SVG}circle") is not None
    assert "list &lt;latency&gt;" in svg  # labels are escaped
    for tick in ("50 %", "99 %", "99.99 %"):
        assert f">{tick}</text>" in svg


def test_a_time_series_breaks_at_a_second_without_value_and_shades_the_fault_windows() -> None:
    t = [0, 1, 2, 3, 4, 5, 6]
    p99 = [5.0, 6.0, None, 300.0, 280.0, None, 7.0]
    svg = charts.time_series("p99", t, [("p99", p99)], shaded=[(2.5, 4.5, "redis hung")])
    root = _parse(svg)
    assert len(root.findall(f"{SVG}polyline")) == 2  # 0..1 and 3..4
    assert len(root.findall(f"{SVG}circle")) == 1  # the lone second 6
    shaded = [r for r in root.findall(f"{SVG}rect") if r.attrib.get("fill") == "#fed7d7"]
    assert len(shaded) == 1 and "redis hung: 2.5 s .. 4.5 s" in svg


def test_fault_windows_pair_each_fault_with_its_recovery() -> None:
    events = [
        {"event": "kill_redis", "at_s": 5.0}, {"event": "restart_redis", "at_s": 10.0},
        {"event": "pause_redis", "at_s": 16.0}, {"event": "resume_redis", "at_s": 19.0},
        {"event": "stop_postgres", "at_s": 25.0}, {"event": "kill_redis", "at_s": 31.0, "done_s": 31.5},
    ]  # fmt: skip
    assert fault_windows(events) == [
        (5.0, 10.0, "redis killed"), (16.0, 19.0, "redis hung"),
        (25.0, 31.5, "postgres down"), (31.0, 31.5, "redis killed"),  # never restarted: to the last event
    ]  # fmt: skip


def test_metrics_summary_charts_come_from_load_json(tmp_path: Path) -> None:
    from evidence.model import Results
    from evidence.sections import metrics

    load = {
        "endpoints": {"list": {"hdr": {"corrected": _histogram([3.0] * 990 + [45.0] * 10)}}},
        "slos": [{"kind": "latency", "endpoint": "list", "percentile": 99, "threshold_ms": 50}],
        "series": {"list": {"t": [0, 1], "requests": [500, 500], "errors": [0, 0], "rate_limited": [0, 0],
                            "p50_ms": [3.0, 3.0], "p99_ms": [45.0, 44.0]}},
    }  # fmt: skip
    run = tmp_path / "results"
    (run / "load").mkdir(parents=True)
    (run / "load" / "load.json").write_text(json.dumps(load))
    out = tmp_path / "charts"
    out.mkdir()
    ctx = metrics(Results(root=run, load=load), out)
    names = [c for c, _ in ctx["charts"]]
    assert names == ["latency-list.svg", "per-second-list.svg", "latency-per-second-list.svg"]
    spectrum = (out / "latency-list.svg").read_text()
    assert re.search(r"<polyline points=", spectrum) and "SLO: p99 &lt;= 50 ms" in spectrum
    assert len(_parse((out / "latency-per-second-list.svg").read_text()).findall(f"{SVG}polyline")) == 2


def test_a_compared_run_draws_its_baseline_beside_it(tmp_path: Path) -> None:
    from evidence.model import Results
    from evidence.sections import metrics

    before = _histogram([3.0] * 990 + [11.0] * 10)
    load = {
        "endpoints": {"preview": {"hdr": {"corrected": _histogram([3.0] * 990 + [17.0] * 10)}}},
        "comparison": {"baseline": {"endpoints": {"preview": {"hdr": before}}}},
    }
    metrics(Results(root=tmp_path, load=load), tmp_path)
    svg = (tmp_path / "latency-preview.svg").read_text()
    this_run, baseline = _parse(svg).findall(f"{SVG}polyline")
    assert "stroke-dasharray" in baseline.attrib and "baseline run" in svg
    assert min(y for _, y in _points(this_run)) < min(y for _, y in _points(baseline))  # 17 ms tail is higher
