"""Data-parallel training over several devices (``--devices N|all``), set up before the backend starts.

    devices.prepare(args)          # before Keras is imported: virtual CPU devices for JAX (XLA_FLAGS)
    keras = cli.import_keras(...)
    devices.start(args)            # Keras's DataParallel (JAX) or a global MirroredStrategy (TensorFlow)
    devices.replicas()             # how many devices each batch is split over (1 when not distributed)

``--batch-size`` stays the global batch: each of the N devices gets 1/N of it. ``clue.batching.Batches``
pads a batch that does not split evenly with zero-weight examples and ``batching.predict`` drops their
rows, so N devices train and predict as one does. With fewer accelerators than N (a laptop, CI) the run
uses N virtual CPU devices and says so: a multi-GPU command can be dry-run anywhere. One process (one
machine) only: Keras's multi-process JAX (``keras.distribution.initialize``) would need each process to
feed its share of a batch and prediction to gather the rows of all, which ``batching.predict`` does not do.
This module imports no backend at import time.
"""

import argparse
import os
import sys

ALL = "all"
_state = {"replicas": 1}
_strategies = {}   # TensorFlow: one MirroredStrategy per device set and process (two would share collective keys)


class DeviceError(ValueError):
    """--devices asks for something this backend or machine cannot do."""


def parse_devices(text):
    """--devices: a whole number >= 1, or "all" (every local accelerator)."""
    if text == ALL:
        return ALL
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"takes a whole number of at least 1 or 'all', got {text!r}")
    return value


def wanted(args):
    """True when the run asks for more than one device."""
    return args.devices != 1


def backend():
    """The backend Keras will start, as far as the environment tells before it is imported."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def prepare(args):
    """Before Keras (and its backend) is imported. JAX makes its CPU devices when it starts, so N virtual
    ones are asked for now (XLA_FLAGS); they only serve when there are fewer accelerators than N."""
    if not wanted(args):
        return
    if backend() == "torch":
        raise DeviceError("--devices above 1 needs Keras's distribution API on PyTorch, which released Keras "
                          "does not have: use KERAS_BACKEND=jax or tensorflow")
    if backend() == "tensorflow" and args.optimizer == "adamw" and args.grad_accum > 1:
        raise DeviceError("--optimizer adamw --grad-accum accumulates with Keras's own, which fails under a TensorFlow "
                          "strategy (keras-team/keras#20582): use --optimizer adafactor, or KERAS_BACKEND=jax")
    if backend() == "jax" and args.devices != ALL and args.devices > 1 and "jax" not in sys.modules:
        flag = f"--xla_force_host_platform_device_count={args.devices}"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()


def start(args):
    """After Keras is imported, before any model is built: distribute over the devices --devices names.
    Returns the number of devices each batch is split over."""
    import keras

    name = keras.backend.backend()   # now known for sure (KERAS_BACKEND or ~/.keras/keras.json)
    _state["replicas"] = 1
    if not wanted(args):   # a run before this one in the same process may have distributed
        if name == "jax":
            keras.distribution.set_distribution(None)
        elif name == "tensorflow":
            import tensorflow as tf

            if tf.distribute.has_strategy():
                tf.distribute.experimental_set_strategy(None)
        return 1
    if name not in ("jax", "tensorflow"):
        raise DeviceError(f"--devices above 1 runs on JAX or TensorFlow, not {name}")
    count = _start_jax(args) if name == "jax" else _start_tensorflow(args)
    _state["replicas"] = count
    return count


def _choose(accelerators, cpus, asked, kind):
    """The devices to use: ``asked`` accelerators, else ``asked`` (virtual) CPU devices, saying so."""
    if asked == ALL:
        if accelerators:
            return accelerators
        print(f"devices: no accelerator found; --devices all runs on 1 CPU device", flush=True)
        return cpus[:1]
    if len(accelerators) >= asked:
        return accelerators[:asked]
    if len(cpus) < asked:
        raise DeviceError(f"--devices {asked}: {len(cpus)} CPU devices, and the backend started before more could "
                          f"be made (run --devices in a process of its own)")
    have = f"{len(accelerators)} {kind}" + ("s" if len(accelerators) != 1 else "")
    print(f"devices: {have} for --devices {asked}: running on {asked} virtual CPU devices", flush=True)
    return cpus[:asked]


def _start_jax(args):
    import jax
    import keras

    accelerators = [d for d in jax.devices() if d.platform != "cpu"]
    chosen = _choose(accelerators, jax.devices("cpu"), args.devices, "accelerator")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=chosen))
    print(f"devices: data parallel over {len(chosen)} {chosen[0].platform.upper()} devices (JAX)", flush=True)
    return len(chosen)


def _start_tensorflow(args):
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    cpus = tf.config.list_physical_devices("CPU")
    asked = args.devices
    if asked != ALL and len(gpus) < asked:
        try:   # only before TensorFlow starts its runtime (listing logical devices starts it)
            tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * asked)
        except RuntimeError:   # started: a run before this one in the same process may have split it
            pass
    names = [d.name for d in _choose(tf.config.list_logical_devices("GPU"), tf.config.list_logical_devices("CPU"),
                                     asked, "GPU")]
    if tuple(names) not in _strategies:
        _strategies[tuple(names)] = tf.distribute.MirroredStrategy(names)
    tf.distribute.experimental_set_strategy(_strategies[tuple(names)])
    print(f"devices: data parallel over {len(names)} devices ({', '.join(names)}; TensorFlow MirroredStrategy)",
          flush=True)
    return len(names)


def replicas():
    """How many devices each batch is split over."""
    return _state["replicas"]
