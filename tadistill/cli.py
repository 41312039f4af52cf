"""Command line: `tadistill run CONFIG [key=value ...]`, `tadistill demo`, `tadistill data inspect CONFIG`,
`tadistill plan CONFIG`, `tadistill export RUN_DIR`, `tadistill config show`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Optional

from . import console
from .interrupt import exit_code, install as install_stop_handlers
from .version import __version__
from .config import Config, ConfigError, describe_options, load_config
from .corpus.files import CorpusError
from .resources import resource
from .rundir import RunDir, RunDirError

log = logging.getLogger("tadistill")

# Plain fine-tuning against the method every user gets by default (whichever that is).
DEMO_METHODS = ("none", Config.model_fields["method"].default)
# The demo is one cell of the quality benchmark, as the benchmark runs it (the file says which).
DEMO_CONFIG = resource("demo_benchmark.yaml")
WORLDS = resource("worlds")
RUN_LOG = "run.log"


def cmd_run(args) -> int:
    from .api import run

    config = load_config(args.config, args.overrides)
    started = time.time()
    # Held before the run's log opens: a second invocation is refused without writing into it.
    with RunDir(config.run_dir).in_use(), console.run_log(Path(config.run_dir) / RUN_LOG, args.verbose) as log_file:
        log.info("tadistill run: method %s, budget %d teacher requests; details in %s", config.method,
                 config.budget.requests, log_file)
        result = run(config)
    console.out(json.dumps({**result.as_dict(), "time (s)": round(time.time() - started, 1)}, indent=2))
    return 0


def format_table(rows: list[dict], columns: list[str]) -> str:
    def cell(row: dict, column: str) -> str:
        value = row[column]
        if isinstance(value, float):
            return f"{value:.3f}" if "accuracy" in column else f"{value:.1f}"
        return str(value)

    widths = {c: max(len(c), *(len(cell(r, c)) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines.append("  ".join("-" * widths[c] for c in columns))
    lines += ["  ".join(cell(r, c).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def cmd_demo(args) -> int:
    from .api import run
    from .services import Services

    if args.config is None and DEMO_CONFIG.exists():
        args.config = str(DEMO_CONFIG)
    base = load_config(args.config, args.overrides)
    root = Path(args.run_root)
    outcomes = []
    services: Optional[Services] = None
    with console.run_log(root / RUN_LOG, args.verbose) as log_file:
        log.info("tadistill demo: %s on budget %d, teacher error %s; details in %s", " and ".join(DEMO_METHODS),
                 base.budget.requests, base.teacher.synthetic.error_rate, log_file)
        try:
            for method in DEMO_METHODS:
                config = load_config(
                    args.config, [*args.overrides, f"method={method}", f"run_dir={root / method}"]
                )
                services = services or Services(config)
                log.info("method %s (run directory %s)", method, config.run_dir)
                started = time.time()
                result = run(config, services=services)
                outcomes.append({**result.as_dict(), "time (s)": round(time.time() - started, 1)})
        finally:
            if services:
                services.shutdown()
    columns = ["method", "teacher requests paid", "sent this run", "student accuracy", "time (s)"]
    console.out()
    console.out(f"tadistill demo: budget {base.budget.requests} teacher requests, "
                f"teacher error rate {base.teacher.synthetic.error_rate}")
    console.out(format_table(outcomes, columns))
    for outcome in outcomes:
        console.out(f"report ({outcome['method']}): {outcome['report']}")
    benchmark = _benchmark_line(base)
    if benchmark:
        console.out(benchmark)
    (root / "demo.json").write_text(json.dumps(outcomes, indent=2))
    return 0


BENCHMARK_SUMMARY = resource("quality_summary.json")  # the first grids' (bench/quality/stats.py): headline and cells
WORLDS_SUMMARY = resource("quality_worlds_summary.json")  # the drawn worlds' cells (bench/quality/worlds_stats.py)


def benchmark_world(config) -> Optional[str]:
    """The benchmark world (tadistill/resources/worlds/) a config runs in: every knob the world file sets has
    the world's value; None when it matches none of them."""
    import yaml

    settings = config.model_dump()

    def agrees(tree: dict, values: dict) -> bool:
        return all(agrees(v, values.get(k) or {}) if isinstance(v, dict) else values.get(k) == v
                   for k, v in tree.items())

    for path in sorted(WORLDS.glob("*.yaml")):
        if agrees(yaml.safe_load(path.read_text()) or {}, settings):
            return path.stem
    return None


