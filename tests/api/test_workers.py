"""``buque serve --workers N`` (real processes) and ``--basemap`` from the command line: the
workers share one session secret, so a browser signed in is signed in on every worker."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import httpx
import psutil
from conftest import REPO, free_port


def _start(args: list[str], **env: str) -> tuple[subprocess.Popen, str, object]:
    port = free_port()
    full = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    full.pop("BUQUE_SESSION_SECRET", None)
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by the caller)
    proc = subprocess.Popen([sys.executable, "-m", "buque.cli", "serve", *args, "--port",
                             str(port)], cwd=REPO, env=full, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(url + "/conformance", timeout=2).status_code == 200:
                return proc, url, log
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.seek(0)
            raise RuntimeError(log.read().decode(errors="replace"))
        time.sleep(0.3)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_two_workers_share_sessions(demo_run):
    proc, url, log = _start([str(demo_run), "--workers", "2"],
                            BUQUE_API_KEYS='{"k-work": "viewer"}')
    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
        deadline = time.monotonic() + 60
        while sum("multiprocessing" in " ".join(k.cmdline()) for k in kids) < 2 and \
                time.monotonic() < deadline:
            time.sleep(0.5)
            kids = psutil.Process(proc.pid).children(recursive=True)
        workers = [k for k in kids if "multiprocessing" in " ".join(k.cmdline())]
        assert len(workers) >= 2, [k.cmdline() for k in kids]
        r = httpx.post(url + "/login", data={"key": "k-work"})
        assert r.status_code == 303
        cookies = {"buque_session": r.cookies["buque_session"]}
        # new connections each time: the kernel spreads them over both workers
        codes = [httpx.get(url + "/summary", cookies=cookies).status_code for _ in range(30)]
        assert codes == [200] * 30
        assert httpx.get(url + "/summary").status_code == 401
    finally:
        _stop(proc)
        log.close()


def test_bad_basemap_is_a_one_line_error(demo_run, tmp_path):
    bad = tmp_path / "bad.mbtiles"
    bad.write_text("not tiles")
    r = subprocess.run([sys.executable, "-m", "buque.cli", "serve", str(demo_run), "--basemap",
                        str(bad)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    out = r.stdout + r.stderr
    assert "error:" in out and "bad.mbtiles" in out and "Traceback" not in out


def test_worker_connections_get_tcp_nodelay():
    """The listening socket ``--workers`` hands its workers is TCP (proto 6), so asyncio sets
    TCP_NODELAY on every accepted connection (uvicorn's own leaves proto 0 and Nagle on:
    each keep-alive answer then waits for a delayed ACK, Kludex/uvicorn#3149)."""
    import asyncio
    import socket

    from buque.api.serving import TcpConfig

    config = TcpConfig("buque.api.app:create_app", factory=True, host="127.0.0.1", port=free_port(),
                       workers=2)
    sock = config.bind_socket()
    assert sock.proto == socket.IPPROTO_TCP and sock.get_inheritable()
    seen = {}

    class Probe(asyncio.Protocol):
        def connection_made(self, transport):
            s = transport.get_extra_info("socket")
            seen["nodelay"] = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            transport.close()

    async def main():
        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        async with server:
            _, w = await asyncio.open_connection(*sock.getsockname()[:2])
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.05)
            w.close()

    asyncio.run(main())
    assert seen["nodelay"] == 1
