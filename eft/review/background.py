"""Serving an app in a background thread: the browser tests and the README screenshots."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator


@contextlib.contextmanager
def live_server(app, timeout: float = 20.0) -> Iterator[tuple[str, int]]:
    """Serve an ASGI ``app`` with uvicorn on a free loopback port, in a daemon thread;
    yields ``(base_url, port)`` and stops the server on exit.  Raises RuntimeError when
    it has not started within ``timeout`` seconds."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", port
    finally:
        server.should_exit = True
        thread.join(10)
