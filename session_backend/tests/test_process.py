"""The real `session-backend` console script, started as a process and spoken to over HTTP."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "session-backend exited early"
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("session-backend did not become ready")


def _script() -> list[str]:
    exe = shutil.which("session-backend", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "session_backend"]


def test_console_script_serves_and_keeps_data_across_restart(database_url: str, port_factory: Any) -> None:
    port = port_factory()
    url = f"http://127.0.0.1:{port}"
    env = os.environ | {"DATABASE_URL": database_url, "PORT": str(port), "SESSION_BACKEND_API_KEY": ""}
    for attempt in range(2):
        proc = subprocess.Popen(_script(), env=env)
        try:
            _wait_ready(url, proc)
            if attempt == 0:
                r = httpx.post(f"{url}/v1/sessions", json={"session_id": "proc-test", "session_type": "AGENT"})
                assert r.status_code == 201
            else:
                assert httpx.get(f"{url}/v1/sessions/proc-test").json()["session_id"] == "proc-test"
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean shutdown
