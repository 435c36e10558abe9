"""Proof that the gate can fail: the catalogue of deliberate defects, the selftest that runs the
scenarios against each of them, its report, and the promise matrix (docs/promises.md).

Belongs here: :mod:`gate.proof.catalogue` (the ``DEFECTS`` registry and how a defect is switched into
a relay built for one stack), one ``defects_<area>`` module per contract area with its building
blocks in ``parts``/``parts_api``, the drill tooling's defects (``defects_drill``), ``selftest`` (the
runs), ``runs`` (their records) and ``report`` (the table, the closing verdict lines, ``selftest.json``), and
``promises``.

Must not live here: anything a deployment run needs. Defects reach a relay only through
``python -m gate.stack.relay --defect NAME`` on the reference stack; no service setting, flag or
variable of a deployment can switch one on.
"""
