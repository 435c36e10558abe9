"""``[backups]`` of a target config: where a deployment's scheduled ``relay-gate backup`` writes, and
the recovery objectives its restore drill is held to.

```toml
[backups]
dir = "/srv/backups/relay"   # relative paths are relative to the config file
rpo = "26h"                  # optional: the latest backup's age must stay within it (default 26h)
rto = "15m"                  # optional: restore time target (default 15m)
```

Checked when the config is read, before any request is sent: a folder that does not exist or holds
no backup, or a duration that does not parse, is a usage error naming the key and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.drill.layout import DEFAULT_RPO_S, DEFAULT_RTO_S, list_backups
from gate.durations import parse_duration
from gate.errors import UsageError

KEYS = frozenset({"dir", "rpo", "rto"})


@dataclass(frozen=True)
class Backups:
    """A deployment's backup folder (only ever read by the gate) and its recovery objectives."""

    dir: Path
    rpo_s: float = DEFAULT_RPO_S
    rto_s: float = DEFAULT_RTO_S

    def describe(self) -> dict[str, Any]:
        return {"dir": str(self.dir), "rpo_s": self.rpo_s, "rto_s": self.rto_s}


def parse_backups(table: dict[str, Any], *, config_path: Path | None, where: str) -> Backups | None:
    """The ``[backups]`` table as :class:`Backups`, None when the config has none."""
    if not table:
        return None
    raw = table.get("dir")
    if not isinstance(raw, str) or not raw.strip():
        raise UsageError(
            f"{where}: backups.dir must name the folder the deployment's scheduled relay-gate backup "
            'writes (dir = "…")'
        )
    path = Path(raw).expanduser()
    if not path.is_absolute() and config_path is not None:
        path = (config_path.resolve().parent / path).resolve()
    if not path.is_dir():
        raise UsageError(
            f"{where}: backups.dir {path} does not exist: point it at the --dir of the deployment's "
            "relay-gate backup (relative paths are relative to the config file)"
        )
    if not list_backups(path):
        raise UsageError(
            f"{where}: backups.dir {path} holds no backup (no YYYY-MM-DD/<db>-<UTC>.manifest.json): point it "
            "at the --dir of the deployment's relay-gate backup, or run one first"
        )
    return Backups(
        dir=path,
        rpo_s=_duration(table, "rpo", DEFAULT_RPO_S, where),
        rto_s=_duration(table, "rto", DEFAULT_RTO_S, where),
    )


def _duration(table: dict[str, Any], key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    try:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(value)
        seconds = parse_duration(value) if isinstance(value, str) else float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise UsageError(
            f'{where}: backups.{key} {value!r} is not a duration: give seconds or a string like "26h", '
            '"15m" or "1h30m"'
        )
    return seconds
