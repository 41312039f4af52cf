"""Does the method work? A fair, paired comparison of methods at the same teacher budget and
the same training compute, in simulated worlds shaped like real distillation.

    .venv/bin/python -m bench.quality.bench                 # the pre-registered grid (README.md here)
    .venv/bin/python -m bench.quality.bench --grid issue26  # issue 26's grid: worlds A, B, C at budgets 300, 600
    .venv/bin/python -m bench.quality.bench --grid issue26b --phases 0 2 4 6   # its second grid, one process of two
    .venv/bin/python -m bench.quality.bench --quick         # one cell, one seed (a smoke run)
    .venv/bin/python -m bench.quality.bench --tune          # choose lr/epochs for `none` on validation
    .venv/bin/python -m bench.quality.bench --cell shaped 0.4 400 --seeds 0 1 --methods none,full
    .venv/bin/python -m bench.quality.bench --cell configs/datasets/svamp_dss.yaml recorded 150 \
        --set models.student=/path/to/student --set models.ta=/path/to/ta      # a real data set

Every run appends one JSON object to the results file (default docs/results/quality.jsonl):
world, error_rate, budget, seed, method, accuracy, test_questions, optimizer_steps,
examples_seen, requests_paid and diagnostics. A rerun skips the runs already recorded, so an
interrupted grid continues where it stopped. `python -m bench.quality.stats` turns the file
into the summary (paired-bootstrap CIs), the plots and the README's table.

Fairness, as built into the pipeline (train.schedule fair): every method's final student
trains from the base student on everything bought, for the same optimizer steps (train.epochs
x budget / global batch), so methods differ only in which questions were bought and how their
outputs are weighted. The seed varies the purchase, the picks, the training order and the
student's sampling. Runs that share first steps share them for real (a seed's warm-up,
stage-1 model, samples, scores and trust calibration are computed once and copied).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.quality.machine import arithmetic_key, weights_fingerprint

REPO = Path(__file__).resolve().parents[2]
WORLDS = {name: REPO / "tadistill" / "resources" / "worlds" / f"{name}.yaml" for name in ("shaped", "holdout", "legacy", "weak", "long")}
RESULTS = REPO / "docs" / "results" / "quality.jsonl"
MAIN_METHODS = ("base", "none", "oracle", "random", "full")

# Fixed for every run of the benchmark. Training settings (lr, epochs) were chosen for `none` on
# the validation split of the tuning world (--tune; see README.md here) before the measured run.
TRAINING = ["train.lr=0.001", "train.epochs=20"]
SETTINGS = [
    "train.launcher=local", "train.strategy=ddp", "train.num_workers=1",
    "train.global_batch_size=16", "train.micro_batch_size=16",
    "inference.launcher=local", "inference.num_samples=4", "selection.candidates=1200",
    # Every grid before issue 38's kept the final training's last weights (the default then); issue
    # 38's grid sets best_on_probe for every method, as its pre-registration says.
    "train.final_pick=last",
]

# The pre-registered grid (bench/quality/README.md): phases of (world, teacher error, budget,
# methods), each run seed-major, in this order.
FACTORIAL_CELL = ("shaped", 0.4, 300)
GRIDS = {
    "default": {
        "seeds": list(range(10)),
        "phases": [
            [(*FACTORIAL_CELL, "main"), ("holdout", 0.4, 300, "main")],
            [(*FACTORIAL_CELL, "factorial")],
            [("shaped", 0.2, 300, "main"), ("shaped", 0.0, 300, "main"), ("shaped", 0.4, 600, "main")],
        ],
    },
    # Issue 26's grid (pre-registered in README.md here, 2026-12-02): teacher error 0.4, budgets 300
    # and 600, worlds A, B and C; what the first grid recorded is not run again.
    "issue26": {
        "seeds": list(range(10)),
        "phases": [
            [("weak", 0.4, 300, "issue26")],
            [("weak", 0.4, 600, "issue26")],
            [("holdout", 0.4, 600, "issue26")],
            [("shaped", 0.4, 300, "frontier_weight"), ("holdout", 0.4, 300, "frontier_weight"),
             ("shaped", 0.4, 600, "frontier_weight")],
        ],
    },
    # Issue 26's second grid (README.md here, 2026-12-04): every run on this machine's arithmetic,
    # in a results file of its own; the recipe and the headline method chosen on world A's
    # validation split before any of its runs. Cells run cell-major (a cell completes before the
    # next starts), the worlds nobody tuned on first.
    "issue26b": {
        "seeds": list(range(10)),
        "phases": [[("weak", 0.4, 300, "issue26b")], [("long", 0.4, 300, "issue26b")],
                   [("shaped", 0.4, 300, "issue26b")], [("holdout", 0.4, 300, "issue26b")],
                   [("weak", 0.4, 600, "issue26b")], [("long", 0.4, 600, "issue26b")],
                   [("shaped", 0.4, 600, "issue26b")], [("holdout", 0.4, 600, "issue26b")]],
        "settings": ["train.start_weight_share=0.5"],
        "results": REPO / "docs" / "results" / "quality_issue26.jsonl",
    },
    # Issue 27: does a better trust signal make trust help on the synthetic worlds? The first grid's
    # settings (no averaging), full's selection with four trusts: none, the TA's likelihood (full),
    # answer confidence, and the combination learnt from 30 gold-labelled outputs of the validation
    # split (paid from the same budget). Pre-registered in bench/quality/README.md.
    "issue27": {
        "seeds": list(range(10)),
        "phases": [[("shaped", 0.4, 300, "issue27")], [("holdout", 0.4, 300, "issue27")]],
        "results": REPO / "docs" / "results" / "quality_issue27.jsonl",
    },
    # Issue 28: a cheap and a dear simulated teacher, one money budget (TEACHER_VARIANTS).
    "issue28": {
        "seeds": list(range(10)),
        # (the cell's error rate is the cheap teacher's; budget.requests bounds the questions)
        "phases": [[("shaped", 0.5, 600, "issue28")], [("holdout", 0.5, 600, "issue28")]],
        "results": REPO / "docs" / "results" / "quality_issue28.jsonl",
    },
    "quick": {"seeds": [0], "phases": [[(*FACTORIAL_CELL, "main")]]},
}


def _drawn_grid(draw: str, seeds: list[int], methods: str, split: str) -> dict:
    """Issue 38: each world of a pre-registered draw (bench/quality/worlds.py) at its own teacher
    error and budget, one cell a phase; records in quality_worlds.jsonl with the world's knobs."""
    from bench.quality.worlds import draw as worlds_of

    return {"seeds": seeds, "phases": [[(w.name, w.error_rate, w.budget, methods)] for w in worlds_of(draw)],
            "settings": [f"data.test_split={split}"] if split != "test" else [],
            "results": REPO / "docs" / "results" / ("quality_worlds.jsonl" if split == "test" else "quality_worlds_dev.jsonl")}


