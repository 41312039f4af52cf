"""Reading the corpus with Ray Data: files -> records -> canonical rows, and rejects.

Files are read as bytes by `ray.data.read_binary_files`, exploded into numbered records,
and canonicalised by `map_batches` in parallel. Nothing is dropped quietly: every record
becomes a kept row or a reject with its file, row and reason, and the counts per split
(rows in = kept + rejected) go into the manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..artifacts import CANONICAL_COLUMNS
from ..config import DataConfig
from .canonical import Rejected, canonical_row, row_reader
from .files import CorpusError, detect_format, parse_file, resolve_files

log = logging.getLogger(__name__)

_FILE_ERROR_ROW = 0  # a record numbered 0 carries an error about the whole file


@dataclass
class Corpus:
    rows: pd.DataFrame  # CANONICAL_COLUMNS
    rejects: pd.DataFrame  # REJECT_COLUMNS
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> rows_in, kept, rejected

    def check_reject_share(self, max_share: float, rejects_path: str) -> None:
        """Stop, naming the split, the share and the commonest reasons, when too much was rejected."""
        for split, count in self.counts.items():
            if count["rows_in"] and count["rejected"] / count["rows_in"] > max_share:
                reasons = self.rejects[self.rejects["split"] == split]["reason"].value_counts().head(3)
                listed = "; ".join(f"{reason}: {n}" for reason, n in reasons.items())
                raise CorpusError(
                    f"split {split!r}: {count['rejected']} of {count['rows_in']} rows rejected "
                    f"({count['rejected'] / count['rows_in']:.1%}), above data.max_reject_share={max_share}. "
                    f"Commonest reasons: {listed}. Every reject, with its file and row: {rejects_path}"
                )


def _explode(item: dict, split_of: dict[str, str], file_format: str, max_row_bytes: int,
             record_path: str | None = None) -> list[dict]:
    """One file's bytes -> one row per record (the record as JSON text, or its parse error)."""
    path = item["path"]
    out = []
    try:
        for record in parse_file(path, item["bytes"], file_format, max_row_bytes, record_path):
            out.append({
                "split": split_of[path], "source_file": path, "row": record.row,
                "record": record.text if record.value is not None else "",
                "error": record.error,
            })
    except CorpusError as exc:
        return [{"split": split_of[path], "source_file": path, "row": _FILE_ERROR_ROW, "record": "", "error": str(exc)}]
    return out


def _canonicalise(batch: pd.DataFrame, config: DataConfig) -> pd.DataFrame:
    reader = row_reader(config)
    out = []
    for split, source, row, record, error in zip(batch["split"], batch["source_file"], batch["row"], batch["record"], batch["error"]):
        base = {"split": split, "source_file": source, "row": int(row)}
        if error:
            out.append({**base, "reason": error})
            continue
        try:
            canonical = canonical_row(json.loads(record), reader)
        except Rejected as exc:
            out.append({**base, "reason": str(exc)})
            continue
        # Options travel as JSON text: an all-null column in one block must not clash with lists in another.
        canonical["options"] = json.dumps(canonical["options"])
        out.append({**base, **canonical, "reason": ""})
    columns = [c for c in CANONICAL_COLUMNS] + ["reason"]
    return pd.DataFrame(out, columns=columns)


def _split_files(config: DataConfig) -> dict[str, str]:
    split_of: dict[str, str] = {}
    for split, patterns in config.files.items():
        for path in resolve_files(patterns, config.root, f"data.files.{split}"):
            key = str(path.resolve())
            if key in split_of:
                raise CorpusError(f"{path} is listed under both data.files.{split_of[key]} and data.files.{split}")
            detect_format(key, config.format)  # an unknown extension fails here, before Ray starts work
            split_of[key] = split
    return split_of


# Data files up to this size are parsed whole before Ray starts (milliseconds each): a file-level
# problem is then refused at once. Larger files are only checked to exist, with a known format.
CHECK_PARSE_BYTES = 1 << 20


def check_files(config: DataConfig) -> None:
    """The cheap checks of data.files, before Ray starts: every pattern matches files of a known
    format, and no small file is empty or unreadable as a whole. The same errors, in the same
    words, as reading the corpus gives, without waiting seconds for Ray first."""
    if config.source != "files":
        return
    for path in _split_files(config):
        if Path(path).stat().st_size <= CHECK_PARSE_BYTES:
            data = Path(path).read_bytes()
            for _ in parse_file(path, data, config.format, config.max_row_bytes, config.record_path):
                pass  # a bad row is a reject, found later; a bad file raises here


