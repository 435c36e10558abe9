"""The evidence pack: results files in, documents out (``relay-gate evidence``; docs/evidence.md).

Reads ``results/<run-id>/`` (run.json, features/, load/, faults/, drill/), renders the Jinja templates
of ``evidence/templates/`` into Markdown and self-contained HTML with inline SVG charts, and writes a
SHA-256 manifest. A document states only what a results file shows; a missing result is NOT RUN.

Must not live here: anything that reaches a target, a stack or a database, or runs a process — no
network, database or Locust import, none of the actors — gate/client, gate/stack, gate/drill,
gate/proof, gate/commands, the step and support modules, the Locust runner (the list is ACTORS in
tests/test_import_contract.py, which checks what evidence/ imports and what importing it loads) —
and never service/.
"""
