"""`make chat`: an interactive terminal chat with the running agent service, one session, replies streamed."""

from __future__ import annotations

import os
import sys
import uuid

import httpx
import orjson


def main() -> int:
    """Read prompts from stdin until EOF or `/quit`; stream each reply from `/process-streaming`."""
    url = os.environ.get("AGENT_URL", f"http://127.0.0.1:{os.environ.get('AGENT_PORT', '8000')}")
    session_id = os.environ.get("SESSION_ID") or f"chat-{uuid.uuid4().hex[:8]}"
    print(f"session {session_id} on {url}; /quit to leave")
    with httpx.Client(base_url=url, timeout=httpx.Timeout(300, connect=3)) as client:
        while True:
            try:
                prompt = input("you> ").strip()
            except EOFError:
                print()
                return 0
            if prompt in ("/quit", "/exit"):
                return 0
            if not prompt:
                continue
            print("agent> ", end="", flush=True)
            try:
                with client.stream(
                    "POST", "/process-streaming", json={"prompt": prompt, "session_id": session_id}
                ) as r:
                    if r.status_code != 200:
                        print(f"[error {r.status_code}] {r.read().decode()}")
                        continue
                    for line in r.iter_lines():
                        if line.startswith("data:"):
                            event = orjson.loads(line[5:])
                            if event["type"] == "text":
                                print(event["data"], end="", flush=True)
                            elif event["type"] == "error":
                                print(f"[error {event.get('status')}] {event.get('detail')}", end="")
            except httpx.TransportError as e:
                print(f"[agent service unreachable at {url}: {e}; is it running? try: make run]")
                continue
            print()


if __name__ == "__main__":
    sys.exit(main())
