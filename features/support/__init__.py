"""What the step modules share: the target client helpers (executes, api_support, signing_recompute), the
recording of a scenario's HTTP exchanges (recording), the quota plan (quota), the categorised skips
(skips), the redaction of what the session prints and writes (redaction), the Redis switch and the
extra replicas (redis_switch, extra_replicas), the rate-limit and delivery helpers (rate_limit_support,
rate_limit_windows, rate_limit_long, delivery_attempts) and the like. What does not belong here: step
definitions (features/steps/, every module of which is registered), pytest options, markers and
fixtures (features/plugin.py, features/conftest.py), and judgement logic that is a pure oracle over
what the target answered (gate/oracles/).
"""
