"""Redaction: what keeps secrets out of everything the gate writes or prints.

Two rules, applied together by :class:`Redactor`:

- every *known* secret value (API keys, signing secrets, database and receiver passwords), however
  short, is replaced by ``[REDACTED]``; so are the forms it takes in URLs (percent-encoded or not);
- the password of any ``scheme://user:password@host`` URL is masked whether or not it is known: a
  deployment's DATABASE_URL or a receiver URL with a token in it must never need to be declared first.

Replacement is one regex pass with ``[REDACTED]`` itself as the first alternative, so text that went
through a redactor once (in the child pytest) comes out unchanged from another (in the parent), and
a short secret that happens to be part of the marker cannot mangle it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

REDACTED = "[REDACTED]"
# headers whose value is a credential, whatever it is
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})

# scheme://user:password@ — the user has no ':' '/' '@'; the password runs to the last '@' before the
# host (a raw '@' in a password is common enough). Quotes, brackets and whitespace end it: they end a
# URL in logs, reprs and JSON. The scheme is optional so that a stream cut between the scheme and
# "://" is still masked in its second piece.
_USERINFO = re.compile(
    r"(?P<head>(?:\b[A-Za-z][A-Za-z0-9+.\-]*)?://[^\s:/@\"'<>\\]*:)(?P<password>[^\s/\"'<>\\]+)(?=@)"
)


def mask_url_passwords(text: str) -> str:
    """``postgresql://relay:hunter2@db/relay`` -> ``postgresql://relay:[REDACTED]@db/relay``."""
    if "://" not in text:
        return text
    return _USERINFO.sub(lambda m: f"{m['head']}{REDACTED}", text)


def url_password(url: str | None) -> str | None:
    """The password of a URL's userinfo, or None."""
    if not url:
        return None
    try:
        return urlsplit(url).password or None
    except ValueError:
        return None


def _forms(secret: str) -> set[str]:
    """The secret and the spellings it takes in URLs and their error messages."""
    return {f for f in (secret, quote(secret, safe=""), unquote(secret)) if f}


class Redactor:
    """Replaces known secret values and URL passwords in text, headers and JSON-like values.

    Thread-safe, and it can learn: :meth:`add` is how secrets made up after the redactor was built
    (the reference stack's keys, created in the child pytest) join it.
    """

    def __init__(self, secret_values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self.secrets: list[str] = []
        self._pattern: re.Pattern[str] | None = None
        self.add(secret_values)

    def add(self, secret_values: Iterable[str]) -> bool:
        """Learn more secrets; True if any was new."""
        with self._lock:
            known = set(self.secrets)
            fresh = {f for s in secret_values if s for f in _forms(s)} - known
            if not fresh:
                return False
            # longest first: a secret that contains another is replaced whole
            self.secrets = sorted(known | fresh, key=lambda s: (-len(s), s))
            alternatives = [re.escape(REDACTED), *(re.escape(s) for s in self.secrets)]
            self._pattern = re.compile("|".join(alternatives))
            return True

    def text(self, value: str) -> str:
        pattern = self._pattern
        if pattern is not None:
            value = pattern.sub(REDACTED, value)
        return mask_url_passwords(value)

    def headers(self, headers: Iterable[tuple[str, str]]) -> list[list[str]]:
        out = []
        for name, value in headers:
            if name.lower() in SECRET_HEADERS:
                scheme = value.split(" ", 1)[0] if " " in value else ""
                value = f"{scheme} {REDACTED}".strip()
            out.append([name, self.text(value)])
        return out

    def obj(self, value: Any) -> Any:
        """Redact every string inside a JSON-like structure."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.obj(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.obj(v) for v in value]
        return value

    def could_continue(self, text: str) -> bool:
        """Whether more text appended to ``text`` could complete a secret or a URL password in it:
        its end is a proper prefix of a secret, or its last word may still become a URL's userinfo.
        Streams hold such a tail back until more arrives (see gate/redacted_output.py)."""
        last_word = "" if not text or text[-1].isspace() else text.rsplit(None, 1)[-1]
        if ":" in last_word:
            return True
        return any(text.endswith(s[:n]) for s in self.secrets for n in range(1, len(s)))
