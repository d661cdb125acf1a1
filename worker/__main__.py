"""`python -m worker ...` is the `tbatch` CLI (used to start child processes portably)."""

from worker.cli import main

main()
