"""relay: the reference service that relay-gate verifies (a hardened actions API)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("relay-gate")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
