"""The official village list (NBS 统计用区划代码, 12-digit codes): completeness (不漏一村)."""

from __future__ import annotations

import pandas as pd

from buque.layers.errors import BuqueInputError, line_of
from buque.layers.project import OfficialSpec
from buque.layers.readers import ROW, read_text_table

UNLOCATED_COLUMNS = ["code", "name", "township_code", "county_code", "township", "county", "reason"]


def read_official(spec: OfficialSpec) -> pd.DataFrame:
    """The listed villages of the project (codes starting with one of ``prefixes``)."""
    path = spec.path
    if not path.is_file():
        raise BuqueInputError(str(path), "[official]: no such file")
    df, bad = read_text_table(path, spec.encoding, ",", what="the official list")
    if bad:  # a list to check completeness against cannot lose a row
        raise BuqueInputError(str(path), f"[official]: {bad[0].reason}", row=bad[0].line)
    df = df.drop(columns=ROW)
    if "code" not in df:
        raise BuqueInputError(str(path), "the official list needs a 'code' column", field="code")
    df["code"] = df["code"].str.strip()
    bad = ~df["code"].str.fullmatch(r"\d{12}").fillna(False)
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise BuqueInputError(str(path), f"code {df['code'].iloc[i]!r} is not a 12-digit "
                              "NBS village code", row=line_of(i + 1), field="code")
    if spec.prefixes:
        df = df[df["code"].str.startswith(tuple(spec.prefixes))]
    return df.reset_index(drop=True)


def unlocated(official: pd.DataFrame, located_codes: pd.Series) -> pd.DataFrame:
    """Listed villages with no usable geometry in the inputs."""
    miss = official[~official["code"].isin(set(located_codes.dropna()))]
    col = lambda c: miss[c] if c in miss else pd.Series(pd.NA, index=miss.index)  # noqa: E731
    return pd.DataFrame({
        "code": miss["code"], "name": col("name"),
        "township_code": miss["code"].str[:9], "county_code": miss["code"].str[:6],
        "township": col("streetName"), "county": col("areaName"),
        "reason": "listed in the official village list but absent from the village layers "
                  "(or rejected)",
    }, columns=UNLOCATED_COLUMNS).reset_index(drop=True)
