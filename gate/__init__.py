"""relay-gate: a release gate with evidence for hardened HTTP APIs."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # resolved on first use: importlib.metadata costs ~70 ms, and most commands never ask
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("relay-gate")
        except PackageNotFoundError:  # running from a source tree that was never installed
            value = "0.0.0+source"
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module 'gate' has no attribute {name!r}")
