"""The corpus stage: data files (or the synthetic task) -> canonical rows, rejects, counts.

files.py reads JSONL / JSON / Parquet / CSV into numbered records; presets.py and the
generic field map say where a question's parts sit in a record; canonical.py normalises
one record into a row or a reject reason; read.py runs it all on Ray Data;
inspect.py summarises a corpus for `tadistill data inspect`.
"""

from ..artifacts import CANONICAL_COLUMNS, REJECT_COLUMNS
from .canonical import question_key, stable_id
from .files import CorpusError
from .read import Corpus, read_corpus
from .synthetic import SYNTHETIC_TASK, write_synthetic_source

__all__ = [
    "CANONICAL_COLUMNS", "REJECT_COLUMNS", "Corpus", "CorpusError", "SYNTHETIC_TASK",
    "question_key", "read_corpus", "stable_id", "write_synthetic_source",
]
