"""The gate's own judges of what a target sends: pure functions, no I/O.

Each module parses one contract from the bytes a target answered with — written from the documents
that define it (RFCs, drafts, docs/service.md), never imported from service/ — and reports what it
could not parse as malformed, with the raw value, rather than as missing:

- :mod:`gate.oracles.sf` — Structured Field Values for HTTP (RFC 9651): Lists, Dictionaries, Items.
- :mod:`gate.oracles.httpdate` — HTTP-date (RFC 9110 §5.6.7), all three forms.
- :mod:`gate.oracles.ratelimit` — rate-limit headers as real limiters send them: ``X-RateLimit-*``,
  ``Retry-After``, the IETF ``RateLimit`` / ``RateLimit-Policy`` fields and their older drafts.
- :mod:`gate.oracles.headers` — the security header sets expected per profile (docs/service.md's table).
- :mod:`gate.oracles.headercheck` — analysis and grading of a response's security headers.
- :mod:`gate.oracles.webhooks` — webhook key derivation, ``X-Signature`` and Standard Webhooks
  verification.

Must not live here: any I/O (no network, process, file or database library; tests/test_import_contract.py
holds it), and anything of service/: an oracle written by importing the code under test would agree
with every defect of it.
"""
