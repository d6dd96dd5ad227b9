"""Reading ahead: an iterator run in a reader thread a few items ahead of its consumer, so
that reading (decryption, decompression, parsing in C that releases the GIL) overlaps the
consumer's work (detection, a database's DELETE)."""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

T = TypeVar("T")

_END = object()


def prefetched(
    make: Callable[[], Iterator[T]], depth: int = 2, name: str = "reader"
) -> Iterator[T]:
    """Run ``make()``'s iterator in a reader thread, ``depth`` items ahead of the caller; its
    exception is raised in the caller, and the reader stops when the caller stops."""
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def read() -> None:
        try:
            it = make()
            try:
                for item in it:
                    if not put(item):
                        break
            finally:
                close = getattr(it, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:  # noqa: BLE001 (handed to the consuming thread)
            put(exc)
            return
        put(_END)

    reader = threading.Thread(target=read, name=name, daemon=True)
    reader.start()
    try:
        while (item := q.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        reader.join()
