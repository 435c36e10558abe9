"""The reference stack, and only it: real Redis, real PostgreSQL, the relay service under uvicorn
over TCP, and the gate's webhook receiver, started as child processes the gate owns and tears down.

Belongs here: the stack itself (:mod:`gate.stack.reference`), the relay launcher (``python -m
gate.stack.relay``, optionally with a catalogue defect) and the receiver server, child processes and
loopback ports, and the two backends of Redis and PostgreSQL — the bundled binaries
(:mod:`gate.stack.redis_server`, :mod:`gate.stack.postgres`) and Docker containers
(:mod:`gate.stack.containers`) — behind the protocols of :mod:`gate.stack.backends`.

Must not live here: a deployment. A deployment is a :class:`~gate.client.target.Target` (gate/client/),
never a "stack backend": the stack starts things, a target is only talked to.
"""
