"""The evidence pack: rendered from real results, NOT RUN for what is missing, tamper-evident."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evidence.manifest import Ed25519Signer, HmacSigner, ManifestError, Tampered, verify
from evidence.model import ResultsError, load_results
from evidence.render import render
from gate.verdict import Outcome

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real results: every feature but auth/audit, against the reference stack."""
    out = tmp_path_factory.mktemp("results") / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gate.cli",
            "check",
            "-m",
            "smoke or signing or headers or rate_limit",
            "--results",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return out


@pytest.fixture
def pack(results: Path, tmp_path: Path) -> Path:
    rendered = render(results, tmp_path / "pack")
    return rendered.out


pytestmark = pytest.mark.stack


def test_every_document_is_rendered_in_markdown_and_html(pack: Path) -> None:
    for doc in (
        "INDEX",
        "RATELIMIT-SMOKE",
        "SIGNING-E2E",
        "SECURITY-HEADERS",
        "SMOKE-AUDIT",
        "RESTORE-DRILL-REPORT",
        "METRICS-SUMMARY",
    ):
        md = (pack / f"{doc}.md").read_text()
        assert "**Run**" in md and "**commit**" in md, f"{doc} lacks provenance"
        html = (pack / ("index.html" if doc == "INDEX" else f"{doc}.html")).read_text()
        assert "Content-Security-Policy" in html and "default-src 'none'" in html
        assert "http://" not in html.split("<main>")[0], "the page loads something external"
    assert (pack / "results" / "run.json").is_file()


def test_criteria_without_results_are_not_run_and_fail_the_verdict(results: Path, tmp_path: Path) -> None:
    rendered = render(results, tmp_path / "pack")
    status = {c.title: c.status for c in rendered.criteria}
    assert (
        status["The service is healthy, lists its actions, executes a previewed action and audits it"]
        == "PASS"
    )
    assert status["A developer key cannot read the audit log"] == "NOT RUN"
    assert any(c.area == "drill" and c.outcome is Outcome.NOT_RUN for c in rendered.criteria)
    assert any(c.area == "slo" and c.outcome is Outcome.NOT_RUN for c in rendered.criteria)
    assert rendered.code == 4
    index = (rendered.out / "INDEX.md").read_text()
    assert "NOT RUN" in index and "INCOMPLETE" in index


def test_signing_document_shows_the_recomputation_step_by_step(pack: Path) -> None:
    md = (pack / "SIGNING-E2E.md").read_text()
    assert "Recomputing X-Signature" in md and "Recomputing Standard Webhooks v1" in md
    assert "| **yes** |" in md  # computed == received
    assert "The gate's verifier" in md and "**accepted**" in md
    assert "Retries: what the relay did" in md and "307 to another path of the receiver" in md
    assert "hmac.new(key, body, hashlib.sha256)" in md  # the copy-paste snippet


def test_header_document_lists_every_status_and_the_grade(pack: Path) -> None:
    md = (pack / "SECURITY-HEADERS.md").read_text()
    for status in ("200", "401", "403", "404", "405", "413", "422", "429", "500"):
        assert f"### {status}" in md, status
    assert "## Grade: A" in md


