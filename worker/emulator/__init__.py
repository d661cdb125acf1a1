"""A local emulator of AssemblyAI's LLM Gateway and transcript list, for development and tests.

Entry points: ``create_app(config)`` (``worker.emulator.app``), ``EmulatorProcess`` and
``serve_in_thread`` (``worker.emulator.server``), and the ``tbatch emulator`` command
(``worker.emulator.cli``). See docs/emulator.md.
"""
