"""HDR histograms for response times: 1 µs .. 60 s at 3 significant digits, encoded for results files.

Every response time is recorded here instead of relying on Locust's statistics, which round a sample
to two significant digits above 100 ms (a true 1,249 ms is counted as 1,200 ms and passes a 1.2 s
SLO). A value is stored in integer microseconds; a percentile reads back the *highest* value
equivalent to its bucket, so rounding can only make a figure look worse, never better (1,249 ms
reads back as 1,249.279 ms).

The encoding is HdrHistogram's own compressed V2 format, base64-wrapped (what ``HdrHistogram.encode``
produces): any HdrHistogram implementation can decode a results file, and a verdict can be
recomputed from it offline.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 60_000_000  # 60 s; longer samples are clamped to this (and counted as clamped)
SIGNIFICANT_DIGITS = 3
# the percentiles every summary reports (an SLO may ask for any other)
REPORTED = (50.0, 90.0, 95.0, 99.0, 99.9)


class HistogramError(ValueError):
    """An encoded histogram that cannot be decoded or does not have the expected range and precision."""


def new() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def record_seconds(histogram: HdrHistogram, seconds: float) -> bool:
    """Record one duration; False when it fell outside 1 µs .. 60 s and was clamped to the range."""
    us = round(seconds * 1_000_000)
    clamped = us < LOWEST_US or us > HIGHEST_US
    histogram.record_value(min(max(us, LOWEST_US), HIGHEST_US))
    return not clamped


def to_us(seconds: float) -> int:
    """A duration in whole microseconds, clamped to 1 µs .. 60 s (``record_seconds``' rounding)."""
    us = round(seconds * 1_000_000)
    return LOWEST_US if us < LOWEST_US else HIGHEST_US if us > HIGHEST_US else us


def record_many(histogram: HdrHistogram, values_us: Iterable[int]) -> None:
    """Record many values (integer µs, already within the range) at once: what ``record_value`` does
    for each, with its bucket arithmetic inlined and the totals updated once. hdrh's ``record_value``
    costs five Python calls per value, and the load generator records three values per request.

    Uses hdrh's counts array and tracking fields; tests/load/test_hdr.py checks it against
    ``record_value`` value for value, so an hdrh that changes them fails there, not in a run.
    """
    counts = histogram.counts
    mask = histogram.sub_bucket_mask
    unit = histogram.unit_magnitude
    half_mag = histogram.sub_bucket_half_count_magnitude
    half = histogram.sub_bucket_half_count
    shift = unit + half_mag + 1
    n = 0
    low, high = histogram.min_value, histogram.max_value
    for v in values_us:
        # hdrh's _counts_index_for: 64 - clz(v | mask) is (v | mask).bit_length()
        bucket = (v | mask).bit_length() - shift
        counts[((bucket + 1) << half_mag) + (v >> (bucket + unit)) - half] += 1
        n += 1
        if v < low:
            low = v
        if v > high:
            high = v
    histogram.total_count += n
    histogram.min_value, histogram.max_value = low, high


def encode(histogram: HdrHistogram) -> str:
    return str(histogram.encode().decode("ascii"))


def decode(blob: str) -> HdrHistogram:
    """Decode a base64 HdrHistogram blob, refusing one recorded with another range or precision
    (percentiles of differently bucketed histograms cannot be merged or compared exactly)."""
    try:
        histogram = HdrHistogram.decode(blob.encode("ascii"))
    except Exception as exc:  # hdrh raises TypeError, zlib.error and its own cookie/length errors
        raise HistogramError(f"not an HdrHistogram V2 blob ({type(exc).__name__}: {exc})") from None
    geometry = (
        histogram.lowest_trackable_value,
        histogram.highest_trackable_value,
        histogram.significant_figures,
    )
    if geometry != (LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS):
        raise HistogramError(
            f"histogram range/precision {geometry} is not ({LOWEST_US}, {HIGHEST_US}, {SIGNIFICANT_DIGITS})"
        )
    return histogram


def add_encoded(histogram: HdrHistogram, blob: str) -> None:
    """Add an encoded histogram (a worker's report) into ``histogram``."""
    histogram.add(decode(blob))


def value_ms(histogram: HdrHistogram, percentile: float) -> float | None:
    """The value at ``percentile`` (0 < p <= 100) in milliseconds, or None for an empty histogram."""
    if histogram.get_total_count() == 0:
        return None
    return round(float(histogram.get_value_at_percentile(percentile)) / 1000.0, 3)


def summary_ms(histogram: HdrHistogram) -> dict[str, Any]:
    """Count, min, max and the reported percentiles, in milliseconds (None when empty). No mean: hdrh
    computes it by iterating every bucket in Python, and a mean hides exactly the tail SLOs are about."""
    count = int(histogram.get_total_count())
    out: dict[str, Any] = {"count": count}
    # one pass over the counts for all percentiles (same values as value_ms, one at a time)
    values = histogram.get_percentile_to_value_dict(list(REPORTED)) if count else {}
    for p in REPORTED:
        out[percentile_key(p)] = round(float(values[p]) / 1000.0, 3) if p in values else None
    if count:
        out["min"] = round(histogram.get_min_value() / 1000.0, 3)
        out["max"] = round(histogram.get_highest_equivalent_value(histogram.get_max_value()) / 1000.0, 3)
    else:
        out.update(min=None, max=None)
    return out


def percentile_key(percentile: float) -> str:
    """``99.0 -> "p99"``, ``99.9 -> "p99.9"``: the keys results files use."""
    return f"p{percentile:g}"
