"""An office's own basemap, read offline from one file: PMTiles (v3) or MBTiles.

Both give tiles by ``z/x/y`` (XYZ, y down) with their format, zoom range, bounds and
attribution. PMTiles are read with positional reads (``os.pread``: only the header, the
directories a tile needs, and the tile), directories cached; MBTiles through SQLite (read-only),
its TMS rows flipped. Raster (PNG, JPEG, WebP) and vector (MVT) tiles are both served; a vector
tile's stored gzip is kept (``encoding``) for the server to pass on or undo.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import math
import os
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pmtiles.tile import (
    Compression,
    TileType,
    deserialize_directory,
    deserialize_header,
    find_tile,
    zxy_to_tileid,
)

MEDIA = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp",
         "pbf": "application/vnd.mapbox-vector-tile"}
_PM_FORMAT = {TileType.PNG: "png", TileType.JPEG: "jpg", TileType.WEBP: "webp",
              TileType.MVT: "pbf"}


class BasemapError(ValueError):
    """The file is not a basemap this server can read (the message names it and why)."""


@dataclass
class Basemap:
    """A tile archive: its metadata, and :meth:`tile`."""

    path: Path
    fmt: Literal["png", "jpg", "webp", "pbf"]
    minzoom: int
    maxzoom: int
    bounds: tuple[float, float, float, float]
    attribution: str = ""
    name: str = ""
    vector_layers: list[dict[str, Any]] = field(default_factory=list)
    #: how stored tiles are compressed ("gzip" for most vector tiles, else None)
    encoding: str | None = None

    @property
    def kind(self) -> Literal["raster", "vector"]:
        return "vector" if self.fmt == "pbf" else "raster"

    @property
    def media(self) -> str:
        return MEDIA[self.fmt]

    def tile(self, z: int, x: int, y: int) -> bytes | None:  # pragma: no cover - abstract
        raise NotImplementedError

    @cached_property
    def tile_size(self) -> int:
        """Pixel size of a raster tile (of one near the centre; 256 if none is found)."""
        if self.kind != "raster":
            return 512
        from PIL import Image

        lon = (self.bounds[0] + self.bounds[2]) / 2
        lat = (self.bounds[1] + self.bounds[3]) / 2
        for z in range(self.minzoom, self.maxzoom + 1):
            body = self.tile(z, *lonlat_to_tile(lon, lat, z))
            if body:
                try:
                    return int(Image.open(io.BytesIO(body)).size[0])
                except OSError:
                    break
        return 256

    def close(self) -> None:
        pass


def lonlat_to_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2 ** z
    lat = max(-85.0511, min(85.0511, lat))
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


class PMTiles(Basemap):
    """A PMTiles v3 archive read with positional reads."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        try:
            head = deserialize_header(self._read(0, 127))
        except Exception as e:
            os.close(self._fd)
            raise BasemapError(f"{path}: not a PMTiles v3 archive ({e})") from None
        self._head = head
        fmt = _PM_FORMAT.get(head["tile_type"])
        if fmt is None:
            os.close(self._fd)
            raise BasemapError(f"{path}: tile type {head['tile_type'].name} is not served "
                               "(PNG, JPEG, WebP or MVT)")
        raw = self._read(head["metadata_offset"], head["metadata_length"])
        meta = json.loads(self._inflate(raw, head["internal_compression"]) or b"{}")
        self._dirs: OrderedDict[tuple[int, int], list] = OrderedDict()
        self._lock = threading.Lock()
        super().__init__(
            path=Path(path), fmt=fmt, minzoom=head["min_zoom"], maxzoom=head["max_zoom"],
            bounds=(head["min_lon_e7"] / 1e7, head["min_lat_e7"] / 1e7,
                    head["max_lon_e7"] / 1e7, head["max_lat_e7"] / 1e7),
            attribution=str(meta.get("attribution", "")), name=str(meta.get("name", "")),
            vector_layers=list(meta.get("vector_layers", [])),
            encoding="gzip" if head["tile_compression"] == Compression.GZIP else None)
        if head["tile_compression"] not in (Compression.NONE, Compression.GZIP,
                                            Compression.UNKNOWN):
            self.close()
            raise BasemapError(f"{path}: tiles compressed with "
                               f"{head['tile_compression'].name} (only gzip or none)")

    def _read(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset)

    @staticmethod
    def _inflate(raw: bytes, how: Compression) -> bytes:
        if how == Compression.GZIP:
            return gzip.decompress(raw)
        if how in (Compression.NONE, Compression.UNKNOWN):
            return raw
        raise BasemapError(f"directories compressed with {how.name} (only gzip or none)")

    def _directory(self, offset: int, length: int) -> list:
        key = (offset, length)
        with self._lock:
            hit = self._dirs.get(key)
            if hit is not None:
                self._dirs.move_to_end(key)
                return hit
        raw = self._read(offset, length)
        if self._head["internal_compression"] != Compression.GZIP:  # the reader takes gzip
            raw = gzip.compress(self._inflate(raw, self._head["internal_compression"]))
        d = deserialize_directory(raw)
        with self._lock:
            self._dirs[key] = d
            if len(self._dirs) > 256:
                self._dirs.popitem(last=False)
        return d

    def tile(self, z: int, x: int, y: int) -> bytes | None:
        if not self.minzoom <= z <= self.maxzoom:
            return None
        tid = zxy_to_tileid(z, x, y)
        h = self._head
        off, length = h["root_offset"], h["root_length"]
        for _ in range(4):
            entry = find_tile(self._directory(off, length), tid)
            if entry is None:
                return None
            if entry.run_length == 0:  # a leaf directory
                off, length = h["leaf_directory_offset"] + entry.offset, entry.length
                continue
            return self._read(h["tile_data_offset"] + entry.offset, entry.length)
        return None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


