"""Console script `session-backend`: serve the app with uvicorn on HOST:PORT (default 127.0.0.1:8001)."""

from __future__ import annotations

import sys

from service_kit.serving import serve

from .settings import get_settings


def main() -> None:
    """Run the session backend until SIGINT/SIGTERM; settings come from the environment (README.md, Configuration)."""
    if sys.argv[1:2] in (["import-files"], ["export"], ["rotate-key"]):
        from .cli_files import main as files_main

        raise SystemExit(files_main(sys.argv[1:]))
    settings = get_settings()
    serve("session_backend.app:create_app", settings, workers=settings.workers, access_log=settings.access_log)


if __name__ == "__main__":
    main()
