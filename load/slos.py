"""The SLO spec (``load/slos.toml``): what a load run is judged against, parsed loudly.

Per endpoint: latency percentiles with a threshold and the samples a percentile needs before it means
anything, and an error-rate target; for the whole run: the availability target that sets the error
budget, and the limits that make a run valid evidence; and ``[regression]``, what counts as a
significant regression against a baseline run (load/baseline.py). Any mistake — an unknown endpoint or key, a
percentile outside (0, 100), a negative threshold, a string where a number belongs — raises
:class:`SloSpecError` (exit 2) naming the key, so a typo can never quietly drop an SLO.

The same parser reads the normalised spec a results file carries (:meth:`SloSpec.to_json`), which is
how ``relay-gate load --recompute`` judges a file with exactly the spec the run used.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.errors import UsageError
from load.endpoints import ENDPOINTS

DEFAULT_PATH = Path(__file__).resolve().parent / "slos.toml"
SPEC_VERSION = 1
# source: results files
_TOP = {"version", "source", "availability_pct", "validity", "endpoints", "regression"}
_ENDPOINT = {"error_rate_max_pct", "min_requests", "latency"}
_LATENCY = {"percentile", "max_ms", "min_samples"}
_VALIDITY = {"rate_tolerance_pct", "max_generator_cpu_pct", "max_rate_limited_pct"}
_RULE = {"percentile", "max_increase_pct", "noise_pct", "min_samples"}
_REGRESSION = _RULE | {"confidence_pct", "resamples", "seed", "endpoints"}


class SloSpecError(UsageError):
    """The SLO spec is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class LatencySlo:
    percentile: float
    max_ms: float
    min_samples: int

    @property
    def label(self) -> str:
        return f"p{self.percentile:g}"


@dataclass(frozen=True)
class EndpointSlo:
    name: str
    error_rate_max_pct: float
    min_requests: int
    latency: tuple[LatencySlo, ...]


@dataclass(frozen=True)
class Validity:
    rate_tolerance_pct: float = 5.0  # achieved arrival rate within ±this of the requested one
    max_generator_cpu_pct: float = 90.0  # a generator whose CPU p90 reaches this is saturated
    max_rate_limited_pct: float = 1.0  # more 429s than this per endpoint: the run measured the limiter


@dataclass(frozen=True)
class RegressionRule:
    """When a percentile of an endpoint has regressed against the baseline: worse by more than
    ``max_increase_pct`` *and* the confidence interval of the shift above zero. A shift of at most
    ``noise_pct`` either way is no significant change even when the interval excludes zero: the
    interval covers the sampling of each run, not the drift between two runs of one build."""

    percentile: float = 99.0
    max_increase_pct: float = 25.0
    min_samples: int = 1000  # in each run; default: as many as the percentile needs for an SLO
    noise_pct: float = 10.0  # never above max_increase_pct (the default follows a smaller allowance)

    @property
    def label(self) -> str:
        return f"p{self.percentile:g}"

    def to_json(self) -> dict[str, Any]:
        return {
            "percentile": self.percentile,
            "max_increase_pct": self.max_increase_pct,
            "noise_pct": self.noise_pct,
            "min_samples": self.min_samples,
        }


@dataclass(frozen=True)
class Regression:
    """``[regression]``: the rule for every endpoint, per-endpoint overrides, and the bootstrap's
    confidence, number of resamples and seed (fixed, so a comparison is reproducible)."""

    rule: RegressionRule = field(default_factory=RegressionRule)
    endpoints: dict[str, RegressionRule] = field(default_factory=dict)
    confidence_pct: float = 95.0
    resamples: int = 10_000
    seed: int = 17

    def rule_for(self, endpoint: str) -> RegressionRule:
        return self.endpoints.get(endpoint, self.rule)

    def to_json(self) -> dict[str, Any]:
        """Every default explicit; :func:`parse_regression` reads it back (a comparison records it)."""
        return {
            **self.rule.to_json(),
            "confidence_pct": self.confidence_pct,
            "resamples": self.resamples,
            "seed": self.seed,
            "endpoints": {name: r.to_json() for name, r in self.endpoints.items()},
        }


@dataclass(frozen=True)
class SloSpec:
    availability_pct: float
    endpoints: dict[str, EndpointSlo]
    validity: Validity = field(default_factory=Validity)
    source: str = "<spec>"
    # not in to_json(): the SLO verdict never reads it, and a comparison records the rules it used
    regression: Regression = field(default_factory=Regression)

    def to_json(self) -> dict[str, Any]:
        """The spec with every default made explicit: what a results file records."""
        return {
            "version": SPEC_VERSION,
            "source": self.source,
            "availability_pct": self.availability_pct,
            "validity": {
                "rate_tolerance_pct": self.validity.rate_tolerance_pct,
                "max_generator_cpu_pct": self.validity.max_generator_cpu_pct,
                "max_rate_limited_pct": self.validity.max_rate_limited_pct,
            },
            "endpoints": {
                name: {
                    "error_rate_max_pct": e.error_rate_max_pct,
                    "min_requests": e.min_requests,
                    "latency": [
                        {"percentile": s.percentile, "max_ms": s.max_ms, "min_samples": s.min_samples}
                        for s in e.latency
                    ],
                }
                for name, e in self.endpoints.items()
            },
        }


