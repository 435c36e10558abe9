"""deploy/: the compose file validates against the Compose Specification's schema (check-jsonschema's
vendored copy), the Kubernetes manifests against the recipe's own schemas (tests/load/deploy_schemas.py),
and both hang together: every command is one relay-gate accepts, the workers find the master's name
and port, --expect-workers matches the workers' replicas. A broken copy of each is caught too."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gate.cli import build_parser
from gate.commands import load_distributed
from tests.load.deploy_schemas import SCHEMAS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))


def manifests() -> dict[str, dict[str, Any]]:
    """kind -> object, one object per file."""
    out: dict[str, dict[str, Any]] = {}
    for path in MANIFESTS:
        (doc,) = list(yaml.safe_load_all(path.read_text()))
        out[doc["kind"]] = doc
    return out


def schema_errors(doc: dict[str, Any]) -> list[str]:
    schema = SCHEMAS.get(doc.get("kind", ""))
    if schema is None:
        return [f"no schema for kind {doc.get('kind')!r}"]
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def relay_gate(command: list[str]) -> Any:
    """The namespace relay-gate's own parser makes of a container command (exit 2 if it refuses it)."""
    assert command[0] == "relay-gate", command
    return build_parser().parse_args([str(a) for a in command[1:]])


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def container(obj: dict[str, Any]) -> dict[str, Any]:
    (c,) = obj["spec"]["template"]["spec"]["containers"]
    return dict(c)


def consistency(objs: dict[str, dict[str, Any]]) -> list[str]:
    """What would make the recipe fail at run time though every object is valid on its own."""
    problems = []
    job, deployment, service, pvc = (
        objs[k] for k in ("Job", "Deployment", "Service", "PersistentVolumeClaim")
    )
    master, worker = container(job), container(deployment)
    master_args, worker_args = relay_gate(master["command"]), relay_gate(worker["command"])
    if not (master_args.master and worker_args.worker):
        problems.append("the Job must run --master and the Deployment --worker")
    load_distributed.master_bind(master_args)  # UsageError if the master's options do not go together
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    if not service["spec"]["selector"].items() <= pod_labels.items():
        problems.append("the Service does not select the master's pod")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    if not deployment["spec"]["selector"]["matchLabels"].items() <= labels.items():
        problems.append("the Deployment's selector does not match its pods")
    (port,) = service["spec"]["ports"]
    container_ports = [p["containerPort"] for p in master.get("ports", [])]
    same = port["port"] == port["targetPort"] == master_args.master_bind_port
    if not (same and port["targetPort"] in container_ports):
        problems.append(f"the Service's port {port} is not the master's --master-bind-port / containerPort")
    if worker_args.master_host != service["metadata"]["name"] or worker_args.master_port != port["port"]:
        problems.append(
            f"the workers connect to {worker_args.master_host}:{worker_args.master_port}, "
            f"the Service is {service['metadata']['name']}:{port['port']}"
        )
    if master_args.expect_workers != deployment["spec"]["replicas"]:
        problems.append(
            f"--expect-workers {master_args.expect_workers} but {deployment['spec']['replicas']} replicas"
        )
    if master_args.master_bind_host in ("127.0.0.1", "localhost"):
        problems.append("a master bound to loopback cannot be reached by worker pods")
    if job["spec"].get("backoffLimit") != 0:
        problems.append("a failed run is a verdict: the Job must not retry it (backoffLimit 0)")
    claims = [v["persistentVolumeClaim"]["claimName"] for v in job["spec"]["template"]["spec"]["volumes"]]
    if claims != [pvc["metadata"]["name"]]:
        problems.append(f"the Job mounts {claims}, the recipe's claim is {pvc['metadata']['name']}")
    secrets = {
        (c["name"], e["valueFrom"]["secretKeyRef"]["name"])
        for c in (master, worker)
        for e in c["env"]
        if e["name"] == "RELAY_API_KEYS"
    }
    if {s for _, s in secrets} != {"relay-gate-load-keys"} or len(secrets) != 2:
        problems.append(f"master and workers must read RELAY_API_KEYS from the same Secret: {secrets}")
    return problems


