"""Ctrl-C that waits: the few lines of a step that must run together are never cut in half.

An optimiser update interrupted halfway leaves some parameters updated and others not: no
checkpoint could then resume exactly. Inside `held_interrupts()` a SIGINT (Ctrl-C, or Jupyter's
"interrupt the kernel") is noted and raised as KeyboardInterrupt when the block ends, a few
milliseconds later. Outside the main thread, where Python delivers no signals, it does nothing.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["held_interrupts"]


@contextlib.contextmanager
def held_interrupts() -> Iterator[None]:
    """Hold SIGINT until the block ends, then raise it (as KeyboardInterrupt) if one came."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and previous is not signal.SIG_IGN:
        if callable(previous):
            previous(signal.SIGINT, None)  # the handler in place before (default: raises)
        raise KeyboardInterrupt
