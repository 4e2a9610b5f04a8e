"""Running the app under uvicorn with several worker processes (``buque serve --workers N``)."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

FACTORY = "buque.api.app:create_app"


class TcpConfig(uvicorn.Config):
    """uvicorn's config, its listening socket created as TCP (``proto`` 6, not 0): connections
    accepted from it inherit the protocol, and only then does asyncio set TCP_NODELAY on them.
    uvicorn's own ``bind_socket`` leaves it 0, so with ``--workers`` every keep-alive answer
    after the first waited ~40 ms for a delayed ACK (Kludex/uvicorn#3149; measured here: 21
    requests/s on one keep-alive connection)."""

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
            sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP,
                                 fileno=sock.detach())
            sock.set_inheritable(True)
        return sock


def serve_workers(env: dict[str, str | None], host: str, port: int, workers: int) -> None:
    """``workers`` uvicorn processes of the app factory, each loading the runs once (its
    lifespan), configured through the BUQUE_ variables in ``env``. They share one session
    secret (generated here when BUQUE_SESSION_SECRET is unset), so a browser signed in on one
    is signed in on all."""
    for k, v in env.items():
        if v is not None:
            os.environ[k] = v
    os.environ.setdefault("BUQUE_SESSION_SECRET", secrets.token_urlsafe(32))
    config = TcpConfig(FACTORY, factory=True, host=host, port=port, workers=workers,
                       log_level="warning")
    with contextlib.suppress(KeyboardInterrupt):
        Multiprocess(config, sockets=[config.bind_socket()]).run()
