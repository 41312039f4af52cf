"""Running a plan (plan.py) over the run directory: every unfinished step in order, finished ones
skipped by fingerprint, the teacher checked before anything is paid, and one console line a step.

Where each step's work lives: steps/corpus.py, steps/teacher.py (the pick and every purchase),
steps/signals.py (sampling, scoring, selection, trust), steps/train.py, evaluate.py, report.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Optional

from .interrupt import heard, kept
from .config import Config
from .console import LOG_ONLY
from .context import RunContext
from .plan import Step, plan
from .preflight import check_before_running
from .rundir import STORAGE_ERRNOS, RunDir, storage_problem
from .services import Services
from .version import __version__

log = logging.getLogger(__name__)

# Step names of the layout before rounds (two fixed stages): a run directory holding them is rerun.
EARLIER_LAYOUT = ("warmup_pick", "teacher_stage1", "train_stage1", "teacher_stage2", "train_stage2")


def fingerprint(config: Config, step: Step, upstream: list[str]) -> str:
    """A hash of the step's config keys, what it derives from the config, and the fingerprints of
    the steps that wrote what it reads."""
    payload = {
        "step": step.name,
        "version": __version__,
        "config": config.section_hash(*step.config_keys) if step.config_keys else "",
        "upstream": upstream,
    }
    if step.derived:
        payload["derived"] = step.derived(config)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def run_pipeline(config: Config, services: Optional[Services] = None) -> RunContext:
    """Run every unfinished step in order; return the context with what happened. One invocation
    at a time per run directory: a second is refused while the first lives."""
    run_dir = RunDir(config.run_dir)
    with run_dir.in_use():
        return _run_steps(config, run_dir, services)


def _run_steps(config: Config, run_dir: RunDir, services: Optional[Services]) -> RunContext:
    own_services = services is None
    services = services or Services(config)
    run_dir.write_text("config.json", config.model_dump_json(indent=2))
    ctx = RunContext(config=config, run_dir=run_dir, services=services)  # its run_dir: the running step's view
    steps = plan(config)
    for step in steps:  # fingerprints first, so the budget knows which purchases still count
        ctx.fingerprints[step.name] = fingerprint(config, step, [ctx.fingerprints[s.name] for s in steps.upstream(step)])
    _say_if_earlier_layout(run_dir)
    unfinished = [s.name for s in steps
                  if not s.every_invocation and not run_dir.finished(s.name, ctx.fingerprints[s.name])]
    check_before_running(ctx, unfinished)  # a bad model, data file, resource need or endpoint: before any money
    try:
        for step in steps:
            fp = ctx.fingerprints[step.name]
            done = run_dir.finished(step.name, fp)
            if done and not all(run_dir.has(out) for out in step.writes):
                log.warning("step %-16s finished earlier but its output is gone; running it again", step.name)
                done = None
            if done and not step.every_invocation:
                ctx.step_log.append({"step": step.name, "status": "skipped", **_summary(done)})
                log.info("%-16s skipped (finished earlier)", step.name)
                continue
            log.info("step %-16s running", step.name, extra=LOG_ONLY)
            started = time.time()
            try:
                # kept(): a handler a library installed in the step ends with it
                with kept(), ctx.run_dir.running(step.name, step.reads, step.writes):
                    info = step.run(ctx)
            except KeyboardInterrupt:
                heard()  # Ctrl-C or SIGTERM reached the run: stop it, take down what it started
                raise
            except OSError as exc:  # a full or read-only run directory, met by any writer of the step
                if exc.errno not in STORAGE_ERRNOS:
                    raise
                raise storage_problem(run_dir.path, f"step {step.name}", exc) from exc
            seconds = round(time.time() - started, 1)
            entry = {"fingerprint": fp, "seconds": seconds, **info}
            if not step.every_invocation:
                run_dir.record(step.name, entry)
            ctx.step_log.append({"step": step.name, "status": "ran", **_summary(entry)})
            log.info("%-16s done in %5.1f s  %s", step.name, seconds, _headline(info))
            log.info("step %-16s %s", step.name, _summary(info), extra=LOG_ONLY)
    finally:
        ctx.close()
        if own_services:
            services.shutdown()
    return ctx


def _headline(info: dict, most: int = 4) -> str:
    """A step's first few counts, for its console line (everything is in the run's log)."""
    shown = [f"{k.replace('_', ' ')} {v:.4g}" if isinstance(v, float) else f"{k.replace('_', ' ')} {v}"
             for k, v in info.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seconds"]
    return ", ".join(shown[:most])


def _summary(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k not in ("fingerprint", "finished_at")}


def _say_if_earlier_layout(run_dir: RunDir) -> None:
    """A run directory written before runs had rounds: say once that its steps run again (their
    names changed) and that stored teacher responses are reused, so nothing is paid twice."""
    steps = run_dir.manifest()["steps"]
    earlier = [name for name in EARLIER_LAYOUT if name in steps]
    if earlier:
        log.warning("%s was written by an earlier tadistill (two fixed stages: %s): its steps run again under "
                    "the round layout; stored teacher responses in teacher/cache/ are reused, so no request is "
                    "paid twice", run_dir.path, ", ".join(earlier))
