"""Pieces of ``scripts/bench.py``: services and processes (``infra``, ``procs``), what is measured
(``measure``) and the scenarios (``limited``, ``others``)."""
