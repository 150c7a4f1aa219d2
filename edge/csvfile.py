"""The CSV files people export from spreadsheets (evidence events, mastery tables): read with the BOM a
spreadsheet adds, blank lines skipped, and every problem a CsvFileError naming the file and line (a missing
column, a short row, a field over the csv module's limit, too many rows), never a traceback."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.exc import CsvFileError


@dataclass(frozen=True)
class CsvRow:
    line: int
    values: dict[str, str]  # the named columns, stripped


def read_csv(path: str | Path, columns: Sequence[str], *, max_rows: int,
             error: type[CsvFileError] = CsvFileError) -> Iterator[CsvRow]:
    """The rows of `path` as `columns` (in any order; other columns are ignored), at most `max_rows` of them.

    A generator: the file is read first, its rows are parsed as they are asked for (so the bound is checked
    before a huge file is held twice)."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise error(file, 0, "no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise error(file, 0, f"cannot read: {e}") from None
    want = ",".join(columns)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise error(file, 1, f"empty file (want a header: {want})")
        names = [h.strip() for h in header]
        missing = [c for c in columns if c not in names]
        if missing:
            raise error(file, 1, f"missing column {missing[0]!r} (want {want})")
        col = {c: names.index(c) for c in columns}
        rows = 0
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            rows += 1
            if rows > max_rows:
                raise error(file, reader.line_num, f"more than {max_rows} rows")
            if len(row) != len(names):
                raise error(file, reader.line_num, f"has {len(row)} fields, the header has {len(names)}")
            yield CsvRow(reader.line_num, {c: row[i].strip() for c, i in col.items()})
    except csv.Error as e:
        raise error(file, reader.line_num, f"bad CSV: {e}") from None
