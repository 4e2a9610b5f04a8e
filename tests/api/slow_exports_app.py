"""An app whose exports never finish (for the restart test): export jobs run in threads and
block, so a job is certainly running when the test stops the server."""

from __future__ import annotations

import threading

from buque.api.app import create_app as _create_app
from buque.api.settings import Settings
from buque.geo import report as geo_report

_never = threading.Event()


def _blocked(*args, progress=None, **kwargs):
    if progress is not None:
        progress(0.1, "blocked on purpose")
    _never.wait()
    raise RuntimeError("unreachable")


def create_app():
    geo_report.export_bundle = _blocked  # the job module calls it through geo_report
    return _create_app(Settings(export_executor="thread"))