class MBTiles(Basemap):
    """An MBTiles (SQLite) archive, opened read-only."""

    def __init__(self, path: Path) -> None:
        try:
            self._db = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True,
                                       check_same_thread=False)
            meta = dict(self._db.execute("SELECT name, value FROM metadata").fetchall())
            self._db.execute("SELECT 1 FROM tiles LIMIT 1").fetchall()
        except sqlite3.Error as e:
            raise BasemapError(f"{path}: not an MBTiles archive ({e})") from None
        self._lock = threading.Lock()
        fmt = {"jpeg": "jpg"}.get(str(meta.get("format", "png")).lower(),
                                  str(meta.get("format", "png")).lower())
        if fmt not in MEDIA:
            raise BasemapError(f"{path}: metadata format {meta.get('format')!r} is not served "
                               "(png, jpg, webp or pbf)")
        zooms = self._db.execute("SELECT min(zoom_level), max(zoom_level) FROM tiles").fetchone()
        try:
            bounds = tuple(float(v) for v in str(meta["bounds"]).split(","))
            assert len(bounds) == 4
        except (KeyError, ValueError, AssertionError):
            bounds = (-180.0, -85.0511, 180.0, 85.0511)
        layers = []
        if meta.get("json"):
            try:
                layers = list(json.loads(meta["json"]).get("vector_layers", []))
            except ValueError:
                layers = []
        super().__init__(
            path=Path(path), fmt=fmt,  # type: ignore[arg-type]
            minzoom=int(meta.get("minzoom", zooms[0] or 0)),
            maxzoom=int(meta.get("maxzoom", zooms[1] or 0)), bounds=bounds,  # type: ignore[arg-type]
            attribution=str(meta.get("attribution", "")), name=str(meta.get("name", "")),
            vector_layers=layers)
        if fmt == "pbf":  # tiles are usually gzipped; the first one says
            first = self._db.execute("SELECT tile_data FROM tiles LIMIT 1").fetchone()
            self.encoding = "gzip" if first and bytes(first[0][:2]) == b"\x1f\x8b" else None

    def tile(self, z: int, x: int, y: int) -> bytes | None:
        with self._lock:
            row = self._db.execute(
                "SELECT tile_data FROM tiles WHERE zoom_level=? AND tile_column=? AND tile_row=?",
                (z, x, (1 << z) - 1 - y)).fetchone()
        return bytes(row[0]) if row else None

    def close(self) -> None:
        self._db.close()


def open_basemap(path: str | Path) -> Basemap:
    """The basemap in ``path`` (``.pmtiles`` or ``.mbtiles``, told apart by content)."""
    p = Path(path)
    if not p.is_file():
        raise BasemapError(f"{p}: no such basemap file")
    with open(p, "rb") as f:
        magic = f.read(16)
    if magic.startswith(b"PMTiles"):
        return PMTiles(p)
    if magic.startswith(b"SQLite format 3"):
        return MBTiles(p)
    raise BasemapError(f"{p}: neither PMTiles nor MBTiles (by its first bytes)")
