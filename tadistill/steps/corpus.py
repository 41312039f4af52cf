"""The corpus step of a run: the data (or the synthetic task) read into canonical rows and rejects."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..artifacts import REJECTS, ROWS
from ..config import SYNTHETIC
from ..console import LOG_ONLY
from ..corpus.read import read_corpus
from ..corpus.synthetic import write_synthetic_source

if TYPE_CHECKING:
    from ..context import RunContext

log = logging.getLogger(__name__)


def step_corpus(ctx: "RunContext") -> dict:
    ctx.services.ray()
    data = ctx.config.data
    if data.source == SYNTHETIC:
        data = write_synthetic_source(data, ctx.run_dir.path / "corpus" / "source")
    corpus = read_corpus(data)
    ctx.run_dir.write_table(ROWS, corpus.rows)
    ctx.run_dir.write_table(REJECTS, corpus.rejects)
    rejects_path = str(ctx.run_dir.location(REJECTS))
    for split, count in corpus.counts.items():
        log.info("corpus: split %-10s %6d rows in, %6d kept, %5d rejected", split, count["rows_in"], count["kept"],
                 count["rejected"], extra=None if count["rejected"] else LOG_ONLY)
    if len(corpus.rejects):
        log.warning("corpus: %d row(s) rejected; see %s", len(corpus.rejects), rejects_path)
    corpus.check_reject_share(data.max_reject_share, rejects_path)
    return {"rows": len(corpus.rows), "rejected": len(corpus.rejects), "splits": corpus.counts}
