"""Ray Data output written block by block: a crash loses only blocks in flight."""

import pandas as pd
import pytest

from tadistill.inference.drive import map_to_parts


class Double:
    """Doubles x; fails on the row named in fail_on (a crash mid-run); logs what it mapped."""

    def __init__(self, log_file: str, fail_on: str = ""):
        self.log_file, self.fail_on = log_file, fail_on

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        if self.fail_on in set(batch["id"]):
            raise RuntimeError("injected crash")
        with open(self.log_file, "a") as handle:
            handle.write("".join(f"{i}\n" for i in batch["id"]))
        return batch.assign(y=batch["x"] * 2)


def _mapped(log_file) -> list[str]:
    return log_file.read_text().split() if log_file.exists() else []


# Through a Ray Data actor, and in this process (inference.launcher local): the same contract.
both_launchers = pytest.mark.parametrize("in_process", [False, True], ids=["ray_data", "in_process"])


@both_launchers
def test_a_rerun_maps_only_rows_without_output_and_a_new_tag_starts_over(ray_local, tmp_path, in_process):
    frame = pd.DataFrame({"id": [f"r{i:02d}" for i in range(40)], "x": range(40)})
    folder, log_file = tmp_path / "parts", tmp_path / "mapped.txt"
    with pytest.raises(Exception, match="injected crash"):
        map_to_parts(frame, Double, folder, "tag-1", ["id"], batch_size=5, num_blocks=8,
                     constructor_kwargs={"log_file": str(log_file), "fail_on": "r37"}, in_process=in_process)
    kept = len(pd.concat([pd.read_parquet(p) for p in folder.glob("*.parquet")])) if list(folder.glob("*.parquet")) else 0
    first = len(_mapped(log_file))
    out = map_to_parts(frame, Double, folder, "tag-1", ["id"], batch_size=5, num_blocks=8,
                       constructor_kwargs={"log_file": str(log_file)}, in_process=in_process)
    assert sorted(out["id"]) == list(frame["id"]) and (out["y"] == out["x"] * 2).all()
    assert len(_mapped(log_file)) - first == 40 - kept  # only the rows with no stored output ran again

    log_file.unlink()
    again = map_to_parts(frame, Double, folder, "tag-2", ["id"], batch_size=5, num_blocks=8,
                         constructor_kwargs={"log_file": str(log_file)}, in_process=in_process)
    assert len(again) == 40 and len(_mapped(log_file)) == 40  # other settings: everything redone


@both_launchers
def test_a_torn_part_file_is_dropped_and_its_rows_redone(ray_local, tmp_path, in_process):
    frame = pd.DataFrame({"id": [f"r{i:02d}" for i in range(10)], "x": range(10)})
    folder, log_file = tmp_path / "parts", tmp_path / "mapped.txt"
    map_to_parts(frame, Double, folder, "t", ["id"], 5, 2, constructor_kwargs={"log_file": str(log_file)}, in_process=in_process)
    part = sorted(folder.glob("*.parquet"))[0]
    lost = len(pd.read_parquet(part))
    part.write_bytes(part.read_bytes()[:20])  # a crash in the middle of a write
    log_file.unlink()
    out = map_to_parts(frame, Double, folder, "t", ["id"], 5, 2, constructor_kwargs={"log_file": str(log_file)}, in_process=in_process)
    assert sorted(out["id"]) == list(frame["id"]) and len(_mapped(log_file)) == lost
