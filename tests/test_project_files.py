"""Static checks of what a new user runs: docker-compose.yml and the Dockerfiles (no Docker engine here), and
every curl command in the README hitting a route that exists."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from session_backend.app import create_app as create_backend
from session_backend.settings import Settings
from test_session_agent.api.app import create_app as create_agent
from test_session_agent.settings import AgentSettings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
SERVICE_SETTINGS: dict[str, Any] = {"session_backend": Settings, "test_session_agent": AgentSettings}
HEALTH = {"session_backend": "/ready", "test_session_agent": "/health"}
PORTS = {"session_backend": 8001, "test_session_agent": 8000}


def env_names(settings_class: Any) -> set[str]:
    return {f.validation_alias for f in settings_class.model_fields.values() if isinstance(f.validation_alias, str)}


def routes(app: Any) -> list[tuple[str, re.Pattern[str]]]:
    """(METHOD, path regex) of every operation in the app's OpenAPI schema."""
    out = []
    for path, operations in app.openapi()["paths"].items():
        rx = re.compile(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(path)))
        out += [(method.upper(), rx) for method in operations]
    return out


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def test_compose_config_validates() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.fail("docker-compose (Debian package) is not installed; .ci/run installs it")
    env = os.environ | {"POSTGRES_PASSWORD": "pw", "SESSION_BACKEND_API_KEY": "key"}
    ok = subprocess.run([tool, "-f", str(COMPOSE), "config", "-q"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    env.pop("POSTGRES_PASSWORD")
    missing = subprocess.run([tool, "-f", str(COMPOSE), "config", "-q"], env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "POSTGRES_PASSWORD" in missing.stderr


def test_compose_matches_service_settings(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "session_backend", "test_session_agent"}
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    for name, settings_class in SERVICE_SETTINGS.items():
        service = services[name]
        env = service["environment"]
        assert set(env) <= env_names(settings_class), (
            f"{name}: unknown variables {set(env) - env_names(settings_class)}"
        )
        assert int(env["PORT"]) == PORTS[name]
        assert service["ports"] == [f"127.0.0.1:{PORTS[name]}:{PORTS[name]}"]
        assert f"127.0.0.1:{PORTS[name]}{HEALTH[name]}" in " ".join(service["healthcheck"]["test"])
        assert all(dep["condition"] == "service_healthy" for dep in service["depends_on"].values())
        dockerfile = ROOT / service["build"]["dockerfile"]
        text = dockerfile.read_text()
        assert text.count("\nFROM ") + text.startswith("FROM ") >= 2, f"{dockerfile} is not multi-stage"
        assert re.search(r"^USER (?!root)\w+", text, re.M), f"{dockerfile} does not drop root"
        assert "uv sync --locked" in text and "HEALTHCHECK" in text and HEALTH[name] in text
        assert f"PORT={PORTS[name]}" in text
    agent_env = services["test_session_agent"]["environment"]
    assert agent_env["SESSION_BACKEND_URL"] == f"http://session_backend:{PORTS['session_backend']}"
    assert "${SESSION_BACKEND_API_KEY:?" in COMPOSE.read_text()


def readme_curls() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [line.strip() for line in text.splitlines() if line.strip().startswith("curl ")]


def test_readme_curl_commands_hit_existing_routes() -> None:
    apps = {
        8001: routes(create_backend(Settings(database_url="postgresql://x@127.0.0.1/x"))),
        8000: routes(create_agent()),
    }
    curls = readme_curls()
    assert len(curls) >= 8
    for line in curls:
        args = shlex.split(line)
        url = next(a for a in args if a.startswith(("localhost:", "http", "'localhost")))
        method = args[args.index("-X") + 1] if "-X" in args else ("POST" if "-d" in args else "GET")
        match = re.match(r"(?:https?://)?localhost:(\d+)(/[^?]*)", url)
        assert match, line
        port, path = int(match.group(1)), match.group(2)
        assert any(m == method and rx.fullmatch(path) for m, rx in apps[port]), f"no route for {method} {path}: {line}"
        body = args[args.index("-d") + 1] if "-d" in args else None
        if body:
            yaml.safe_load(body)  # valid JSON (JSON is YAML)


def test_ci_runs_the_readme_test_command() -> None:
    readme_first = (ROOT / "README.md").read_text().split("```")[1]
    assert "make test" in readme_first and "make run" in readme_first
    assert "make test" in (ROOT / ".ci" / "run").read_text()
