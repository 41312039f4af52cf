"""What every step of a run is handed: the config, the run directory, and the run's variants
(teacher, executor, tracker, models), each built once from the config when first asked for.

Steps exchange data only through the run directory's declared artifacts (artifacts.py), and
`run_dir` holds them to it: while a step runs it is that step's view (rundir.StepView), which
refuses an artifact the step does not declare. The context carries what is not data: where the
models are, whom to pay, and where the models answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from .artifacts import FINAL, is_purchase_step, model
from .config import SYNTHETIC, Config
from .rundir import RunDir, StepView

if TYPE_CHECKING:
    from .services import Services


@dataclass
class RunContext:
    config: Config
    run_dir: StepView  # a RunDir given here is viewed: the runner sets the running step
    services: "Services"
    fingerprints: dict[str, str] = field(default_factory=dict)
    teacher_sent: int = 0  # requests actually paid in this invocation
    step_log: list[dict] = field(default_factory=list)
    memo: dict = field(default_factory=dict)  # what a step computes once an invocation (a cascade's trust scale)
    _models: Optional[dict[str, str]] = None
    _budget: object = None
    _teachers: Optional[list] = None
    _executor: object = None
    _tracker: object = None

    def __post_init__(self):
        if isinstance(self.run_dir, RunDir):
            self.run_dir = StepView(self.run_dir)

    @property
    def step(self) -> Optional[str]:
        """The step running now (the runner sets it on the view)."""
        return self.run_dir.step

    def models(self) -> dict[str, str]:
        """Resolved student and TA paths (the synthetic ones are built once, then cached)."""
        if self._models is None:
            paths = {"student": self.config.models.student, "ta": self.config.models.ta}
            if SYNTHETIC in paths.values():
                from .synthetic.models import ensure_synthetic_models

                built = ensure_synthetic_models(self.config.models.cache_dir, self.config.models.synthetic)
                paths = {k: (built[k] if v == SYNTHETIC else v) for k, v in paths.items()}
            self._models = paths
        return self._models

    @property
    def teachers(self) -> list:
        """The run's teachers (teacher/sources.py), cheapest first, built once from `teacher` or `teachers`."""
        if self._teachers is None:
            from .teacher.sources import teachers_for

            self._teachers = teachers_for(self.config, self.services, self.run_dir)
        return self._teachers

    @property
    def teacher(self):
        """The teacher that answers for the run (its budget, pool, description): the first, or the
        one cascade.teacher names."""
        named = self.config.cascade.teacher
        return next((t for t in self.teachers if t.model == named), self.teachers[0])

    def budget(self):
        """The run's budget, made once by the teacher, already charged with what finished
        purchases of every round used and with requests a crashed invocation left in flight."""
        if self._budget is None:
            from .teacher.budget import Spend

            spent = Spend()
            for name, fingerprint in self.fingerprints.items():
                done = is_purchase_step(name) and self.run_dir.finished(name, fingerprint)
                if done:
                    spent = spent + Spend(done["rows"], done.get("prompt_tokens", 0) + done.get("completion_tokens", 0),
                                          done.get("cost", 0.0))
            orphaned = sum((t.orphan_spend() for t in self.teachers), Spend())
            maker = next((t for t in self.teachers if t.needs_ledger), self.teacher)
            self._budget = maker.make_budget(spent + orphaned)
        return self._budget

    @property
    def executor(self):
        """Where the models answer (inference/executor.py), built once from inference.launcher."""
        if self._executor is None:
            from .inference.executor import executor_for

            self._executor = executor_for(self.config.inference, self.services, self.config.data.answer_fallback,
                                          self.config.data.num_blocks)
        return self._executor

    @property
    def tracker(self):
        """The run's experiment-tracker runs (tracking.py), opened when first written to."""
        if self._tracker is None:
            from .tracking import RunTracker

            self._tracker = RunTracker(self.config, self.run_dir.path)
        return self._tracker

    def final_model_path(self) -> str:
        """The student the run ends with: the final one it trained, or the base student for `base`."""
        if self.config.stages == 0:
            return self.models()["student"]
        return str(self.run_dir.location(model(FINAL)))

    def parts(self, folder):
        """Where the running step writes its output block by block, and the fingerprint the blocks
        belong to (a rerun of the same step keeps them; a changed one starts afresh)."""
        return self.run_dir.path / folder, self.fingerprints[self.step]

    def close(self) -> None:
        """Take down what the run deployed (the executor's apps, the simulated teacher) and close
        the tracker runs."""
        if self._tracker is not None:
            self._tracker.close()
        if self._executor is not None:
            self._executor.close()
        for teacher in self._teachers or []:
            teacher.close()