def _read_records(split_of: dict[str, str], config: DataConfig) -> pd.DataFrame:
    import ray

    ds = ray.data.read_binary_files(list(split_of), include_paths=True)
    # Ray reports local paths without their leading slash on some versions: map both spellings.
    lookup = {**split_of, **{k.lstrip("/"): v for k, v in split_of.items()}}
    records = ds.flat_map(_explode, fn_kwargs={"split_of": lookup, "file_format": config.format,
                                                     "max_row_bytes": config.max_row_bytes,
                                                     "record_path": config.record_path})
    records = records.repartition(config.num_blocks)
    frame = records.map_batches(_canonicalise, fn_kwargs={"config": config}, batch_format="pandas").to_pandas()
    file_errors = frame[frame["row"] == _FILE_ERROR_ROW]
    if len(file_errors):
        raise CorpusError("; ".join(file_errors["reason"]))
    frame["source_file"] = frame["source_file"].map(lambda p: p if p in split_of else "/" + p)
    return frame


def _in_test_share(row_id: str, share: float) -> bool:
    digest = hashlib.sha256(row_id.encode()).hexdigest()[:8]
    return int(digest, 16) / 0xFFFFFFFF < share


def _read_hf(config: DataConfig) -> pd.DataFrame:
    import ray

    from .hf import hf_records

    records = ray.data.from_pandas(hf_records(config)).repartition(config.num_blocks)
    return records.map_batches(_canonicalise, fn_kwargs={"config": config}, batch_format="pandas").to_pandas()


def read_corpus(config: DataConfig) -> Corpus:
    """Read data.files (or a Hugging Face data set) with Ray Data into canonical rows, rejects,
    and counts per split."""
    if config.source == "hf":
        from .hf import source_name

        frame = _read_hf(config)
        file_order = {source_name(config, theirs): i for i, theirs in enumerate(config.hf.splits.values())}
    else:
        split_of = _split_files(config)
        frame = _read_records(split_of, config)
        file_order = {path: i for i, path in enumerate(split_of)}
    frame = frame.sort_values(["source_file", "row"], key=lambda s: s.map(file_order) if s.name == "source_file" else s)
    frame = frame.reset_index(drop=True)
    ok = frame["reason"] == ""
    if config.test_split not in config.splits and config.test_share > 0:
        held_out = ok & (frame["split"] == config.pool_split) & frame["id"].map(
            lambda i: isinstance(i, str) and _in_test_share(i, config.test_share))
        frame.loc[held_out, "split"] = config.test_split
    _reject_unusable(frame, config)
    bad = frame["reason"] != ""
    rejects = frame.loc[bad, ["split", "source_file", "row", "id", "reason"]].reset_index(drop=True)
    kept = frame.loc[~bad, CANONICAL_COLUMNS].copy()
    kept["options"] = kept["options"].map(json.loads)
    kept["row"] = kept["row"].astype(int)
    kept = kept.sort_values(["split", "id"]).reset_index(drop=True)
    counts = {}
    for split in dict.fromkeys([*config.splits, *frame["split"].unique()]):
        in_split = frame["split"] == split
        counts[split] = {"rows_in": int(in_split.sum()), "kept": int((in_split & ~bad).sum()),
                         "rejected": int((in_split & bad).sum())}
    return Corpus(kept, rejects, counts)


def _reject_unusable(frame: pd.DataFrame, config: DataConfig) -> None:
    """Test rows need gold; an id may appear once (test copies win, so no test question is trained on)."""
    ok = frame["reason"] == ""
    no_gold = ok & (frame["split"] == config.test_split) & frame["gold"].isna()
    frame.loc[no_gold, "reason"] = "test row without a gold answer"
    ok = frame["reason"] == ""
    order = frame.index.to_series().where(frame["split"] != config.test_split, frame.index - len(frame))
    first_seen: dict[str, tuple[str, str, int]] = {}
    for index in order[ok].sort_values().index:
        row_id = frame.at[index, "id"]
        if row_id in first_seen:
            split, source, row = first_seen[row_id]
            frame.at[index, "reason"] = f"duplicate id {row_id!r} (first in split {split!r}, {Path(source).name} row {row})"
        else:
            first_seen[row_id] = (frame.at[index, "split"], frame.at[index, "source_file"], int(frame.at[index, "row"]))