# Issue 38 (bench/quality/README.md): the development draw on its validation splits (every choice
# made there), and the measurement draw on its test splits (never used for a choice).
GRIDS["issue38_dev"] = _drawn_grid("dev", [0, 1, 2], "issue38_dev", "validation")
GRIDS["issue38"] = _drawn_grid("measure", list(range(6)), "issue38", "test")
# Measured after auto was fixed (README.md here): every method's final student the best on the
# labelled probe of its checkpoints and their averages with the start (issue 38, item 4: part of
# the recipe, for every method alike), and world A at budget 600 after the 12 drawn worlds.
GRIDS["issue38"]["settings"] = ["train.final_pick=best_on_probe"]
GRIDS["issue38"]["phases"].append([("shaped", 0.4, 600, "issue38_a")])

# A method with settings of its own, recorded under its own name: (method, overrides, the splits
# its recorded teacher must answer besides the pool).
VARIANTS = {
    "full_answer_confidence": ("full", ["trust.signal=answer_confidence"], ()),
    "full_combined": ("full", ["trust.signal=combined", "trust.calibration_split=validation",
                               "trust.calibration_questions=30"], ("validation",)),
    # Issue 38 (5), bench/quality/trust_modes.py: full with the trust weight on the answer alone
    # (the method both_answer_weight), and none with the soft loss (generalized cross-entropy).
    "full_answer_weight": ("both_answer_weight", [], ()),
    "none_gce": ("none", ["train.loss=gce"], ()),
}

