"""Data-parallel training over several devices (``--devices N|all``), set up before the backend starts.

    devices.prepare(args)          # before Keras is imported: virtual CPU devices for JAX (XLA_FLAGS)
    keras = cli.import_keras(...)
    devices.start(args)            # Keras's DataParallel (JAX) or a global MirroredStrategy (TensorFlow)
    devices.replicas()             # how many devices each batch is split over (1 when not distributed)

``--batch-size`` stays the global batch: each of the N devices gets 1/N of it. ``clue.batching.Batches``
pads a batch that does not split evenly with zero-weight examples and ``batching.predict`` drops their
rows, so N devices train and predict as one does. With fewer accelerators than N (a laptop, CI) the run
uses N virtual CPU devices and says so: a multi-GPU command can be dry-run anywhere.

Several machines (JAX): ``--processes P --process-id I --coordinator HOST:PORT`` (or Keras's environment
variables KERAS_DISTRIBUTION_NUM_PROCESSES, _PROCESS_ID, _JOB_ADDRESSES) start ``keras.distribution.initialize``;
every process runs the same command on its own devices (``--devices`` counts those of one process), reads all
the data, feeds its share of each global batch (``process_share``) and predicts whole batches
(``predict_on_batch``: the rows of every process, gathered). Process 0 writes the run's files; process I
writes its own copy to ``<output-dir>/process-I/`` (the backups it resumes from).
This module imports no backend at import time.
"""

import argparse
import os
import sys
import weakref

ALL = "all"
_state = {"replicas": 1, "process": 0, "processes": 1}
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
    """True when the run asks for more than one device (of this process or of several)."""
    return args.devices != 1 or processes(args) > 1


def processes(args):
    """How many processes the run spans: --processes, else Keras's KERAS_DISTRIBUTION_NUM_PROCESSES, else 1."""
    found = getattr(args, "processes", None)
    if found is None:
        text = os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1")
        try:
            found = int(text)
        except ValueError:
            raise DeviceError(f"KERAS_DISTRIBUTION_NUM_PROCESSES must be a whole number, got {text!r}") from None
    return found


def process_flags(args):
    """(coordinator address, number of processes, this process's id) of a multi-process run, checked."""
    count = processes(args)
    process_id, coordinator = args.process_id, args.coordinator
    if process_id is None and "KERAS_DISTRIBUTION_PROCESS_ID" in os.environ:
        text = os.environ["KERAS_DISTRIBUTION_PROCESS_ID"]
        if not text.isdigit():
            raise DeviceError(f"KERAS_DISTRIBUTION_PROCESS_ID must be a whole number, got {text!r}")
        process_id = int(text)
    coordinator = coordinator or os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES")
    if process_id is None or not 0 <= process_id < count:
        raise DeviceError(f"--processes {count} needs --process-id 0 to {count - 1} (or KERAS_DISTRIBUTION_PROCESS_ID)"
                          + ("" if process_id is None else f", got {process_id}"))
    if not coordinator:
        raise DeviceError(f"--processes {count} needs --coordinator HOST:PORT, process 0's address (or "
                          f"KERAS_DISTRIBUTION_JOB_ADDRESSES)")
    return coordinator, count, process_id


def backend():
    """The backend Keras will start, as far as the environment tells before it is imported."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def prepare(args):
    """Before Keras (and its backend) is imported. JAX makes its CPU devices when it starts, so N virtual
    ones are asked for now (XLA_FLAGS); they only serve when there are fewer accelerators than N."""
    if not wanted(args):
        return
    if processes(args) > 1:
        process_flags(args)
        if backend() != "jax":
            raise DeviceError(f"--processes above 1 runs on JAX (keras.distribution.initialize), not {backend()}: "
                              f"use KERAS_BACKEND=jax")
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
    _state.update(replicas=1, process=0, processes=1)
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

    count = processes(args)
    if count > 1:
        coordinator, count, process_id = process_flags(args)
        if not _state.get("initialized"):   # once per process (a test runs several scripts in one)
            print(f"devices: process {process_id} of {count}, waiting for all {count} at {coordinator}", flush=True)
            keras.distribution.initialize(coordinator, count, process_id)
            _state["initialized"] = True
        _state.update(process=process_id, processes=count)
    accelerators = [d for d in jax.local_devices() if d.platform != "cpu"]
    local = _choose(accelerators, jax.local_devices(backend="cpu"), args.devices, "accelerator")
    # every process runs the same command: the first len(local) devices of each, in process order
    chosen = [d for p in range(count) for d in
              [d for d in jax.devices(local[0].platform) if d.process_index == p][:len(local)]]
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=chosen,
                                                                        auto_shard_dataset=count == 1))
    where = f" in {count} processes; this is process {_state['process']}" if count > 1 else ""
    print(f"devices: data parallel over {len(chosen)} {chosen[0].platform.upper()} devices (JAX){where}", flush=True)
    if _state["process"] > 0:   # process 0 writes the run's files; this one its own copy, to resume from
        args.output_dir = os.path.join(args.output_dir, f"process-{_state['process']}")
        print(f"devices: process {_state['process']} writes its copy of the run to {args.output_dir}", flush=True)
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
    """How many devices each batch is split over (those of every process)."""
    return _state["replicas"]


def processes_running():
    """How many processes this run spans (1 when not distributed over several)."""
    return _state["processes"]


def process_share(batch):
    """This process's rows of a global batch (arrays or tuples of them, rows first): all of it in one process;
    else the I-th of P equal parts (the batch has a multiple of every device's count of rows)."""
    count = _state["processes"]
    if count == 1:
        return batch
    import keras

    def share(array):
        rows = len(array) // count
        return array[_state["process"] * rows:(_state["process"] + 1) * rows]

    return keras.tree.map_structure(share, batch)


_forwards = weakref.WeakKeyDictionary()   # model -> its jitted forward pass with gathered outputs


def predict_on_batch(model, x):
    """``model.predict_on_batch(x)``; over several processes (each holding the whole batch ``x``) the batch
    is spread over every device and the outputs of all are gathered to each process, which Keras's own
    (outputs left on the devices that made them) does not do."""
    if _state["processes"] == 1:
        return model.predict_on_batch(x)
    import jax
    import keras
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    distribution = keras.distribution.distribution()
    mesh = distribution.device_mesh.backend_mesh
    rows = NamedSharding(mesh, PartitionSpec(distribution.batch_dim_name))
    if model not in _forwards:
        def forward(trainable, non_trainable, x):
            return model.stateless_call(trainable, non_trainable, x, training=False)[0]

        _forwards[model] = jax.jit(forward, out_shardings=NamedSharding(mesh, PartitionSpec()))
    x = keras.tree.map_structure(lambda a: jax.make_array_from_callback(np.shape(a), rows, lambda i: a[i]), x)
    outputs = _forwards[model]([v.value for v in model.trainable_variables],
                               [v.value for v in model.non_trainable_variables], x)
    return keras.tree.map_structure(np.asarray, outputs)
