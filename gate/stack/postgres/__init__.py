"""Embedded PostgreSQL: servers from the binaries pgserver ships, run as an unprivileged account.

``install`` (where the binaries come from, the account, the cache and the initdb'd template),
``server`` (one throwaway server's lifecycle), ``rundirs`` (run dirs and the reaping of dead
owners'), ``procs`` (the postmaster's process tree), ``admin`` (superuser URLs and databases, shared
with the container backend) and ``tools`` (finding a ``pg_dump``/``pg_restore`` new enough for a
server, used by the backup and the drill). Nothing here knows about the relay service's schema.
"""