# Issue 38: the settings of the `progress` rule `auto` is chosen among on the development draw,
# by the rule written in README.md here before any of their runs. Each is `progress_none` with
# its rounds, random floor (ALP-GMM's 20%, not varied) and evidence threshold.
AUTO_GRID = {"rounds": (1, 3), "random_floor": (0.2,), "evidence_z": (1.0, 2.0)}
AUTO_CANDIDATES = []
for _r, _f, _z in itertools.product(*AUTO_GRID.values()):
    AUTO_CANDIDATES.append(f"progress_r{_r}_f{_f}_z{_z:g}")
    VARIANTS[AUTO_CANDIDATES[-1]] = (
        "progress_none", [f"budget.rounds={_r}", f"selection.random_floor={_f}", f"selection.evidence_z={_z}"], ())

# Issue 38, amended before the choice (README.md here): the `regime` rule's candidates, added when
# every `progress` candidate was 25-35% behind `none` in drawn38002 on every seed. Each is
# `regime_none` after one warm-up (one regime test), its purchase sampled in proportion to rank,
# with the same random floor, at evidence thresholds of 1 and 2 standard errors.
REGIME_GRID = {"rounds": (1,), "random_floor": (0.2,), "evidence_z": (1.0, 2.0)}
for _r, _f, _z in itertools.product(*REGIME_GRID.values()):
    AUTO_CANDIDATES.append(f"regime_r{_r}_f{_f}_z{_z:g}_rank")
    VARIANTS[AUTO_CANDIDATES[-1]] = (
        "regime_none", [f"budget.rounds={_r}", f"selection.random_floor={_f}", f"selection.evidence_z={_z}",
                        "selection.sampling=rank"], ())

# What the development grid still runs: the `progress` candidates were stopped on the amendment.
RUN_CANDIDATES = [c for c in AUTO_CANDIDATES if c.startswith("regime_")]

# Issue 28: two simulated teachers of the world (its teacher's profile at two error rates) at
# prices 10x apart, one money budget. Each policy trains `none`'s way on what it bought, for the
# same optimizer steps; the money is what about 150 requests to the dear teacher cost, and
# budget.requests (600) bounds the questions. Pre-registered in bench/quality/README.md.
CASCADE_TEACHERS = {"cheap": 0.5, "dear": 0.1}  # model -> error rate
CASCADE_SETTINGS = ["budget.cost=0.1", "budget.prices={cheap: {prompt: 1, completion: 1}, "
                    "dear: {prompt: 10, completion: 10}}", "train.steps=375", "cascade.batch=32"]
TEACHER_VARIANTS = {  # name -> the policy's settings
    "cheap_only": ["cascade.policy=fixed", "cascade.teacher=cheap"],
    "dear_only": ["cascade.policy=fixed", "cascade.teacher=dear"],
    "cascade": ["cascade.policy=cascade"],
}


def recorded_teachers_override(world: str, out: Path) -> str:
    """`teachers=[...]`: the world's simulated teacher at CASCADE_TEACHERS' error rates (the world's
    teacher seed for the cheap one, the next seed for the dear one), each recorded once for the
    pool like `recorded_teacher`'s: a run buys the endpoint's own texts from the record, each
    request charged the words the endpoint would have counted at its model's price, so two grid
    processes run side by side without a Serve of their own."""
    from tadistill.config import load_config
    from tadistill.corpus.synthetic import synthetic_splits
    from tadistill.synthetic.teacher_server import TeacherProfile, write_teacher_records

    entries = []
    for i, (model, rate) in enumerate(CASCADE_TEACHERS.items()):
        seed = load_config(world_file(world)).teacher.synthetic.seed + i
        config = load_config(world_file(world), [f"teacher.synthetic.error_rate={rate}", f"teacher.synthetic.seed={seed}"])
        path = out / "teachers" / f"{world_file(world).stem}-{model}-error{rate}-seed{seed}.jsonl"
        if not path.exists():
            splits = synthetic_splits(config.data)
            write_teacher_records(splits[config.data.pool_split],
                                  TeacherProfile.from_config(config.teacher.synthetic, config.data.synthetic), path)
        entries.append({"source": "recorded", "model": model,
                        "recorded": {"files": [str(path)], "format": "records", "match": "id", "fields": {"id": "id"}}})
    return "teachers=" + json.dumps(entries)


