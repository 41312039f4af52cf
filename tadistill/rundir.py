"""The run directory: one Parquet artifact per step, and a manifest of finished steps.

A step is finished when its manifest entry exists with the same fingerprint (a hash of
the config it depends on and of its inputs' fingerprints). Files are written to a
temporary name and renamed, so a crash never leaves a half-written artifact that looks
finished.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST = "manifest.json"
LOCK = "run.lock"  # held (flock) by the invocation running in the directory
_HELD: set[Path] = set()  # the locks of run directories this process holds


def _nested_as_objects(frame: pd.DataFrame) -> pd.DataFrame:
    """Nested Arrow-backed columns (a choice task's `options`, list<string>[pyarrow] as Ray Data
    hands them over) as plain object columns: pandas records their dtype in the Parquet metadata
    under a name it cannot parse back, so the file would not read."""
    nested = [c for c, t in frame.dtypes.items()
              if isinstance(t, pd.ArrowDtype) and pa.types.is_nested(t.pyarrow_dtype)]
    if not nested:
        return frame
    return frame.assign(**{c: frame[c].astype(object) for c in nested})


class RunDirError(RuntimeError):
    pass


# What a full, over-quota, read-only or forbidden run directory raises.
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


def storage_problem(run_path: Path, what: str, exc: OSError) -> RunDirError:
    """The message a user can act on when the run directory refuses a write."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        fix = "free space there (or point run_dir at a larger disk)"
    else:
        fix = "make it writable (or point run_dir elsewhere)"
    return RunDirError(
        f"run directory {run_path}: {what} failed: {exc.strerror or exc} [errno {exc.errno}]. "
        f"Nothing unfinished was recorded as finished: {fix} and run again; finished steps are skipped."
    )


@contextlib.contextmanager
def _writing(run_path: Path, what: str, *leftovers: Path):
    """Turn a refused write into a RunDirError, removing the half-written temporary files."""
    try:
        yield
    except OSError as exc:
        for leftover in leftovers:
            with contextlib.suppress(OSError):
                leftover.unlink()
        if exc.errno in STORAGE_ERRNOS:
            raise storage_problem(run_path, what, exc) from exc
        raise


def _check_columns(artifact, columns, how: str) -> None:
    """A declared artifact missing a declared column is a bug (or a table from another version)."""
    declared = getattr(artifact, "columns", ())
    missing = [c for c in declared if c not in set(columns)]
    if missing:
        raise RunDirError(f"{artifact} {how} lacks column(s) {', '.join(missing)} that artifacts.py declares; "
                          "delete the run directory's step output to redo it")


_RENAMES_SAID: set[Path] = set()  # the run directories whose old column names were reported


