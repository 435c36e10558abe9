"""The evidence pack: results files in, documents out (``relay-gate evidence``; docs/evidence.md).

Reads ``results/<run-id>/`` (run.json, features/, load/, faults/, drill/), renders the Jinja templates
of ``evidence/templates/`` into Markdown and self-contained HTML with inline SVG charts, and writes a
SHA-256 manifest. A document states only what a results file shows; a missing result is NOT RUN.

Must not live here: anything that reaches a target, a stack or a database, or runs a process — no
network, database or Locust import, none of gate/client, gate/stack, gate/drill, gate/proof or the
step modules (tests/test_import_contract.py), and never service/.
"""
