"""Secrets out of what the scenarios' pytest prints and of the reports pytest writes by itself.

Scenario records and summary.json go through :func:`gate.results.write_json`; three outputs of the
session do not, and failures put the most in them (assertion reprs, headers, bodies, the Target):

- the terminal: its writer's file is wrapped so everything passes through the redactor;
- junit.xml (pytest) and cucumber.json (pytest-bdd), written at session finish: rewritten redacted at
  ``pytest_unconfigure``, which runs after both;
- the parent that started this session, if any (``relay-gate check``, ``relay-gate selftest``), gets
  every secret learned here over an inherited pipe (gate/redacted_output.py) so that it can redact
  what reaches it by other ways (raw writes to stderr, ``pytest.exit`` messages).

Secrets are learned when the ``stack`` or ``target`` fixture is set up: the reference stack makes its
keys up in this process, so nothing knows them before. URL passwords are masked from the start.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any, TextIO

import pytest

from gate.redacted_output import SecretsOutbox, StreamRedaction
from gate.redaction import Redactor

PLUGIN_NAME = "relay-gate-redaction"
# fixtures whose value knows secrets (``secret_values()``): the reference stack, and the target
LEARN_FROM = ("stack", "target")
# the options naming the reports pytest and pytest-bdd write themselves
REPORT_OPTIONS = ("xmlpath", "cucumber_json_path")


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(SecretRedaction(config), PLUGIN_NAME)


class _RedactingFile:
    """Stands in for the terminal writer's file; after :meth:`end` it no longer holds partial lines."""

    def __init__(self, file: TextIO, redactor: Redactor) -> None:
        self._file = file
        self._stream: StreamRedaction | None = StreamRedaction(redactor)
        self._redactor = redactor

    def write(self, text: str) -> int:
        out = self._stream.feed(text) if self._stream is not None else self._redactor.text(text)
        if out:
            self._file.write(out)
        return len(text)

    def flush(self) -> None:
        self._file.flush()

    def end(self) -> None:
        if self._stream is not None:
            self._file.write(self._stream.close())
            self._stream = None
        self._file.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, encoding, fileno...
        return getattr(self._file, name)


class SecretRedaction:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.redactor = Redactor()
        self.outbox = SecretsOutbox.from_env()
        self._file: _RedactingFile | None = None
        self._wrap_terminal()

    def learn(self, values: Iterable[str]) -> None:
        values = [v for v in values if v]
        # the parent first: nothing may print a secret before the parent can redact it
        if self.redactor.add(values) and self.outbox is not None:
            self.outbox.send(values)
        self._wrap_terminal()

    def _wrap_terminal(self) -> None:
        if self._file is not None or self.config.pluginmanager.get_plugin("terminalreporter") is None:
            return
        tw = self.config.get_terminal_writer()
        file = getattr(tw, "_file", None)  # TerminalWriter keeps its stream here (pytest 8)
        if file is None:
            return  # another pytest: a parent still redacts the whole stream
        self._file = _RedactingFile(file, self.redactor)
        tw._file = self._file

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._wrap_terminal()

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None, Any, Any]:
        value = yield
        secret_values = getattr(value, "secret_values", None)
        if fixturedef.argname in LEARN_FROM and callable(secret_values):
            self.learn(secret_values())
        return value

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        for option in REPORT_OPTIONS:
            value = getattr(config.option, option, None)
            if value:
                path = config.invocation_params.dir / os.path.expanduser(os.path.expandvars(value))
                redact_report(path, self.redactor)
        if self._file is not None:
            self._file.end()


def redact_report(path: Path, redactor: Redactor) -> None:
    """Rewrite a JSON or XML report with every string in it redacted; it stays valid JSON or XML."""
    if not path.is_file():
        return
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            redacted = json.dumps(redactor.obj(json.loads(text)))
        elif path.suffix == ".xml":
            redacted = _redact_xml(text, redactor)
        else:
            redacted = redactor.text(text)
    except (ValueError, ET.ParseError):  # not what the name says: still no secret in it
        redacted = redactor.text(text)
    if redacted != text:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(redacted, encoding="utf-8")
        os.replace(tmp, path)


def _redact_xml(text: str, redactor: Redactor) -> str:
    # the report pytest itself wrote a moment ago, not untrusted input
    root = ET.fromstring(text)  # noqa: S314
    for el in root.iter():
        if el.text:
            el.text = redactor.text(el.text)
        if el.tail:
            el.tail = redactor.text(el.tail)
        for k, v in el.attrib.items():
            el.attrib[k] = redactor.text(v)
    return '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(root, encoding="unicode")
