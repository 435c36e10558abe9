"""Keeping a test's requests inside one fixed rate-limit window.

The reference limiter counts per epoch-aligned window (``floor(now / window_s)``). A test that
expects exactly ``limit`` admissions fails by chance when its requests straddle a window boundary
(both windows admit ``limit``). Tests that do not care about the window's length use a long one and
call :func:`wait_for_window_room` before their first counted request.
"""

from __future__ import annotations

import time


def window_left(window_s: int, now: float | None = None) -> float:
    """Seconds until the current epoch-aligned window of ``window_s`` seconds ends."""
    now = time.time() if now is None else now
    return window_s - (now % window_s)


def wait_for_window_room(window_s: int, need_s: float) -> float:
    """Sleep into the next window when fewer than ``need_s`` seconds are left in this one.

    Returns the seconds slept (0 when the current window has room)."""
    if need_s >= window_s:
        raise ValueError(f"need_s ({need_s}) must be shorter than the window ({window_s} s)")
    left = window_left(window_s)
    if left >= need_s:
        return 0.0
    pause = left + 0.25  # a little past the boundary, so the first request is in the new window
    time.sleep(pause)
    return pause
