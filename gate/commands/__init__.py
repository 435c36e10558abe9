"""The verbs of ``relay-gate``: one thin module per verb (``check``, ``run``, ``load``, ``faults``,
``serve``, ``backup``, ``drill``, ``selftest``, ``smoke``, ``rules``, ``evidence``), each with a
``register(subparsers)`` that declares its flags and help, and a ``run(args) -> int`` that returns the
exit code of gate/verdict.py. gate/cli.py lists them. A helper that serves one verb only sits beside
it (``load_distributed``, ``smoke_rollback``).

Must not live here: what a verb does for a living — starting a stack (gate/stack/), talking to a
target (gate/client/), judging (gate/oracles/, load/, gate/faults/), the drill (gate/drill/). Nothing
below this package imports it: verbs sit on top (tests/test_import_contract.py holds gate/stack and
gate/drill to it). One exception, on purpose: gate/proof/selftest.py builds its child pytest with
``check``'s own command line (``pytest_argv``).
"""
