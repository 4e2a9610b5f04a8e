"""A run's inputs: its layers read from their files (or derived from the OSM extract) with their
hashes, and the feature layers as the archive keeps them."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import geopandas as gpd
import numpy as np

from buque.geo.archive import hash_input, sha256_file
from buque.geo.columns import take_text
from buque.geo.gaps import evidence_classes
from buque.layers.errors import Report
from buque.layers.osm import DERIVABLE, derive_layers
from buque.layers.profile import Profile
from buque.layers.project import Project
from buque.layers.readers import FILE, ROW, Prefetch, read_layer

Step = Callable[[str], None]


def load_layers(project: Project, report: Report, step: Step | None = None
                ) -> tuple[dict[str, gpd.GeoDataFrame], list[dict[str, Any]]]:
    """Every layer of the project: its own files first, then the [osm] extract for the rest.

    One file after another, with GDAL reading the next file into Arrow (the GIL released) while
    this one is decoded: decoding several side by side in threads was measured no faster (at
    national size 28.5 s with four threads, 27.8 s with one: the conversion to a data frame
    holds the GIL) and 1.4 GiB heavier. The hashes are computed by another thread meanwhile.
    """
    layers: dict[str, gpd.GeoDataFrame] = {}
    inputs: list[dict[str, Any]] = []
    specs = list(project.layers.items())
    # the files' hashes are computed by a thread while they are parsed (hashlib releases the
    # GIL): at national size that is seconds of reading the GeoPackages a second time
    with ThreadPoolExecutor(max_workers=1) as pool, ThreadPoolExecutor(max_workers=1) as ahead:
        digests = {kind: pool.submit(hash_input, spec.path) for kind, spec in specs}
        nxt = Prefetch(specs[0][1], ahead) if specs else None
        try:
            for n, (kind, spec) in enumerate(specs):
                if step:
                    step(f"reading {kind} ({spec.path.name})")
                this, nxt = nxt, (Prefetch(specs[n + 1][1], ahead) if n + 1 < len(specs)
                                  else None)
                gdf = read_layer(spec, project.crs, report, this)
                del this
                layers[kind] = gdf
                inputs.append({"layer": kind, "path": str(spec.path), "source": "file",
                               "rows": len(gdf) + report.n_rejected(kind), "sha256": digests[kind]})
            if project.osm is not None:
                todo = [k for k in DERIVABLE if k not in layers]
                if todo:
                    if step:
                        step(f"deriving {', '.join(todo)} from {project.osm.path.name}")
                    osm_digest = pool.submit(sha256_file, project.osm.path)
                    derived = derive_layers(project.osm, todo, report)
                    for kind, gdf in derived.items():
                        layers[kind] = gdf
                        inputs.append({"layer": kind, "path": str(project.osm.path), "source": "osm",
                                       "rows": len(gdf) + report.n_rejected(kind),
                                       "sha256": osm_digest})
        except BaseException:  # a bad file: say so now, not after hashing the rest
            pool.shutdown(cancel_futures=True)
            ahead.shutdown(cancel_futures=True)
            raise
        for i in inputs:
            i["sha256"] = i["sha256"].result()
    return layers, inputs



#: the archived evidence class of a feature, by its class code (0 fail, 1 pass, else unknown)
EVIDENCE_CLASSES = ("fail", "pass", "unknown")


def archived_layers(layers: dict[str, gpd.GeoDataFrame], profile: Profile,
                    classes: dict[str, np.ndarray] | None = None) -> dict[str, gpd.GeoDataFrame]:
    """Feature layers as archived: canonical fields, plus each reading indicator's evidence class."""
    if classes is None:
        classes = evidence_classes(layers, profile)
    out = {}
    for kind, gdf in layers.items():
        g = gdf.drop(columns=[ROW, FILE], errors="ignore")  # copy-on-write: the layer is kept
        for key, ind in profile.indicators.items():
            if ind.layer == kind:
                cls = classes[key]
                g[f"evidence_{key}"] = take_text(EVIDENCE_CLASSES,
                                                 np.where((cls == 0) | (cls == 1), cls, 2))
        out[kind] = g
    return out