def _renamed_columns(artifact, frame: pd.DataFrame, run_path: Path) -> pd.DataFrame:
    """A table an earlier tadistill wrote, its columns under today's names (the artifact's
    `renamed`), said once per run directory: nothing is redone for a name."""
    old = {o: n for o, n in getattr(artifact, "renamed", ()) if o in frame.columns and n not in frame.columns}
    if not old:
        return frame
    if run_path not in _RENAMES_SAID:
        _RENAMES_SAID.add(run_path)
        logging.getLogger(__name__).warning(
            "%s was written by an earlier tadistill: its column(s) %s are read as %s", run_path,
            ", ".join(old), ", ".join(old.values()))
    return frame.rename(columns=old)


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser().resolve()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write_probe"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise RunDirError(f"run directory {self.path} is not writable: {exc}; make it writable or set run_dir "
                              "to a folder that is") from exc

    # -- one invocation at a time ---------------------------------------------------
    @contextlib.contextmanager
    def in_use(self):
        """Hold the run directory for this process while the block runs. A second invocation on the
        same directory is refused with who holds it; the kernel drops the lock when its holder dies,
        so a killed run's lock file is simply taken over."""
        import fcntl
        import socket
        import sys

        path = self.path / LOCK
        if path in _HELD:  # this process holds it already (the CLI around the pipeline)
            yield self
            return
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunDirError(f"run directory {self.path} is in use by {holder}; wait for it to finish or stop it, "
                              "or set run_dir to another folder") from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"process {os.getpid()} on {socket.gethostname()} (started "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(sys.argv)[:200]})\n")
            handle.flush()
            _HELD.add(path)
            yield self
        finally:
            _HELD.discard(path)
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    # -- manifest -------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {"steps": {}}
        try:
            return json.loads(self.manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{self.manifest_path} is not valid JSON ({exc}); delete it to redo the run") from exc

    def finished(self, step: str, fingerprint: str) -> Optional[dict]:
        entry = self.manifest()["steps"].get(step)
        if entry and entry.get("fingerprint") == fingerprint:
            return entry
        return None

    def record(self, step: str, entry: dict[str, Any]) -> None:
        manifest = self.manifest()
        manifest["steps"][step] = {**entry, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self._atomic_write_text(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True))

    def forget_from(self, steps: list[str]) -> None:
        """Drop manifest entries of steps that must be redone (a changed input)."""
        manifest = self.manifest()
        for step in steps:
            manifest["steps"].pop(step, None)
        self._atomic_write_text(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True))

    # -- artifacts ------------------------------------------------------------------
    def file(self, relative: str) -> Path:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def write_table(self, artifact, frame: pd.DataFrame | pa.Table) -> Path:
        """Write a table atomically; a declared artifact (artifacts.py) must hold its columns."""
        table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(_nested_as_objects(frame),
                                                                              preserve_index=False)
        _check_columns(artifact, table.column_names, "written")
        relative = str(artifact)
        target = self.file(relative)
        tmp = target.with_name(target.name + ".tmp")
        with _writing(self.path, f"writing {relative}", tmp):
            pq.write_table(table, tmp)
            os.replace(tmp, target)
        return target

    def read_table(self, artifact) -> pd.DataFrame:
        target = self.path / str(artifact)
        if not target.exists():
            raise RunDirError(f"{target} is missing: the step that writes it has not finished")
        frame = _renamed_columns(artifact, pq.read_table(target).to_pandas(), self.path)
        _check_columns(artifact, frame.columns, f"read from {target}")
        return frame

    def has(self, artifact) -> bool:
        return (self.path / str(artifact)).exists()

    def replace_dir(self, relative: str, source: str | Path) -> Path:
        """Move a finished folder (a checkpoint, a Ray Data output) into place atomically."""
        target = self.file(relative)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(source), str(target))
        return target

    def write_text(self, relative: str, text: str) -> Path:
        target = self.file(relative)
        self._atomic_write_text(target, text)
        return target

    def _atomic_write_text(self, path: Path, text: str) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with _writing(self.path, f"writing {path.relative_to(self.path)}", tmp):
            with tmp.open("w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())  # the manifest must not be renamed into place half-flushed
            os.replace(tmp, path)


class UndeclaredArtifact(RunDirError):
    """A step touched an artifact its declaration in plan.py does not name: a bug in the step or
    in the plan, found the first time the step runs."""


class StepView:
    """The run directory as the running step sees it: the artifacts the step declares (plan.py)
    and nothing else. A read of one it does not declare, or a write of one it does not declare
    writing, raises UndeclaredArtifact naming both, so the plan's order and fingerprints can
    rely on the declarations (Kedro holds its nodes to theirs the same way).

    Outside a step (before the first, after the last) it is the whole run directory. The run's
    records (the manifest) are open to every step; places that are no artifact (a step's resumable
    blocks, its scratch, the teacher's response cache) are reached through `path`."""

    def __init__(self, run_dir: RunDir):
        self.run_dir = run_dir
        self.step: Optional[str] = None
        self._reads: frozenset[str] = frozenset()
        self._writes: frozenset[str] = frozenset()

    @property
    def path(self) -> Path:
        return self.run_dir.path

    @contextlib.contextmanager
    def running(self, step: str, reads: tuple = (), writes: tuple = ()):
        """Hold the block to what `step` declares."""
        self.step, self._reads, self._writes = step, frozenset(map(str, reads)), frozenset(map(str, writes))
        try:
            yield self
        finally:
            self.step, self._reads, self._writes = None, frozenset(), frozenset()

    def _allow(self, artifact, write: bool) -> None:
        if self.step is None:
            return
        name = str(artifact)
        if name in self._writes or (not write and name in self._reads):
            return
        how = "writes" if write else "reads"
        raise UndeclaredArtifact(f"step {self.step} {how} {name}, which its declaration in plan.py does not name "
                                 f"(it reads {', '.join(sorted(self._reads)) or 'nothing'}; writes "
                                 f"{', '.join(sorted(self._writes)) or 'nothing'})")

    # -- declared artifacts ---------------------------------------------------------
    def read_table(self, artifact) -> pd.DataFrame:
        self._allow(artifact, write=False)
        return self.run_dir.read_table(artifact)

    def write_table(self, artifact, frame: pd.DataFrame | pa.Table) -> Path:
        self._allow(artifact, write=True)
        return self.run_dir.write_table(artifact, frame)

    def has(self, artifact) -> bool:
        self._allow(artifact, write=False)
        return self.run_dir.has(artifact)

    def location(self, artifact, write: bool = False) -> Path:
        """Where a folder or document artifact lives (a model, the verifier), to read it, or
        (write=True) to write it: its parent folder is made."""
        self._allow(artifact, write)
        return self.run_dir.file(str(artifact)) if write else self.path / str(artifact)

    def read_text(self, artifact) -> str:
        self._allow(artifact, write=False)
        return (self.path / str(artifact)).read_text()

    def write_text(self, artifact, text: str) -> Path:
        self._allow(artifact, write=True)
        return self.run_dir.write_text(str(artifact), text)

    # -- the run's records ----------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        return self.run_dir.manifest()

    def finished(self, step: str, fingerprint: str) -> Optional[dict]:
        return self.run_dir.finished(step, fingerprint)
