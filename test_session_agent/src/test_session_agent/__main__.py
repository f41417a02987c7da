"""Console script `test-session-agent`: serve the agent service with uvicorn on HOST:PORT (default 127.0.0.1:8000)."""

from __future__ import annotations

from service_kit.serving import serve

from .settings import get_settings


def main() -> None:
    """Run the agent service until SIGINT/SIGTERM; settings come from the environment (README.md, Configuration)."""
    settings = get_settings()
    # A /ws message is capped like a request body.
    serve("test_session_agent.api.app:create_app", settings, access_log=False, ws_max_bytes=settings.max_request_bytes)


if __name__ == "__main__":
    main()
