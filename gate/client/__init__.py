"""How the gate talks to a target: what features/ and load/ import to reach a service under test.

Belongs here: the :class:`~gate.client.target.Target` model (a base URL, optional replicas, keys,
policies, capabilities, read from a TOML target config or made from the reference stack), its
``[backups]`` section, the transport (TLS, client certificates, proxies), the one reachability probe,
the client of the gate's webhook receiver, and the quota plans that decide which workspace's
executes a scenario or a load may spend. Every network call made here has a timeout.

Must not live here: anything that starts a process or a server (gate/stack/), judgement of what a
target answered (gate/oracles/), or knowledge of the reference service's code: a target is only
what it answers over HTTP, and this package never imports service/.
"""