def method_set(name: str) -> list[str]:
    from tadistill.methods import FACTORIAL

    if name == "main":
        return list(MAIN_METHODS)
    if name == "issue26":
        return ["base", "none", "random", "full", "frontier_weight"]
    if name == "issue26b":
        return ["base", "none", "random", "full", "proximal_weight"]
    if name == "issue28":
        return list(TEACHER_VARIANTS)
    if name == "issue38_dev":  # the candidates `auto` is chosen among, and the baselines (README.md here)
        return ["base", "none", "random", "full", "sc_weight", "shortest_none", *RUN_CANDIDATES]
    if name == "issue38":
        return ["base", "none", "random", "full", "sc_weight", "shortest_none", "auto"]
    if name == "issue38_a":
        return ["base", "none", "random", "full", "auto"]
    if name == "issue27":
        return ["both_none", "full", "full_answer_confidence", "full_combined"]
    if name == "factorial":
        # full = both_weight and random = random_none, under the names the other cells use.
        aliases = {"both_weight": "full", "random_none": "random"}
        return ["base", "none", "oracle", "ta_teacher_only", *(aliases.get(m, m) for m in FACTORIAL)]
    return name.split(",")


def sharing_order(methods: list[str]) -> list[str]:
    """`none` first among one-stage methods and `full` among two-stage ones: later methods start
    from a copy of that run, which holds every step they can share (full has the samples, the
    scores and the trust calibration)."""
    lead = {"none": 0, "full": 0}
    return sorted(methods, key=lambda m: lead.get(m, 1))


def seed_overrides(seed: int) -> list[str]:
    """One seed varies everything random: purchase and picks, training order, sampling."""
    return [f"seed={seed}", f"train.seed={seed}", f"inference.seed={seed}"]


def recorded_teacher(world: str, rate: float, out: Path, also: tuple = ()) -> list[str]:
    """The world's simulated teacher at this error rate, recorded once for the pool (and the
    splits in `also`): runs buy from the record (charged to their budget like live calls), the
    endpoint's own texts."""
    from tadistill.config import load_config
    from tadistill.corpus.synthetic import synthetic_splits
    from tadistill.synthetic.teacher_server import TeacherProfile, write_teacher_records

    config = load_config(world_file(world), [f"teacher.synthetic.error_rate={rate}"])
    profile = TeacherProfile.from_config(config.teacher.synthetic, config.data.synthetic)
    path = out / "teachers" / f"{world_file(world).stem}-error{rate}{''.join('-' + s for s in also)}.jsonl"
    if not path.exists():
        splits = synthetic_splits(config.data)
        write_teacher_records([p for name in (config.data.pool_split, *also) for p in splits[name]], profile, path)
    return ["teacher.source=recorded", f"teacher.recorded.files=[{path}]", "teacher.recorded.format=records",
            "teacher.recorded.match=id", "teacher.recorded.fields.id=id", f"teacher.synthetic.error_rate={rate}"]


def _steps_of(question: str) -> int:
    """A synthetic question's step count: its sentences less the first and the last."""
    return question.count(".") - 1


def run_record(run_dir: Path) -> dict:
    """What one finished run measured, read back from its directory."""
    from tadistill.artifacts import requests_paid

    manifest = json.loads((run_dir / "manifest.json").read_text())["steps"]
    from tadistill.corpus.synthetic import SYNTHETIC_TASK

    rows = pd.read_parquet(run_dir / "corpus" / "rows.parquet", columns=["id", "question", "gold", "task"])
    answers = pd.read_parquet(run_dir / "eval" / "answers.parquet", columns=["id", "correct"])
    steps = answers["id"].map(rows.set_index("id")["question"].map(_steps_of))
    synthetic = bool((rows["task"] == SYNTHETIC_TASK).all())
    final = "final.train" if "final.train" in manifest else None
    record = {
        "accuracy": manifest["evaluate"]["accuracy"], "correct": manifest["evaluate"]["correct"],
        "test_questions": manifest["evaluate"]["total"],
        # Synthetic questions only: a real data set's sentences are not steps.
        "accuracy_hard": float(answers.loc[steps >= 3, "correct"].mean()) if synthetic else None,
        "optimizer_steps": manifest[final]["optimizer_steps"] if final else 0,
        "examples_seen": manifest[final]["examples_seen"] if final else 0,
        "requests_paid": requests_paid(manifest),
        **_money(manifest),
        # Issue 38: which weights the final student ended with (train.final_pick 'best_on_probe';
        # 'start' is the report's "distillation did not help"), and what a regime test decided.
        **({"final_pick": manifest[final]["final_pick"]} if final and "final_pick" in manifest[final] else {}),
        **_decisions(manifest),
    }
    return {**record, **_purchase_stats(run_dir, rows)}


