"""Persistence demo: an agent on the real local model remembers a conversation after its process restarts, and an
actor's long-term memory reaches the actor's next session.

Starts the session backend and the agent service as real processes (free ports on 127.0.0.1; the backend uses
`DATABASE_URL` when set, else an embedded PostgreSQL under `.data/demo/`), then:
tells session A "Hello, my name is Alice"; stops and restarts the agent service; asks A "What is my name?"
(the answer must contain "Alice"); asks a new session B the same (it must not); prints A's history; streams a
reply. Then, through an agent profile (`/api/v1`): actor user-123 says "I live in San Francisco and prefer Celsius"
in one session; in a new session user-123 asks where they live and which unit they prefer, and the memory must be
in the context injected into that turn (printed, with the answer); user-456 asking the same gets no memory.
Exits 0 only when all of that held. `MODEL_PROVIDER=scripted` runs the same flow without the local model.

Run: `make demo` (or `uv run python test_session_agent/test_session_demo.py`).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

from session_backend.testing import free_port, run_service

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"


@contextmanager
def service(name: str, env: dict[str, str], url: str, health: str, log: Path) -> Iterator[None]:
    """Run console script `name` until the block ends, once `url + health` answers (model load included)."""
    with run_service(name, env, url, health=health, log=log, timeout=300):
        yield


def ask(client: httpx.Client, prompt: str, session_id: str) -> str:
    r = client.post("/process", json={"prompt": prompt, "session_id": session_id})
    r.raise_for_status()
    reply = str(r.json()["response"])
    print(f"  [{session_id}] user: {prompt}\n  [{session_id}] agent: {reply}\n")
    return reply


def stream(client: httpx.Client, prompt: str, session_id: str) -> str:
    print(f"  [{session_id}] user: {prompt}\n  [{session_id}] agent (streaming): ", end="", flush=True)
    text, done = "", None
    with client.stream("POST", "/process-streaming", json={"prompt": prompt, "session_id": session_id}) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data:"):
                continue
            event = orjson.loads(line[5:])
            if event["type"] == "text":
                text += event["data"]
                print(event["data"], end="", flush=True)
            elif event["type"] in ("done", "error"):
                done = event
    print("\n")
    if done is None or done["type"] != "done":
        raise RuntimeError(f"stream did not finish with a done event: {done}")
    return text


def invoke(
    client: httpx.Client, agent_id: str, prompt: str, actor_id: str, session_id: str | None = None
) -> dict[str, Any]:
    body = {"prompt": prompt, "actor_id": actor_id} | ({"session_id": session_id} if session_id else {})
    r = client.post(f"/api/v1/agents/{agent_id}/invoke", json=body)
    r.raise_for_status()
    answer: dict[str, Any] = r.json()
    print(f"  [{actor_id} / {answer['session_id'][:8]}] user: {prompt}")
    injected = answer["status"]["injected_memory"]
    print("  injected context: " + (injected.replace("\n", "\n    ") if injected else "(none)"))
    print(f"  [{actor_id} / {answer['session_id'][:8]}] agent: {answer['response']}\n")
    return answer


def memory_demo(client: httpx.Client) -> dict[str, bool]:
    """Long-term memory per actor through an agent profile; returns the checks."""
    print("-- long-term memory per actor (agent profile, /api/v1) --\n")
    profile = {
        "name": "Weather assistant",
        "system_prompt": (
            "You are a helpful assistant. Facts the user told you in earlier conversations may follow the user's "
            "message; use them. Answer in one short sentence."
        ),
    }
    r = client.post("/api/v1/agents", json=profile)
    r.raise_for_status()
    agent_id = r.json()["agent_id"]
    print(f"agent profile {agent_id}: {profile['name']}\n")
    suffix = uuid.uuid4().hex[:6]
    user_123, user_456 = f"user-123-{suffix}", f"user-456-{suffix}"
    invoke(client, agent_id, "I live in San Francisco and prefer Celsius.", user_123)
    memories = client.get(f"/api/v1/actors/{user_123}/memories").json()["items"]
    print(f"memories of {user_123}: {[m['content'] for m in memories]}\n")
    question = "Where do I live, and which unit do I prefer for the weather?"
    known = invoke(client, agent_id, question, user_123)
    other = invoke(client, agent_id, question, user_456)
    answer = known["response"].lower()
    print(f"answer mentions the memory: {'celsius' in answer or 'san francisco' in answer}\n")
    return {
        "user-123's fact was stored as a memory": any("San Francisco" in m["content"] for m in memories),
        "a new session of user-123 is given the memory": "San Francisco" in (known["status"]["injected_memory"] or ""),
        "user-456 is given no memory": other["status"]["injected_memory"] is None
        and not client.get(f"/api/v1/actors/{user_456}/memories").json()["items"],
    }


def main() -> int:
    """Run the demo; 0 when the agent remembered across the restart and sessions stayed isolated."""
    run_dir = DATA / "demo"
    logs = run_dir / "logs"
    backend_port, agent_port = free_port(), free_port()
    backend_url, agent_url = f"http://127.0.0.1:{backend_port}", f"http://127.0.0.1:{agent_port}"
    backend_env = {"PORT": str(backend_port), "HOST": "127.0.0.1", "SESSION_BACKEND_DATA_DIR": str(run_dir)}
    agent_env = {
        "PORT": str(agent_port),
        "HOST": "127.0.0.1",
        "SESSION_BACKEND_URL": backend_url,
        "MODEL_PROVIDER": os.environ.get("MODEL_PROVIDER", "local"),
        "MODEL_MAX_TOKENS": os.environ.get("MODEL_MAX_TOKENS", "48"),
    }
    session_a, session_b = f"demo-a-{uuid.uuid4().hex[:8]}", f"demo-b-{uuid.uuid4().hex[:8]}"
    checks: dict[str, bool] = {}
    print(f"session backend: {backend_url} (logs in {logs})")
    with service("session-backend", backend_env, backend_url, "/ready", logs / "backend.log"):
        client = httpx.Client(base_url=agent_url, timeout=300)
        print(f"agent service:   {agent_url} (model: {agent_env['MODEL_PROVIDER']})\n")
        with service("test-session-agent", agent_env, agent_url, "/health", logs / "agent.log"):
            ask(client, "Hello, my name is Alice", session_a)
        print("-- agent service process stopped; starting a new one --\n")
        with service("test-session-agent", agent_env, agent_url, "/health", logs / "agent.log"):
            reply = ask(client, "What is my name?", session_a)
            checks["recalls Alice after restart"] = "alice" in reply.lower()
            other = ask(client, "What is my name?", session_b)
            checks["session B does not know the name"] = "alice" not in other.lower()
            history = client.get(f"/sessions/{session_a}/history").json()["messages"]
            print(f"history of {session_a}:")
            for m in history:
                text = " ".join(block.get("text", "") for block in m["content"])
                print(f"  #{m['message_id']} {m['role']}: {text}")
            print()
            checks["history holds both turns"] = [m["role"] for m in history] == ["user", "assistant"] * 2
            streamed = stream(client, "Say hello to me using my name.", session_a)
            checks["streamed a reply"] = bool(streamed.strip())
            checks |= memory_demo(client)
        client.close()
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    return 0 if checks and all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
