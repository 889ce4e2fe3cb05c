"""A TCP forwarder that a test can cut: a dependency "goes away" for one server only, while the
shared PostgreSQL, Redis and NATS keep running for everyone else."""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, port: int = 0) -> None:
        """`port`: listen there (a proxy cut earlier, back on its port); 0: any free one."""
        self.target = (target_host, target_port)
        # reuse_port: a proxy put back on the port of one cut earlier binds while the cut
        # connections still linger (FIN_WAIT_2), which they inherit it from this listener.
        self._listener = socket.create_server(("127.0.0.1", port), reuse_port=True)
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if not self._open:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        """Refuse new connections and break the open ones."""
        with self._lock:
            self._open = False
            sockets, self._sockets = self._sockets, []
        self._listener.close()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def database_through_proxy(backend_env: dict[str, str]) -> TcpProxy:
    """A proxy to the PostgreSQL of `backend_env`, whose `PUSHGATE_DATABASE_URL` is changed to
    reach it through the proxy."""
    db = urlsplit(backend_env["PUSHGATE_DATABASE_URL"])
    proxy = TcpProxy(db.hostname or "127.0.0.1", db.port or 5432)
    through = db._replace(netloc=f"{db.username}@127.0.0.1:{proxy.port}")
    backend_env["PUSHGATE_DATABASE_URL"] = urlunsplit(through)
    return proxy
