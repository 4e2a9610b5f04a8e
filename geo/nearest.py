"""Bulk spatial queries on projected (metric) geometries with shapely 2's STRtree.

Every function takes whole arrays and answers for all query geometries at once; none loops
over villages or features in Python. Ties are broken by the lowest feature index, so results
do not depend on how the features were partitioned or ordered in the tree.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely import STRtree


class FeatureIndex:
    """Projected features with their STRtree, built once and queried many times."""

    def __init__(self, geoms: np.ndarray) -> None:
        self.geoms = np.asarray(geoms, dtype=object)
        self.tree = STRtree(self.geoms)

    def __len__(self) -> int:
        return len(self.geoms)

    def nearest(self, points: np.ndarray, max_distance: float | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Distance to, and index of, the nearest feature for each point (NaN / -1 if none)."""
        n = len(points)
        dist = np.full(n, np.nan)
        idx = np.full(n, -1, dtype=np.int64)
        if n == 0 or len(self) == 0:
            return dist, idx
        (qi, fi), d = self.tree.query_nearest(points, max_distance=max_distance,
                                              return_distance=True, all_matches=True)
        if len(qi) == 0:
            return dist, idx
        # several equidistant features: keep the lowest feature index per query point
        order = np.lexsort((fi, qi))
        qi, fi, d = qi[order], fi[order], d[order]
        first = np.r_[True, qi[1:] != qi[:-1]]
        dist[qi[first]] = d[first]
        idx[qi[first]] = fi[first]
        return dist, idx

    def any_intersecting(self, polygons: np.ndarray) -> np.ndarray:
        """Whether each polygon intersects at least one feature."""
        out = np.zeros(len(polygons), dtype=bool)
        if len(polygons) == 0 or len(self) == 0:
            return out
        qi, _ = self.tree.query(polygons, predicate="intersects")
        out[qi] = True
        return out

    def covered(self, points: np.ndarray, radius: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Whether each point lies within some feature's own ``radius`` (0 = inside it).

        Returns ``(covered, index)`` with the index of the closest covering feature, or -1.
        """
        n = len(points)
        hit = np.zeros(n, dtype=bool)
        idx = np.full(n, -1, dtype=np.int64)
        if n == 0 or len(self) == 0:
            return hit, idx
        qi, fi = self.tree.query(points, predicate="dwithin", distance=float(radius.max()))
        if len(qi) == 0:
            return hit, idx
        d = shapely.distance(points[qi], self.geoms[fi])
        ok = d <= radius[fi]
        qi, fi, d = qi[ok], fi[ok], d[ok]
        order = np.lexsort((fi, d, qi))
        qi, fi = qi[order], fi[order]
        first = np.r_[True, qi[1:] != qi[:-1]] if len(qi) else np.zeros(0, dtype=bool)
        hit[qi[first]] = True
        idx[qi[first]] = fi[first]
        return hit, idx
