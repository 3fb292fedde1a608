"""The training loop every task shares: optimizer, best-on-dev checkpoint, resume and logs.

    def evaluate(model):                       # the task's dev metric, computed by the task script
        return accuracy(dev_labels, decode(batching.predict(model, dev_batches)))
    training.fit(model, train_batches, evaluate, run, loss=...)   # --mode train|eval|predict, --resume

Per epoch (with ``--eval-every N`` also every N training batches) the dev metric is computed and
printed; when it improves the model's weights (no optimizer state) go to ``weights/<task>.weights.h5``, and
beside them ``<task>.model.json`` (``clue.run_files``: what rebuilds the model). Resume is Keras's
``BackupAndRestore`` (model and optimizer state at the last finished epoch, in ``weights/<task>_backup/``);
the best score so far lives in ``logs/<task>.state.json`` beside the CSV log ``logs/<task>.csv``. Each
backup also keeps the state file and the best weights of its epoch's end, and a resume starts from those
(``roll_back_to_backup``). Shuffling is seeded by (seed, epoch), and so is dropout (``EpochSeeds``): a
resumed run repeats an uninterrupted one exactly. A run that finishes deletes its backup (``--keep-backup``
keeps it, to resume with more epochs later); resuming a finished run whose backup is gone trains nothing
and predicts again from the best weights.
"""

import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np
from keras import ops

from clue import batching, devices, interrupt, run_files, tricks
from clue.cli import TRICK_FLAGS
from clue.optimizers import AdaFactor, AdamW
from clue.paths import atomic_path, require_free_space, write_atomic


