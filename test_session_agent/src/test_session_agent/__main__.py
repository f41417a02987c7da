"""Console script `test-session-agent`: serve the agent service with uvicorn on HOST:PORT (default 127.0.0.1:8000)."""

from __future__ import annotations

import logging

import uvicorn

from .api.server import BoundedHttpProtocol
from .settings import get_settings


def main() -> None:
    """Run the agent service until SIGINT/SIGTERM; settings come from the environment (README.md, Configuration)."""
    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(
        "test_session_agent.api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # Idle, half-sent and endless connections are closed; beyond the cap new requests get 503 at once.
        http=BoundedHttpProtocol,
        limit_concurrency=settings.max_connections,
        access_log=False,
    )


if __name__ == "__main__":
    main()
