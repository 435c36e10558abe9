"""What a load run takes from the environment: the journey mix and the API keys.

Read by the locustfile (so plain ``locust -f load/locustfile.py`` honours them) and checked by
``relay-gate load`` before anything starts, so a typo is a usage error (exit 2), not a run full of 401s.

``RELAY_LOAD_WEIGHTS``  journey weights, e.g. ``list=4,preview=4,execute=2`` (the default)
``RELAY_API_KEY``       one bearer key
``RELAY_API_KEYS``      several keys, comma-separated (keys of several workspaces spread the load over
                        them, so a run measures the service rather than one workspace's rate limit)
"""

from __future__ import annotations

from collections.abc import Mapping

from gate.errors import UsageError
from load.endpoints import ENDPOINTS

WEIGHTS_ENV = "RELAY_LOAD_WEIGHTS"
KEY_ENV = "RELAY_API_KEY"
KEYS_ENV = "RELAY_API_KEYS"
DEFAULT_WEIGHTS: dict[str, int] = {"list": 4, "preview": 4, "execute": 2}


class LoadSettingsError(UsageError):
    """A bad RELAY_LOAD_* / RELAY_API_KEY(S) value; the message names the variable."""


def parse_weights(text: str | None) -> dict[str, int]:
    """``"list=6,execute=1"`` -> ``{"list": 6, "preview": 0, "execute": 1}``; None/empty -> the defaults.

    Journeys not named get weight 0: naming a subset is how a run focuses on some endpoints.
    """
    if not text or not text.strip():
        return dict(DEFAULT_WEIGHTS)
    weights = dict.fromkeys(ENDPOINTS, 0)
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip()
        if not sep or name not in ENDPOINTS:
            raise LoadSettingsError(
                f"{WEIGHTS_ENV}: {part.strip()!r} is not NAME=WEIGHT with NAME one of {', '.join(ENDPOINTS)}"
            )
        try:
            weight = int(value)
        except ValueError:
            raise LoadSettingsError(
                f"{WEIGHTS_ENV}: the weight of {name} must be an integer (got {value!r})"
            ) from None
        if weight < 0:
            raise LoadSettingsError(
                f"{WEIGHTS_ENV}: the weight of {name} must not be negative (got {weight})"
            )
        weights[name] = weight
    if not any(weights.values()):
        raise LoadSettingsError(f"{WEIGHTS_ENV}: at least one journey needs a weight above 0")
    return weights


def format_weights(weights: Mapping[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in weights.items())


def api_keys(environ: Mapping[str, str]) -> list[str]:
    """Every configured key, in order, without duplicates (RELAY_API_KEY first)."""
    keys: list[str] = []
    for raw in [environ.get(KEY_ENV, ""), *environ.get(KEYS_ENV, "").split(",")]:
        key = raw.strip()
        if key and key not in keys:
            keys.append(key)
    return keys


def require_keys(environ: Mapping[str, str]) -> list[str]:
    keys = api_keys(environ)
    if not keys:
        raise LoadSettingsError(
            f"no API key: set {KEY_ENV} (one key) or {KEYS_ENV} (several, comma-separated; keys of "
            "several workspaces spread the load so the rate limiter does not shape the run)"
        )
    return keys


def parse_think_time(text: str) -> tuple[float, float]:
    """Closed model think time: ``"0.5-1.5"`` -> (0.5, 1.5); ``"1"`` -> (1.0, 1.0)."""
    lo, _, hi = text.partition("-")
    try:
        a, b = float(lo), float(hi or lo)
    except ValueError:
        raise LoadSettingsError(f"--think-time must be SECONDS or MIN-MAX seconds (got {text!r})") from None
    if a < 0 or b < a:
        raise LoadSettingsError(f"--think-time must be 0 <= MIN <= MAX (got {text!r})")
    return a, b
