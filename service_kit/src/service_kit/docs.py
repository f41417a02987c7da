"""The API documentation routes (`/openapi.json`, `/docs`, `/redoc`) of both services, behind their key check.

FastAPI serves its documentation to anyone; these routes serve the same pages with the service's own key check in
front (unless the service's settings open them), so a keyed deployment does not hand its API map to strangers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.params import Depends
from fastapi.responses import HTMLResponse, JSONResponse

OPENAPI_URL = "/openapi.json"


def add_docs(app: FastAPI, dependencies: Sequence[Depends], *, public: bool) -> None:
    """Add `/openapi.json`, `/docs` and `/redoc` to `app` (built with `openapi_url=None`, so FastAPI adds none).

    The pages load the schema from `/openapi.json`; when the documentation is not public, a browser therefore needs
    the key sent by a proxy or extension (or call `/openapi.json` with the key and open it in any OpenAPI viewer).

    Args:
        app: the service's app.
        dependencies: the key check every documentation route runs (the one its API routes run).
        public: serve the documentation to anyone (no key check).
    """
    guards = [] if public else list(dependencies)
    title = app.title

    @app.get(OPENAPI_URL, include_in_schema=False, dependencies=guards)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=guards)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{title} - Swagger UI")

    @app.get("/redoc", include_in_schema=False, dependencies=guards)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=OPENAPI_URL, title=f"{title} - ReDoc")


def docs_disabled() -> dict[str, Any]:
    """The `FastAPI(...)` keyword arguments that turn FastAPI's own (open) documentation routes off."""
    return {"openapi_url": None, "docs_url": None, "redoc_url": None}
