"""Server settings, from arguments or the environment (prefix ``BUQUE_``).

``BUQUE_DATA=/srv/buque/runs BUQUE_API_KEYS='{"k1": "office", "k2": "viewer"}' buque serve ...``
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Role = Literal["viewer", "office"]


class Settings(BaseSettings):
    """What to serve and how.

    With no ``api_keys`` every endpoint is open (``buque serve`` binds to loopback by default).
    With ``api_keys`` each data request needs an ``X-API-Key`` header (or ``Authorization:
    Bearer KEY``): ``viewer`` reads villages, collections, summaries and run comparisons;
    ``office`` also reads the remedy list (costs) and full run manifests (server file paths).
    The landing page, conformance and the API description stay open so clients can discover.
    """

    model_config = SettingsConfigDict(env_prefix="BUQUE_", extra="ignore")

    data: Path = Field(default=Path("buque-data"), description="A run directory or a folder of runs.")
    plans: Path | None = Field(default=None, description="A folder of plans (buque plan) to "
                               "serve at /plans; default: the `plans` folder inside `data`.")
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
    preload: Literal["newest", "all"] = Field(default="newest", description="Runs to load at start-up; "
                                              "others load on first use.")
    input_layers: bool = Field(default=True, description="Serve each run's input layers (roads, power, "
                               "...) as collections, re-read on first use.")
    title: str = "Buque"

    @model_validator(mode="after")
    def _limits(self) -> Settings:
        if self.default_limit > self.max_limit:
            self.default_limit = self.max_limit
        return self
