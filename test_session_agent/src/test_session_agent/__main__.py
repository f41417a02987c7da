"""Console script `test-session-agent`: serve the agent service with uvicorn on HOST:PORT (default 127.0.0.1:8000)."""

from __future__ import annotations

import uvicorn

from .api.server import BoundedHttpProtocol
from .observability import configure_logging
from .settings import get_settings


def main() -> None:
    """Run the agent service until SIGINT/SIGTERM; settings come from the environment (README.md, Configuration)."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
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
        # uvicorn's own records go to the root handler: JSON like the rest under LOG_FORMAT=json.
        log_config=None,
    )


if __name__ == "__main__":
    main()
