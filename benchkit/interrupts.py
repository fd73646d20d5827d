"""Stop signals: SIGINT (Ctrl-C), SIGTERM and SIGHUP (terminal closed, ssh dropped) all stop a
run the same way, as `Interrupted`, and never in the middle of a save.

Python runs signal handlers only in the main thread, between bytecodes. `deferred()` holds
the stop signals that arrive inside it and raises the first one when it ends, so a results
file rewrite or a run's final bookkeeping is never cut in half.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived. A KeyboardInterrupt, so everything that cleans up after Ctrl-C
    cleans up after SIGTERM and SIGHUP too."""

    def __init__(self, signum: int = signal.SIGINT):
        self.signal_name = signal.Signals(signum).name
        super().__init__(self.signal_name)


def install() -> None:
    """Make every stop signal raise `Interrupted` in the main thread. A signal this process was
    started with ignored (`nohup`, a background job) stays ignored."""
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, _raise)


def signal_name(exc: BaseException) -> str:
    return getattr(exc, "signal_name", "SIGINT")


# Python functions that C code calls back (llama.cpp's logger, during a model load): an
# exception raised in one is printed and dropped by ctypes, so a signal handled there would
# be lost. The handler sends the signal again a moment later instead, when that C call is over.
C_CALLBACKS = {"llama_log_callback"}


def _raise(signum, frame):
    if frame is not None and frame.f_code.co_name in C_CALLBACKS:
        threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def deferred():
    """Hold stop signals until the block ends, then act on the first one as it would have been."""
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers never run in other threads: nothing can cut this block
        return
    pending: list[int] = []
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    previous = {s: h for s, h in previous.items() if h is not None and h != signal.SIG_IGN}
    for signum in previous:
        signal.signal(signum, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if pending:
            _deliver(pending[0], previous[pending[0]])


def _deliver(signum: int, handler) -> None:
    if callable(handler):
        handler(signum, None)  # raises, as it would have inside the block
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signum)  # the default action: end the process


# ------------------------------------------------------------------ a fatal signal
_last_words: list = []


@contextlib.contextmanager
def last_words(say):
    """While the block runs, `die` calls `say()` (which stores what it can and returns a sentence
    about it) before the process ends."""
    _last_words.append(say)
    try:
        yield
    finally:
        _last_words.remove(say)


def die(message: str) -> None:
    """End the process now, from a fatal signal's handler: one line on stderr, exit status 1.
    The `last_words` hooks run first, each allowed to fail."""
    outcomes = []
    for say in reversed(_last_words):
        with contextlib.suppress(BaseException):
            outcomes.append(say())
    line = "; ".join([f"benchkit: {message}", *filter(None, outcomes)])
    with contextlib.suppress(OSError):
        os.write(2, (line.replace("\n", " | ") + "\n").encode())
    os._exit(1)