@keras.saving.register_keras_serializable(package="clue")
class WarmupLinear(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to ``peak`` over ``warmup_steps``, then linear decay to 0 at ``total_steps``."""

    def __init__(self, peak, total_steps, warmup_steps):
        self.peak, self.total_steps, self.warmup_steps = float(peak), int(total_steps), int(warmup_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = (step + 1) / max(self.warmup_steps, 1)
        decay = (self.total_steps - step) / max(self.total_steps - self.warmup_steps, 1)
        return self.peak * ops.clip(ops.minimum(warm, decay), 0.0, 1.0)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}


def make_optimizer(args, total_steps, **options):
    """bert4keras's AdaFactor at a constant rate, accumulating as bert4keras (the baselines), or AdamW with
    warmup and linear decay (Keras's accumulation: the update at every N-th batch uses the last N).
    ``options`` go to either (``tricks.optimizer_options``: EMA, layer-wise learning rates)."""
    if args.optimizer == "adafactor":
        return AdaFactor(learning_rate=args.lr, grad_accum_steps=args.grad_accum, **options)
    schedule = WarmupLinear(args.lr, total_steps, round(args.warmup * total_steps))
    optimizer = AdamW(schedule, weight_decay=args.weight_decay,
                      gradient_accumulation_steps=args.grad_accum if args.grad_accum > 1 else None, **options)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta", "norm"])
    return optimizer


class EpochSeeds(keras.callbacks.Callback):
    """At each epoch start, sets the batch order and every dropout seed from (seed, epoch) alone.

    Keras's backup holds weights and optimizer state but not the seed generators' states, so a resumed
    run would otherwise replay the dropout masks of its first epoch; reseeding per epoch makes a resumed
    run repeat an uninterrupted one exactly.
    """

    def __init__(self, batches, seed):
        super().__init__()
        self.batches, self.seed = batches, seed

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)
        states = [v for v in self.model.variables if v.name == "seed_generator_state"]
        for i, state in enumerate(states):
            value = np.random.SeedSequence([self.seed, epoch, i]).generate_state(1)[0] % 2**31
            state.assign(np.array([value, 0]).astype(state.dtype))


class StopOnSignal(keras.callbacks.Callback):
    """After each batch, stop with ``interrupt.Interrupted`` when SIGINT/SIGTERM came: raised (not
    ``stop_training``) so that the unfinished epoch is neither scored nor backed up."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        interrupt.check(epoch + 1)

    def on_train_batch_end(self, batch, logs=None):
        interrupt.check(self.epoch + 1)


def nbytes(variables):
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)


class RoomOnDisk(keras.callbacks.Callback):
    """At each epoch's end, before the best weights and the backup (weights and optimizer state) are written:
    a disk without room for them stops the run with ``WriteError``, every earlier file left as it was."""

    def __init__(self, backup):
        super().__init__()
        self.backup = backup

    def on_epoch_end(self, epoch, logs=None):
        weights = nbytes(self.model.weights)
        require_free_space(self.backup / "latest.weights.h5", 2 * weights + nbytes(self.model.optimizer.variables))


def save_model_weights(model, path):
    """The model's weights alone in ``path`` (a .weights.h5): ``Model.save_weights`` of a compiled model
    also stores its optimizer's variables, which only resuming needs (the backup keeps them)."""
    with atomic_path(path, suffix=".weights.h5") as tmp:
        keras.saving.save_weights(model, tmp, objects_to_skip=optimizer_of(model))


def load_model_weights(model, path):
    """Load what ``save_model_weights`` wrote (or an older file that holds optimizer variables too), the
    model's optimizer, if any, left as it is."""
    keras.saving.load_weights(model, path, objects_to_skip=optimizer_of(model))


def optimizer_of(model):
    """[the model's optimizer], or [] before ``compile``."""
    optimizer = getattr(model, "optimizer", None)
    return [optimizer] if optimizer is not None else []


class BestOnDev(keras.callbacks.Callback):
    """Scores dev after each epoch, and with ``every`` also after every ``every``-th training batch
    (counted over the whole run; one that ends an epoch is scored once, as the epoch's); keeps the best
    weights (and ``describe``, the JSON that rebuilds the model, beside them) and records the scores in a
    state file: ``history`` the epoch ends', ``evaluations`` every [step, score], the best's step and
    epoch.

    With ``backup`` (Keras's backup folder) each epoch's end also keeps, in it, the state file and the best
    weights as they are then (``best_at_epoch``): a resume restarts from the last finished epoch's backup,
    and ``roll_back_to_backup`` puts back the best of that moment with it, not a best that a later
    evaluation of the unfinished epoch found."""

    def __init__(self, evaluate, metric, weights_path, state_path, resume=False, flags=None, partial=None,
                 describe=None, every=None, backup=None):
        super().__init__()
        self.evaluate, self.metric, self.flags = evaluate, metric, flags or {}
        self.weights_path, self.state_path, self.resume = weights_path, state_path, resume
        self.partial = partial or {}   # the files --limit cut short: {name: [kept, total]}
        self.describe, self.every, self.backup = describe, every, backup
        self.epoch = 0

    def on_train_begin(self, logs=None):
        state = {}
        if self.resume and self.state_path.is_file():
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        self.best, self.best_step = state.get("best"), state.get("best_step")
        self.best_epoch = state["best_epoch"] - 1 if "best_epoch" in state else None   # stored from 1
        self.history = state.get("history", [])
        self.evaluations = state.get("evaluations", [])

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def steps_per_epoch(self):
        return (self.params or {}).get("steps")

    def scores_after_batch(self, batch):
        """True when dev is scored after training batch ``batch`` (from 0) of this epoch, mid-epoch."""
        steps = self.steps_per_epoch()
        return bool(self.every and steps and batch + 1 < steps
                    and (self.epoch * steps + batch + 1) % self.every == 0)

    def on_train_batch_end(self, batch, logs=None):
        if self.scores_after_batch(batch):
            self.score(self.epoch * self.steps_per_epoch() + batch + 1, epoch_end=False)

    def on_epoch_end(self, epoch, logs=None):
        steps, self.epoch = self.steps_per_epoch(), epoch
        del self.history[epoch:]                # a resumed epoch replaces its earlier record
        score = self.score((epoch + 1) * steps if steps else None, epoch_end=True)
        if logs is not None:
            logs[f"val_{self.metric}"] = score   # the CSV log and the progress bar pick it up
        if self.backup is not None and self.weights_path.is_file():
            self.keep_with_backup(epoch + 1)

    def score(self, step, epoch_end):
        """Score dev after ``step`` (training batches so far, from 1; None when unknown) of this epoch, at
        its end or not; keep the weights when they are the best so far, and write the state file."""
        with batching.REMEMBERED.recording():   # the best dev outputs are the dev file's (no second pass)
            score = float(self.evaluate(self.model))
        if step is not None:   # a resumed run replaces what it scores again
            self.evaluations = [e for e in self.evaluations if e[0] < step] + [[step, score]]
        if epoch_end:
            self.history.append(score)
        if self.best is None or score > self.best:
            self.best, self.best_step, self.best_epoch = score, step, self.epoch
            if not epoch_end:   # at an epoch's end RoomOnDisk checked (h5py crashes on a full disk)
                require_free_space(self.weights_path, nbytes(self.model.weights))
            save_model_weights(self.model, self.weights_path)
            if self.describe is not None:
                run_files.write_description(self.weights_path, self.describe)
        write_atomic(self.state_path, json.dumps({
            "metric": self.metric, "best": self.best, "best_epoch": self.best_epoch + 1,
            "best_step": self.best_step, "epochs_done": self.epoch + epoch_end, "epochs": self.params.get("epochs"),
            "steps_per_epoch": self.steps_per_epoch(), "eval_every": self.every, "history": self.history,
            "evaluations": self.evaluations, "flags": self.flags, "partial": self.partial,
        }, indent=1) + "\n")
        where = f"epoch {self.epoch + 1}" if epoch_end else f"step {step} (in epoch {self.epoch + 1})"
        if self.every and epoch_end:   # then the epoch end's step too
            where += f", step {step}"
        print(f"{where}: dev {self.metric} {score:.2%} (best {self.best:.2%} at {self.best_at()})", flush=True)
        return score

    def best_at(self):
        """Where the best score was: "epoch 2", or with ``every`` "step 12 (epoch 2)"."""
        epoch = f"epoch {self.best_epoch + 1}"
        return f"step {self.best_step} ({epoch})" if self.every and self.best_step else epoch

    def keep_with_backup(self, epochs_done):
        """The state file and the best weights as they are after ``epochs_done`` epochs, in the backup
        folder (the weights a hard link where the disk allows: no copy); those of older epochs deleted but
        the one before (Keras's previous backup, which a resume may fall back to, ``double_checkpoint``)."""
        weights, state = best_at_epoch(self.backup, epochs_done)
        weights.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(weights, suffix=".weights.h5") as tmp:
            Path(tmp).unlink()
            try:
                os.link(self.weights_path, tmp)
            except OSError:
                shutil.copyfile(self.weights_path, tmp)
        write_atomic(state, self.state_path.read_text(encoding="utf-8"))
        for old in self.backup.glob("best-epoch*"):
            if int(old.name.split(".")[0].removeprefix("best-epoch")) < epochs_done - 1:
                old.unlink(missing_ok=True)


def best_at_epoch(backup, epochs_done):
    """(best weights, state file) that ``BestOnDev`` keeps in ``backup`` after ``epochs_done`` epochs."""
    return backup / f"best-epoch{epochs_done}.weights.h5", backup / f"best-epoch{epochs_done}.state.json"


def roll_back_to_backup(backup, weights_path, state_path):
    """Before a resume: the best weights and the state file as they were when the backup it starts from was
    written (``BestOnDev.keep_with_backup``), so that the best score the resume starts from is that of the
    weights on disk; a best that the unfinished epoch found is found again when it is trained again
    (seeded per epoch). No finished epoch in the backup: the state is dropped (a fresh start). A backup
    from before these copies: the state as it is."""
    metadata = backup / "training_metadata.json"
    epochs_done = json.loads(metadata.read_text(encoding="utf-8"))["epoch"] if metadata.is_file() else 0
    if not epochs_done:
        state_path.unlink(missing_ok=True)
        return
    weights, state = best_at_epoch(backup, epochs_done)
    if weights.is_file() and state.is_file():
        with atomic_path(weights_path, suffix=".weights.h5") as tmp:
            shutil.copyfile(weights, tmp)
        write_atomic(state_path, state.read_text(encoding="utf-8"))


class BackupBeforeLastEpoch(keras.callbacks.BackupAndRestore):
    """Keras's resume backup, left unwritten at the last epoch's end (unless ``keep_last``): the best weights
    and the state file, written just before it, are all that resuming a finished run needs
    (``finished_best``), and the backup would be deleted at once (1.2 GB at BERT-base with AdaFactor)."""

    def __init__(self, *args, keep_last=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.keep_last = keep_last

    def on_epoch_end(self, epoch, logs=None):
        if self.keep_last or epoch + 1 < self.params["epochs"]:
            super().on_epoch_end(epoch, logs)


def as_fit_data(batches):
    """What ``model.fit`` gets. On TensorFlow a ``tf.data`` pipeline whose sequence dims are unknown:
    Keras would otherwise fix the batch shapes to those of the first two batches it peeks at. The
    generator reads ``batches[i]`` when each epoch starts, so ``set_epoch`` still decides the order.
    Over several JAX processes, each process's share of every batch (``batching.ProcessShare``)."""
    if devices.processes_running() > 1:
        return batching.ProcessShare(batches)
    if keras.backend.backend() != "tensorflow":
        return batches
    import tensorflow as tf

    spec = keras.tree.map_structure(lambda a: tf.TensorSpec((None,) * np.ndim(a), np.asarray(a).dtype),
                                    batches[0])
    data = tf.data.Dataset.from_generator(lambda: (batches[i] for i in range(len(batches))),
                                          output_signature=spec)
    return data.apply(tf.data.experimental.assert_cardinality(len(batches))).prefetch(2)


class ExampleLoss(keras.metrics.Mean):
    """The training loss averaged over the real examples of an epoch, the filler rows of batches padded to
    split over several devices (weight 0, ``clue.batching.Batches``) left out. Keras's own "loss" averages
    the batch losses weighted by their row counts, filler included."""

    def __init__(self, loss, name="example_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.per_example = loss.call if isinstance(loss, keras.losses.Loss) else keras.losses.get(loss)

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = ops.convert_to_tensor(self.per_example(y_true, y_pred))
        values = ops.reshape(values, (ops.shape(values)[0], -1))
        real = None if sample_weight is None else ops.cast(ops.greater(sample_weight, 0), values.dtype)
        return super().update_state(ops.mean(values, axis=-1), sample_weight=real)


class ExampleLossAsLoss(keras.callbacks.Callback):
    """At each epoch's end, the logs' "loss" (CSV log, history) becomes ``ExampleLoss``'s: over several
    devices the epoch's loss is then the one device's."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and "example_loss" in logs:
            logs["loss"] = logs.pop("example_loss")


def drop_unfinished_first_backup(backup):
    """Forget a first backup that a kill interrupted. Keras writes the weights, then
    ``training_metadata.json``; without the metadata the weights file may be half written, and unlike later
    epochs there is no previous copy to fall back on, so the run restarts from scratch (which, seeded per
    epoch, gives the same result)."""
    if (backup / "latest.weights.h5").exists() and not (backup / "training_metadata.json").exists():
        print(f"{backup}: the first backup was interrupted before it finished; starting from scratch",
              flush=True)
        shutil.rmtree(backup)


def readable(path):
    """True when the backup file ``path`` opens (JSON metadata parses, an HDF5 weights file opens)."""
    try:
        if path.suffix == ".json" or path.name.endswith(".json.bkp"):
            json.loads(path.read_text(encoding="utf-8"))
        else:
            import h5py

            h5py.File(path, "r").close()
        return True
    except (OSError, ValueError):
        return False


def fall_back_to_previous_backup(backup):
    """When a file of the latest backup is unreadable (a full disk, a kill mid-write) and Keras's previous
    copy (``.bkp``, double_checkpoint) is whole, put the previous copy back: resume repeats one more epoch
    instead of failing on it."""
    latest = [backup / "training_metadata.json", backup / "latest.weights.h5"]
    previous = [p.with_name(p.name + ".bkp") for p in latest]
    if all(p.exists() for p in latest) and not all(readable(p) for p in latest) \
            and all(p.exists() and readable(p) for p in previous):
        print(f"{backup}: the latest backup is unreadable; resuming from the previous one", flush=True)
        for old, new in zip(previous, latest):
            shutil.copyfile(old, new)


# Flags a resumed run must share with the run it continues (--epochs may grow).
RESUME_FLAGS = ("model", "optimizer", "lr", "warmup", "weight_decay", "batch_size", "grad_accum", "maxlen",
                "mixed_precision", "pooling", "second_segment", "limit", "seed",
                *TRICK_FLAGS)


def check_resume_flags(state_path, flags):
    """Refuse to resume a run made with other flags (Keras would quietly skip mismatched optimizer state)."""
    if not state_path.is_file():
        return
    before = json.loads(state_path.read_text(encoding="utf-8")).get("flags", {})
    changed = [f"--{k.replace('_', '-')} {before[k]} -> {v}" for k, v in flags.items()
               if k in before and before[k] != v]
    if changed:
        raise ValueError(f"--resume continues the run recorded in {state_path}, which had other flags: "
                         f"{'; '.join(changed)}. Resume with the same flags, or start afresh without --resume.")


def finished_best(state_path, weights_path, epochs):
    """The best dev score of a run that trained all its ``epochs`` (its best weights and state, written at
    the last epoch's end, are there; a backup may be left, of an earlier epoch by a kill before the run
    deleted it, or kept by --keep-backup); None for any other run, which resuming continues from its backup."""
    if not weights_path.is_file() or not state_path.is_file():
        return None
    state = json.loads(state_path.read_text(encoding="utf-8"))
    return state["best"] if state.get("epochs_done", 0) >= epochs and state.get("best") is not None else None


def fit(model, train, evaluate, run, *, loss):
    """Train (``--mode train``) or load the best weights (eval/predict); returns the dev score.

    ``train`` is a ``clue.batching.Batches`` (it has ``set_epoch``); ``loss`` is what Keras's ``compile``
    takes (a name or a function); ``evaluate(model)`` returns the dev metric.
    In eval mode the score of the saved weights is printed; in predict mode dev is not scored (None).
    """
    args, name, metric = run.args, run.task.name, run.task.metric
    if args.mode != "train":
        load_model_weights(model, run.weights_path)
        if args.mode == "predict":
            return None
        score = float(evaluate(model))
        print(f"{name}: dev {metric} {score:.2%} ({run.weights_path})", flush=True)
        return score

    backup = run_files.backup_path(run.dirs.weights, name)
    state_path = run.dirs.logs / f"{name}.state.json"
    flags = {flag: getattr(args, flag) for flag in RESUME_FLAGS}
    if args.resume:
        check_resume_flags(state_path, flags)
        finished = finished_best(state_path, run.weights_path, args.epochs)
        if finished is not None:
            if not args.keep_backup:   # an earlier epoch's, left by a kill
                shutil.rmtree(backup, ignore_errors=True)
            load_model_weights(model, run.weights_path)
            print(f"{name}: this run finished; predicting again from {run.weights_path}",
                  flush=True)
            return finished
        drop_unfinished_first_backup(backup)
        fall_back_to_previous_backup(backup)
        roll_back_to_backup(backup, run.weights_path, state_path)
        where = "the last finished epoch" if backup.is_dir() else "scratch (no backup found)"
        print(f"{name}: resuming from {where} in {backup}", flush=True)
    else:   # a fresh run: forget any earlier interrupted one
        shutil.rmtree(backup, ignore_errors=True)
        state_path.unlink(missing_ok=True)
    if args.fgm is not None:   # the same layers and variables: the caller's model learns
        model = tricks.fgm(model, args.fgm)
    fit_batches = train
    if args.rdrop:   # each example twice per batch, the loss with the pair's KL
        fit_batches, loss = tricks.rdrop(train, loss, args.rdrop)
    options = tricks.optimizer_options(model, args.ema, args.layer_lr_decay)
    spread = devices.replicas() > 1   # batches padded to split evenly: the loss is logged over real examples
    model.compile(optimizer=make_optimizer(args, args.epochs * len(train), **options), loss=loss,
                  weighted_metrics=[ExampleLoss(loss)] if spread else None)
    # Build the optimizer's slots now, eagerly: left to the first step (TensorFlow), they are created inside
    # the traced train function, which costs seconds per hundred variables and a second trace.
    model.optimizer.build(model.trainable_variables)
    best = BestOnDev(evaluate, metric, run.weights_path, state_path, resume=args.resume, flags=flags,
                     partial=run.partial, describe=run_files.describe(run), every=args.eval_every, backup=backup)
    callbacks = [
        *([ExampleLossAsLoss()] if spread else []),
        StopOnSignal(),
        EpochSeeds(train, args.seed),
        RoomOnDisk(backup),
        *tricks.scored_with_average([best], args.ema),   # --ema: dev and the best weights averaged
        # double_checkpoint: a kill while the backup is written leaves the previous epoch's copy to resume from
        BackupBeforeLastEpoch(str(backup), keep_last=args.keep_backup, double_checkpoint=True,
                              delete_checkpoint=False),
        keras.callbacks.CSVLogger(str(run.dirs.logs / f"{name}.csv"), append=args.resume),
    ]
    if args.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run.dirs.logs / "tensorboard" / name)))
    model.fit(as_fit_data(fit_batches), epochs=args.epochs, callbacks=callbacks, verbose=args.verbose, shuffle=False)
    if best.best is None:
        raise RuntimeError(f"{name}: no epoch finished and no earlier best score in {state_path}")
    load_model_weights(model, run.weights_path)
    if not args.keep_backup:   # finished: what resuming needed is no longer needed
        shutil.rmtree(backup, ignore_errors=True)
    print(f"{name}: best dev {metric} {best.best:.2%} at {best.best_at()}; "
          f"weights {run.weights_path}", flush=True)
    return best.best
