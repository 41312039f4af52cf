"""Hugging Face data sets as corpus records (data.source 'hf'): a hub name, or a folder
written by `save_to_disk` (a Dataset or a DatasetDict).

Each of our splits reads the split of theirs that data.hf.splits names; every row becomes one
record, numbered from 1 within its split, with the same row limit and the same presets,
rejects and counts as data files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..config import DataConfig
from .files import CorpusError


def source_name(config: DataConfig, theirs: str) -> str:
    """What a row's `source_file` says: where to look for it."""
    return f"hf:{config.hf.path}{'/' + config.hf.name if config.hf.name else ''}[{theirs}]"


def _split_loader(config: DataConfig):
    """theirs, ours -> their split as a Dataset; a save_to_disk folder is read once for all splits."""
    try:
        import datasets
    except ImportError:
        raise CorpusError("data.source 'hf' needs the datasets package: .venv/bin/pip install datasets") from None
    hf = config.hf
    folder = Path(hf.path).expanduser()
    if not folder.is_absolute() and not folder.exists():
        folder = Path(config.root) / hf.path
    if not folder.is_dir():
        return lambda theirs, ours: _from_hub(datasets, hf, theirs)
    loaded = datasets.load_from_disk(str(folder))
    if not isinstance(loaded, datasets.DatasetDict):
        if len(hf.splits) > 1:
            raise CorpusError(f"{folder} holds one Dataset, not a DatasetDict: map one split to it in "
                              "data.hf.splits, and hold out a test split with data.test_share")
        return lambda theirs, ours: loaded

    def split(theirs: str, ours: str):
        if theirs not in loaded:
            raise CorpusError(f"{folder}: no split {theirs!r} for our {ours!r} (data.hf.splits); "
                              f"it has {', '.join(loaded)}")
        return loaded[theirs]

    return split


def _from_hub(datasets, hf, theirs: str):
    try:
        return datasets.load_dataset(hf.path, hf.name, split=theirs, revision=hf.revision)
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as exc:
        raise CorpusError(f"data.hf.path {hf.path!r}: cannot load split {theirs!r} ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}); a local folder must be one "
                          "save_to_disk wrote") from None


def hf_records(config: DataConfig) -> pd.DataFrame:
    """split, source_file, row, record (JSON text), error: one row per data set row."""
    out = []
    load = _split_loader(config)
    for ours, theirs in config.hf.splits.items():
        source = source_name(config, theirs)
        for number, row in enumerate(load(theirs, ours), start=1):
            text = json.dumps(row, default=str)
            size = len(text.encode("utf-8", "surrogatepass"))
            if size > config.max_row_bytes:
                out.append({"split": ours, "source_file": source, "row": number, "record": "",
                            "error": f"row is {size:,} bytes, above data.max_row_bytes={config.max_row_bytes:,}"})
            else:
                out.append({"split": ours, "source_file": source, "row": number, "record": text, "error": ""})
        if not any(r["source_file"] == source for r in out):
            raise CorpusError(f"{source}: no rows")
    return pd.DataFrame(out, columns=["split", "source_file", "row", "record", "error"])
