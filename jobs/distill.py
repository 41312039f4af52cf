"""One distillation as a Ray job, from the repository root:

    ray job submit --runtime-env jobs/runtime_env.yaml -- \\
        python -m jobs.distill CONFIG run_dir=/mnt/runs/NAME [key=value ...]

The driver joins the cluster the job runs on (ray.address=auto) instead of starting a
local Ray. run_dir must be an absolute path on storage every node and every later job sees
(NFS: EFS, Filestore, a ReadWriteMany volume): a relative one would land in the job's
temporary working directory, which Ray deletes. Checkpoints go to train.storage_path
(s3://, gs:// or a shared path), by default into the run directory. The job prints both
before it starts, and resubmitting it with the same run_dir skips every finished step.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tadistill.cli import main as cli_main
from tadistill.config import ConfigError, load_config

USAGE = "usage: python -m jobs.distill CONFIG run_dir=/shared/path [key=value ...]"


def outputs(config) -> dict[str, str]:
    """Where the job's run directory, checkpoints and report go."""
    run_dir = Path(config.run_dir)
    return {
        "run directory": str(run_dir),
        "checkpoints": config.train.storage_path or str(run_dir / "ray_train"),
        "report": str(run_dir / "report.md"),
    }


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    config_path, overrides = argv[0], ["ray.address=auto", *argv[1:]]
    try:
        config = load_config(config_path, overrides)
    except ConfigError as exc:
        print(f"tadistill job: {exc}", file=sys.stderr)
        return 2
    if not Path(config.run_dir).is_absolute():
        print(f"tadistill job: run_dir {config.run_dir!r} is relative, so it would be written into the job's "
              "temporary working directory and deleted with it; give an absolute path on shared storage, "
              f"e.g. run_dir=/mnt/runs/{Path(config.run_dir).name}", file=sys.stderr)
        return 2
    for what, where in outputs(config).items():
        print(f"tadistill job: {what}: {where}", flush=True)
    return cli_main(["run", config_path, *overrides])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
