"""Pieces of ``scripts/bench.py``: one run's services (``infra``), measured CLI children
(``procs``), what is measured (``measure``) and the scenarios (``limited``, ``others``). What
the tests and the demo share with them (worker processes, claims, waits) is in ``harness``."""
