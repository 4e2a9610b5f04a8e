"""Server settings, from arguments or the environment (prefix ``BUQUE_``).

``BUQUE_DATA=/srv/buque/runs BUQUE_API_KEYS='{"k1": "office", "k2": "viewer"}' buque serve ...``
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Role = Literal["viewer", "office"]


class Settings(BaseSettings):
    """What to serve and how.

    With no ``api_keys`` every endpoint is open (``buque serve`` binds to loopback by default).
    With ``api_keys`` each data request needs an ``X-API-Key`` header (or ``Authorization:
    Bearer KEY``): ``viewer`` reads villages, collections, summaries and run comparisons;
    ``office`` also reads the remedy list (costs) and full run manifests (server file paths).
    The landing page, conformance and the API description stay open so clients can discover.
    A browser signs in at ``/login`` with a key and keeps a signed session cookie
    (:mod:`api.session`); pages opened without one (``/map``, ``/docs``) lead there.
    """

    model_config = SettingsConfigDict(env_prefix="BUQUE_", extra="ignore")

    data: Path = Field(default=Path("buque-data"), description="A run directory or a folder of runs.")
    postgres: str | None = Field(default=None, description="Serve the runs published into this "
                                 "PostgreSQL/PostGIS database (a libpq DSN or URL) instead of "
                                 "`data`; see `buque publish`.")
    pg_schema: str = Field(default="buque", description="The schema `buque publish` loaded the "
                           "runs into.")
    api_keys: dict[str, Role] = Field(default_factory=dict,
                                      description="API key -> role (viewer | office).")
    open_loopback: bool = Field(default=False, description="With api_keys set, let requests from "
                                "127.0.0.1/::1 without a key read as viewer. Off by default: "
                                "behind a reverse proxy on the same host every client is "
                                "loopback.")
    default_limit: int = Field(default=100, ge=1, description="Features per page when limit is not given.")
    max_limit: int = Field(default=1000, ge=1, description="Largest page; larger limits are capped.")
    max_export_rows: int = Field(default=500_000, ge=1, description="Most rows in one CSV/XLSX download.")
    max_body_bytes: int = Field(default=65536, ge=1024, description="Largest request body "
                                "(only the sign-in form has one); larger is answered 413.")
    preload: Literal["newest", "all"] = Field(default="newest", description="Runs to load at start-up; "
                                              "others load on first use.")
    input_layers: bool = Field(default=True, description="Serve each run's input layers (roads, power, "
                               "...) as collections, re-read on first use.")
    work: Path | None = Field(default=None, description="Work area for export jobs and their "
                              "cached results (default: `.buque-work` in the data folder, i.e. "
                              "beside the run when `data` is one run).")
    export_workers: int = Field(default=2, ge=1, le=32, description="Export jobs run at once "
                                "(per server process); the rest wait in a FIFO queue.")
    export_queue: int = Field(default=20, ge=0, description="Most export jobs waiting; more "
                              "are answered 429 with Retry-After.")
    export_executor: Literal["process", "thread"] = Field(
        default="process", description="Run export jobs in worker processes (default; runs "
        "served from PostGIS always use threads) or threads of the server.")
    export_nice: int = Field(default=10, ge=0, le=19, description="Niceness of the export "
                             "worker processes: higher leaves more CPU to the API's requests "
                             "(and makes exports slower on a busy machine).")
    export_wait_s: float = Field(default=20.0, ge=0, le=50, description="How long `GET "
                                 "/exports/...` waits for its job before answering 202 with "
                                 "the job instead of the file.")
    export_max_age_h: float = Field(default=168.0, gt=0, description="Finished export jobs "
                                    "and results unused for longer are removed.")
    export_cache_mb: float = Field(default=2048.0, gt=0, description="Most disk space the "
                                   "cached export results take; the least recently used go "
                                   "first.")
    basemap: Path | None = Field(default=None, description="A PMTiles (raster or vector) or "
                                 "MBTiles file drawn under the gap layers of /map, served "
                                 "from this server.")
    session_secret: SecretStr | None = Field(default=None, description="Key that signs the "
                                             "browser session cookies. Unset: a random one per "
                                             "process (sessions end when the server restarts).")
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30, description="How long a "
                                 "browser session lasts after signing in.")
    login_attempts: int = Field(default=10, ge=1, description="Failed sign-ins (form or header "
                                "key) a client may make in login_window_s before it is refused "
                                "with 429.")
    login_window_s: float = Field(default=300.0, gt=0, description="The window of "
                                  "login_attempts, in seconds.")
    title: str = "Buque"

    @model_validator(mode="after")
    def _limits(self) -> Settings:
        if self.default_limit > self.max_limit:
            self.default_limit = self.max_limit
        return self