def _comparison_text(found: dict, other: str) -> str:
    lo, hi = found["rel_ci"]
    wins = f", ahead on {round(found['wins'] * found['n'])} of {found['n']} seeds" if "wins" in found else ""
    return (f"{found.get('a', 'full')} vs {other} {100 * found['rel']:+.1f}% "
            f"(95% CI {100 * lo:+.1f} to {100 * hi:+.1f}{wins})")


def _benchmark_line(config=None, method: str = DEMO_METHODS[-1]) -> Optional[str]:
    """One run says little: what the quality benchmark measured over its seeds for `method` in the
    demo's own cell (world, teacher error, budget: a named world's grids or the drawn worlds'), or
    at its headline cell when the demo runs elsewhere."""
    if not BENCHMARK_SUMMARY.exists():
        return None
    summaries = [json.loads(path.read_text()) for path in (BENCHMARK_SUMMARY, WORLDS_SUMMARY) if path.exists()]
    head = summaries[0].get("headline", {})
    cell, report = dict(head.get("cell", {})), "docs/results/quality.md"
    found = {other: head.get(f"full_vs_{other}") for other in ("none", "random")}
    where = "its headline cell"
    world = benchmark_world(config) if config is not None else None
    if world is not None:
        here = {"world": world, "error_rate": config.teacher.synthetic.error_rate, "budget": config.budget.requests}
        for summary in summaries:
            mine = {c["b"]: c for c in summary.get("comparisons", [])
                    if c["a"] == method and all(c.get(k) == v for k, v in here.items())}
            if mine:
                cell, found, where = here, {other: mine.get(other) for other in ("none", "random")}, "this cell"
                report = summary.get("report", report)
                break
    parts = [_comparison_text(f, other) for other, f in found.items() if f]
    if not parts:
        return None
    n = next(f["n"] for f in found.values() if f)
    return (f"one run is one seed; the quality benchmark in {where} (world {cell.get('world')}, teacher error "
            f"{cell.get('error_rate')}, budget {cell.get('budget')}), over {n} seeds: " + "; ".join(parts)
            + f" ({report})")


def cmd_config_show(args) -> int:
    if args.config or args.overrides:
        config = load_config(args.config, args.overrides)
        return _print_to_reader(config.model_dump_json(indent=2))
    return _print_to_reader("\n".join(f"{key} = {default}\n    {description}"
                                      for key, default, description in describe_options()))


def _print_to_reader(text: str) -> int:
    """Print `text`; a reader that stops early (`| head`) ends the command quietly, with success:
    it got what it asked for."""
    import os

    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Python flushes stdout again at exit, into the same closed pipe: point it at devnull so
        # that flush has nowhere to fail (the recipe of Python's signal module docs).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _inspect_log(args, config) -> Path:
    """Where `data inspect` writes Ray's output: beside --out, else in the config's run directory."""
    return Path(args.out).with_suffix(".log") if args.out else Path(config.run_dir) / "data_inspect.log"


def cmd_data_inspect(args) -> int:
    from .corpus.inspect import inspect_data
    from .corpus.read import check_files

    config = load_config(args.config, args.overrides)
    check_files(config.data)  # a missing, empty or unreadable file is refused before Ray takes seconds to start
    from .services import Services

    with console.run_log(_inspect_log(args, config), args.verbose) as log_file:
        log.info("tadistill data inspect: reading the data with Ray; its output goes to %s", log_file)
        services = Services(config)
        try:
            services.ray()
            markdown, summary = inspect_data(config)
        finally:
            services.shutdown()
    _print_to_reader(markdown)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(markdown)
        Path(args.out).with_suffix(".json").write_text(json.dumps(summary, indent=2, default=str))
    return 0


# Rates measured on this project's 2-core CPU machines, one file per kind of config (its
# config_kind: launchers, engines, models, teacher, corpus), for a plan with no run of its kind to
# calibrate on. A file without a kind (rates_gpu_assumed.json: assumed, not measured) is only
# ever given by --rates.
COMMITTED_RATES = resource("plan_rates")
DEMO_RUNS = Path("runs") / "demo"
SKIPPED_SHOWN = 5  # runs of other kinds named one a line; more are counted on one line


def _finished_runs(folder: Path) -> list[Path]:
    """Run directories under `folder` (or it) whose evaluation finished."""
    candidates = [folder, *sorted(p for p in folder.glob("*") if p.is_dir())] if folder.is_dir() else []
    finished = []
    for run_dir in candidates:
        try:
            steps = json.loads((run_dir / "manifest.json").read_text())["steps"]
        except (OSError, ValueError, KeyError):
            continue
        if "evaluate" in steps and (run_dir / "config.json").exists():
            finished.append(run_dir)
    return finished


