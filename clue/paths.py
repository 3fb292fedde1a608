"""Where data, model files and outputs live, and how an output file is written (``atomic_path``).

Data: ``--data-dir``, else ``$CLUE_DATA_DIR``, else ``./datasets``; one folder per task inside it, named as
in the CLUE release (``afqmc``) or as the official zips unpack (``afqmc_public``).
Models: ``--model-dir``, else ``$CLUE_MODEL_DIR``.
Outputs: ``--output-dir`` (default ``.``) with ``results/``, ``weights/`` and ``logs/`` inside.
"""

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from clue import registry

DEFAULT_DATA_DIR = "datasets"


class MissingPathError(FileNotFoundError):
    """A file or folder the run needs is not there; the message says what was looked for and what to set."""


class WriteError(Exception):
    """An output file could not be written (a full disk, a read-only folder); the message names it and says
    that the earlier file of that name, if any, is still there."""


# errno values that mean "this write failed", as opposed to a failure of whatever the block was reading
WRITE_FAILURES = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM}
MARGIN = 16 << 20   # bytes beyond a file's own size that a write must leave free (logs, metadata)


def require_free_space(path, needed):
    """Raise WriteError unless ``path``'s filesystem has room for ``needed`` bytes and the margin. Checked
    before HDF5 writes: h5py crashes the process (SIGSEGV) on a full disk instead of raising."""
    folder = next(p for p in Path(path).absolute().parents if p.exists())
    free = shutil.disk_usage(folder).free
    if free < needed + MARGIN:
        raise WriteError(f"{path}: no room to write it ({free / 2**20:,.1f} MiB free on its disk, "
                         f"{(needed + MARGIN) / 2**20:,.1f} MiB needed); the earlier files are kept")


def data_root(data_dir=None):
    """The data directory and a note of where that choice came from (for error messages)."""
    if data_dir:
        return Path(data_dir), "--data-dir"
    if os.environ.get("CLUE_DATA_DIR"):
        return Path(os.environ["CLUE_DATA_DIR"]), "$CLUE_DATA_DIR"
    return Path(DEFAULT_DATA_DIR), "the default ./datasets (neither --data-dir nor $CLUE_DATA_DIR is set)"


def task_dir_candidates(task, data_dir=None):
    if task not in registry.TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(registry.TASKS)}")
    root, _ = data_root(data_dir)
    return [root / task, root / f"{task}_public"]


def find_task_dir(task, data_dir=None):
    """The folder holding ``task``'s files, or a MissingPathError naming every place looked at."""
    for candidate in task_dir_candidates(task, data_dir):
        if candidate.is_dir():
            return candidate
    root, source = data_root(data_dir)
    looked = " or ".join(str(c) for c in task_dir_candidates(task, data_dir))
    raise MissingPathError(
        f"no data folder for task {task!r}: looked for {looked} (data directory {root} from {source}). "
        f"Put the unpacked CLUE files there, or set --data-dir / $CLUE_DATA_DIR to the folder that holds "
        f"'{task}/' (the official '{task}_public/' name works too)."
    )


def model_root(model_dir=None):
    if model_dir:
        return Path(model_dir), "--model-dir"
    if os.environ.get("CLUE_MODEL_DIR"):
        return Path(os.environ["CLUE_MODEL_DIR"]), "$CLUE_MODEL_DIR"
    return None, "neither --model-dir nor $CLUE_MODEL_DIR is set"


class OutputBusyError(RuntimeError):
    """Another live process is running the same task into the same output folder."""


_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK   # what open() would give; mkstemp's 0600 would hide results from others
_held_locks = {}              # lock path -> open file, held until this process ends


def lock_task(dirs, task):
    """Hold ``logs/<task>.lock`` for the rest of this process, or raise OutputBusyError naming the pid that
    holds it. ``flock`` is dropped by the kernel when its process dies, so a killed run never blocks the next
    one; a second run in the same process (tests, notebooks) reuses the lock it already holds."""
    path = (Path(dirs.logs) / f"{task}.lock").resolve()
    if path in _held_locks:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+", encoding="utf-8")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise OutputBusyError(f"{path}: another run of {task} (pid {holder}) is writing into "
                              f"{dirs.root}; wait for it to end or use another --output-dir") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    _held_locks[path] = f
    return path


class OutputDirs:
    """``<output-dir>/results`` (submission files), ``weights`` (checkpoints) and ``logs``."""

    def __init__(self, output_dir="."):
        self.root = Path(output_dir)
        self.results = self.root / "results"
        self.weights = self.root / "weights"
        self.logs = self.root / "logs"

    def make(self):
        for folder in (self.results, self.weights, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        return self


@contextlib.contextmanager
def atomic_path(path, suffix=".tmp"):
    """A temporary path beside ``path`` for the block to write; renamed over ``path`` when the block ends,
    removed when it raises, so a crash never leaves half a file. ``suffix`` is for writers that go by the
    name (Keras wants ".weights.h5", matplotlib ".png")."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as err:
        raise WriteError(f"{path}: cannot be written ({err.strerror or err})") from None
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as err:
        if err.errno not in WRITE_FAILURES:
            raise
        kept = "the earlier file is kept" if path.exists() else "nothing was written"
        raise WriteError(f"{path}: could not be written ({err.strerror or err}); {kept}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_folder(path):
    """A temporary folder beside ``path`` for the block to fill; renamed to ``path`` when the block ends (an
    empty folder there is replaced), removed when it raises, so a folder of files is there whole or not at
    all."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    except OSError as err:
        raise WriteError(f"{path}: cannot be written ({err.strerror or err})") from None
    os.chmod(tmp, FILE_MODE | (FILE_MODE & 0o444) >> 2)   # mkdtemp's 0700 would hide it from others
    try:
        yield tmp
        os.rename(tmp, path)
    except OSError as err:
        if err.errno not in WRITE_FAILURES | {errno.ENOTEMPTY, errno.EEXIST}:
            raise
        raise WriteError(f"{path}: could not be written ({err.strerror or err}); nothing was written") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_atomic(path, text):
    """``text`` written to ``path`` (UTF-8, "\\n" line ends, synced to disk) through ``atomic_path``."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)