def _decisions(manifest: dict) -> dict:
    """Each round's regime decision, in round order, where the run's rule made one."""
    said = [entry["regime_decision"] for name, entry in sorted(manifest.items())
            if name.endswith(".select") and "regime_decision" in entry]
    return {"regime_decisions": said} if said else {}


def _money(manifest: dict) -> dict:
    """What a run's purchases cost (runs with priced teachers), and per teacher what it bought."""
    from tadistill.artifacts import is_purchase_step

    buys = [entry for name, entry in manifest.items() if is_purchase_step(name)]
    if not any("cost" in entry for entry in buys):
        return {}
    per_teacher: dict[str, dict] = {}
    for entry in buys:
        for row in entry.get("by_teacher", []):
            into = per_teacher.setdefault(row["teacher"], {"teacher": row["teacher"], "questions": 0, "escalated": 0, "cost": 0.0})
            for key in ("questions", "escalated", "cost"):
                into[key] += row.get(key, 0)
    return {"money": float(sum(entry.get("cost", 0.0) for entry in buys)), "by_teacher": list(per_teacher.values())}


def final_trust_path(run_dir: Path) -> Path | None:
    """The trust table the run's final student learned from, or None (it learned the purchase as bought)."""
    from tadistill.artifacts import TRUSTED
    from tadistill.config import Config
    from tadistill.plan import plan

    trust = plan(Config.model_validate_json((run_dir / "config.json").read_text())).final_source()
    return run_dir / trust if trust is not None and trust.kind == TRUSTED else None


def _purchase_stats(run_dir: Path, rows: pd.DataFrame) -> dict:
    """The teacher's error on what was bought, and the wrong outputs' share of the loss."""
    path = final_trust_path(run_dir)
    if path is None or not path.exists():
        path = run_dir / "final" / "train_rows.parquet"
        if not path.exists():
            return {}
        bought = pd.read_parquet(run_dir / "teacher" / "warmup.parquet")
        weights = pd.read_parquet(path)[["id", "weight"]]
        bought = bought.merge(weights, on="id", how="left").fillna({"weight": 0.0})
    else:
        bought = pd.read_parquet(path)
    stats = output_stats(bought, rows.set_index("id")["gold"])
    stats["bought_mean_steps"] = float(bought["id"].map(rows.set_index("id")["question"].map(_steps_of)).mean())
    return stats


def output_stats(bought: pd.DataFrame, gold: pd.Series) -> dict:
    """Bought outputs (answer, weight, optional trust_value) against gold: the wrong ones'
    share of the purchase and of the loss, the mean weight of right and wrong ones, and the
    AUROC of TA confidence for telling them apart."""
    right = (bought["answer"].notna() & (bought["answer"] == bought["id"].map(gold))).to_numpy(dtype=bool)
    weight = bought["weight"].to_numpy(dtype=float)
    stats = {
        "bought_wrong_share": float((~right).mean()),
        "loss_wrong_share": float((weight * ~right).sum() / weight.sum()) if weight.sum() else None,
        "right_mean_weight": float(weight[right].mean()) if right.any() else None,
        "wrong_mean_weight": float(weight[~right].mean()) if (~right).any() else None,
    }
    value = "trust_value" if "trust_value" in bought else "ta_conf_teacher"  # its name in runs before the rename
    if value in bought and bought[value].notna().all() and right.any() and (~right).any():
        from tadistill.tables import auroc

        conf = bought[value].to_numpy(dtype=float)
        stats["ta_auroc"] = auroc(conf[right], conf[~right])
    return stats


def _run(overrides: list[str], run_dir: Path, seed_from: Path | None) -> dict:
    from tadistill.config import load_config
    from tadistill.pipeline import run_pipeline

    if seed_from is not None and not run_dir.exists():
        shutil.copytree(seed_from, run_dir, ignore=shutil.ignore_patterns("report.md", "figures", "eval", "ray_train", "run.lock"))
    config = load_config(None, [*overrides, f"run_dir={run_dir}"])
    started = time.time()
    ctx = run_pipeline(config)
    return {**run_record(run_dir), "seconds": round(time.time() - started, 1),
            "ran": [s["step"] for s in ctx.step_log if s["status"] == "ran"],
            "models": {name: weights_fingerprint(path) for name, path in ctx.models().items()}}


