"""What tests, benchmarks and the demo need to run tbatch for real, written once.

Child processes with their logs (`procs`, `procstat`), the environment that points a child at
one run's services (`env`), a private Postgres database and Redis db for a run (`claim`), and
waiting with a deadline (`wait`). It is part of the installed package because `tbatch demo`
uses it; nothing in `worker/` but the CLI imports it (tests/unit/test_layout.py).
"""
