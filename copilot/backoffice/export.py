"""The list routes' rows as CSV or XLSX: the same rows as the JSON `items`, flattened into columns.

A mapping field (e.g. `compliance_hits`) becomes one column per key (`compliance_hits.off_platform`), with
the keys of every row; a list or nested object becomes its JSON text. CSV is UTF-8 with a byte-order mark,
so spreadsheet programs read the Chinese text correctly.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from openpyxl import Workbook

__all__ = ["flatten", "to_csv", "to_xlsx"]


def flatten(items: Sequence[dict[str, Any]], fields: Sequence[str]) -> tuple[list[str], list[list[Any]]]:
    """A header and one list of cells per item, in `fields` order (mappings spread into sorted columns)."""
    header: list[str] = []
    spread: dict[str, list[str]] = {}
    for name in fields:
        if any(isinstance(item.get(name), dict) for item in items):
            keys = sorted({key for item in items for key in (item.get(name) or {})})
            spread[name] = keys
            header.extend(f"{name}.{key}" for key in keys)
        else:
            header.append(name)
    rows: list[list[Any]] = []
    for item in items:
        cells: list[Any] = []
        for name in fields:
            value = item.get(name)
            if name in spread:
                cells.extend((value or {}).get(key, 0) for key in spread[name])
            else:
                cells.append(_cell(value))
        rows.append(cells)
    return header, rows


def _cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def to_csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(["" if cell is None else cell for cell in row] for row in rows)
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx(header: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=title[:31])
    sheet.append(list(header))
    for row in rows:
        sheet.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