def world_file(world: str) -> Path:
    """A named world of tadistill/resources/worlds/, a drawn one (`drawn<seed>`: bench/quality/worlds.py writes
    its file from its seed), or any config file (a real data set with a recorded teacher)."""
    from bench.quality.worlds import drawn_seed, draw_world, write_world

    if drawn_seed(world) is not None:
        return write_world(draw_world(drawn_seed(world)))
    return WORLDS.get(world, Path(world))


def _world_overrides(world: str) -> list[str]:
    """The world's YAML as overrides (so a grid run can layer the teacher and seed on top)."""
    import yaml

    def flatten(tree: dict, prefix: str = "") -> list[str]:
        out = []
        for key, value in tree.items():
            if isinstance(value, dict):
                out += flatten(value, f"{prefix}{key}.")
            else:
                out.append(f"{prefix}{key}={json.dumps(value)}")
        return out

    return flatten(yaml.safe_load(world_file(world).read_text()))


def cell_dir(out: Path, world: str, rate, budget: int) -> Path:
    """Where a cell's runs go: one folder a seed, one run directory a method inside it."""
    return out / "runs" / f"{world_file(world).stem}_err{rate}_b{budget}"


def run_seed(world: str, rate: float, budget: int, seed: int, methods: list[str], out: Path,
             done: set, results: Path, extra: list[str]) -> None:
    """Every method of one (world, error, budget, seed), sharing what they share."""
    from tadistill.methods import method

    # A synthetic world buys from its simulated teacher's record at this error rate; a data set's
    # config (rate None) from the recorded teacher it names, which errs as it did.
    def base(also: tuple = ()) -> list[str]:
        teacher = recorded_teacher(world, rate, out, also) if rate is not None else []
        return [*_world_overrides(world), *teacher, *SETTINGS, *TRAINING, f"budget.requests={budget}",
                *seed_overrides(seed), "models.cache_dir=" + str(REPO / ".cache" / "tadistill"), *extra]

    def with_teachers() -> list[str]:
        """A teacher policy's run: the world less its one teacher, the two simulated ones instead."""
        world_keys = [o for o in _world_overrides(world) if not o.startswith("teacher.")]
        return [*world_keys, recorded_teachers_override(world, out), *SETTINGS, *TRAINING, f"budget.requests={budget}",
                *seed_overrides(seed), "models.cache_dir=" + str(REPO / ".cache" / "tadistill"), *CASCADE_SETTINGS,
                *extra]

    cell = cell_dir(out, world, rate, budget) / f"seed{seed}"
    first = {}  # stages -> the first run directory of that shape, which later ones copy
    for name in sharing_order(methods):
        key = (world, rate, budget, seed, name)
        if name in TEACHER_VARIANTS:  # nothing to share with the single-teacher runs
            if key not in done:
                result = _run([*with_teachers(), "method=none", *TEACHER_VARIANTS[name]], cell / name, None)
                _record(results, done, key, result)
            continue
        preset, settings, also = VARIANTS.get(name, (name, [], ()))
        stages = method(preset).stages
        if key in done:
            if (cell / name / "manifest.json").exists():  # recorded earlier: still a run to share from
                first.setdefault(stages, cell / name)
            continue
        result = _run([*base(also), f"method={preset}", *settings], cell / name, first.get(stages))
        first.setdefault(stages, cell / name)
        _record(results, done, key, result)


def _record(results: Path, done: set, key: tuple, result: dict) -> None:
    """Append one finished run to the results file (and say so)."""
    from bench.quality.worlds import world_record

    world, rate, budget, seed, name = key
    record = {"world": world, "error_rate": rate, "budget": budget, "seed": seed, "method": name, **result,
              **world_record(world), "arithmetic": arithmetic_key()}
    with results.open("a") as handle:
        handle.write(json.dumps(record, default=_jsonable) + "\n")
    done.add(key)
    hard = f" (hard {result['accuracy_hard']:.3f})" if result["accuracy_hard"] is not None else ""
    print(f"  {world} err {rate} budget {budget} seed {seed} {name:>16}: accuracy {result['accuracy']:.3f}"
          f"{hard}, {result['optimizer_steps']} steps, "
          f"{result['requests_paid']} requests, {result['seconds']:.0f} s", flush=True)


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def recorded_runs(results: Path) -> set:
    if not results.exists():
        return set()
    keys = set()
    for line in results.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            keys.add((r["world"], r["error_rate"], r["budget"], r["seed"], r["method"]))
    return keys


