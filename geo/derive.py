"""A run made from another run: its files copied byte for byte, some replaced, a new manifest.

Used by ``buque check-ledger`` (the run with its ledger's discrepancies) and ``buque verify``
(the run with the field results). The new archive is written into a temporary sibling of
``out`` and renamed into place, as :func:`geo.archive.write_run` does; the source run is only
read (unless ``out`` is the source itself, which is then replaced atomically).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from buque.geo.archive import MANIFEST, is_run, replace_dir, sha256_file

Writer = Callable[[Path], None]


def new_run_id(created: dt.datetime, *parts: str) -> str:
    """A run id like :func:`geo.run.run_project`'s: the time and a digest of what made it."""
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    return f"{created:%Y%m%dT%H%M%SZ}-{digest[:8]}"


def derive_run(src: Path, out: Path, writers: Mapping[str, Writer], manifest: dict[str, Any]
               ) -> Path:
    """Write ``out``: every file of run ``src``, then ``writers`` (file name -> function
    writing that file), then ``manifest``. Atomic; ``src`` is not modified unless it is
    ``out``."""
    src, out = Path(src).resolve(), Path(out).resolve()
    if not is_run(src):
        raise FileNotFoundError(f"{src}: not a Buque run (no {MANIFEST})")
    if out != src and out.exists() and out.is_dir() and any(out.iterdir()) and not is_run(out):
        raise FileExistsError(f"{out}: exists and is not a Buque run; refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for p in sorted(src.rglob("*")):
            rel = p.relative_to(src)
            if p.is_dir():
                (tmp / rel).mkdir(parents=True, exist_ok=True)
            elif rel.as_posix() != MANIFEST and rel.as_posix() not in writers:
                shutil.copyfile(p, tmp / rel)
        for name, write in writers.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            write(tmp / name)
        with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
            json.dump(manifest, f, ensure_ascii=False, indent=2, default=str)
        os.chmod(tmp, 0o755)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def derived_manifest(src_manifest: dict[str, Any], src: Path, how: str, inputs: list[Path],
                     *, keep_id: bool = False) -> dict[str, Any]:
    """The manifest of a run derived from ``src``: the source's, with a new id and time (unless
    ``keep_id``), and ``derived_from`` naming the source run, its manifest's SHA-256 and
    ``how`` (``ledger``, ``field``)."""
    m = json.loads(json.dumps(src_manifest))
    msha = sha256_file(Path(src) / MANIFEST)
    if not keep_id:
        created = dt.datetime.now(dt.UTC)
        m["run_id"] = new_run_id(created, msha, how, *(sha256_file(p) for p in inputs))
        m["created"] = created.isoformat(timespec="seconds")
        m["derived_from"] = {"run_id": src_manifest.get("run_id"), "path": str(src),
                             "manifest_sha256": msha, "how": how,
                             "created": src_manifest.get("created")}
    return m


class ProfileChanged(ValueError):
    """The run's standards profile cannot be found as it was (its content hash differs)."""


def run_profile(manifest: dict[str, Any], levels: set[str] | None = None, *, exact: bool = True):
    """The run's standards profile (its recorded path, else the bundled one of that name), as
    the run applied it to villages of ``levels``. ``exact``: its content hash must be the one
    the run recorded (:class:`ProfileChanged` otherwise)."""
    from buque.layers.errors import BuqueInputError  # noqa: PLC0415
    from buque.layers.profile import load_profile  # noqa: PLC0415

    prof = manifest.get("profile", {})
    found = None
    for ref in (prof.get("path"), prof.get("name")):
        if not ref:
            continue
        try:
            p = load_profile(ref)
        except BuqueInputError:
            continue
        if not exact or not prof.get("sha256") or p.content_hash == prof.get("sha256"):
            found = p
            break
    if found is None:
        raise ProfileChanged(f"the run's standards profile {prof.get('name')!r} (sha256 "
                             f"{str(prof.get('sha256'))[:12]}…) cannot be found as it was at "
                             f"{prof.get('path')}")
    return found.for_levels_present(levels)[0] if levels else found