def _runs_by_kind(config, run_dirs: list[Path]) -> tuple[list[Path], list[tuple[Path, list[str]]]]:
    """The runs of the config's kind, and the others with what differs (capacity.KIND_KEYS)."""
    from .capacity import config_kind, kind_differences, run_kind

    kind = config_kind(config)
    same, other = [], []
    for run_dir in run_dirs:
        differs = kind_differences(kind, run_kind(run_dir))
        if differs:
            other.append((run_dir, differs))
        else:
            same.append(run_dir)
    return same, other


def _say_other_kinds(other: list[tuple[Path, list[str]]], verb: str) -> None:
    """One line per run of another kind and why, the first SKIPPED_SHOWN of them (a folder of many
    runs leaves the plan readable)."""
    for run_dir, differs in other[:SKIPPED_SHOWN]:
        more = f"; and {len(differs) - 2} more" if len(differs) > 2 else ""
        console.out(f"tadistill plan: {verb} {run_dir}, a run of another kind: {'; '.join(differs[:2])}{more}")
    if len(other) > SKIPPED_SHOWN:
        console.out(f"tadistill plan: {verb} {len(other) - SKIPPED_SHOWN} more runs of other kinds")


def _committed_rates(config):
    """The committed rates of the config's kind; a clear message naming what each file is for when
    none is for it."""
    from .capacity import Rates, config_kind, kind_differences

    kind = config_kind(config)
    others = []
    for path in sorted(COMMITTED_RATES.glob("rates_*.json")):
        rates = Rates.load(path)
        if not rates.config_kind:  # assumed rates: only by --rates
            continue
        differs = kind_differences(kind, rates.config_kind)
        if not differs:
            rates.source = f"committed for this kind of config ({path.name}: {rates.source})"
            return rates
        others.append(f"{path.name} has {differs[0]}")
    have = "; ".join(others) or f"none in {COMMITTED_RATES}"
    raise ConfigError(f"no measured rates for this config: no finished run of its kind in "
                      f"{Path(config.run_dir).parent} or {DEMO_RUNS} to calibrate on, and no committed rates for "
                      f"its kind ({have}); run a small run of this config first, or give --rates RATES.json or "
                      f"--calibrate RUN_DIR")


def _rates_found(config):
    """Rates for a plan given none: fitted to finished runs of this config's kind (in its run
    directory and those beside it, as a demo leaves them, and the demo's), saying which runs of
    other kinds it skipped and why; else the committed rates of its kind; else a clear message."""
    from .capacity import calibrate

    found = {run.resolve(): run for folder in (Path(config.run_dir).parent, DEMO_RUNS)
             for run in _finished_runs(folder)}
    same, other = _runs_by_kind(config, list(found.values()))
    _say_other_kinds(other, "skipped")
    if same:
        rates = calibrate(same)
        rates.source += " (finished runs of this config's kind)"
        return rates
    return _committed_rates(config)


def cmd_plan(args) -> int:
    from .capacity import Rates, Shape, calibrate, plan_json, plan_markdown, plan_run

    config = load_config(args.config, args.overrides)
    try:
        if args.calibrate:  # the user's choice stands; a run of another kind is pointed out
            rates = calibrate([Path(r) for r in args.calibrate])
            _say_other_kinds(_runs_by_kind(config, [Path(r) for r in args.calibrate])[1], "calibrating on")
        elif args.rates:
            rates = Rates.load(Path(args.rates))
        else:
            rates = _rates_found(config)
            console.out(f"tadistill plan: rates {rates.source} (--rates or --calibrate to choose others)")
        if args.save_rates:
            rates.save(Path(args.save_rates))
        plan = plan_run(config, rates, Shape(args.nodes, args.cpus_per_node, args.gpus_per_node), args.pool, args.test)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"tadistill plan: {exc}") from None
    print(plan_markdown(plan))
    if args.json:
        Path(args.json).write_text(json.dumps(plan_json(plan), indent=2) + "\n")
    return 0


