"""Run bert4keras 0.11.5, the numerical reference, in a subprocess.

bert4keras replaces the ``keras`` module with tf_keras, so it cannot share a process with Keras 3. A script
given here runs with ``TF_USE_LEGACY_KERAS=1 TF_KERAS=1``; it talks to the test through files.
"""

import importlib.util
import os
import subprocess
import sys

import pytest

from conftest import IN_CI


def require_bert4keras():
    """Skip (or fail in CI) when bert4keras or tf_keras is not installed."""
    missing = [name for name in ("bert4keras", "tf_keras") if importlib.util.find_spec(name) is None]
    if missing:
        message = (f"{', '.join(missing)} not installed: pip install --no-deps bert4keras==0.11.5 "
                   f"and pip install -e '.[test]'")
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def run_bert4keras(script, *args, timeout=1200):
    """Run Python ``script`` (source text) under bert4keras; returns stdout, raises with stderr on failure."""
    require_bert4keras()
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3",
               CUDA_VISIBLE_DEVICES="", PYTHONHASHSEED="0")
    env.pop("KERAS_BACKEND", None)
    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"bert4keras subprocess failed ({proc.returncode}):\n{proc.stderr[-5000:]}")
    return proc.stdout