def test_the_recipe_has_each_kubernetes_object() -> None:
    assert sorted(manifests()) == ["Deployment", "Job", "PersistentVolumeClaim", "Service"]


def test_our_schemas_are_valid_json_schemas() -> None:
    for schema in SCHEMAS.values():
        jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_each_manifest_validates_against_its_schema(path: Path) -> None:
    (doc,) = list(yaml.safe_load_all(path.read_text()))
    assert schema_errors(doc) == []


def test_the_manifests_hang_together() -> None:
    assert consistency(manifests()) == []


@pytest.mark.parametrize(
    ("kind", "path", "value", "caught"),
    [
        ("Job", ["spec", "template", "spec", "contianers"], [], "'contianers' was unexpected"),
        ("Job", ["spec", "template", "spec", "restartPolicy"], "Always", "Always"),
        ("Deployment", ["spec", "replicas"], "4", "'4' is not of type 'integer'"),
        ("Service", ["spec", "ports", 0, "port"], 70000, "70000"),
    ],
)
def test_a_broken_manifest_fails_its_schema(kind: str, path: list[Any], value: Any, caught: str) -> None:
    doc = copy.deepcopy(manifests()[kind])
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert any(caught in e for e in schema_errors(doc)), schema_errors(doc)


def test_inconsistent_manifests_are_caught() -> None:
    objs = copy.deepcopy(manifests())
    worker = container(objs["Deployment"])
    worker["command"][worker["command"].index("--master-port") + 1] = "5558"
    objs["Deployment"]["spec"]["template"]["spec"]["containers"] = [worker]
    objs["Deployment"]["spec"]["replicas"] = 3
    problems = "\n".join(consistency(objs))
    assert "the workers connect to relay-gate-load-master:5558" in problems
    assert "--expect-workers 4 but 3 replicas" in problems


def test_a_command_relay_gate_does_not_accept_is_caught() -> None:
    with pytest.raises(SystemExit) as exc:
        relay_gate(["relay-gate", "load", "--master", "--expected-workers", "4"])
    assert exc.value.code == 2


# -- docker compose ------------------------------------------------------------------------------
def _check_jsonschema() -> str:
    for candidate in (Path(sys.executable).parent / "check-jsonschema", shutil.which("check-jsonschema")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.skip("check-jsonschema is not installed (pip install check-jsonschema)")


def compose_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_compose_file_validates_against_the_compose_specification() -> None:
    proc = compose_check(COMPOSE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_broken_compose_file_is_caught(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("    command:\n", "    comand:\n", 1))
    proc = compose_check(broken)
    assert proc.returncode != 0 and "comand" in proc.stdout + proc.stderr


def interpolate(text: str) -> str:
    """Compose's ``${VAR:-default}`` as its default, ``${VAR:?message}`` as a placeholder value."""
    text = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)
    return re.sub(r"\$\{([A-Z_]+):\?[^}]*\}", lambda m: f"https://{m.group(1).lower()}.example", text)


def test_the_compose_services_hang_together() -> None:
    doc = yaml.safe_load(interpolate(COMPOSE.read_text()))
    master, worker = doc["services"]["master"], doc["services"]["worker"]
    master_args, worker_args = relay_gate(master["command"]), relay_gate(worker["command"])
    assert master_args.master and worker_args.worker
    host, port = load_distributed.master_bind(master_args) or ("", 0)
    assert port == 5557 and host not in ("127.0.0.1", "localhost")  # other containers reach it
    assert worker_args.master_host == "master" and worker_args.master_port == 5557
    assert str(master_args.expect_workers) == str(worker["deploy"]["replicas"])
    assert "5557" in master["expose"]
    for service in (master, worker):
        assert "RELAY_API_KEYS" in service["environment"]