def default_min_samples(percentile: float) -> int:
    """Samples a percentile needs: at least 10 beyond it (p99 -> 1,000, p95 -> 200, p50 -> 20)."""
    return math.ceil(round(10.0 / (1.0 - percentile / 100.0), 6))


def default_min_requests(error_rate_max_pct: float) -> int:
    """Requests an error-rate target needs before its budget allows even one failure."""
    if error_rate_max_pct <= 0:
        return 1000
    return math.ceil(round(100.0 / error_rate_max_pct, 6))


def load(path: Path | None = None) -> SloSpec:
    """Read and validate a TOML spec (default: ``load/slos.toml``)."""
    path = path or DEFAULT_PATH
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise SloSpecError(f"SLO spec {path} does not exist (the default is {DEFAULT_PATH})") from None
    except IsADirectoryError:
        raise SloSpecError(f"SLO spec {path} is a directory, not a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SloSpecError(f"SLO spec {path} is not valid TOML: {exc}") from None
    return parse(doc, source=str(path))


def parse(doc: Mapping[str, Any], *, source: str = "<spec>") -> SloSpec:
    """Validate a spec given as a mapping (a TOML document, or the ``slos`` of a results file)."""
    where = source
    _no_unknown(doc, _TOP, where, "")
    version = doc.get("version", SPEC_VERSION)
    if version != SPEC_VERSION:
        raise SloSpecError(f"{where}: version must be {SPEC_VERSION} (got {version!r})")
    availability = _number(doc, "availability_pct", where, "", default=99.9, low=0.0, high=100.0)
    if availability >= 100.0:
        raise SloSpecError(
            f"{where}: availability_pct must be below 100 (a 100 % target has no error budget)"
        )

    vdoc = _table(doc, "validity", where, "")
    _no_unknown(vdoc, _VALIDITY, where, "validity.")
    validity = Validity(
        rate_tolerance_pct=_number(vdoc, "rate_tolerance_pct", where, "validity.", default=5.0, low=0.0),
        max_generator_cpu_pct=_number(
            vdoc, "max_generator_cpu_pct", where, "validity.", default=90.0, low=0.0, high=100.0
        ),
        max_rate_limited_pct=_number(
            vdoc, "max_rate_limited_pct", where, "validity.", default=1.0, low=0.0, high=100.0
        ),
    )

    edoc = _table(doc, "endpoints", where, "")
    if not edoc:
        raise SloSpecError(f"{where}: [endpoints] is empty; give at least one of {', '.join(ENDPOINTS)}")
    endpoints: dict[str, EndpointSlo] = {}
    for name, spec in edoc.items():
        key = f"endpoints.{name}"
        if name not in ENDPOINTS:
            raise SloSpecError(
                f"{where}: {key} is not an endpoint of the load test; known: {', '.join(ENDPOINTS)}"
            )
        if not isinstance(spec, Mapping):
            raise SloSpecError(f"{where}: {key} must be a table")
        _no_unknown(spec, _ENDPOINT, where, f"{key}.")
        rate = _number(spec, "error_rate_max_pct", where, f"{key}.", low=0.0, high=100.0)
        min_requests = _integer(spec, "min_requests", where, f"{key}.", default=default_min_requests(rate))
        latency_doc = spec.get("latency", [])
        if not isinstance(latency_doc, list):
            raise SloSpecError(f"{where}: {key}.latency must be an array of {{ percentile, max_ms }} tables")
        latency: list[LatencySlo] = []
        for i, item in enumerate(latency_doc):
            lkey = f"{key}.latency[{i}]"
            if not isinstance(item, Mapping):
                raise SloSpecError(f"{where}: {lkey} must be a table {{ percentile = 99, max_ms = 50 }}")
            _no_unknown(item, _LATENCY, where, f"{lkey}.")
            p = _number(item, "percentile", where, f"{lkey}.")
            if not 0.0 < p < 100.0:
                raise SloSpecError(
                    f"{where}: {lkey}.percentile must be greater than 0 and less than 100 (got {p:g})"
                )
            max_ms = _number(item, "max_ms", where, f"{lkey}.", low=0.0)
            if max_ms <= 0:
                raise SloSpecError(f"{where}: {lkey}.max_ms must be greater than 0 (got {max_ms:g})")
            min_samples = _integer(item, "min_samples", where, f"{lkey}.", default=default_min_samples(p))
            latency.append(LatencySlo(percentile=p, max_ms=max_ms, min_samples=min_samples))
        if len({s.percentile for s in latency}) != len(latency):
            raise SloSpecError(f"{where}: {key}.latency names the same percentile twice")
        endpoints[name] = EndpointSlo(name, rate, min_requests, tuple(latency))
    regression = parse_regression(_table(doc, "regression", where, ""), source=source)
    return SloSpec(
        availability_pct=availability,
        endpoints=endpoints,
        validity=validity,
        source=source,
        regression=regression,
    )


def parse_regression(doc: Mapping[str, Any], *, source: str = "<spec>") -> Regression:
    """Validate a ``[regression]`` table (of a TOML spec, or the rules a comparison recorded)."""
    where, prefix = source, "regression."
    _no_unknown(doc, _REGRESSION, where, prefix)
    confidence = _number(doc, "confidence_pct", where, prefix, default=95.0, low=0.0, high=100.0)
    if not 50.0 <= confidence < 100.0:
        raise SloSpecError(
            f"{where}: {prefix}confidence_pct must be at least 50 and below 100 (got {confidence:g})"
        )
    resamples = _integer(doc, "resamples", where, prefix, default=10_000)
    if not 100 <= resamples <= 1_000_000:
        raise SloSpecError(f"{where}: {prefix}resamples must be between 100 and 1000000 (got {resamples})")
    seed = _integer(doc, "seed", where, prefix, default=17, low=0)
    rule = _rule(doc, where, prefix, RegressionRule())
    overrides = _table(doc, "endpoints", where, prefix)
    endpoints: dict[str, RegressionRule] = {}
    for name, table in overrides.items():
        key = f"{prefix}endpoints.{name}"
        if name not in ENDPOINTS:
            raise SloSpecError(
                f"{where}: {key} is not an endpoint of the load test; known: {', '.join(ENDPOINTS)}"
            )
        if not isinstance(table, Mapping):
            raise SloSpecError(f"{where}: {key} must be a table")
        _no_unknown(table, _RULE, where, f"{key}.")
        endpoints[name] = _rule(table, where, f"{key}.", rule)
    return Regression(rule, endpoints, confidence, resamples, seed)


def _rule(table: Mapping[str, Any], where: str, prefix: str, base: RegressionRule) -> RegressionRule:
    """A rule from ``table``, each key missing from it taken from ``base`` (min_samples follows a
    percentile given here, as for an SLO)."""
    p = _number(table, "percentile", where, prefix, default=base.percentile)
    if not 0.0 < p < 100.0:
        raise SloSpecError(
            f"{where}: {prefix}percentile must be greater than 0 and less than 100 (got {p:g})"
        )
    increase = _number(table, "max_increase_pct", where, prefix, default=base.max_increase_pct, low=0.0)
    if "percentile" in table and "min_samples" not in table:
        samples = default_min_samples(p)
    else:
        samples = _integer(table, "min_samples", where, prefix, default=base.min_samples)
    if "noise_pct" in table:
        noise = _number(table, "noise_pct", where, prefix, default=base.noise_pct, low=0.0)
        if noise > increase:
            raise SloSpecError(
                f"{where}: {prefix}noise_pct ({noise:g}) must not exceed max_increase_pct ({increase:g}): "
                "a shift the rule calls a regression cannot also be noise"
            )
    else:
        noise = min(base.noise_pct, increase)  # a smaller allowance takes the noise band down with it
    return RegressionRule(percentile=p, max_increase_pct=increase, min_samples=samples, noise_pct=noise)


def _no_unknown(table: Mapping[str, Any], known: set[str], where: str, prefix: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise SloSpecError(
            f"{where}: unknown key {prefix}{unknown[0]}; known here: {', '.join(sorted(known))}"
        )


def _table(doc: Mapping[str, Any], key: str, where: str, prefix: str) -> Mapping[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, Mapping):
        raise SloSpecError(f"{where}: {prefix}{key} must be a table")
    return value


def _number(
    table: Mapping[str, Any],
    key: str,
    where: str,
    prefix: str,
    *,
    default: float | None = None,
    low: float | None = None,
    high: float | None = None,
) -> float:
    if key not in table:
        if default is None:
            raise SloSpecError(f"{where}: {prefix}{key} is missing")
        return default
    value = table[key]
    # bool is an int to Python, but `percentile = true` is a mistake, not 1
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SloSpecError(f"{where}: {prefix}{key} must be a number (got {value!r})")
    if low is not None and value < low:
        raise SloSpecError(f"{where}: {prefix}{key} must not be negative (got {value:g})")
    if high is not None and value > high:
        raise SloSpecError(f"{where}: {prefix}{key} must be at most {high:g} (got {value:g})")
    return float(value)


def _integer(
    table: Mapping[str, Any], key: str, where: str, prefix: str, *, default: int, low: int = 1
) -> int:
    if key not in table:
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        what = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise SloSpecError(f"{where}: {prefix}{key} must be {what} (got {value!r})")
    return value
