"""docker-compose.yml describes the production shape and parses; images are real names."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_parses_and_has_the_production_services() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "worker", "beat", "emulator", "prometheus"} <= set(
        services
    )
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        if "image" in svc:
            assert re.fullmatch(r"[a-z0-9./-]+:[A-Za-z0-9._-]+", svc["image"]), svc["image"]
    assert services["worker"]["command"][0] == "worker"
    assert services["beat"]["command"][0] == "beat"
    assert services["worker"]["environment"]["TBATCH_BROKER_URL"].startswith("redis://")
    assert (ROOT / "deploy" / "prometheus.yml").exists() and (ROOT / "Dockerfile").exists()
