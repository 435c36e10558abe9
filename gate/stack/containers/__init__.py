"""The ``containers`` backend: Redis and PostgreSQL in Docker containers started through
testcontainers, host network on a free loopback port, images built locally (no registry).

``backend`` (ContainerRedis and ContainerPostgres, the same contract as the embedded servers),
``lifecycle`` (one container per server: create, wait for readiness, stop/kill/pause/close) and
``engine`` (is an engine there, images, whose containers these are, reaping orphans). Nothing here
may pull an image or use bridge networking or port mapping.
"""
