"""What the rate-limit steps make of an execute's headers (features/support/rate_limit_support.py), without a
stack: epoch and delta resets alike, garbled headers kept as sent, windows told apart."""

from __future__ import annotations

import httpx

from features.support.rate_limit_support import Hit, Ledger, same_window

T0 = 1_700_000_001.25  # the client's clock when the first answer arrived


def hit(received_at: float, status: int = 200, **headers: str) -> Hit:
    response = httpx.Response(status, headers={k.replace("_", "-"): v for k, v in headers.items()})
    return Hit(response, "ws-a", "http://relay", received_at - 0.01, received_at, 0.0)


def test_an_epoch_reset_is_the_window_end_and_names_its_window_exactly() -> None:
    a = hit(T0, X_RateLimit_Reset="1700000004", X_RateLimit_Remaining="3")
    b = hit(T0 + 0.5, X_RateLimit_Reset="1700000004")
    c = hit(T0 + 3, X_RateLimit_Reset="1700000007")
    assert (a.reset, a.remaining, a.rl.reset_kind) == (1700000004, 3, "epoch")
    assert same_window(a, b) and not same_window(a, c) and not same_window(c, a)


def test_a_delta_reset_becomes_an_epoch_on_the_client_clock_and_windows_allow_its_rounding() -> None:
    # a 3 s window ending at T0 + 2.75: ceil()ed deltas, read at different moments
    a = hit(T0, X_RateLimit_Reset="3")
    b = hit(T0 + 0.9, X_RateLimit_Reset="2")
    nxt = hit(T0 + 2.8, X_RateLimit_Reset="3")  # the next window
    assert a.rl.reset_kind == "delta" and a.reset == T0 + 3
    assert same_window(a, b) and not same_window(a, nxt) and not same_window(b, nxt)


def test_a_garbled_header_is_none_to_the_steps_and_kept_raw_in_the_evidence() -> None:
    h = hit(T0, 429, X_RateLimit_Reset="2023-11-14T22:13:24Z", X_RateLimit_Remaining="-1", Retry_After="1.5")
    assert (h.reset, h.remaining, h.retry_after) == (None, None, None)
    assert [f.name for f in h.rl.malformed] == ["X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"]
    row = h.row()
    assert (row["reset"], row["remaining"], row["retry_after"]) == ("2023-11-14T22:13:24Z", "-1", "1.5")
    assert not same_window(h, h)  # no reset: no window to compare


def test_the_evidence_row_shows_numbers_as_sent_and_dates_as_written() -> None:
    date = "Tue, 14 Nov 2023 22:13:24 GMT"  # 1700000004
    h = hit(T0, 429, X_RateLimit_Reset="1700000004", X_RateLimit_Remaining="0", Retry_After=date)
    assert h.row()["reset"] == 1700000004 and h.row()["remaining"] == 0 and h.row()["retry_after"] == date
    assert h.retry_after == 1700000004 - T0 and h.rl.retry_at == h.reset


def test_an_execute_without_an_answer_has_no_headers() -> None:
    h = Hit(None, "ws-a", "http://relay", T0, T0 + 1, 0.0, error="ReadTimeout")
    assert h.status == 0 and h.reset is None and not h.rl.malformed
    assert h.row()["status"] == "no answer: ReadTimeout"


def test_the_ledger_remembers_the_latest_window_end_of_each_workspace() -> None:
    ledger = Ledger()
    ledger.saw(hit(T0, X_RateLimit_Reset="1700000004"))
    ledger.saw(hit(T0, X_RateLimit_Reset="bogus"))
    ledger.saw(hit(T0, X_RateLimit_Reset="30"))
    assert ledger.last_reset == {"ws-a": T0 + 30}