def test_values_from_results_are_text_not_markup(results: Path, tmp_path: Path) -> None:
    hostile = tmp_path / "results"
    shutil.copytree(results, hostile)
    for scen in (hostile / "features" / "scenarios").glob("headers-*.json"):
        doc = json.loads(scen.read_text())
        for headers in doc["notes"].get("headers_by_status", {}).values():
            headers.append(["x-evil", "<script>alert(1)</script>"])
        if "grade" in doc["notes"]:
            doc["notes"]["grade"]["deductions"] = [["<img src=x onerror=alert(1)>", 5]]
        scen.write_text(json.dumps(doc))
    out = render(hostile, tmp_path / "pack").out
    html = (out / "SECURITY-HEADERS.html").read_text()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_unknown_schema_versions_and_missing_folders_are_usage_errors(results: Path, tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="does not exist"):
        load_results(tmp_path / "nope")
    future = tmp_path / "future"
    shutil.copytree(results, future)
    summary = future / "features" / "summary.json"
    doc = json.loads(summary.read_text())
    doc["schema"] = "relay-gate/features@99"
    summary.write_text(json.dumps(doc))
    with pytest.raises(ResultsError) as err:
        load_results(future)
    assert "summary.json" in str(err.value) and "@99" in str(err.value)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gate.cli",
            "evidence",
            "render",
            "--results",
            str(future),
            "--out",
            str(tmp_path / "p"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2 and "summary.json" in proc.stderr


def test_partial_results_render_what_exists(results: Path, tmp_path: Path) -> None:
    only_run = tmp_path / "partial"
    only_run.mkdir()
    shutil.copy(results / "run.json", only_run / "run.json")
    rendered = render(only_run, tmp_path / "pack")
    assert rendered.code == 4
    assert all(c.outcome is Outcome.NOT_RUN for c in rendered.criteria)
    assert "This run holds no rate-limit burst" in (rendered.out / "RATELIMIT-SMOKE.md").read_text()


def test_verify_detects_edits_deletions_and_additions(pack: Path) -> None:
    assert verify(pack)[0].endswith("match their SHA-256")
    target = pack / "SECURITY-HEADERS.md"
    original = target.read_bytes()
    target.write_bytes(original.replace(b"PASS", b"PASZ", 1))
    with pytest.raises(Tampered, match=r"SECURITY-HEADERS\.md"):
        verify(pack)
    target.write_bytes(original)
    (pack / "results" / "run.json").unlink()
    with pytest.raises(Tampered, match=r"results/run\.json"):
        verify(pack)


def test_verify_cli_exit_codes(pack: Path, tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gate.cli", "evidence", "verify", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )

    assert cli(str(pack)).returncode == 0
    (pack / "extra.md").write_text("added later")
    out = cli(str(pack))
    assert out.returncode == 1 and "extra.md" in out.stderr
    (pack / "extra.md").unlink()
    (pack / "manifest.json").write_text("{not json")
    assert cli(str(pack)).returncode == 2
    assert cli(str(tmp_path / "nowhere")).returncode == 2


def test_hmac_signature(results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVIDENCE_KEY", "k" * 40)
    signer = HmacSigner.from_env("EVIDENCE_KEY")
    out = render(results, tmp_path / "pack", signer=signer).out
    assert any("signature hmac-sha256 valid" in n for n in verify(out, signer=signer))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["verdict"]["code"] = 0  # "improve" the verdict
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(Tampered, match="signature"):
        verify(out, signer=signer)
    with pytest.raises(Tampered):
        verify(out, signer=HmacSigner(b"another-key-another-key-another-key!"))
    monkeypatch.setenv("SHORT", "short")
    with pytest.raises(ManifestError):
        HmacSigner.from_env("SHORT")


def test_ed25519_signature(results: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    priv = tmp_path / "key.pem"
    pub = tmp_path / "key.pub.pem"
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    out = render(results, tmp_path / "pack", signer=Ed25519Signer.from_file(priv)).out
    assert any("ed25519 valid" in n for n in verify(out, signer=Ed25519Signer.from_file(pub)))
    proc = subprocess.run(
        [sys.executable, "-m", "gate.cli", "evidence", "verify", str(out), "--ed25519-key", str(pub)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is not installed (CI installs it)"
)
def test_pages_render_in_headless_chromium_with_charts(pack: Path, tmp_path: Path) -> None:
    artifacts = Path(os.environ.get("RELAY_GATE_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    for page, shot in (
        ("index.html", "evidence-index.png"),
        ("RATELIMIT-SMOKE.html", "evidence-ratelimit.png"),
    ):
        url = (pack / page).as_uri()
        dom = subprocess.run(
            ["chromium", *flags, "--dump-dom", url], capture_output=True, text=True, timeout=60
        )
        assert dom.returncode == 0, dom.stderr[-2000:]
        assert "<main>" in dom.stdout and "relay-gate evidence" in dom.stdout
        if page != "index.html":
            assert dom.stdout.count("<svg") >= 1, "the burst chart is missing"
        png = artifacts / shot
        subprocess.run(
            ["chromium", *flags, "--window-size=1280,2000", f"--screenshot={png}", url],
            capture_output=True,
            timeout=60,
            check=True,
        )
        assert png.stat().st_size > 20_000, "the screenshot is (nearly) empty"
