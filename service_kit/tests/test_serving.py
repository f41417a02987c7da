"""`CoalescingTransport`: a response's writes within one loop iteration leave as one send, in order."""

from __future__ import annotations

import asyncio
from typing import Any

from service_kit.serving import CoalescingTransport


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8001) if name == "sockname" else default


def test_writes_of_one_iteration_leave_as_one() -> None:
    async def main() -> list[bytes]:
        inner = _Transport()
        transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n")
        transport.write(memoryview(b"{}"))
        assert inner.writes == []  # not yet: the iteration is still running
        await asyncio.sleep(0)
        transport.write(b"next")
        await asyncio.sleep(0)
        assert transport.get_extra_info("sockname") == ("127.0.0.1", 8001)  # the rest is the wrapped transport's
        return inner.writes

    assert asyncio.run(main()) == [b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}", b"next"]


def test_close_sends_what_is_queued_first() -> None:
    async def main() -> _Transport:
        inner = _Transport()
        transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"last words")
        transport.close()
        await asyncio.sleep(0)  # the flush scheduled by the write finds nothing left to send
        return inner

    inner = asyncio.run(main())
    assert inner.writes == [b"last words"] and inner.closed


def test_nothing_is_written_to_a_closing_transport() -> None:
    async def main() -> _Transport:
        inner = _Transport()
        transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"late")
        inner.closed = True  # the peer left meanwhile
        await asyncio.sleep(0)
        return inner

    assert asyncio.run(main()).writes == []


def test_writelines_and_write_eof_keep_the_order() -> None:
    class _EofTransport(_Transport):
        def write_eof(self) -> None:
            self.writes.append(b"<eof>")

    async def main() -> list[bytes]:
        inner = _EofTransport()
        transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"a")
        transport.writelines([b"b", b"c"])
        transport.write_eof()
        await asyncio.sleep(0)
        return inner.writes

    assert asyncio.run(main()) == [b"abc", b"<eof>"]
