"""Input errors and the record of rows that were rejected or repaired."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported when a report is made: `buque --help` never needs it
    import pandas as pd


class BuqueInputError(ValueError):
    """Bad input that stops a run: the message names the file and, where known, row and field."""

    def __init__(self, path: str, message: str, *, row: int | None = None,
                 field: str | None = None) -> None:
        self.path, self.message, self.row, self.field = str(path), message, row, field
        where = self.path
        if row is not None:  # the spreadsheet line (header = line 1)
            where += f", row {row}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")


def check_keys(path: str, where: str, given: Iterable[str], known: Iterable[str], *,
               what: str = "key") -> None:
    """Raise on keys of a TOML table that are not ``known``, naming the file, the table and the
    key, with the closest known key as a suggestion (a misspelt key is never silently ignored)."""
    known = sorted(known)
    extra = sorted(set(given) - set(known))
    if not extra:
        return
    k = extra[0]
    close = difflib.get_close_matches(k, known, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(known)}"
    more = f" (and {', '.join(repr(e) for e in extra[1:])})" if len(extra) > 1 else ""
    raise BuqueInputError(path, f"{where}: unknown {what} '{k}'{more}; {hint}", field=k)


REPORT_COLUMNS = ["file", "layer", "row", "code", "name", "field", "reason"]
#: ``row`` in reports and errors is the line a spreadsheet shows: the header is line 1, the
#: first data row line 2 (data row n is line n + 1)
HEADER_LINES = 1


def line_of(data_row: int) -> int:
    """The spreadsheet line of a 1-based data row (the header is line 1)."""
    return int(data_row) + HEADER_LINES


@dataclass
class Report:
    """Rows set aside (rejected) and rows changed on the way in (warnings).

    Callers give 1-based data rows; ``row`` in the frames is the line a spreadsheet shows for
    it (header = line 1, first data row = line 2). ``code`` and ``name`` are what the input row
    had (a village's code and name, a feature's id and name), null where it had none.
    """

    rejected: list[pd.DataFrame] = field(default_factory=list)
    warnings: list[pd.DataFrame] = field(default_factory=list)

    @staticmethod
    def _frame(file: str, layer: str, rows, codes, names, fld: str | None, reasons
               ) -> pd.DataFrame:
        import pandas as pd  # noqa: PLC0415 (see the import at the top)

        n = len(rows)
        df = pd.DataFrame({
            "file": [str(file)] * n,
            "layer": [layer] * n,
            "row": pd.array(rows, dtype="Int64") + HEADER_LINES,
            "code": pd.array(codes if codes is not None else [None] * n, dtype="string"),
            "name": pd.array(names if names is not None else [None] * n, dtype="string"),
            "field": [fld] * n,
            "reason": reasons if not isinstance(reasons, str) else [reasons] * n,
        })
        return df

    def reject(self, file: str, layer: str, rows, reason, *, codes=None, names=None,
               field: str | None = None) -> None:
        if len(rows):
            self.rejected.append(self._frame(file, layer, rows, codes, names, field, reason))

    def warn(self, file: str, layer: str, rows, reason, *, codes=None, names=None,
             field: str | None = None) -> None:
        if len(rows):
            self.warnings.append(self._frame(file, layer, rows, codes, names, field, reason))

    def note(self, file: str, layer: str, reason: str, *, field: str | None = None) -> None:
        """A warning about a whole layer or the project, not one of its rows."""
        self.warnings.append(self._frame(file, layer, [None], None, None, field, reason))

    @staticmethod
    def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
        import pandas as pd  # noqa: PLC0415

        if not parts:
            return pd.DataFrame({c: pd.Series(dtype="string") for c in REPORT_COLUMNS})
        return pd.concat(parts, ignore_index=True)

    def rejected_frame(self) -> pd.DataFrame:
        return self._concat(self.rejected)

    def warnings_frame(self) -> pd.DataFrame:
        return self._concat(self.warnings)

    def n_rejected(self, layer: str | None = None) -> int:
        return int(sum(len(d) if layer is None else int((d["layer"] == layer).sum())
                       for d in self.rejected))
