"""Data files into records: JSONL, JSON (an array, or JSON lines under a .json name),
Parquet and CSV, each record numbered so a problem can be found in its file.

`row` is 1-based: the line number in a JSONL file, the element number in a JSON array or a
Parquet file, the data row (after the header) in a CSV file. A line that is not valid JSON,
not UTF-8, or larger than the row limit becomes a record with that error, to be rejected
with the reason, not skipped. A file with no records at all is an error naming the file.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional


class CorpusError(ValueError):
    """A data problem a user can fix: the message names the file, the key or the rows."""


@dataclass
class Record:
    row: int
    value: Optional[dict]  # None when the row could not be parsed
    error: str = ""
    text: str = ""  # the record as JSON text, as measured against the row limit (computed once)


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


DEFAULT_MAX_ROW_BYTES = 1_000_000  # data.max_row_bytes


def _too_large(size: int, max_row_bytes: int) -> str:
    return f"row is {size:,} bytes, above data.max_row_bytes={max_row_bytes:,}"


def _json_line(number: int, line: str) -> Record:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        return Record(number, None, f"not valid JSON ({exc.msg} at column {exc.colno})")
    except RecursionError:
        return Record(number, None, "not usable JSON (nested too deeply)")
    if isinstance(value, dict):
        return Record(number, value, text=line)
    return Record(number, None, f"expected a JSON object, got {type(value).__name__}")


def _json_lines(data: bytes, max_row_bytes: int) -> Iterator[Record]:
    """JSON lines decoded line by line: one line that is not UTF-8 is one reject, not a lost file."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        if len(raw) > max_row_bytes:
            yield Record(number, None, _too_large(len(raw), max_row_bytes))
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Record(number, None, f"not UTF-8 text (byte {exc.start + 1} of the line is {raw[exc.start]:#04x})")
            continue
        yield _json_line(number, line)


def _is_keyed_records(value: dict) -> bool:
    """A JSON object whose values are the records, keyed by index ({"0": {...}, "1": {...}}),
    as many released rationale files are; not one record that happens to nest objects."""
    return bool(value) and all(str(k).isdigit() and isinstance(v, dict) for k, v in value.items())


_UNPARSED = object()


def _json_document(text: str, path: str, max_row_bytes: int, record_path: Optional[str] = None,
                   value: Any = _UNPARSED) -> Iterator[Record]:
    """A JSON document's records (`value`: the document, when a caller has parsed it already)."""
    try:
        if value is _UNPARSED:
            value = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and not record_path:  # several JSON values: JSON lines under a .json name
            yield from _json_lines(text.encode("utf-8", "surrogatepass"), max_row_bytes)
            return
        raise CorpusError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise CorpusError(f"{path}: JSON nested too deeply to read") from None
    if record_path:
        inner = get_path(value, record_path) if isinstance(value, dict) else None
        if not isinstance(inner, (list, dict)):
            raise CorpusError(f"{path}: data.record_path {record_path!r} names no list or object of records "
                              f"(top-level keys: {', '.join(list(value)[:8]) if isinstance(value, dict) else '-'})")
        value = inner
    if isinstance(value, dict):
        # Records keyed by index: numbered in file order; else one object is one record.
        value = list(value.values()) if _is_keyed_records(value) else [value]
    if not isinstance(value, list):
        raise CorpusError(f"{path}: expected a JSON array of records or JSON lines, got {type(value).__name__}")
    for number, item in enumerate(value, start=1):
        if isinstance(item, dict):
            yield Record(number, item)
        else:
            yield Record(number, None, f"expected a JSON object, got {type(item).__name__}")


def _one_document(data: bytes) -> Any:
    """A JSON-lines name on one JSON document (records keyed by index, pretty-printed or not)?
    The document when it is one line holding keyed records (parsed once, here); True when the
    first line opens an object it does not close (pretty-printed); None for JSON lines."""
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"{"):
        return None
    first = head.split(b"\n", 1)[0].strip()
    if first in (b"{", b"{\r") or not first.endswith(b"}"):
        return True
    if b"\n" in head.strip():
        return None  # several lines, each a whole object: JSON lines
    try:
        value = json.loads(head)
    except (json.JSONDecodeError, RecursionError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) and _is_keyed_records(value) else None


def _csv(text: str) -> Iterator[Record]:
    # Every cell stays a string: ids such as '007' keep their zeros.
    for number, row in enumerate(csv.DictReader(io.StringIO(text)), start=1):
        yield Record(number, dict(row))


def _parquet(data: bytes) -> Iterator[Record]:
    import pyarrow.parquet as pq

    for number, row in enumerate(pq.read_table(io.BytesIO(data)).to_pylist(), start=1):
        yield Record(number, row)


def parse_file(path: str, data: bytes, file_format: str, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
               record_path: Optional[str] = None) -> Iterator[Record]:
    """Every record of one file, in order; a CorpusError for a file with none.

    record_path: a JSON document holds its records under this (dotted) key. A JSON object whose
    values are all records (keyed by index) is read as those records, whatever the file's name.
    """
    count = 0
    for record in _records(path, data, detect_format(path, file_format), max_row_bytes, record_path):
        count += 1
        yield record
    if count == 0:
        raise CorpusError(f"{path}: no records ({len(data)} bytes{', empty' if not data.strip() else ''}); "
                          "remove it from the file list or fill it")


def _records(path: str, data: bytes, fmt: str, max_row_bytes: int,
             record_path: Optional[str] = None) -> Iterator[Record]:
    document: Any = _UNPARSED
    if fmt == "jsonl":
        found = _one_document(data)
        if record_path or found is not None:
            fmt = "json"  # one document under a JSON-lines name
            if isinstance(found, dict):
                document = found
    if fmt == "jsonl":
        yield from _json_lines(data, max_row_bytes)
        return
    if fmt == "parquet":
        records = _parquet(data)
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[:exc.start].count(b"\n") + 1
            raise CorpusError(f"{path}: not UTF-8 text at line {line} (byte {exc.start + 1} of the file); "
                              "convert it to UTF-8") from None
        records = _json_document(text, path, max_row_bytes, record_path, document) if fmt == "json" else _csv(text)
    for record in records:  # whole documents: the limit applies to each record's JSON text
        if record.value is not None and not record.text:  # JSON lines under a .json name come measured
            text = json.dumps(record.value, default=str)
            size = len(text.encode("utf-8", "surrogatepass"))
            record = Record(record.row, None, _too_large(size, max_row_bytes)) if size > max_row_bytes else \
                Record(record.row, record.value, text=text)
        yield record


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
