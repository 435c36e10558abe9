"""Backups and the restore drill (``relay-gate backup``, ``relay-gate drill``; docs/drill.md).

Belongs here: the backup (``pg_dump -Fc`` of one exported snapshot plus its manifest), database
fingerprints computed by the server, the restore drill and what it compares a restore against,
the drill of a deployment's own backups, and the drill's record (``drill.json``).

Must not live here: starting the reference stack (gate/stack/), the deliberate defects of this
tooling (gate/proof/defects_drill.py), or rendering the RESTORE-DRILL-REPORT document (evidence/).
"""
