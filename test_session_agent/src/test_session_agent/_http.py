"""The HTTP transport every PostgreSQL client shares.

One factory for httpx clients, the retry predicates, and the one place where a backend response becomes a return
value or one of `test_session_agent.exceptions`.
"""

from __future__ import annotations

from typing import Any, Literal, overload
from urllib.parse import quote

import httpcore  # noqa: F401  # httpx imports its transport on the first client; here it loads with this module instead
import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from . import _json
from .exceptions import (
    BackendRequestError,
    BackendUnavailableError,
    SessionConflictError,
    SessionNotFoundError,
)

DEFAULT_BASE_URL = "http://localhost:8001"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=2.0)


KEEPALIVE_EXPIRY_SECONDS = 2.0
"""Idle pooled connections to the backend are closed after this long (below the server's 5 s keep-alive)."""


def client_options(
    base_url: str,
    api_key: str | None,
    timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
    max_connections: int = 64,
) -> dict[str, Any]:
    """Keyword arguments for `httpx.Client` / `httpx.AsyncClient` talking to the session backend.

    Args:
        base_url: URL of the session backend, e.g. `http://localhost:8001` (a trailing slash is removed).
        api_key: bearer token sent as `Authorization`; None or empty sends none.
        timeout: per-request timeout in seconds, or an `httpx.Timeout`.
        max_connections: pool size; half of it is kept alive between requests.

    Returns:
        The options, ready for `httpx.Client(**options)`.
    """
    return {
        "base_url": base_url.rstrip("/"),
        "timeout": timeout,
        "headers": {"Authorization": f"Bearer {api_key}"} if api_key else {},
        "limits": httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max(1, max_connections // 2),
            # Shorter than the backend's idle close (uvicorn's 5 s keep-alive): a connection the server is closing is
            # never reused for a request, which would then fail with "connection reset" (not retried when unsafe).
            keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
        ),
        # Loading the CA bundle costs ~40 ms per process; a plain-http backend never needs it.
        "verify": base_url.startswith("https:"),
    }


@overload
def backend_client(
    base_url: str,
    api_key: str | None = None,
    timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
    *,
    asynchronous: Literal[False] = False,
    max_connections: int = 64,
) -> httpx.Client: ...


@overload
def backend_client(
    base_url: str,
    api_key: str | None = None,
    timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
    *,
    asynchronous: Literal[True],
    max_connections: int = 64,
) -> httpx.AsyncClient: ...


def backend_client(
    base_url: str,
    api_key: str | None = None,
    timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
    *,
    asynchronous: bool = False,
    max_connections: int = 64,
) -> httpx.Client | httpx.AsyncClient:
    """Build the keep-alive HTTP client for the session backend (the only place one is built).

    Args:
        base_url: URL of the session backend.
        api_key: bearer token; None sends none.
        timeout: per-request timeout in seconds, or an `httpx.Timeout`.
        asynchronous: build an `httpx.AsyncClient` instead of an `httpx.Client`.
        max_connections: pool size.

    Returns:
        The client; the caller closes it.
    """
    options = client_options(base_url, api_key, timeout, max_connections)
    return httpx.AsyncClient(**options) if asynchronous else httpx.Client(**options)


class BackendClientOwner:
    """Base of the backend clients: holds their `httpx.Client`.

    Either one it built (closed by `close()`) or the caller's (left open; given `api_key`, its `Authorization`
    header is set).
    """

    _client: httpx.Client
    _owns_client: bool
    _retries: int

    def _adopt_client(
        self,
        client: httpx.Client | None,
        base_url: str,
        api_key: str | None,
        timeout: float | httpx.Timeout,
        retries: int,
    ) -> None:
        self._owns_client = client is None
        if client is None:
            client = backend_client(base_url, api_key, timeout)
        elif api_key:
            client.headers["Authorization"] = f"Bearer {api_key}"
        self._client = client
        self._retries = max(1, retries)

    def close(self) -> None:
        """Close the HTTP client if this object built it."""
        if self._owns_client:
            self._client.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool = True,
        missing_ok: bool = False,
        timeout: float | httpx.Timeout | None = None,
    ) -> httpx.Response | None:
        """Send one request through `request` (this client, its retries), its outcome mapped there.

        Returns:
            The response (2xx), or None when it is 404 and `missing_ok`.

        Raises:
            SessionNotFoundError: 404 and not `missing_ok`.
            SessionConflictError: 409 or 412.
            BackendUnavailableError: unreachable, timed out, or 5xx after the retries allowed.
            BackendRequestError: any other refusal (4xx), with the backend's problem detail.
        """
        return request(
            self._client,
            method,
            path,
            body=body,
            params=params,
            headers=headers,
            retries=self._retries,
            idempotent=idempotent,
            missing_ok=missing_ok,
            timeout=timeout,
        )


