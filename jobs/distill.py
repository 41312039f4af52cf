"""`ray job submit --working-dir . -- python -m jobs.distill CONFIG [key=value ...]`

Runs one distillation as a Ray job: the driver joins the cluster the job runs on
(ray.address=auto) instead of starting a local Ray.
"""

import sys

from tadistill.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        sys.exit("usage: python -m jobs.distill CONFIG [key=value ...]")
    sys.exit(main(["run", args[0], "ray.address=auto", *args[1:]]))
