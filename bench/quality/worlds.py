"""Worlds drawn from a distribution (issue 38), not named and tuned one by one.

A world seed gives a world file (tadistill/resources/worlds/ format), its teacher's error rate and the
cell's budget, each knob drawn uniformly from RANGES, which were committed once, before any run
of a drawn world. Two draws are pre-registered in README.md here: a development draw (every
choice is made on its validation splits) and a measurement draw (never used for a choice).
Draws whose seeds are not in the repository check the result: what carries over is a rule that
reads the run's own state, not a setting fitted to a world.

    python -m bench.quality.worlds --draw dev        # writes the draw's world files, prints their knobs
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[2]
DRAWN = REPO / "bench" / "results" / "quality" / "worlds"  # generated world files (not committed: a seed makes them)

# The distribution of worlds (issue 38, item 1), committed 2026-12-06 before any run of a drawn world.
RANGES = {
    "shortest_steps": (1, 2),  # the shortest problems of the pool and test splits (integer)
    "longest_steps": (4, 7),  # the longest (integer)
    "student_knows_steps": (1, 3),  # the student is built on gold problems of 1 to this many steps (integer)
    "student_examples": (500, 2000),  # gold problems it is built on (integer)
    "student_epochs": (3, 6),  # epochs of its build (integer)
    "error_rate": (0.1, 0.5),  # the teacher's mean error
    "difficulty_slope": (0.15, 0.45),  # its error grows as exp(slope x steps)
    "slip_share": (0.5, 0.95),  # share of its wrong outputs that are a slipped step carried through
    "budget": (150, 900),  # teacher requests of the cell (integer)
}
INTEGER = {"shortest_steps", "longest_steps", "student_knows_steps", "student_examples", "student_epochs", "budget"}

# The pre-registered draws (README.md here): world seeds.
DRAWS = {
    "dev": list(range(38001, 38007)),  # 6 worlds: every choice is made on their validation splits
    "measure": list(range(38101, 38113)),  # 12 worlds: the measured run, never used for a choice
}


@dataclass(frozen=True)
class World:
    seed: int
    shortest_steps: int
    longest_steps: int
    student_knows_steps: int
    student_examples: int
    student_epochs: int
    error_rate: float
    difficulty_slope: float
    slip_share: float
    budget: int

    @property
    def name(self) -> str:
        return f"drawn{self.seed}"

    def knobs(self) -> dict:
        """What a results record carries about its world."""
        return asdict(self)


def draw_world(seed: int) -> World:
    """The world a seed gives: each knob uniform over its range (integers inclusive), rounded
    to what a person would write (errors and slopes to 0.01, budgets to 10 requests)."""
    rng = np.random.default_rng(seed)
    knobs = {}
    for knob, (low, high) in RANGES.items():  # one draw a knob, in RANGES' order: a seed's world never changes
        knobs[knob] = int(rng.integers(low, high + 1)) if knob in INTEGER else round(float(rng.uniform(low, high)), 2)
    knobs["budget"] = int(round(knobs["budget"], -1))
    return World(seed=seed, **knobs)


def world_tree(world: World) -> dict:
    """The world file's settings: the splits of world A's sizes, generator and teacher seeds of
    the world's own (derived from its seed), the drawn problem lengths, teacher and student."""
    return {
        "data": {"synthetic": {"pool_size": 3000, "test_size": 2000, "validation_size": 1000,
                               "min_steps": world.shortest_steps, "max_steps": world.longest_steps,
                               "seed": 1_000_000 + world.seed}},
        "teacher": {"synthetic": {"seed": 2_000_000 + world.seed, "difficulty_slope": world.difficulty_slope,
                                  "slip_share": world.slip_share}},
        "models": {"synthetic": {"student_min_steps": 1, "student_max_steps": world.student_knows_steps,
                                 "student_examples": world.student_examples,
                                 "student_epochs": world.student_epochs}},
    }


def write_world(world: World, folder: Path = DRAWN) -> Path:
    """The world's file (written once; a seed always gives the same one)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{world.name}.yaml"
    header = (f"# A drawn world (bench/quality/worlds.py, seed {world.seed}): teacher error {world.error_rate}, "
              f"budget {world.budget}.\n")
    text = header + yaml.safe_dump(world_tree(world), sort_keys=False)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def draw(name: str) -> list[World]:
    return [draw_world(seed) for seed in DRAWS[name]]


def drawn_seed(world: str):
    """The seed of a drawn world's name (`drawn38001`), or None for any other world."""
    return int(world[len("drawn"):]) if world.startswith("drawn") and world[len("drawn"):].isdigit() else None


def world_record(world: str) -> dict:
    """What a results record says of a drawn world: its draw and knobs (nothing for a named one)."""
    seed = drawn_seed(world)
    if seed is None:
        return {}
    which = next((name for name, seeds in DRAWS.items() if seed in seeds), "other")
    return {"draw": which, "knobs": draw_world(seed).knobs()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draw", choices=sorted(DRAWS), help="a pre-registered draw")
    parser.add_argument("--seeds", type=int, nargs="+", help="or any world seeds")
    args = parser.parse_args()
    worlds = draw(args.draw) if args.draw else [draw_world(s) for s in args.seeds or []]
    for world in worlds:
        print(json.dumps({**world.knobs(), "file": str(write_world(world).relative_to(REPO))}))


if __name__ == "__main__":
    main()
