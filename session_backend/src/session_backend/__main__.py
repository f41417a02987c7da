"""Console script `session-backend`: serve the app with uvicorn on HOST:PORT (default 127.0.0.1:8001)."""

from __future__ import annotations

import sys

import uvicorn

from .observability import configure_logging
from .server import BoundedHttpProtocol
from .settings import get_settings


def main() -> None:
    """Run the session backend until SIGINT/SIGTERM; settings come from the environment (README.md, Configuration)."""
    if sys.argv[1:2] in (["import-files"], ["export"]):
        from .cli_files import main as files_main

        raise SystemExit(files_main(sys.argv[1:]))
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        "session_backend.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        # Idle, half-sent and endless connections are closed; beyond the cap new requests get 503 at once.
        http=BoundedHttpProtocol,
        limit_concurrency=settings.max_connections,
        log_level=settings.log_level,
        access_log=False,
        # uvicorn's own records go to the root handler: JSON like the rest under LOG_FORMAT=json.
        log_config=None,
    )


if __name__ == "__main__":
    main()