def cmd_export(args) -> int:
    from .export import export_run, push_to_hub

    exported = export_run(args.run_dir, args.out)
    console.out(f"tadistill export: {exported['outputs']} outputs ({exported['filtered']} filtered by trust) in "
                f"{exported['folder']} (dataset/ for datasets.load_from_disk, outputs.jsonl, README.md)")
    if args.push_to_hub:
        for url in push_to_hub(exported, args.push_to_hub, args.model_repo, args.private):
            console.out(f"tadistill export: uploaded {url}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tadistill", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"tadistill {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the distillation described by CONFIG")
    run.add_argument("config", help="YAML config file")
    run.add_argument("overrides", nargs="*", help="key=value overrides, e.g. budget.requests=200")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="run 'none' and 'full' in one cell of the quality benchmark and compare")
    demo.add_argument("overrides", nargs="*", help="key=value overrides applied to both methods")
    demo.add_argument("--config", default=None,
                      help="YAML config (default: the packaged demo_benchmark.yaml, a cell of the quality benchmark)")
    demo.add_argument("--run-root", default="runs/demo", help="folder holding one run directory per method")
    demo.set_defaults(func=cmd_demo)

    data = sub.add_parser("data", help="look at a corpus and its recorded teacher before a run")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    inspect = data_sub.add_parser(
        "inspect", help="rows per split, answer types, rejects with reasons, recorded-teacher accuracy")
    inspect.add_argument("config", help="YAML config file")
    inspect.add_argument("overrides", nargs="*", help="key=value overrides")
    inspect.add_argument("--out", default=None,
                         help="also write the Markdown here (and a .json summary beside it); Ray's output goes to "
                              "a .log beside it (without --out: data_inspect.log in the config's run_dir)")
    inspect.set_defaults(func=cmd_data_inspect)

    plan = sub.add_parser("plan", help="estimate a run's wall time and teacher cost on a cluster shape")
    plan.add_argument("config", help="YAML config file of the run to plan")
    plan.add_argument("overrides", nargs="*", help="key=value overrides")
    plan.add_argument("--rates", default=None, help="per-unit rates (JSON, as --save-rates writes)")
    plan.add_argument("--calibrate", nargs="+", default=None, metavar="RUN_DIR",
                      help="fit the rates to these finished runs' manifests instead")
    plan.add_argument("--save-rates", default=None, help="write the fitted rates here")
    plan.add_argument("--nodes", type=int, default=1, help="worker nodes (the head runs no work)")
    plan.add_argument("--cpus-per-node", type=float, default=2)
    plan.add_argument("--gpus-per-node", type=float, default=0)
    plan.add_argument("--pool", type=int, default=None, help="pool questions (a files or hub corpus)")
    plan.add_argument("--test", type=int, default=None, help="test questions (a files or hub corpus)")
    plan.add_argument("--json", default=None, help="also write the plan as JSON here")
    plan.set_defaults(func=cmd_plan)

    export = sub.add_parser("export", help="the bought teacher outputs as a Hugging Face data set, JSONL and a card")
    export.add_argument("run_dir", help="the run directory of a run")
    export.add_argument("--out", default=None, help="folder to write (default: RUN_DIR/export)")
    export.add_argument("--push-to-hub", default=None, metavar="REPO",
                        help="upload the data set to this Hub repo, and the final student to REPO-student")
    export.add_argument("--model-repo", default=None, help="Hub repo of the final student (default: REPO-student)")
    export.add_argument("--private", action="store_true", help="create the Hub repos private")
    export.set_defaults(func=cmd_export)

    config = sub.add_parser("config", help="show the options, or the resolved config")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    show = config_sub.add_parser("show", help="every option with its default and meaning")
    show.add_argument("config", nargs="?", default=None)
    show.add_argument("overrides", nargs="*")
    show.set_defaults(func=cmd_config_show)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    from .teacher.client import TeacherError

    args = build_parser().parse_args(argv)
    console.setup_logging(args.verbose)
    install_stop_handlers()  # Ctrl-C and SIGTERM stop the command with one line, in every step
    try:
        return args.func(args)
    except (ConfigError, CorpusError, RunDirError, TeacherError) as exc:
        print(f"tadistill: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        return _stopped(exit_code(stop))
    except SystemExit as exc:
        import signal

        if exc.code == signal.SIGTERM:  # Ray's own SIGTERM handler, where one was left in place, exits with it
            return _stopped(128 + signal.SIGTERM)
        raise
    except Exception as exc:  # a bug or a failure outside the user's hands
        if console.last_log() is None:  # before any run's log existed: the traceback is all there is
            raise
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        print(f"tadistill: failed: {type(exc).__name__}: {first_line} (the traceback is in {console.last_log()})",
              file=sys.stderr)
        return 1


def _stopped(code: int) -> int:
    print("tadistill: stopped. Finished steps and every paid teacher response are kept: run the same command "
          "again to resume.", file=sys.stderr)
    return code


def command() -> None:
    """The `tadistill` command. After a stop it exits without the interpreter's teardown: what the
    run started is already down and its files are on disk, and Ray's core worker can crash in that
    teardown after an interrupted `ray.get` (exit -11 instead of 130)."""
    code = main()
    if code in (130, 143):
        import os

        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    command()
