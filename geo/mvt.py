"""A vectorised Mapbox Vector Tile 2.1 encoder for points and lines.

Builds the protobuf bytes of a layer with numpy: every varint, tag list and geometry command
of all features is encoded at once (loops run over byte positions and property columns, never
over features). Values are de-duplicated per layer with ``pandas.factorize``. Polygons are not
handled here (the gap layers are points and lines); callers fall back to
``mapbox_vector_tile`` for them.

Wire format (vector_tile.proto): Tile.layers=3; Layer: version=15, name=1, features=2, keys=3,
values=4, extent=5; Feature: id=1, tags=2 (packed), type=3, geometry=4 (packed); Value:
string=1, double=3, sint=6, bool=7.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

POINT, LINESTRING = 1, 2


def varint_lengths(v: np.ndarray) -> np.ndarray:
    """Bytes each unsigned value takes as a protobuf varint."""
    v = np.asarray(v, dtype=np.uint64)
    n = np.ones(v.shape, dtype=np.int64)
    for k in range(1, 10):
        n += v >= (np.uint64(1) << np.uint64(7 * k))
    return n


def varints(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All values as concatenated varints; also each value's byte length."""
    v = np.asarray(v, dtype=np.uint64)
    lens = varint_lengths(v)
    out = np.empty(int(lens.sum()), dtype=np.uint8)
    start = np.cumsum(lens) - lens
    for k in range(int(lens.max()) if len(v) else 0):
        has = lens > k
        byte = (v[has] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = lens[has] > k + 1
        out[start[has] + k] = (byte | (more.astype(np.uint64) << np.uint64(7))).astype(np.uint8)
    return out, lens


def zigzag(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.int64)
    return ((v << 1) ^ (v >> 63)).astype(np.uint64)


def _segments_concat(parts: list[tuple[np.ndarray, np.ndarray]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Interleave per-feature byte runs: ``parts`` = [(flat bytes, per-feature lengths)] in order.

    Returns the concatenated bytes of all features (feature 0's runs, then feature 1's ...) and
    each feature's total length.
    """
    lens = np.column_stack([p[1] for p in parts]) if parts else np.zeros((n, 0), np.int64)
    total = lens.sum(axis=1)
    out = np.empty(int(total.sum()), dtype=np.uint8)
    feat_start = np.cumsum(total) - total
    col_off = np.cumsum(lens, axis=1) - lens
    for j, (flat, ln) in enumerate(parts):
        if len(flat) == 0:
            continue
        src_start = np.cumsum(ln) - ln
        dst_start = feat_start + col_off[:, j]
        # map every byte of this run to its destination (no loop over features)
        owner = np.repeat(np.arange(n), ln)
        within = np.arange(len(flat)) - np.repeat(src_start, ln)
        out[dst_start[owner] + within] = flat
    return out, total


def _field_bytes(tag: int, payload_lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per feature: the key byte of a length-delimited field and its length varint."""
    lv, ll = varints(payload_lens)
    n = len(payload_lens)
    flat = np.empty(n + len(lv), dtype=np.uint8)
    lens = 1 + ll
    start = np.cumsum(lens) - lens
    flat[start] = tag
    owner = np.repeat(np.arange(n), ll)
    within = np.arange(len(lv)) - np.repeat(np.cumsum(ll) - ll, ll)
    flat[start[owner] + 1 + within] = lv
    return flat, lens


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_prefixed(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def geometry_commands(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Packed MVT geometry of integer tile-coordinate points/lines: (varint bytes, lengths, type).

    Points: MoveTo(1) x y. Lines: per part MoveTo(1) dx dy, LineTo(n-1) dx dy ... with deltas
    running across parts, as the spec requires.
    """
    n = len(geoms)
    types = shapely.get_type_id(geoms)
    parts, owner = shapely.get_parts(geoms, return_index=True)
    coords, part_of = shapely.get_coordinates(parts, return_index=True)
    xy = np.round(coords).astype(np.int64)
    feat_of_coord = owner[part_of]
    # deltas: from the previous coordinate of the same feature (the first from the origin)
    prev = np.vstack([[0, 0], xy[:-1]])
    first_of_feat = np.r_[True, feat_of_coord[1:] != feat_of_coord[:-1]]
    prev[first_of_feat] = 0
    d = xy - prev
    first_of_part = np.r_[True, part_of[1:] != part_of[:-1]]
    npts = np.bincount(part_of, minlength=len(parts))
    # one command integer before each part's first coordinate (MoveTo) and second (LineTo)
    is_line = np.isin(types[feat_of_coord], (1, 5))
    second = np.r_[False, first_of_part[:-1]] & ~first_of_part & is_line
    cmd = np.full(len(xy), -1, dtype=np.int64)
    cmd[first_of_part] = (1 & 0x7) | (1 << 3)
    cmd[second] = 2 | ((npts[part_of[second]] - 1) << 3)
    ints_per_coord = 2 + (cmd >= 0)
    seq = np.empty(int(ints_per_coord.sum()), dtype=np.uint64)
    pos = np.cumsum(ints_per_coord) - ints_per_coord
    has = cmd >= 0
    seq[pos[has]] = cmd[has].astype(np.uint64)
    seq[pos + has] = zigzag(d[:, 0])
    seq[pos + has + 1] = zigzag(d[:, 1])
    owner_of_int = np.repeat(feat_of_coord, ints_per_coord)
    vb, vl = varints(seq)
    lens = np.bincount(owner_of_int, weights=vl, minlength=n).astype(np.int64)
    gtype = np.where(np.isin(types, (1, 5)), LINESTRING, POINT)
    return vb, lens, gtype


def _value_messages(uniques: pd.Index | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value messages (vectorised) for one column's distinct values: (bytes, lengths)."""
    u = pd.Index(uniques)
    n = len(u)
    if pd.api.types.is_bool_dtype(u.dtype):
        flat = np.column_stack([np.full(n, 0x38, np.uint8), u.to_numpy(dtype=bool).astype(np.uint8)])
        return flat.ravel(), np.full(n, 2, np.int64)
    if pd.api.types.is_integer_dtype(u.dtype):
        vb, vl = varints(zigzag(u.to_numpy(dtype=np.int64)))
        return _segments_concat([(np.full(n, 0x30, np.uint8), np.ones(n, np.int64)), (vb, vl)], n)
    if pd.api.types.is_float_dtype(u.dtype):
        raw = u.to_numpy(dtype="<f8").view(np.uint8).reshape(n, 8)
        return np.column_stack([np.full(n, 0x19, np.uint8), raw]).ravel(), np.full(n, 9, np.int64)
    arr = pa.array(u.astype(str).to_numpy(dtype=object), type=pa.large_string())
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[: n + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
    slen = np.diff(offsets)
    head, hl = _field_bytes(0x0A, slen)
    return _segments_concat([(head, hl), (data, slen)], n)


class PropertyTable:
    """Feature properties prepared once for many tiles: per column, value codes per feature and
    the encoded Value messages of its distinct values (framed as Layer.values fields)."""

    def __init__(self, props: pd.DataFrame) -> None:
        self.keys: list[str] = []
        codes = []
        self._values: list[tuple[np.ndarray, np.ndarray]] = []  # (flat bytes, offsets)
        for col in props.columns:
            c, uniques = pd.factorize(props[col], use_na_sentinel=True)
            if len(uniques) == 0:
                continue
            msgs, mlen = _value_messages(uniques)
            head, hl = _field_bytes(0x22, mlen)
            flat, flen = _segments_concat([(head, hl), (msgs, mlen)], len(uniques))
            self._values.append((flat, np.r_[0, np.cumsum(flen)]))
            self.keys.append(str(col))
            codes.append(c)
        self.codes = (np.column_stack(codes) if codes
                      else np.zeros((len(props), 0), dtype=np.int64))

    def for_features(self, idx: np.ndarray) -> tuple[np.ndarray, bytes]:
        """Tag matrix (key, value index pairs; -1 where null) and the Layer.values bytes."""
        m = len(idx)
        tags = np.full((m, 2 * len(self.keys)), -1, dtype=np.int64)
        chunks = []
        base = 0
        for j, (flat, off) in enumerate(self._values):
            c = self.codes[idx, j]
            present = c >= 0
            u, inv = np.unique(c[present], return_inverse=True)
            tags[present, 2 * j] = j
            tags[present, 2 * j + 1] = base + inv
            base += len(u)
            lens = off[u + 1] - off[u]
            src = np.repeat(off[u] - np.cumsum(lens) + lens, lens) + np.arange(int(lens.sum()))
            chunks.append(flat[src])
        return tags, b"".join(c.tobytes() for c in chunks)


def encode_layer(name: str, geoms: np.ndarray, props: pd.DataFrame | PropertyTable,
                 ids: np.ndarray | None = None, extent: int = 4096,
                 rows: np.ndarray | None = None) -> bytes:
    """One MVT layer (as a complete Tile message) of point/line features in tile coordinates.

    ``props`` is a frame aligned with ``geoms``, or a :class:`PropertyTable` of a whole layer
    with ``rows`` giving each geometry's row in it. Nulls are left out of a feature's tags.
    """
    n = len(geoms)
    if n == 0:
        return b""
    if isinstance(props, pd.DataFrame):
        table, rows = PropertyTable(props), np.arange(n)
    else:
        table = props
    tags, values = table.for_features(np.asarray(rows))
    present = tags >= 0
    tv, tl = varints(tags[present])
    tag_owner = np.repeat(np.arange(n), present.sum(axis=1))
    tag_lens = np.bincount(tag_owner, weights=tl, minlength=n).astype(np.int64)
    gv, gl, gtype = geometry_commands(geoms)
    parts = []
    if ids is not None:
        iv, il = varints(np.asarray(ids, dtype=np.uint64))
        parts.append((np.full(n, 0x08, np.uint8), np.ones(n, np.int64)))
        parts.append((iv, il))
    th, thl = _field_bytes(0x12, tag_lens)
    parts += [(th, thl), (tv, tag_lens)]
    parts.append((np.column_stack([np.full(n, 0x18, np.uint8), gtype.astype(np.uint8)]).ravel(),
                  np.full(n, 2, np.int64)))
    gh, ghl = _field_bytes(0x22, gl)
    parts += [(gh, ghl), (gv, gl)]
    body, flen = _segments_concat(parts, n)
    fh, fhl = _field_bytes(0x12, flen)
    features, _ = _segments_concat([(fh, fhl), (body, flen)], n)
    layer = (b"\x78\x02" + _len_prefixed(b"\x0a", name.encode()) + features.tobytes()
             + b"".join(_len_prefixed(b"\x1a", k.encode()) for k in table.keys)
             + values + b"\x28" + _varint(extent))
    return _len_prefixed(b"\x1a", layer)
