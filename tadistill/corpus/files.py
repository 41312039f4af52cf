"""Data files into records: JSONL, JSON (an array, or JSON lines under a .json name),
Parquet and CSV, each record numbered so a problem can be found in its file.

`row` is 1-based: the line number in a JSONL file, the element number in a JSON array or a
Parquet file, the data row (after the header) in a CSV file. A line that is not valid JSON
becomes a record with a parse error, to be rejected with that reason, not skipped.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional


class CorpusError(ValueError):
    """A data problem a user can fix: the message names the file, the key or the rows."""


@dataclass
class Record:
    row: int
    value: Optional[dict]  # None when the row could not be parsed
    error: str = ""


def resolve_files(patterns: list[str], root: str, what: str) -> list[Path]:
    """Paths (globs expanded, relative ones taken from root) that exist, or a CorpusError."""
    found: list[Path] = []
    for pattern in patterns:
        full = pattern if Path(pattern).is_absolute() else str(Path(root) / pattern)
        matches = sorted(glob.glob(full), key=natural_key) if any(c in full for c in "*?[") else (
            [full] if Path(full).is_file() else [])
        if not matches:
            raise CorpusError(f"{what}: no file matches {pattern!r} (looked for {full})")
        found.extend(Path(m) for m in matches)
    return found


def natural_key(path: str) -> list:
    """'part_10' after 'part_9': numbered shards stay in order."""
    return [int(piece) if piece.isdigit() else piece for piece in re.split(r"(\d+)", path)]


def detect_format(path: str, configured: str) -> str:
    if configured != "auto":
        return configured
    suffix = Path(path).suffix.lower()
    formats = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
    if suffix not in formats:
        raise CorpusError(f"{path}: cannot tell the format from the extension {suffix!r}; set data.format")
    return formats[suffix]


def _json_lines(text: str) -> Iterator[Record]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Record(number, None, f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if isinstance(value, dict):
            yield Record(number, value)
        else:
            yield Record(number, None, f"expected a JSON object, got {type(value).__name__}")


def _json_document(text: str, path: str) -> Iterator[Record]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # several JSON values: JSON lines under a .json name
            yield from _json_lines(text)
            return
        raise CorpusError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if isinstance(value, dict):
        value = [value]  # one object: JSON lines with a single line
    if not isinstance(value, list):
        raise CorpusError(f"{path}: expected a JSON array of records or JSON lines, got {type(value).__name__}")
    for number, item in enumerate(value, start=1):
        if isinstance(item, dict):
            yield Record(number, item)
        else:
            yield Record(number, None, f"expected a JSON object, got {type(item).__name__}")


def _csv(text: str) -> Iterator[Record]:
    # Every cell stays a string: ids such as '007' keep their zeros.
    for number, row in enumerate(csv.DictReader(io.StringIO(text)), start=1):
        yield Record(number, dict(row))


def _parquet(data: bytes) -> Iterator[Record]:
    import pyarrow.parquet as pq

    for number, row in enumerate(pq.read_table(io.BytesIO(data)).to_pylist(), start=1):
        yield Record(number, row)


def parse_file(path: str, data: bytes, file_format: str) -> Iterator[Record]:
    """Every record of one file, in order."""
    fmt = detect_format(path, file_format)
    if fmt == "parquet":
        yield from _parquet(data)
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if fmt == "jsonl":
        yield from _json_lines(text)
    elif fmt == "json":
        yield from _json_document(text, path)
    else:
        yield from _csv(text)


def get_path(record: dict, dotted: str):
    """record['a']['b'] for 'a.b'; a list index may be a part ('choices.0'). None if absent."""
    node = record
    for part in dotted.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
        if node is None:
            return None
    return node
