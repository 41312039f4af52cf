"""What a person sees while a run works: one line per step and a progress display for each long
step. Everything else (Ray, Serve, Ray Train, DeepSpeed, transformers, warnings) goes to the run's
log file, and to the console too with `-v`.

Libraries print from threads, C extensions and child processes, not only through `logging`, so
the quiet console works at the file-descriptor level: stdout and stderr are pointed at the log
file for the length of the command, and the console keeps a duplicate of the terminal.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, TextIO

CONSOLE_FORMAT = "%(asctime)s %(message)s"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# While a quiet run holds stdout and stderr: duplicates of the terminal's stderr and stdout.
LOG_ONLY = {"console": False}  # extra= of a record for the run's log, not the console
_console: Optional[TextIO] = None
_result_stream: Optional[TextIO] = None
_last_log: Optional[Path] = None


def stream() -> TextIO:
    """Where people read: the terminal the command started on (stderr unless a quiet run moved it)."""
    return _console or sys.stderr


def out(text: str = "") -> None:
    """A line of the command's result (a table, a path), on the terminal's stdout."""
    print(text, file=_result_stream or sys.stdout, flush=True)


def last_log() -> Optional[Path]:
    """The log file of the last command's run, if it had one (where a failure's traceback went)."""
    return _last_log


def progress(total: int, desc: str, unit: str, initial: int = 0, **kwargs):
    """A progress display on the terminal (none when it is not a terminal: logs stay readable)."""
    from tqdm.auto import tqdm

    target = stream()
    hidden = kwargs.pop("disable", False) or not _is_terminal(target)
    # tqdm measures only sys.stderr and sys.stdout by itself, and a quiet run's console is a
    # duplicate of the terminal: without dynamic_ncols a line wider than the terminal wraps, and
    # each refresh (a carriage return) then starts a new line instead of rewriting the old one.
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=target, leave=False, disable=hidden,
                dynamic_ncols=True, **kwargs)


def width() -> int:
    """The columns a console line may use: the terminal's width less one (writing the last column
    wraps on some terminals), as tqdm counts it; 79 when the console is no terminal."""
    try:
        return max(1, os.get_terminal_size(stream().fileno()).columns - 1)
    except (AttributeError, ValueError, OSError):
        return 79


def fit(text: str, columns: int) -> str:
    """`text` on one line of at most `columns` characters: cut at a word's end where one is near,
    the cut marked with '...' (a line cut mid-word reads as a typo)."""
    text = " ".join(text.split())  # a newline or tab inside would break the line
    if len(text) <= columns:
        return text
    if columns <= 3:
        return text[:columns]
    head = text[:columns - 3]
    space = head.rfind(" ")
    if space >= (columns - 3) * 2 // 3:  # a word boundary in the last third: cut there
        head = head[:space]
    return head.rstrip(" ,;:") + "..."


def is_terminal() -> bool:
    """Whether the console is a terminal (an updating line) or not (a log: lines now and then)."""
    return _is_terminal(stream())


def _is_terminal(target: TextIO) -> bool:
    try:
        return target.isatty()
    except (AttributeError, ValueError):
        return False


def setup_logging(verbose: bool) -> None:
    """The console shows tadistill's own lines (all loggers with -v); set once per command."""
    handler = logging.StreamHandler(_ConsoleStream())
    handler.setFormatter(logging.Formatter(CONSOLE_FORMAT if not verbose else LOG_FORMAT, datefmt="%H:%M:%S"))
    if not verbose:
        handler.addFilter(_for_people)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("httpx", "httpx2", "openai", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _for_people(record: logging.LogRecord) -> bool:
    """tadistill's own lines and anyone's errors, unless marked for the log only (extra={"console": False})."""
    if not getattr(record, "console", True):
        return False
    return record.levelno >= logging.ERROR or record.name.startswith("tadistill")


class _ConsoleStream:
    """A file-like that always writes to the current console (it moves when a quiet run starts)."""

    def write(self, text: str) -> int:
        return stream().write(text)

    def flush(self) -> None:
        stream().flush()


@contextmanager
def run_log(path: Path, verbose: bool) -> Iterator[Path]:
    """For the length of a command: the process's stdout and stderr (Ray's driver-side output,
    library warnings, the worker logs Ray forwards) go to `path`, and so does every logging record;
    with `verbose` the terminal keeps showing everything and `path` gets the records too."""
    global _last_log
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _last_log = path
    if verbose:
        with _records_to(path):
            yield path
        return
    with _descriptors_to(path), _records_to(path):
        yield path


@contextmanager
def _records_to(path: Path) -> Iterator[None]:
    """Every logging record, and the traceback of what stops the command, appended to `path`."""
    with open(path, "a", buffering=1) as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger().addHandler(handler)
        try:
            yield
        except Exception:
            _log_failure()
            raise
        finally:
            logging.getLogger().removeHandler(handler)


@contextmanager
def _descriptors_to(path: Path) -> Iterator[None]:
    """stdout and stderr, at the descriptor level, to `path`; the console keeps the terminal."""
    global _console, _result_stream
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    log_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    _console = os.fdopen(os.dup(saved_err), "w", buffering=1)
    _result_stream = os.fdopen(os.dup(saved_out), "w", buffering=1)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    # Python's own writers follow the descriptors, unless an embedding program (or a test) had
    # replaced them: then they are pointed at the log too, and left open for whatever library
    # handler captured them meanwhile.
    python_streams = sys.stdout, sys.stderr
    if not (_writes_to(sys.stdout, 1) and _writes_to(sys.stderr, 2)):
        sys.stdout = sys.stderr = open(path, "a", buffering=1)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = python_streams
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        for handle in (_console, _result_stream):
            handle.close()
        _console, _result_stream = None, None


def _writes_to(stream, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (AttributeError, ValueError, OSError):
        return False


def _log_failure() -> None:
    """The traceback of what stopped the command, in the run's log (the console gets one line)."""
    logging.getLogger("tadistill").error("the command failed", exc_info=True, extra={"console": False})
