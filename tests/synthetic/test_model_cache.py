"""Building a cached model under concurrency: real processes ask for the same model at once; one
builds, the others wait and use it; a build killed half way leaves nothing a later run takes for a
model."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

# A process that asks for `target` through the real ensure_built; its build (slow, so the others
# arrive while it runs) appends its pid to a log, writes a weight file, then the BUILT record.
ASK = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from tadistill.synthetic.models import BUILT, ensure_built

    target, log, pause = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])

    def build(folder):
        with log.open("a") as handle:
            handle.write(f"{os.getpid()}\\n")
        (folder / "weights.bin").write_bytes(os.urandom(64))
        time.sleep(pause)
        (folder / BUILT).write_text("{}")

    ensure_built(target, build)
    print((target / "weights.bin").read_bytes().hex())
""")


def _ask(target: Path, log: Path, pause: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", ASK, str(target), str(log), str(pause)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_one_process_builds_and_the_others_use_its_model(tmp_path):
    target, log = tmp_path / "model", tmp_path / "builds.log"
    asking = [_ask(target, log, pause=2.0) for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in asking]
    assert all(p.returncode == 0 for p in asking), [err for _, err in outputs]
    assert len(log.read_text().split()) == 1  # built once
    assert len({out.strip() for out, _ in outputs}) == 1  # everyone got that one build's weights
    assert sorted(p.name for p in tmp_path.iterdir()) == ["builds.log", "model", "model.lock"]


def test_a_build_killed_half_way_is_never_taken_for_a_model(tmp_path):
    target, log = tmp_path / "model", tmp_path / "builds.log"
    first = _ask(target, log, pause=60.0)
    while not (log.exists() and log.read_text().strip()):  # the first build has started
        assert first.poll() is None, first.communicate()
        time.sleep(0.1)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert not target.exists() and list(tmp_path.glob("model.tmp-*"))  # what it left is not the model
    second = _ask(target, log, pause=0.0)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert len(log.read_text().split()) == 2 and (target / "weights.bin").exists()
    assert not list(tmp_path.glob("model.tmp-*"))  # the killed build's folder was cleared
