"""The services behind PgBouncer in transaction pooling mode (issue 15, running at scale).

Real processes: Debian's `pgbouncer` (`pool_mode = transaction`, 4 server connections for the database) in front of
the machine's PostgreSQL; two `session-backend` replicas started at the same moment (both migrate through PgBouncer)
with `SESSION_BACKEND_PGBOUNCER=true`; an agent service (scripted model) on the first replica. Conversations, leases,
turn records, memories and storage go through one replica and are read back, whole and in order, through the other.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from session_backend.testing import free_port
from test_session_agent import PostgreSQLMemoryStore, PostgreSQLStorage
from test_session_agent.testing import scripted_agent_env

pytestmark = pytest.mark.integration

PGBOUNCER = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)


@pytest.fixture(scope="module")
def pgbouncer_url(database_url: str) -> Iterator[str]:
    """DSN of this module's database through a PgBouncer process in transaction mode."""
    if PGBOUNCER is None:
        pytest.skip("pgbouncer is not installed (Debian: `apt-get install pgbouncer`; .ci/run installs it)")
    target = urlsplit(database_url)
    if not target.hostname or target.hostname.startswith("/"):
        pytest.skip("the test PostgreSQL listens on a Unix socket only; PgBouncer here forwards to TCP")
    # Not under pytest's tmp (mode 0700, root's): PgBouncer drops to the `postgres` user when started as root.
    workdir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    port = free_port()
    database = target.path.lstrip("/")
    (workdir / "pgbouncer.ini").write_text(
        f"""[databases]
{database} = host={target.hostname} port={target.port or 5432} user={target.username or "postgres"} dbname={database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = 4
max_client_conn = 500
ignore_startup_parameters = extra_float_digits
logfile = {workdir / "pgbouncer.log"}
pidfile = {workdir / "pgbouncer.pid"}
"""
    )
    command = [PGBOUNCER, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        shutil.chown(workdir, "postgres")
        command[1:1] = ["-u", "postgres"]
    output = (workdir / "stderr.log").open("wb")
    proc = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    logs = [workdir / "stderr.log", workdir / "pgbouncer.log"]
                    text = "".join(log.read_text() for log in logs if log.exists())
                    raise RuntimeError(f"pgbouncer did not start: {text}") from None
                time.sleep(0.1)
        yield f"postgresql://{target.username or 'postgres'}@127.0.0.1:{port}/{database}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        output.close()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def replicas(
    pgbouncer_url: str, service_runner: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """Two backend replicas through PgBouncer (started together) and an agent service on the first."""
    logs = tmp_path_factory.mktemp("replicas")
    ports = [free_port() for _ in range(3)]
    urls = [f"http://127.0.0.1:{p}" for p in ports]

    def backend_env(port: int) -> dict[str, str]:
        return {
            "DATABASE_URL": pgbouncer_url,
            "SESSION_BACKEND_PGBOUNCER": "true",
            "SESSION_BACKEND_POOL_MAX_SIZE": "8",
            "PORT": str(port),
            "SESSION_BACKEND_API_KEY": "",
        }

    agent_env, _ = scripted_agent_env(urls[0], ports[2])
    with ExitStack() as stack, ThreadPoolExecutor(2) as pool:
        started = [
            pool.submit(
                stack.enter_context,
                service_runner("session-backend", backend_env(p), u, health="/ready", log=logs / f"b{i}.log"),
            )
            for i, (p, u) in enumerate(zip(ports[:2], urls[:2], strict=True))
        ]
        for future in started:
            future.result()
        stack.enter_context(service_runner("test-session-agent", agent_env, urls[2], log=logs / "agent.log"))
        yield {"backend_a": urls[0], "backend_b": urls[1], "agent": urls[2]}


def test_conversations_through_pgbouncer_are_whole_on_every_replica(replicas: dict[str, str]) -> None:
    sessions, turns = 24, 4

    def converse(n: int) -> list[int]:
        statuses = []
        with httpx.Client(base_url=replicas["agent"], timeout=60) as client:
            for t in range(turns):
                r = client.post(
                    "/process",
                    json={"prompt": f"turn {t} of conversation {n}", "session_id": f"pgb-{n}"},
                    headers={"Idempotency-Key": f"pgb-{n}-{t}"},
                )
                statuses.append(r.status_code)
        return statuses

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(converse, range(sessions)))
    assert all(status == 200 for statuses in results for status in statuses), results

    with httpx.Client(base_url=replicas["backend_b"], timeout=30) as other:
        for n in range(sessions):
            r = other.get(f"/v1/sessions/pgb-{n}/agents/default/messages")
            assert r.status_code == 200, r.text
            messages = r.json()
            assert [m["message_id"] for m in messages] == list(range(2 * turns))
            prompts = [m["message"]["content"][0]["text"] for m in messages if m["message"]["role"] == "user"]
            assert prompts == [f"turn {t} of conversation {n}" for t in range(turns)]
        # A replayed turn (same Idempotency-Key) is answered from the stored turn record, nothing stored twice.
        with httpx.Client(base_url=replicas["agent"], timeout=60) as agent:
            again = agent.post(
                "/process",
                json={"prompt": "turn 0 of conversation 0", "session_id": "pgb-0"},
                headers={"Idempotency-Key": "pgb-0-0"},
            )
        assert again.status_code == 200
        assert len(other.get("/v1/sessions/pgb-0/agents/default/messages").json()) == 2 * turns
        assert other.get("/v1/sessions", params={"limit": 100}).status_code == 200


def test_leases_are_exclusive_across_replicas_through_pgbouncer(replicas: dict[str, str]) -> None:
    a, b = httpx.Client(base_url=replicas["backend_a"]), httpx.Client(base_url=replicas["backend_b"])
    with a, b:
        assert a.post("/v1/sessions", json={"session_id": "pgb-lease"}).status_code == 201
        held = a.post("/v1/sessions/pgb-lease/lease", json={"owner": "one", "ttl_seconds": 30})
        assert held.status_code == 200, held.text
        busy = b.post("/v1/sessions/pgb-lease/lease", json={"owner": "two", "ttl_seconds": 30})
        assert busy.status_code == 409 and "retry-after" in busy.headers
        assert b.request("DELETE", "/v1/sessions/pgb-lease/lease", params={"owner": "one"}).status_code == 204
        assert b.post("/v1/sessions/pgb-lease/lease", json={"owner": "two", "ttl_seconds": 30}).status_code == 200


def test_memories_and_storage_through_pgbouncer(replicas: dict[str, str]) -> None:
    async def scenario() -> None:
        writer = PostgreSQLMemoryStore("pgb-actor", replicas["backend_a"])
        reader = PostgreSQLMemoryStore("pgb-actor", replicas["backend_b"])
        await asyncio.gather(*(writer.add(f"I keep {n} green parrots at home") for n in range(20)))
        found = await reader.search("parrots")
        assert len(found) == 10 and all("parrots" in entry.content for entry in found)
        writer.close()
        reader.close()

        store_a = PostgreSQLStorage(replicas["backend_a"], prefix="pgb")
        store_b = PostgreSQLStorage(replicas["backend_b"], prefix="pgb")
        await asyncio.gather(*(store_a.write(f"k/{n}", bytes([n]) * 1000) for n in range(30)))
        assert sorted(await store_b.list("k/")) == sorted(f"k/{n}" for n in range(30))
        assert await store_b.read("k/7") == bytes([7]) * 1000
        await store_a.aclose()
        await store_b.aclose()

    asyncio.run(scenario())
