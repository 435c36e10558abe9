"""``manifest.json``: every file of the pack (and of the results it copies) with SHA-256 and size,
the run's provenance, and optionally a signature; and the check that nothing changed since.

Signing covers the canonical JSON of the manifest without its ``signature`` field:
- HMAC-SHA256 with a shared key taken from an environment variable (``--hmac-key-env NAME``);
- Ed25519 with a private key file (PEM, via ``cryptography``); verify with the public key.

Verification exit codes: 0 intact (and signature valid when a key is given), 1 tampered (the
message names the file), 2 unreadable manifest or key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gate import __version__

MANIFEST = "manifest.json"
SCHEMA = "relay-gate/manifest@1"


class ManifestError(Exception):
    """The manifest or a key cannot be read (exit 2)."""


class Tampered(Exception):
    """A file differs from the manifest, is missing, is unexpected, or the signature fails (exit 1)."""


class Signer(Protocol):
    alg: str

    def key_id(self) -> str: ...

    def sign(self, payload: bytes) -> str: ...

    def verify(self, payload: bytes, signature: str) -> bool: ...


@dataclass(frozen=True)
class HmacSigner:
    key: bytes
    alg: str = "hmac-sha256"

    @classmethod
    def from_env(cls, name: str) -> HmacSigner:
        value = os.environ.get(name)
        if not value:
            raise ManifestError(f"environment variable {name} is not set (it holds the evidence HMAC key)")
        if len(value.encode()) < 32:
            raise ManifestError(f"{name} is shorter than 32 bytes; use e.g. openssl rand -hex 32")
        return cls(value.encode())

    def key_id(self) -> str:
        # identifies the key without revealing it
        return hashlib.sha256(b"relay-gate evidence key id:" + self.key).hexdigest()[:16]

    def sign(self, payload: bytes) -> str:
        return base64.b64encode(hmac.new(self.key, payload, hashlib.sha256).digest()).decode()

    def verify(self, payload: bytes, signature: str) -> bool:
        return hmac.compare_digest(self.sign(payload), signature)


class Ed25519Signer:
    alg = "ed25519"

    def __init__(self, private_key: Any = None, public_key: Any = None) -> None:
        self._private = private_key
        self._public = public_key if public_key is not None else private_key.public_key()

    @classmethod
    def from_file(cls, path: Path) -> Ed25519Signer:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ManifestError(f"cannot read key {path}: {exc.strerror}") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
            if isinstance(key, ed25519.Ed25519PrivateKey):
                return cls(private_key=key)
        except (ValueError, TypeError):
            pass
        try:
            pub = serialization.load_pem_public_key(data)
        except (ValueError, TypeError):
            raise ManifestError(f"{path} is not a PEM Ed25519 key") from None
        if not isinstance(pub, ed25519.Ed25519PublicKey):
            raise ManifestError(f"{path} is not an Ed25519 key")
        return cls(public_key=pub)

    def key_id(self) -> str:
        from cryptography.hazmat.primitives import serialization

        raw = self._public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return hashlib.sha256(raw).hexdigest()[:16]

    def sign(self, payload: bytes) -> str:
        if self._private is None:
            raise ManifestError("signing needs the Ed25519 private key, not the public one")
        return base64.b64encode(self._private.sign(payload)).decode()

    def verify(self, payload: bytes, signature: str) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            self._public.verify(base64.b64decode(signature), payload)
        except (InvalidSignature, ValueError):
            return False
        return True


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _entries(root: Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            rel = p.relative_to(root).as_posix()
            out.append(
                {
                    "path": rel,
                    "sha256": _sha256(p),
                    "size": p.stat().st_size,
                    "kind": "results" if rel.startswith("results/") else "pack",
                }
            )
    return out


def canonical(doc: dict[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def write_manifest(
    root: Path, *, prov: dict[str, Any], verdict: dict[str, Any], signer: Signer | None = None
) -> Path:
    from gate.results import utc_now

    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "created_at": utc_now(),
        "generator": f"relay-gate {__version__}",
        "provenance": prov,
        "verdict": verdict,
        "files": _entries(root),
    }
    if signer is not None:
        doc["signature"] = {
            "alg": signer.alg,
            "key_id": signer.key_id(),
            "value": signer.sign(canonical(doc)),
        }
    path = root / MANIFEST
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def verify(root: Path, *, signer: Signer | None = None) -> list[str]:
    """Check every file against the manifest; raise Tampered/ManifestError; return notes for the user."""
    path = root / MANIFEST
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path} does not exist: is {root} an evidence pack?") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ManifestError(f"{path} is unreadable: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("files"), list):
        raise ManifestError(f"{path} is not a {SCHEMA} document")
    listed: dict[str, dict[str, Any]] = {}
    for e in doc["files"]:
        rel = str(e.get("path", ""))
        if not rel or rel.startswith("/") or ".." in Path(rel).parts:
            raise Tampered(f"manifest lists an unsafe path {rel!r}")
        listed[rel] = e
    for rel, e in listed.items():
        p = root / rel
        if not p.is_file():
            raise Tampered(f"{rel}: listed in the manifest but missing")
        if p.stat().st_size != e.get("size") or _sha256(p) != e.get("sha256"):
            raise Tampered(f"{rel}: content differs from the manifest (SHA-256 mismatch)")
    for p in root.rglob("*"):
        if p.is_file() and p.name != MANIFEST and p.relative_to(root).as_posix() not in listed:
            raise Tampered(f"{p.relative_to(root).as_posix()}: not in the manifest (added after rendering)")
    notes = [f"{len(listed)} files match their SHA-256"]
    sig = doc.get("signature")
    if signer is not None:
        if not isinstance(sig, dict):
            raise Tampered("the manifest is not signed, but a key was given")
        if sig.get("alg") != signer.alg:
            raise Tampered(f"the manifest is signed with {sig.get('alg')}, not {signer.alg}")
        if not signer.verify(canonical(doc), str(sig.get("value", ""))):
            raise Tampered("manifest.json: the signature does not verify (manifest edited, or another key)")
        notes.append(f"signature {signer.alg} valid (key id {signer.key_id()})")
    elif isinstance(sig, dict):
        notes.append(
            f"signed ({sig.get('alg')}, key id {sig.get('key_id')}) but no key given: "
            "authenticity NOT checked"
        )
    else:
        notes.append("unsigned: this proves integrity against the manifest only, not who made it")
    return notes
