"""A throwaway PostgreSQL cluster: ``initdb`` in a temp dir, ``pg_ctl`` on a free loopback port.

One place for the benchmarks (``bench/tiles.py``, ``bench/compare_engines.py``) and the tests
(``tests/api/test_postgres.py``). As root, commands run as the ``postgres`` user (the server
refuses to run as root) through ``runuser``. Needs the Debian packages ``postgresql`` and
``postgresql-15-postgis-3`` (``setup.sh`` installs them as root).

>>> pg = Cluster(conf={"shared_buffers": "256MB"})    # doctest: +SKIP
>>> pg.init(); pg.start()                              # doctest: +SKIP
>>> with pg.connect() as c: c.execute("CREATE EXTENSION postgis")   # doctest: +SKIP
>>> pg.cleanup()                                       # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

INSTALL_HINT = "apt-get install -y postgresql postgresql-15-postgis-3"
#: settings of every throwaway cluster: no durability, JIT off (with it on, PostgreSQL spends
#: tens of ms compiling each costly low-zoom tile query)
BASE_CONF = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "jit": "off",
             "logging_collector": "off"}


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries (``initdb``) on this machine."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/*/bin`` with ``initdb``, else ``initdb`` on the PATH."""
    cands = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if cands:
        return cands[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise PostgresMissing(f"initdb not found: {INSTALL_HINT}  (see bench/README.md)")


class Cluster:
    """A PostgreSQL cluster in a temp dir, on a free loopback port, trust auth for ``postgres``.

    ``conf`` adds to (or overrides) :data:`BASE_CONF` in ``postgresql.conf``; ``tag`` names the
    caller in that file and the temp dir's prefix.
    """

    def __init__(self, conf: dict[str, str] | None = None, tag: str = "buque") -> None:
        self.bindir = pg_bindir()
        self.tag = tag
        self.conf = {**BASE_CONF, **(conf or {})}
        self.root = Path(tempfile.mkdtemp(prefix=f"{tag}-pg-"))
        self.data = self.root / "data"
        self.logfile = self.root / "postgres.log"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        self.running = False
        if self.as_root:  # postgres refuses to run as root: hand the dir to the postgres user
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)

    def _cmd(self, *args: str) -> list[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        return ["runuser", "-u", "postgres", "--", *cmd] if self.as_root else cmd

    def _run(self, *args: str, timeout: float = 120) -> None:
        r = subprocess.run(self._cmd(*args), capture_output=True, text=True, timeout=timeout,
                           cwd=self.root)
        if r.returncode != 0:
            tail = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed:\n{r.stdout}\n{r.stderr}\n{tail}")

    def init(self) -> None:
        """``initdb`` and the settings (loopback only, the chosen port, :attr:`conf`)."""
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--locale=C")
        conf = {"listen_addresses": "'127.0.0.1'", "port": str(self.port),
                "unix_socket_directories": f"'{self.root}'", **self.conf}
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as f:
            f.write(f"\n# {self.tag}\n" + "".join(f"{k} = {v}\n" for k, v in conf.items()))

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "60",
                  "start")
        self.running = True

    def stop(self) -> None:
        """``pg_ctl stop -m fast``; failing that, SIGQUIT to this cluster's own postmaster."""
        if not self.running:
            return
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")
        except Exception:  # noqa: BLE001 - last resort: the postmaster's own pid
            pidfile = self.data / "postmaster.pid"
            if pidfile.exists():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pidfile.read_text().split()[0]), signal.SIGQUIT)
        self.running = False

    def cleanup(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres", **kw: Any):  # noqa: ANN201
        """An autocommit psycopg 3 connection as ``postgres``."""
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                               dbname=dbname, autocommit=True, **kw)
