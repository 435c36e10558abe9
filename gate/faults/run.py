"""One fault run, end to end: a 2-replica stack, the load generators, the fault timeline, what the
receiver and the audit table saw, judged and written to faults/faults.json."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gate.client.receiver import ReceiverClient
from gate.faults.generators import Generators
from gate.faults.judgement import judge
from gate.faults.model import (
    KIND,
    LATENCY_MARGIN_MS,
    RECOVERY_BOUND_S,
    STACK_RATE_LIMIT,
    STACK_WINDOW_S,
    VERSION,
    FaultConfig,
    Marks,
)
from gate.faults.probes import Replicas, audit_rows, redis_timeout_ms, relay_setting, settled_captures
from gate.faults.timeline import FaultTimeline
from gate.results import Redactor, provenance, utc_now, write_json
from gate.stack.reference import Stack, StackConfig
from load import settings


class FaultRun:
    """One fault run: the stack, the generators, the timeline, what was observed, the document."""

    def __init__(self, config: FaultConfig, *, progress: Callable[[str], None] | None = None) -> None:
        config.timeline.validate()
        self.config = config
        self.say = progress or (lambda _msg: None)
        self.folder = config.results / KIND
        self.load = Generators(self.folder, say=self.say)

    def execute(self) -> dict[str, Any]:
        """Run the faults under load, judge, write faults/faults.json and return its document."""
        cfg = self.config
        started_at = utc_now()
        self.say(f"starting a 2-replica stack ({cfg.backend}) ...")
        stack = Stack(
            StackConfig(
                backend=cfg.backend,
                replicas=2,
                rate_limit=STACK_RATE_LIMIT,
                window_s=STACK_WINDOW_S,
                defect=cfg.defect,
            )
        )
        replicas: Replicas | None = None
        receiver: ReceiverClient | None = None
        try:
            stack.start()  # StackError: exit 5
            assert stack.receiver_url is not None
            replicas = Replicas(stack.base_urls)
            receiver = ReceiverClient(stack.receiver_url, token=stack.receiver_token)
            timeouts = redis_timeout_ms(stack)
            seq0 = receiver.last_seq()
            origin = self.load.start(stack, cfg, bound_ms=sum(timeouts) + LATENCY_MARGIN_MS)
            faults = FaultTimeline(cfg.timeline, origin=origin, alive=self.load.check_alive, say=self.say)
            faults.play(stack, replicas)
            self.load.finish()
            captures, seq1 = settled_captures(receiver, seq0)
            rows = audit_rows(stack, [str(c["webhook_id"]) for c in captures if c["webhook_id"]])
            doc = self._document(stack, faults, started_at, captures, seq1 - seq0, rows, timeouts)
        finally:
            self.load.stop()
            for client in (receiver, replicas):
                if client is not None:
                    client.close()
            stack.stop()
        write_json(self.folder / "faults.json", KIND, VERSION, doc, redactor=Redactor(stack.secret_values()))
        return doc

    def _document(
        self,
        stack: Stack,
        faults: FaultTimeline,
        started_at: str,
        captures: list[dict[str, Any]],
        captures_expected: int,
        rows: dict[str, dict[str, Any]],
        timeouts: tuple[int, int],
    ) -> dict[str, Any]:
        """faults.json: what the run was, what it saw, and the judgement of it."""
        samples = self.load.samples()
        ev = {e["event"]: e for e in faults.events}
        ready = {o["replica"]: float(o["epoch"]) for o in faults.observations if o["fault"] == "db-stop"}
        marks = Marks(
            kill=ev["kill_redis"]["done_epoch"],
            redis_back=ev["restart_redis"]["done_epoch"],
            pause=ev["pause_redis"]["done_epoch"],
            resume=ev["resume_redis"]["epoch"],
            db_stop=ev["stop_postgres"]["epoch"],
            db_start=ev["start_postgres"]["done_epoch"],
            db_ready=tuple(ready.get(i) for i in range(len(stack.base_urls))),
        )
        generators = self.load.describe(samples)
        events = [{k: v for k, v in e.items() if not k.endswith("epoch")} for e in faults.events]
        judged = judge(
            samples,
            marks,
            origin=faults.origin,
            timeout_ms=sum(timeouts),
            recovery=faults.recovery,
            captures=[
                {
                    **{k: v for k, v in c.items() if k != "received_at"},
                    "received_at_s": faults.at(c["received_at"]),
                }
                for c in captures
            ],
            captures_expected=captures_expected,
            rows=rows,
            events=events,
            generators=generators,
        )
        target = {
            "name": "reference stack",
            "backend": stack.config.backend,
            "base_urls": stack.base_urls,
            "replicas": len(stack.base_urls),
            "defect": stack.config.defect,
            "versions": stack.versions(),
        }
        prov = provenance(run_id=self.config.run_id, target=target, started_at=started_at)
        prov["finished_at"] = utc_now()
        return {
            "run_id": self.config.run_id,
            "started_at": started_at,
            "finished_at": prov["finished_at"],
            "provenance": prov,
            "target": target,
            "settings": {
                "redis_connect_timeout_ms": timeouts[0],
                "redis_socket_timeout_ms": timeouts[1],
                "redis_reprobe_max_s": float(relay_setting(stack, "REDIS_REPROBE_MAX_S")),
                "db_timeout_s": float(relay_setting(stack, "DB_TIMEOUT_S")),
                "rate_limit": {"limit": STACK_RATE_LIMIT, "window_s": STACK_WINDOW_S},
            },
            "load": {
                "model": "open",
                "rate_rps": self.config.rate,
                "weights": settings.DEFAULT_WEIGHTS,
                "keys": len([k for k in stack.keys if k.role == "dev"]),
                "generators": generators,
            },
            "origin_epoch": round(faults.origin, 6),
            "timeline": {
                "planned": self.config.timeline.to_json(),
                "events": events,
                "observations": [{k: v for k, v in o.items() if k != "epoch"} for o in faults.observations],
            },
            "recovery": {"bound_s": RECOVERY_BOUND_S, "faults": faults.recovery},
            **judged,
        }
