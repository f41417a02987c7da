"""Console script `test-session-agent`: serve the agent service with uvicorn on HOST:PORT (default 127.0.0.1:8000)."""

from __future__ import annotations

from service_kit.serving import serve

from .settings import get_settings


def main() -> None:
    """Run the agent service until SIGINT/SIGTERM; settings come from the environment (README.md, Configuration)."""
    serve("test_session_agent.api.app:create_app", get_settings(), access_log=False)


if __name__ == "__main__":
    main()
