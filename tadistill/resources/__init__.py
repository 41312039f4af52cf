"""Files tadistill ships and reads wherever it is installed: the demo's config (a cell of the
quality benchmark), the benchmark's world files, its summary (what the demo compares itself with)
and the plan's measured rates. Read through importlib.resources, never through a checkout's paths.

- demo_benchmark.yaml: `tadistill demo`'s config;
- worlds/*.yaml: the benchmark's named worlds (A-D and the legacy one);
- quality_summary.json: the quality benchmark's summary (bench/quality/stats.py writes it);
- quality_worlds_summary.json, once the drawn worlds' grid is complete: each of their cells' paired
  comparisons (bench/quality/worlds_stats.py writes it);
- plan_rates/rates_*.json: rates measured per kind of config for `tadistill plan`.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def resource(*parts: str) -> Path:
    """The path of a shipped file or folder (a wheel installs them as plain files)."""
    return Path(str(files(__name__).joinpath(*parts)))
