"""The pinned one-round runs' settings, shared by tests/test_plan.py and the capture script (which
runs older code, so this imports nothing of the package)."""

WORLD = ["data.synthetic.pool_size=90", "data.synthetic.test_size=30", "teacher.synthetic.error_rate=0.4"]


def run_overrides(cache, records, method: str, run_dir) -> list[str]:
    return [*WORLD, f"models.cache_dir={cache}", "budget.requests=30", "train.epochs=2", "train.launcher=local",
            "train.strategy=ddp", "train.num_workers=1", "train.global_batch_size=8", "train.micro_batch_size=8",
            "inference.launcher=local", "inference.num_samples=2", "trust.calibration_size=20",
            "teacher.source=recorded", f"teacher.recorded.files=[{records}]", "teacher.recorded.format=records",
            "teacher.recorded.match=id", "teacher.recorded.fields.id=id", f"method={method}", f"run_dir={run_dir}"]
