"""What a run leaves when it is killed, for the resume tests (test_training, test_devices, test_safety):
a weights file's arrays, the epoch of a task's backup, and a run killed once its first backup is on disk."""

import json
import time

import h5py


def h5_arrays(path):
    """{dataset path: array} of a Keras weights file."""
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset)
                     else None)
    return arrays


def backup_epoch(output, task):
    """The epoch of ``task``'s resume backup in the run folder ``output`` (0: none finished)."""
    meta = output / "weights" / f"{task}_backup" / "training_metadata.json"
    try:
        return json.loads(meta.read_text())["epoch"]
    except (OSError, ValueError):
        return 0


def kill_once_backed_up(proc, output, task, timeout=300):
    """SIGKILL the run ``proc`` (a Popen with stderr piped) as soon as the backup of epoch 1 is on disk;
    its stderr. Fails when the run ended on its own first."""
    deadline = time.time() + timeout
    while backup_epoch(output, task) < 1 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.kill()
    err = proc.communicate()[1]
    assert proc.returncode == -9, f"the run ended on its own before it could be killed:\n{err[-3000:]}"
    return err
