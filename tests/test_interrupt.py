"""Stop signals in a real process: a stop a library swallows is raised again until heard, a
handler a library installs is put back, and the exit code says which signal it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from .conftest import REPO

# How the child processes wait for a signal: on the read end of the signal wakeup fd, so a signal
# wakes the wait whenever it lands and whichever thread the kernel hands it to. A lock's wait
# (threading.Event) is woken only by a signal to the main thread while it blocks: one that lands a
# moment before is lost, and the test would hang instead of failing.
WAIT_FOR_A_SIGNAL = """
    import os, signal
    _wake_r, _wake_w = os.pipe()
    os.set_blocking(_wake_w, False)
    signal.set_wakeup_fd(_wake_w)

    def wait_for_a_signal():
        while True:  # a byte left by an earlier signal only goes round once more
            os.read(_wake_r, 1)
"""

# The repeat is raised by hand, once, by the main thread itself after the first raise was
# swallowed: with REPEAT_S None no timer thread repeats it, and no other thread takes part, so what
# the child prints follows from the order of its own statements alone.
SWALLOWED_ONCE = textwrap.dedent(WAIT_FOR_A_SIGNAL + """
    from tadistill import interrupt

    interrupt.REPEAT_S = None
    interrupt.install()
    try:
        print("ready", flush=True)
        wait_for_a_signal()
    except BaseException:  # a library's catch-all swallows the first raise
        print("swallowed", flush=True)
    try:
        interrupt.raise_again()  # the stop is still unheard: raised in this thread again
        wait_for_a_signal()
    except KeyboardInterrupt as stop:
        print("stopped", interrupt.exit_code(stop), interrupt.raise_again(), flush=True)
""")

KEPT = textwrap.dedent("""
    import signal
    from tadistill import interrupt

    interrupt.install()
    ours = signal.getsignal(signal.SIGINT)
    with interrupt.kept():
        signal.signal(signal.SIGINT, lambda *a: None)  # what Ray Train's fit installs
        signal.signal(signal.SIGTERM, lambda *a: None)  # what ray.init installs
    print(signal.getsignal(signal.SIGINT) is ours and signal.getsignal(signal.SIGTERM) is ours)
""")


def _python(code: str) -> subprocess.Popen:
    """A child running `code`. No clock bounds it: every wait in these children ends on a signal's
    wakeup byte, which cannot be lost, so what a test asserts never depends on how long anything took."""
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def _printed(proc: subprocess.Popen) -> str:
    """Everything the child printed, once it has ended."""
    return proc.communicate()[0]


def test_a_swallowed_stop_is_raised_again_and_the_exit_code_names_the_signal():
    for signum, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        proc = _python(SWALLOWED_ONCE)
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signum)
        out = _printed(proc)
        # Raised again while unheard; once heard (exit_code), nothing is raised any more.
        assert out.split() == ["swallowed", "stopped", str(code), "False"], out


def test_handlers_a_library_installs_inside_a_step_are_put_back():
    proc = _python(KEPT)
    out = _printed(proc)
    assert out.strip() == "True"


DRAINED = textwrap.dedent(WAIT_FOR_A_SIGNAL + """
    from tadistill import interrupt

    interrupt.install()
    landed = []
    try:
        with interrupt.draining(lambda: landed.append("landed")):
            print("ready", flush=True)
            wait_for_a_signal()
    except KeyboardInterrupt:
        print(*landed, "stopped", flush=True)
""")


def test_a_stop_lets_what_is_on_the_wire_land_before_it_raises():
    proc = _python(DRAINED)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    out = _printed(proc)
    assert out.split() == ["landed", "stopped"], out
