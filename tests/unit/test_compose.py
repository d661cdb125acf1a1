"""docker-compose.yml runs as written: every path its services and the example pipelines name
exists in the container as the Dockerfile builds the image and compose mounts into it."""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
TBATCH = ("migrate", "emulator", "worker", "beat")


@dataclass(frozen=True)
class Container:
    """What one service sees: the image's COPYs and directories, then its mounts on top."""

    copies: dict[PurePosixPath, Path]  # container path -> host path copied there
    dirs: set[PurePosixPath]  # made by RUN mkdir in the image
    binds: dict[PurePosixPath, Path]  # container path -> host path (read from the host)
    volumes: set[PurePosixPath]  # named volumes: writable directories

    def host(self, path: PurePosixPath) -> Path | None:
        """The host file behind ``path``, or None if it comes from no COPY or bind mount."""
        for sources in (self.binds, self.copies):
            for target, source in sorted(sources.items(), key=lambda kv: -len(kv[0].parts)):
                if path == target or target in path.parents:
                    return source.joinpath(*path.parts[len(target.parts) :])
        return None

    def exists(self, path: PurePosixPath) -> bool:
        found = self.host(path)
        return (found is not None and found.exists()) or path in self.dirs | self.volumes

    def writable(self, path: PurePosixPath) -> bool:
        return any(path == v or v in path.parents for v in self.volumes)


def _image() -> tuple[dict[PurePosixPath, Path], set[PurePosixPath]]:
    workdir, copies, dirs = PurePosixPath("/"), {}, set()
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "WORKDIR":
            workdir = workdir / words[1]
        elif words[0] == "COPY":
            *sources, dest = words[1:]
            target = workdir / dest
            for source in sources:
                copies[target / source if dest.endswith("/") else target] = ROOT / source
        elif words[0] == "RUN" and "mkdir" in words:
            dirs |= {PurePosixPath(w) for w in words if w.startswith("/")}
    return copies, dirs


def container(name: str) -> Container:
    copies, dirs = _image()
    binds, volumes = {}, set()
    for mount in SERVICES[name].get("volumes", []):
        source, target = mount.split(":")[:2]
        if source.startswith("."):
            binds[PurePosixPath(target)] = (ROOT / source).resolve()
        else:
            assert source in COMPOSE["volumes"], f"{name}: volume {source} is not declared"
            volumes.add(PurePosixPath(target))
    return Container(copies, dirs, binds, volumes)


def _option(command: list[str], flag: str) -> PurePosixPath:
    return PurePosixPath(command[command.index(flag) + 1])


def test_compose_parses_and_has_the_production_services() -> None:
    assert {"postgres", "redis", "migrate", "worker", "beat", "emulator", "prometheus"} <= set(
        SERVICES
    )
    for name, svc in SERVICES.items():
        assert "image" in svc or "build" in svc, name
        if "image" in svc:
            assert re.fullmatch(r"[a-z0-9./-]+:[A-Za-z0-9._-]+", svc["image"]), svc["image"]
        assert svc.get("restart") in {"unless-stopped", "no"}, f"{name}: no restart policy"
    assert SERVICES["worker"]["command"][0] == "worker"
    assert SERVICES["beat"]["command"][0] == "beat"
    assert SERVICES["worker"]["environment"]["TBATCH_BROKER_URL"].startswith("redis://")
    assert SERVICES["emulator"]["profiles"] == ["emulator"]  # not started against the real API
    assert (ROOT / "deploy" / "prometheus.yml").exists()


def test_tbatch_containers_stop_gracefully_and_reap() -> None:
    read_timeout = Settings().gateway_read_timeout_s
    for name in TBATCH:
        svc = SERVICES[name]
        assert svc["init"] is True, name
        grace = svc["stop_grace_period"]
        assert grace.endswith("s") and float(grace[:-1]) > read_timeout, (name, grace)


def test_every_path_beat_and_the_workers_use_exists_in_their_containers() -> None:
    beat, worker = container("beat"), container("worker")
    command = SERVICES["beat"]["command"]
    config = _option(command, "--config")
    assert beat.exists(config) and worker.exists(config), config  # tasks carry this path
    assert beat.writable(_option(command, "--schedule-file").parent)
    host_config = beat.host(config)
    assert host_config is not None
    pipelines = tomllib.loads(host_config.read_text())["pipeline"]
    for pipeline in pipelines:
        where = f"{config} pipeline {pipeline['name']}"
        for key in ("template", "schema"):
            path = PurePosixPath(str(config.parent / pipeline[key]))
            for seen in (beat, worker):
                resolved = _normal(path)
                assert seen.exists(resolved), f"{where}: {key} {resolved} is not in the image"
        out = _normal(config.parent / pipeline.get("report", {}).get("out_dir", "reports"))
        # The worker that finalizes a night writes the report; beat's side must see it too.
        assert worker.writable(out) and beat.writable(out), f"{where}: reports at {out}"
        source = pipeline["source"]
        if source["type"] == "file":
            folder = _normal(config.parent / source["path"]).parent
            assert beat.exists(folder) and worker.exists(folder), f"{where}: ids in {folder}"


def test_the_image_holds_every_package_pyproject_installs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    included = project["tool"]["setuptools"]["packages"]["find"]["include"]
    copies, _ = _image()
    copied = {host.name for host in copies.values()}
    assert {pattern.rstrip("*") for pattern in included} <= copied


def _normal(path: PurePosixPath) -> PurePosixPath:
    """``..`` resolved, as the container's kernel would (no symlinks in these paths)."""
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            parts.pop()
        elif part != ".":
            parts.append(part)
    return PurePosixPath(*parts)
