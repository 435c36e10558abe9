"""Minimal JSON Schemas (draft 2020-12) for the Kubernetes objects of deploy/kubernetes/: the fields
the recipe relies on, with Kubernetes' types and formats, and nothing else allowed where a typo would
silently drop a setting (``contianers``, ``secretKeyRef.nmae``). Written from the Kubernetes API
reference (core/v1 Container, PodSpec, Service, PersistentVolumeClaim; batch/v1 Job; apps/v1
Deployment); no network, no generated schema."""

from __future__ import annotations

from typing import Any

DNS_LABEL = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
QUANTITY = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"}
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
LABELS = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": {"type": "string", "maxLength": 63},
}


def closed(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties, "additionalProperties": False}


STRINGS = {"type": "array", "items": {"type": "string"}, "minItems": 1}
METADATA = closed(["name", "labels"], name=DNS_LABEL, labels=LABELS)
RESOURCES = closed(
    [],
    requests=closed([], cpu=QUANTITY, memory=QUANTITY),
    limits=closed([], cpu=QUANTITY, memory=QUANTITY),
)
ENV_VAR = closed(
    ["name"],
    name={"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
    value={"type": "string"},
    valueFrom=closed(["secretKeyRef"], secretKeyRef=closed(["name", "key"], name=DNS_LABEL, key=DNS_LABEL)),
)
CONTAINER = closed(
    ["name", "image", "command"],
    name=DNS_LABEL,
    image={"type": "string", "minLength": 1},
    command=STRINGS,
    args=STRINGS,
    env={"type": "array", "items": ENV_VAR},
    ports={
        "type": "array",
        "items": closed(
            ["containerPort"],
            name=DNS_LABEL,
            containerPort=PORT,
            protocol={"enum": ["TCP", "UDP", "SCTP"]},
        ),
    },
    resources=RESOURCES,
    securityContext=closed(
        [],
        allowPrivilegeEscalation={"type": "boolean"},
        readOnlyRootFilesystem={"type": "boolean"},
        capabilities=closed([], drop=STRINGS),
    ),
    volumeMounts={
        "type": "array",
        "items": closed(["name", "mountPath"], name=DNS_LABEL, mountPath={"type": "string", "pattern": "^/"}),
    },
)


def pod_spec(restart: list[str]) -> dict[str, Any]:
    return closed(
        ["containers"],
        restartPolicy={"enum": restart},
        securityContext=closed(
            [],
            runAsNonRoot={"type": "boolean"},
            runAsUser={"type": "integer", "minimum": 0},
            fsGroup={"type": "integer", "minimum": 0},
        ),
        containers={"type": "array", "items": CONTAINER, "minItems": 1},
        volumes={
            "type": "array",
            "items": closed(
                ["name"],
                name=DNS_LABEL,
                persistentVolumeClaim=closed(["claimName"], claimName=DNS_LABEL),
                emptyDir=closed([]),
            ),
        },
    )


def template(restart: list[str]) -> dict[str, Any]:
    return closed(["metadata", "spec"], metadata=closed(["labels"], labels=LABELS), spec=pod_spec(restart))


def kind(api: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return closed(
        ["apiVersion", "kind", "metadata", "spec"],
        apiVersion={"const": api},
        kind={"const": name},
        metadata=METADATA,
        spec=spec,
    )


SCHEMAS: dict[str, dict[str, Any]] = {
    "Job": kind(
        "batch/v1",
        "Job",
        closed(
            ["template"],
            backoffLimit={"type": "integer", "minimum": 0},
            template=template(["Never", "OnFailure"]),  # a Job's pods may not restart Always
        ),
    ),
    "Deployment": kind(
        "apps/v1",
        "Deployment",
        closed(
            ["selector", "template"],
            replicas={"type": "integer", "minimum": 0},
            selector=closed(["matchLabels"], matchLabels=LABELS),
            template=template(["Always"]),
        ),
    ),
    "Service": kind(
        "v1",
        "Service",
        closed(
            ["selector", "ports"],
            type={"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
            selector=LABELS,
            ports={
                "type": "array",
                "minItems": 1,
                "items": closed(
                    ["port"],
                    name=DNS_LABEL,
                    port=PORT,
                    targetPort={"oneOf": [PORT, DNS_LABEL]},
                    protocol={"enum": ["TCP", "UDP", "SCTP"]},
                ),
            },
        ),
    ),
    "PersistentVolumeClaim": kind(
        "v1",
        "PersistentVolumeClaim",
        closed(
            ["accessModes", "resources"],
            accessModes={
                "type": "array",
                "items": {"enum": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]},
            },
            resources=closed(["requests"], requests=closed(["storage"], storage=QUANTITY)),
        ),
    ),
}
