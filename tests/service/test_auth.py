"""API keys, as docs/service.md's execute steps use them ("Authenticate the key -> role and workspace"):
what a target cannot show over HTTP.

- Constant time: every presented key is compared, by digest, with every configured key, so neither
  the position of a match nor a shared prefix changes the work done (timing is not measured: it would
  be noise on a shared runner; the comparisons are counted).
- A trailing space: HTTP clients refuse to send one (h11: "Illegal header value") and servers strip it
  as optional whitespace (RFC 9110 5.5), so no request over HTTP can carry it; the key ring ignores it
  too.
"""

from __future__ import annotations

import hmac
from typing import Any

import pytest

from service import auth, preview
from service.actions import ResolvedAction
from service.auth import KeyRing
from service.config import ApiKey
from service.errors import Problem
from service.preview import PreviewSigner, PreviewTokenError

COMPARE = hmac.compare_digest
KEYS = ["first-key-0123456789abcdef", "middle-key-0123456789abcde", "last-key-0123456789abcdefg"]


def ring() -> KeyRing:
    return KeyRing([ApiKey(key=k, role="dev", workspace=f"ws-{i}") for i, k in enumerate(KEYS)])  # type: ignore[arg-type]


class Counting:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, a: Any, b: Any) -> bool:
        self.calls.append((len(a), len(b)))
        return COMPARE(a, b)


@pytest.mark.parametrize(
    "presented", [KEYS[0], KEYS[-1], "unknown-key-0123456789abcd", KEYS[0][:-1] + "x", "k"]
)
def test_every_key_is_compared_with_every_configured_key_by_digest(
    presented: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    counting = Counting()
    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    ring().lookup(presented)
    assert len(counting.calls) == len(KEYS), "a match (or a miss) ended the comparisons early"
    assert set(counting.calls) == {(32, 32)}, "keys are compared as SHA-256 digests of one length"


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {KEYS[1]}",
        f"bearer {KEYS[1]}",
        f"BEARER {KEYS[1]}",
        f"Bearer {KEYS[1]} ",
        f"Bearer  {KEYS[1]}",
    ],
)
def test_the_scheme_is_case_insensitive_and_surrounding_whitespace_is_not_the_key(authorization: str) -> None:
    assert ring().authenticate(authorization).workspace == "ws-1"


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {KEYS[1][:-1]}x",
        f"Bearer {KEYS[1][:-1]}",
        f"Bearer {KEYS[1]}x",
        f"Bearer {KEYS[1].swapcase()}",
        f"Bearer {KEYS[1]} {KEYS[1]}",
        f"Basic {KEYS[1]}",
        KEYS[1],
        "Bearer",
        "",
    ],
)
def test_only_the_exact_key_authenticates(authorization: str) -> None:
    with pytest.raises(Problem) as refused:
        ring().authenticate(authorization)
    assert refused.value.status == 401
    assert refused.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_preview_id_mac_is_checked_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    counting = Counting()
    monkeypatch.setattr(preview.hmac, "compare_digest", counting)
    signer = PreviewSigner(b"k" * 32, ttl_s=60)
    token = signer.mint(ResolvedAction("notify.send", {"channel": "a", "message": "m"}, "ws-1", "http://h/x"))
    signer.redeem(token, workspace="ws-1")
    with pytest.raises(PreviewTokenError):
        signer.redeem(token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:], workspace="ws-1")
    assert counting.calls == [(32, 32), (32, 32)]
