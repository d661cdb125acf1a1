"""``python -m emulator ...``: the same as ``tbatch emulator ...``."""

from emulator.cli import emulator_command

if __name__ == "__main__":
    emulator_command()
