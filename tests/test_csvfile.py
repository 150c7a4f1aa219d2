"""edge.csvfile: the CSV files people export from spreadsheets, read with clean errors naming file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.csvfile import CsvRow, read_csv
from edge.exc import CsvFileError, EventsFileError


def rows(path: Path, max_rows: int = 10) -> list[CsvRow]:
    return list(read_csv(path, ("student", "n"), max_rows=max_rows))


def test_a_spreadsheet_export_reads_by_column_name(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_bytes("\ufeffn, student ,extra\r\n3, s-1 ,x\r\n\r\n ,  , \r\n4,s-2,y\r\n".encode())  # BOM, CRLF, blanks
    assert rows(f) == [CsvRow(2, {"student": "s-1", "n": "3"}), CsvRow(5, {"student": "s-2", "n": "4"})]


@pytest.mark.parametrize(("content", "message"), [
    (b"", "line 1: empty file (want a header: student,n)"),
    (b"student\n", "line 1: missing column 'n' (want student,n)"),
    (b"student,n\ns,1,2\n", "line 2: has 3 fields, the header has 2"),
    (b"student,n\n" + b"s,1\n" * 4, "line 5: more than 3 rows"),
    (b"student,n\ns\xe9,1\n", "cannot read: 'utf-8' codec can't decode"),  # Latin-1, as older spreadsheets save
    (b"student,n\n" + b"s" * 200_000 + b",1\n", "line 2: bad CSV: field larger than field limit"),
])
def test_every_problem_names_the_file_and_line(tmp_path: Path, content: bytes, message: str) -> None:
    f = tmp_path / "t.csv"
    f.write_bytes(content)
    with pytest.raises(CsvFileError) as e:
        rows(f, max_rows=3)
    assert str(e.value).startswith(f"{f}: {message}")


def test_a_missing_file_and_the_caller_s_error_type(tmp_path: Path) -> None:
    with pytest.raises(EventsFileError, match=r"nope\.csv: no such file$"):
        list(read_csv(tmp_path / "nope.csv", ("a",), max_rows=1, error=EventsFileError))
