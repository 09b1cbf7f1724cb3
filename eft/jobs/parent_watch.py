"""Worker processes that do not outlive the job that started them.

A local worker (a joblib/loky process) keeps fitting its chunk when the main ``eft fit``
process is killed (``SIGKILL`` leaves it no chance to stop them), holding its ~500 MB
for minutes.  :func:`watch_parent`, called once in each worker process, starts a daemon
thread that ends the worker as soon as its parent is gone (the worker is re-parented,
so ``os.getppid()`` changes), and lets the parent alone handle Ctrl-C: the terminal
sends ``SIGINT`` to the whole process group, and workers that ignore it print no
tracebacks while the parent stops them and reports once.

No heavy imports: the module is safe to import in any process.
"""

from __future__ import annotations

import os
import signal
import threading
import time

__all__ = ["watch_parent", "POLL_S"]

#: Seconds between checks of the parent.
POLL_S = 0.5

_started = False
_lock = threading.Lock()


def watch_parent(poll_s: float = POLL_S, *, ignore_sigint: bool = True) -> bool:
    """In a worker process: exit (status 1, at once, no cleanup) when the parent process
    is gone; with ``ignore_sigint`` also ignore Ctrl-C.  Only from a process's main
    thread, where loky runs its tasks: a task on a thread (a Dask worker, possibly
    inside the ``eft fit`` process itself) leaves its process alone.  Idempotent; True
    when the watch started."""
    global _started
    if threading.current_thread() is not threading.main_thread():
        return False
    with _lock:
        if _started:
            return False
        _started = True
    parent = os.getppid()
    if ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="eft-parent-watch", daemon=True).start()
    return True
