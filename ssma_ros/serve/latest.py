"""A one-element mailbox between the synchroniser and the inference worker.

The synchroniser puts every matched set; the worker takes the newest. An unprocessed older set is
replaced (and counted) instead of queued, so latency and memory stay bounded whatever the camera
rate is compared with the inference rate.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class LatestSlot:
    """Holds at most one item; newer items replace older unprocessed ones."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._item: Any = None
        self._full = False
        self._closed = False
        self.put_count = 0
        self.dropped = 0

    def put(self, item: Any) -> bool:
        """Store `item`; True if it replaced an item nobody had taken (counted in `dropped`).

        After :meth:`close`, items are discarded (and counted as dropped).
        """
        with self._cond:
            self.put_count += 1
            if self._closed:
                self.dropped += 1
                return True
            replaced = self._full
            if replaced:
                self.dropped += 1
            self._item, self._full = item, True
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> Any | None:
        """The newest item, removed from the slot; None after `timeout` seconds or once closed.

        ``timeout=None`` waits without limit (until an item arrives or the slot is closed).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._full and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> None:
        """Wake every waiting taker; later takes return None and later puts are discarded.

        An item still waiting in the slot is discarded and counted as dropped.
        """
        with self._cond:
            if self._full:
                self.dropped += 1
            self._closed = True
            self._item, self._full = None, False
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed
