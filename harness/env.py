"""The environment of a tbatch child process: which database, broker, Redis and gateway it uses.

Children read their settings from ``TBATCH_*`` variables (worker.settings). The tests, the
benchmarks and the demo each point children at services of their own, so the names of those
variables are written here once rather than in each of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def service_settings(
    *, database_url: str, broker_url: str, redis_url: str, gateway_url: str, api_key: str
) -> dict[str, str]:
    """The settings that name a run's services.

    ``gateway_url`` is the emulator's base URL: it serves the LLM Gateway (under ``/v1``) and
    the transcript API, for both regions, so no child can reach a real AssemblyAI endpoint.
    """
    return {
        "TBATCH_DATABASE_URL": database_url,
        "TBATCH_BROKER_URL": broker_url,
        "TBATCH_REDIS_URL": redis_url,
        "TBATCH_GATEWAY_URL": f"{gateway_url}/v1",
        "TBATCH_GATEWAY_EU_URL": f"{gateway_url}/v1",
        "TBATCH_TRANSCRIPT_API_URL": gateway_url,
        "TBATCH_TRANSCRIPT_API_EU_URL": gateway_url,
        "ASSEMBLYAI_API_KEY": api_key,
    }


def child_env(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without its ``TBATCH_*`` variables, plus ``settings``.

    A setting left in the shell that started a test or benchmark (a production database URL,
    say) must not leak into its children: they see the run's settings only.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TBATCH_")}
    env.update(settings)
    return env
