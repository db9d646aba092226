"""The export's file formats: CSV for Excel, JSON, safe file names, spooled tables.

CSV files are UTF-8 with a byte order mark and `;` between fields. German Excel
(and LibreOffice with a German locale) splits a double-clicked CSV file on the
list separator of the locale, which is `;` because `,` is the decimal sign; with
`,` every row would land in one column. The BOM makes Excel read UTF-8 instead of
Windows-1252, so umlauts survive. Every text cell that a spreadsheet would take
for a formula (starting with `=`, `+`, `-`, `@`, tab or carriage return) is
prefixed with `'`: a name like `=HYPERLINK(...)` stays text. The JSON files keep
every value exactly as stored.

ZIP allows one open entry at a time, and each kind of record goes to a CSV and a
JSON file at once: those are spooled to temporary files on disk (never memory)
and copied into the ZIP when their kind is complete.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import tempfile
import unicodedata
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

CSV_DELIMITER = ";"
COPY_BUFFER = 64 * 1024
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_UNSAFE_IN_NAME = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_RESERVED_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{i}" for i in range(1, 10)}
    | {f"LPT{i}" for i in range(1, 10)}
)
MAX_NAME = 120


def csv_cell(value: Any) -> str:
    """One cell as text a spreadsheet shows as it is; lists joined, formulas defused."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        value = ", ".join(str(item) for item in value)
    elif isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True) if value else ""
    text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def clean_name(name: str, *, fallback: str = "document", basename: bool = True) -> str:
    """A file or folder name safe on Windows, macOS and Linux, keeping what it can.

    An uploaded file name keeps only its last part (`C:\\x\\a.pdf` is `a.pdf`); a folder
    named after a record (`basename=False`) keeps all of it, slashes made `_`.
    """
    name = unicodedata.normalize("NFC", name)
    if basename:
        name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_IN_NAME.sub("_", name).strip().strip(".").strip()
    if not name:
        return fallback
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    if stem.upper() in _RESERVED_NAMES or name.upper() in _RESERVED_NAMES:
        name = "_" + name
        stem = "_" + stem
    if len(name) > MAX_NAME:
        suffix = suffix[:20]
        keep = MAX_NAME - (len(suffix) + 1 if suffix else 0)
        name = stem[:keep].rstrip(". ") + ("." + suffix if suffix else "")
    return name


def unique_name(name: str, taken: set[str]) -> str:
    """`name`, or `name (2).ext`, ... so that no two files of one folder collide (any case)."""
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        stem, suffix = name, ""
    candidate, number = name, 1
    while candidate.casefold() in taken:
        number += 1
        candidate = f"{stem} ({number})" + (f".{suffix}" if suffix else "")
    taken.add(candidate.casefold())
    return candidate


class SpooledTable:
    """Rows of one kind, written to a CSV and a JSON array on disk as they come."""

    def __init__(self, name: str, columns: Sequence[str], directory: Path) -> None:
        self.name = name
        self.columns = list(columns)
        self.count = 0
        self._csv_file: IO[str] = tempfile.TemporaryFile(  # noqa: SIM115 - closed in close()
            "w+", encoding="utf-8-sig", newline="", dir=directory
        )
        self._json_file: IO[str] = tempfile.TemporaryFile(  # noqa: SIM115 - closed in close()
            "w+", encoding="utf-8", dir=directory
        )
        self._csv = csv.writer(self._csv_file, delimiter=CSV_DELIMITER, lineterminator="\r\n")
        self._csv.writerow(self.columns)
        self._json_file.write("[")

    def add(self, flat: Mapping[str, Any], document: Mapping[str, Any]) -> None:
        """`flat` for the CSV (one value per column), `document` for the JSON."""
        self._csv.writerow([csv_cell(flat.get(column)) for column in self.columns])
        self._json_file.write(",\n" if self.count else "\n")
        self._json_file.write(json.dumps(document, ensure_ascii=False, sort_keys=True))
        self.count += 1

    def copy_into(self, archive: zipfile.ZipFile, prefix: str = "") -> list[str]:
        """Both files into the ZIP; returns their names there."""
        self._json_file.write("\n]\n" if self.count else "]\n")
        names = []
        for suffix, spool in ((".csv", self._csv_file), (".json", self._json_file)):
            spool.flush()
            spool.seek(0)
            name = f"{prefix}{self.name}{suffix}"
            binary = spool.buffer  # type: ignore[attr-defined]
            with archive.open(_entry(name), "w") as target:
                shutil.copyfileobj(binary, target, COPY_BUFFER)
            names.append(name)
        return names

    def close(self) -> None:
        self._csv_file.close()
        self._json_file.close()


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_now_tuple())
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def _now_tuple() -> tuple[int, int, int, int, int, int]:
    now = datetime.now()
    return (now.year, now.month, now.day, now.hour, now.minute, now.second)


def text_entry(name: str) -> zipfile.ZipInfo:
    """A compressed entry for text written in pieces."""
    return _entry(name)


def stored_entry(name: str, size: int) -> zipfile.ZipInfo:
    """A document as it is (mostly compressed already); the size decides ZIP64."""
    info = zipfile.ZipInfo(name, date_time=_now_tuple())
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = size
    info.external_attr = 0o644 << 16
    return info


def write_jsonl(target: IO[bytes], rows: Iterable[Mapping[str, Any]]) -> int:
    count = 0
    buffer = io.StringIO()
    for row in rows:
        buffer.write(json.dumps(row, ensure_ascii=False, sort_keys=True))
        buffer.write("\n")
        count += 1
    target.write(buffer.getvalue().encode())
    return count
