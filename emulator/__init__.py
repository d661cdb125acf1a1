"""A local emulator of AssemblyAI's LLM Gateway and transcript list, for development and tests.

Entry points: ``create_app(config)`` (``emulator.routes.app``), ``EmulatorProcess`` and
``serve_in_thread`` (``emulator.routes.server``), and the ``tbatch emulator`` command
(``emulator.cli``). See docs/emulator.md.
"""
