"""Hardening an existing road instead of building one (placeholder: none chosen yet)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.plan.params import Costs
from layers.profile import Indicator


def harden_works(pairs: pd.DataFrame, roads: gpd.GeoDataFrame, ind: Indicator, cost: Costs
                 ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Works hardening roads for ``pairs``; returns works, each served pair's work position, and
    which pairs are served."""
    return pd.DataFrame(), np.zeros(0, np.int64), np.zeros(len(pairs), dtype=bool)