def retryable(exc: BaseException) -> bool:
    """True for failures worth retrying an idempotent request on: unreachable, or 502/503/504 (restarting)."""
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code in (502, 503, 504)


def connect_failure(exc: BaseException) -> bool:
    """True when the request never reached the server, so even a non-idempotent request may be sent again."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)


def segment(identifier: str) -> str:
    """Percent-encode an identifier as one URL path segment."""
    return quote(identifier, safe="")


def problem_detail(response: httpx.Response) -> str:
    """The `detail` (else `title`) of an RFC 9457 problem body, or the start of a non-JSON body."""
    try:
        body = _json.loads(response.content)
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)
    return str(body)[:200]


def unavailable(method: str, path: str, exc: Exception) -> BackendUnavailableError:
    """The error for a request that could not be completed (unreachable, timed out, 5xx after retries)."""
    return BackendUnavailableError(f"session backend unavailable: {method} {path}: {exc!r}")


def checked(method: str, path: str, response: httpx.Response, *, missing_ok: bool = False) -> httpx.Response | None:
    """Map a backend response to the client contract.

    Args:
        method: HTTP method sent (for messages).
        path: path sent (for messages).
        response: the backend's answer.
        missing_ok: a 404 returns None instead of raising.

    Returns:
        The response when 2xx, or None when it is 404 and `missing_ok`.

    Raises:
        SessionNotFoundError: 404 and not `missing_ok`.
        SessionConflictError: 409 or 412.
        BackendUnavailableError: 5xx.
        BackendRequestError: any other refusal (4xx), with the backend's problem detail.
    """
    status = response.status_code
    if status < 300:
        return response
    detail = problem_detail(response)
    if status == 404:
        if missing_ok:
            return None
        raise SessionNotFoundError(f"{method} {path}: not found: {detail}")
    if status in (409, 412):
        raise SessionConflictError(f"{method} {path}: {detail}")
    if status >= 500:
        raise BackendUnavailableError(f"{method} {path}: HTTP {status}: {detail}")
    raise BackendRequestError(f"{method} {path}: HTTP {status}: {detail}", status)


def retry_policy(retries: int, *, idempotent: bool = True) -> dict[str, Any]:
    """Tenacity arguments every client retries with: exponential waits from 50 ms up to 1 s.

    Args:
        retries: attempts in all (at least 1).
        idempotent: retry on `retryable` failures; else only when the request never reached the server.

    Returns:
        Keyword arguments for `tenacity.Retrying` / `tenacity.AsyncRetrying`.
    """
    return {
        "retry": retry_if_exception(retryable if idempotent else connect_failure),
        "stop": stop_after_attempt(max(1, retries)),
        "wait": wait_exponential(multiplier=0.05, max=1.0),
        "reraise": True,
    }


def request(
    client: httpx.Client,
    method: str,
    path: str,
    *,
    body: Any = None,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    retries: int = 3,
    idempotent: bool = True,
    missing_ok: bool = False,
    timeout: float | httpx.Timeout | None = None,
) -> httpx.Response | None:
    """Send one JSON request to the backend with retries, and map its outcome (the sync clients' only transport).

    Args:
        client: the backend client (`backend_client`).
        method: HTTP method.
        path: path below the client's base URL.
        body: JSON-encodable body, or None for none.
        params: query parameters.
        headers: extra request headers.
        retries: attempts in all.
        idempotent: whether a request that may have reached the server can be sent again.
        missing_ok: a 404 returns None instead of raising.
        timeout: this request's timeout (seconds, or an `httpx.Timeout`); None: the client's.

    Returns:
        The response when 2xx, or None when it is 404 and `missing_ok`.

    Raises:
        BackendUnavailableError: unreachable, timed out, or 5xx after the retries allowed.
        SessionNotFoundError, SessionConflictError, BackendRequestError: as `checked`.
    """
    content = _json.dumps(body) if body is not None else None
    send_headers = {"Content-Type": "application/json"} if content is not None else {}
    if headers:
        send_headers.update(headers)

    def send() -> httpx.Response:
        response = client.request(
            method,
            path,
            content=content,
            params=params,
            headers=send_headers,
            timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
        )
        if response.status_code >= 500:
            response.raise_for_status()
        return response

    try:
        response = Retrying(**retry_policy(retries, idempotent=idempotent))(send)
    except (httpx.HTTPError, OSError) as e:
        raise unavailable(method, path, e) from e
    return checked(method, path, response, missing_ok=missing_ok)
