"""Load tests against the relay API: the locustfile, the SLO spec, and the code that turns a run
into a verdict (docs/load.md). The modules that import Locust or gevent (locustfile, plugin,
distributed, document, state, pacing; transport inside its functions) run in Locust's own processes only,
never in the CLI or the pytest process.

Must not live here: service/ (the load judges latency from what the target answered), and the
scenarios' step code (features/).
"""