def tune(out: Path, lrs: list[float], epochs: list[int], seeds: list[int], budget: int, rate: float,
         extra: list[str]) -> None:
    """`none` on the tuning world's validation split, over a grid of learning rates and epochs."""
    rows = []
    for lr in lrs:
        for ep in epochs:
            accs = []
            for seed in seeds:
                overrides = [*_world_overrides("shaped"), *recorded_teacher("shaped", rate, out), *SETTINGS,
                             f"train.lr={lr}", f"train.epochs={ep}", f"budget.requests={budget}",
                             *seed_overrides(seed), "data.test_split=validation", "method=none",
                             "models.cache_dir=" + str(REPO / ".cache" / "tadistill"), *extra]
                run_dir = out / "tune" / f"lr{lr}_ep{ep}_s{seed}_{'_'.join(extra).replace('=', '')}"
                accs.append(_run(overrides, run_dir, None)["accuracy"])
            rows.append({"lr": lr, "epochs": ep, "validation_accuracy": float(np.mean(accs)), "seeds": seeds,
                         "runs": accs, "extra": extra})
            print(f"  lr {lr} epochs {ep}: validation accuracy {np.mean(accs):.3f} ({accs})", flush=True)
    with (out / "tune.jsonl").open("a") as handle:  # every tuning pass is kept
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    best = max(rows, key=lambda r: r["validation_accuracy"])
    print(f"best: lr {best['lr']} epochs {best['epochs']} ({best['validation_accuracy']:.3f}); appended to {out / 'tune.jsonl'}")


def _start_ray() -> None:
    """One Ray for the whole grid (corpus reading uses Ray Data): each run joins it."""
    import ray

    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """--threads, shared by the quality scripts that run the pipeline in this process."""
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of this process (two processes of 1 thread use 2 cores better than two of 2)")


def use_threads(threads: int | None) -> None:
    """This process's torch threads, where --threads names them (torch's default otherwise)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one cell, one seed, the main methods")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="default", help="which pre-registered grid to run")
    parser.add_argument("--cell", nargs=3, metavar=("WORLD", "ERROR", "BUDGET"),
                        help="run one cell only: a world name or config file, a teacher error rate ('recorded' for a "
                             "data set's recorded teacher), a budget")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--phases", type=int, nargs="+", default=None,
                        help="run only these phases of the grid (0-based; two processes can split a grid's cells)")
    parser.add_argument("--methods", default=None, help="'main', 'factorial' or a comma-separated list")
    parser.add_argument("--set", action="append", default=[], help="key=value override for every run")
    parser.add_argument("--results", default=str(RESULTS), help="the JSON-lines file runs are appended to")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "quality"), help="run directories")
    add_threads_option(parser)
    parser.add_argument("--tune", action="store_true", help="choose lr/epochs for `none` on the validation split")
    parser.add_argument("--tune-lrs", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3])
    parser.add_argument("--tune-epochs", type=int, nargs="+", default=[3, 6, 12])
    args = parser.parse_args()
    use_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _start_ray()
    started = time.time()
    if args.tune:
        tune(out, args.tune_lrs, args.tune_epochs, args.seeds or [100, 101], *FACTORIAL_CELL[2:0:-1], args.set)
        return
    grid = GRIDS["quick" if args.quick else args.grid]
    phases = grid["phases"] if args.phases is None else [grid["phases"][i] for i in args.phases]
    if args.cell:
        world, rate, budget = args.cell
        rate = None if rate == "recorded" else float(rate)
        phases = [[(world, rate, int(budget), args.methods or "main")]]
    elif args.methods:
        phases = [[(w, r, b, args.methods) for w, r, b, _ in phase] for phase in phases]
    results = Path(args.results if args.results != str(RESULTS) else grid.get("results", RESULTS))
    results.parent.mkdir(parents=True, exist_ok=True)
    extra = [*grid.get("settings", []), *args.set]
    done = recorded_runs(results)
    # Phase by phase, each seed-major: a phase cut short still has paired comparisons in every
    # cell, and a rerun continues from the first run not recorded.
    for phase in phases:
        for seed in args.seeds or grid["seeds"]:
            for world, rate, budget, methods in phase:
                run_seed(world, rate, budget, seed, method_set(methods), out, done, results, extra)
    print(f"done in {(time.time() - started) / 60:.1f} minutes; results in {results}")


if __name__ == "__main__":
    main()
