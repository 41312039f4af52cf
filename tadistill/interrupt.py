"""Stop signals: Ctrl-C (SIGINT) and SIGTERM stop a command the same way in every step.

Both raise in the main thread (KeyboardInterrupt; `Stopped`, a KeyboardInterrupt, for SIGTERM),
so every `finally` of the run takes down what it started (Serve apps, the local Ray) and every
paid response is already on disk. Libraries install handlers of their own (Ray's driver exits on
SIGTERM; Ray Train's `fit` turns Ctrl-C into a "graceful abort" that ends as a failure):
`kept()` around a step, or around a library call, puts back what was there before.

A raise can be lost: a signal that lands while a library imports a module under a bare
`except:`, or inside code that catches everything, is swallowed there. So a stop is raised
again every REPEAT_S seconds until the run says it has heard it (`heard()`).
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How long a stop may go unheard before it is raised again; None: only raise_again() raises it
# again (a test that drives the repeat itself, so nothing it sees depends on time).
REPEAT_S: Optional[float] = 3.0


class Stopped(KeyboardInterrupt):
    """SIGTERM (a scheduler, `kill`, a preempted node): stop as on Ctrl-C."""


# A SIGTERM was received; the stop not yet heard (its signal); repeats sent and not yet handled.
_state = {"sigterm": False, "unheard": None, "repeats": 0}
_lock = threading.Lock()
_heard = threading.Event()  # set once the run has heard the stop: the thread that repeats it ends


_drains: list[Callable[[], None]] = []  # what lets work on the wire land before a stop (draining())


def _on_signal(signum, frame):
    with _lock:
        repeat = _state["repeats"] > 0
        _state["repeats"] = max(0, _state["repeats"] - 1)
        if repeat and _state["unheard"] is None:
            return  # a repeat sent just before the run heard the stop: nothing left to raise
        # Remembered as well as raised: a library that catches the raise (Ray's `ray.get` in C++)
        # raises a plain KeyboardInterrupt in its place.
        _state["sigterm"] = _state["sigterm"] or signum == signal.SIGTERM
        first = _state["unheard"] is None
        if first:
            _state["unheard"] = signum
            _heard.clear()
    if first:  # a second signal while this drains raises at once: the user insists
        _drain()
        threading.Thread(target=_raise_again_until_heard, daemon=True, name="tadistill-stop").start()
    raise Stopped() if signum == signal.SIGTERM else KeyboardInterrupt()


def _drain() -> None:
    for drain in list(_drains):
        try:
            drain()
        except Exception:  # noqa: BLE001 - a drain that fails must not stop the stop
            pass


@contextmanager
def draining(drain: Callable[[], None]) -> Iterator[None]:
    """While the block runs, a stop first calls `drain` (in the signal handler, before the raise
    that tears the block down): a teacher purchase stops sending and lets the requests on the
    wire land and be stored, so none of them is paid again on resume. `drain` bounds its own wait."""
    _drains.append(drain)
    try:
        yield
    finally:
        _drains.remove(drain)


def _raise_again_until_heard() -> None:
    while not _heard.wait(REPEAT_S):
        if not raise_again():
            return


def raise_again() -> bool:
    """Raise the stop in the main thread again if the run has not heard it; whether it did."""
    with _lock:
        signum = _state["unheard"]
        if signum is None:
            return False
        _state["repeats"] += 1
    # A real signal to the main thread (not _thread.interrupt_main, which waits for a blocking
    # call to return by itself): it wakes from a sleep or a wait, and runs _on_signal. A signal
    # that lands just before the main thread blocks does not wake it: the next repeat does.
    signal.pthread_kill(threading.main_thread().ident, signum)
    return True


def heard() -> None:
    """The run is stopping: the stop signal reached code that honours it."""
    with _lock:
        _state["unheard"] = None
        _heard.set()


def install() -> None:
    """The command's handlers for Ctrl-C and SIGTERM (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return  # an embedding program's thread: its handlers are its own
    for signum in STOP_SIGNALS:
        signal.signal(signum, _on_signal)


@contextmanager
def kept() -> Iterator[None]:
    """Whatever handlers a library installs inside the block are replaced, when it ends, by those
    that were there when it began."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in before.items():
            if handler is not None:  # None: set from C, not ours to put back
                signal.signal(signum, handler)


def exit_code(stop: KeyboardInterrupt) -> int:
    """The shell's convention: 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM)."""
    heard()
    signum = signal.SIGTERM if isinstance(stop, Stopped) or _state["sigterm"] else signal.SIGINT
    return 128 + int(signum)
