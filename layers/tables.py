"""Tables without geometry that offices keep in spreadsheets: a ledger (台账), field results.

XLSX (first sheet, or a named one) or CSV/TSV (UTF-8, or the declared encoding such as GBK).
Every cell is read as text (codes keep their leading zeros; a code Excel stored as a number
loses its ``.0``). The header is the first row with at least two filled cells, so a title row
above it (``XX县贫困村退出台账``) is skipped. Each row keeps ``_row``, its data row such that
:class:`~layers.errors.Report` shows the line a spreadsheet shows for it (``_row + 1``).
CSV rows with the wrong number of fields are set aside as :class:`~layers.readers.BadRow`
(the strict reader of :func:`layers.readers.read_text_table`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from buque.layers.errors import BuqueInputError
from buque.layers.readers import ROW, TEXT_SUFFIXES, BadRow, _unique_names, read_text_table

SHEET_SUFFIXES = (".xlsx", ".xlsm")


def read_sheet(path: Path, *, encoding: str | None = None, sheet: str | None = None,
               what: str = "table") -> tuple[pd.DataFrame, list[BadRow]]:
    """A spreadsheet or delimited text file as text columns (blank cells null) plus ``_row``,
    and the CSV rows set aside. Raises :class:`BuqueInputError` naming the file when it cannot
    be read at all."""
    path = Path(path)
    if not path.is_file():
        raise BuqueInputError(str(path), f"{what}: no such file")
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        df, bad = read_text_table(path, encoding, what=what)
        df = df.rename(columns=lambda c: c.strip() if isinstance(c, str) and c != ROW else c)
        text = [c for c in df.columns if c != ROW]
        df[text] = df[text].apply(lambda s: s.str.strip().mask(s.str.strip() == ""))
        return df, bad
    if suffix in SHEET_SUFFIXES:
        return _read_xlsx(path, sheet, what), []
    raise BuqueInputError(str(path), f"{what}: not a spreadsheet or CSV (give .xlsx, .csv or "
                          ".tsv)")


def _cell_text(v: object) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, dt.datetime):
        return v.date().isoformat() if v.time() == dt.time() else v.isoformat(sep=" ")
    if isinstance(v, dt.date):
        return v.isoformat()
    s = str(v).strip()
    return s or None


def _read_xlsx(path: Path, sheet: str | None, what: str) -> pd.DataFrame:
    from openpyxl import load_workbook  # noqa: PLC0415
    from openpyxl.utils.exceptions import InvalidFileException  # noqa: PLC0415

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, OSError, KeyError, ValueError) as e:
        raise BuqueInputError(str(path), f"cannot read {what}: {e}") from e
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise BuqueInputError(str(path), f"{what}: no sheet {sheet!r} (sheets: "
                                  f"{', '.join(wb.sheetnames)})", field="sheet")
        ws = wb[sheet] if sheet is not None else wb.worksheets[0]
        rows = [[_cell_text(v) for v in r] for r in ws.iter_rows(values_only=True)]
    finally:
        wb.close()
    head = next((i for i, r in enumerate(rows) if sum(v is not None for v in r) >= 2), None)
    if head is None:
        raise BuqueInputError(str(path), f"cannot read {what}: no header row (a row with at "
                              "least two filled cells)")
    header = rows[head]
    width = max(i + 1 for i, v in enumerate(header) if v is not None)
    names = _unique_names([v or "" for v in header[:width]])
    body = [(i, (r + [None] * width)[:width]) for i, r in enumerate(rows[head + 1:], head + 2)]
    body = [(i, r) for i, r in body if any(v is not None for v in r)]  # blank lines: nothing
    df = pd.DataFrame([r for _, r in body], columns=names, dtype="string") if body else \
        pd.DataFrame({n: pd.Series(dtype="string") for n in names})
    # the sheet's row number shown by a spreadsheet is i; Report shows _row + 1
    df[ROW] = [i - 1 for i, _ in body]
    return df
