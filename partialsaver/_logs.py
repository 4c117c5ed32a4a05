"""Keeping TensorFlow's own log lines about its internals off the user's screen during a
call, without touching any global setting: no log level is changed, and only records of
the threads inside the call are dropped, so another thread's TensorFlow logs still show."""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Iterator, Set

__all__ = ["quiet_tensorflow_logs"]


class _ThreadFilter(logging.Filter):
    """Drops records (below ERROR) logged by the threads it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: Set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or record.thread not in self.threads


_filter = _ThreadFilter()
_lock = threading.Lock()


@contextlib.contextmanager
def quiet_tensorflow_logs() -> Iterator[None]:
    """Inside the block, this thread's TensorFlow log records below ERROR are dropped.

    The filter is attached to TensorFlow's logger while any thread is inside such a
    block and removed when the last one leaves, so the logger ends as it started.
    """
    from partialsaver._tf import tf

    tf_logger = tf.get_logger()
    thread = threading.get_ident()
    with _lock:
        nested = thread in _filter.threads
        if not _filter.threads:
            tf_logger.addFilter(_filter)
        _filter.threads.add(thread)
    try:
        yield
    finally:
        with _lock:
            if not nested:
                _filter.threads.discard(thread)
            if not _filter.threads:
                tf_logger.removeFilter(_filter)
