"""`tadistill.run`: one whole run from Python, what the CLI's `tadistill run` does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from .config import Config, load_config


@dataclass(frozen=True)
class RunResult:
    method: str
    accuracy: Optional[float]  # on the test split, of the final student
    requests_paid: int  # teacher requests the run has used, over every invocation
    sent: int  # requests actually sent to the teacher by this invocation (0 on a finished rerun)
    run_dir: Path
    report: Path
    model: Optional[Path]  # the final student's folder (None for `base`, which trains nothing)

    @classmethod
    def of(cls, ctx) -> "RunResult":
        """What a finished pipeline run (its RunContext) amounts to."""
        from .artifacts import requests_paid

        steps = ctx.run_dir.manifest()["steps"]
        return cls(
            method=ctx.config.method, accuracy=steps.get("evaluate", {}).get("accuracy"),
            requests_paid=requests_paid(steps), sent=ctx.teacher_sent, run_dir=ctx.run_dir.path,
            report=ctx.run_dir.path / "report.md", model=Path(ctx.final_model_path()) if ctx.config.stages else None,
        )

    def as_dict(self) -> dict:
        return {"method": self.method, "student accuracy": self.accuracy, "teacher requests paid": self.requests_paid,
                "sent this run": self.sent, "report": str(self.report)}


def run(config: Union[Config, str, Path], overrides: Sequence[str] = (), services=None) -> RunResult:
    """Run every unfinished step of the run a Config (or a YAML file plus key=value overrides)
    describes; a rerun skips finished steps and pays the teacher nothing twice. `services`: a
    started Ray shared by several runs (the demo's methods), left running."""
    from .pipeline import run_pipeline

    if not isinstance(config, Config):
        config = load_config(config, list(overrides))
    elif overrides:
        raise ValueError("overrides apply to a YAML config; change a Config with Config(**...) or model_copy")
    return RunResult.of(run_pipeline(config, services=services))
