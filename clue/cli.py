"""The command line every task script shares, and ``Run``: what a script needs once the flags are read.

    run = cli.start("afqmc", argv)      # flags, seeds, data files, model spec, tokenizer, output folders
    train = run.read("train")           # records of the split, at most --limit of them
    encoder = run.encoder()             # the pretrained (or tiny random) encoder
    for split, out in run.outputs(): ...       # "dev", then each test file, and the file it is written to

With no ``--data-dir``, no ``$CLUE_DATA_DIR`` and no ``./datasets/<task>``, a task that has a demo (afqmc)
generates its demo data and says so in a banner; a data directory that was asked for but is missing is an
error, never a silent demo.
"""

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import clue
from clue import demo, devices, registry, run_files
from clue.paths import (MissingPathError, OutputBusyError, OutputDirs, WriteError, data_root, find_task_dir,
                        lock_task)
from clue.presets import preset_names, resolve_model

DEFAULT_MODEL = "bert-base"
# A random init learns with AdamW 1e-3: AdaFactor 5e-4's steps, scaled by rms(weight), are sized for fine-tuning.
# (scripts/learning_check.py, TNEWS: AdamW 46% after 1 epoch; AdaFactor the majority's 10.9% for 3, 37% at 5.)
DEMO_DEFAULTS = {"optimizer": "adamw", "lr": 1e-3, "epochs": 10, "maxlen": 64}
# The leaderboard tricks' flags (clue.tricks, and --eval-every): recorded in the state file, passed on by
# clue-run, and shown in its summary when set.
TRICK_FLAGS = ("ema", "layer_lr_decay", "rdrop", "fgm", "eval_every")
NEEDS = {"train": ("train", "dev"), "eval": ("dev",), "predict": ()}   # the splits each --mode reads


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: ...)" only where the help does not already say the default and there is one."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False):
            return text
        return super()._get_help_string(action)


def build_parser(task):
    p = argparse.ArgumentParser(
        prog=Path(task.script).name,
        description=f"Fine-tune an encoder on {task.name} and write {' / '.join(task.output_names())}.",
        formatter_class=DefaultsHelpFormatter)
    p.add_argument("--data-dir", help="folder holding <task>/ (default: $CLUE_DATA_DIR, else ./datasets)")
    p.add_argument("--model", help=f"preset ({', '.join(preset_names())}) or preset JSON path "
                                   f"(default: {DEFAULT_MODEL}; tiny in the demo)")
    p.add_argument("--model-dir", help="unpacked checkpoint folder (default: $CLUE_MODEL_DIR)")
    p.add_argument("--output-dir", default=".", help="results/, weights/ and logs/ go here")
    p.add_argument("--mode", choices=("train", "eval", "predict"), default="train",
                   help="train: fit, keep the best dev epoch, predict the test set; eval: dev score of the "
                        "saved best weights; predict: test predictions from the saved best weights")
    p.add_argument("--epochs", type=int, default=task.epochs, help="training epochs")
    p.add_argument("--batch-size", type=int, default=task.batch_size, help="examples per batch")
    p.add_argument("--maxlen", type=int, default=task.maxlen, help="tokens per example, [CLS] and [SEP] included")
    p.add_argument("--lr", type=float, help="learning rate (default: 5e-4 for adafactor, 2e-5 for adamw)")
    p.add_argument("--optimizer", choices=("adafactor", "adamw"), default="adafactor",
                   help="bert4keras's AdaFactor at a constant rate, as the baselines (clue.optimizers), or AdamW "
                        "with warmup and linear decay")
    p.add_argument("--warmup", type=float, default=0.1, help="adamw: warmup as a fraction of all steps")
    p.add_argument("--weight-decay", type=float, default=0.01, help="adamw only")
    p.add_argument("--grad-accum", type=int, default=task.grad_accum, help="apply the gradients every N batches")
    add_trick_flags(p)
    p.add_argument("--mixed-precision", nargs="?", const="mixed_float16", default=None,
                   choices=("mixed_float16", "mixed_bfloat16"), help="Keras dtype policy (GPU: float16)")
    p.add_argument("--pooling", choices=("cls", "avg", "max"), default="cls", help="sentence vector")
    p.add_argument("--second-segment", type=int, choices=(0, 1), default=0,
                   help="segment id of the second text of a pair (the baselines use 0)")
    p.add_argument("--limit", type=int, help="at most N examples per split (smoke runs)")
    p.add_argument("--seed", type=int, default=42, help="weights init, dropout and batch order")
    p.add_argument("--resume", action="store_true",
                   help="continue from the last finished epoch (weights and optimizer state)")
    p.add_argument("--keep-backup", action="store_true",
                   help="keep weights/<task>_backup/ (weights and optimizer state of the last epoch) when the run "
                        "finishes, to --resume it later with more --epochs; deleted otherwise")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs under logs/")
    # data parallel (clue.devices): --batch-size stays the global batch
    p.add_argument("--devices", type=devices.parse_devices, default=1, metavar="N|all",
                   help="train and predict data parallel over N devices (all: every local accelerator); "
                        "N virtual CPU devices where there are fewer accelerators (TensorFlow and JAX)")
    # several machines (JAX, clue.devices): one process per machine, each running this same command
    p.add_argument("--processes", type=int, metavar="P",
                   help="JAX: the run spans P processes (machines), each with --devices of its own "
                        "(default: KERAS_DISTRIBUTION_NUM_PROCESSES, else 1)")
    p.add_argument("--process-id", type=int, metavar="I",
                   help="this process's number, 0 to P-1; process 0 writes the run's files (default: "
                        "KERAS_DISTRIBUTION_PROCESS_ID)")
    p.add_argument("--coordinator", metavar="HOST:PORT",
                   help="process 0's address, the same for every process (default: KERAS_DISTRIBUTION_JOB_ADDRESSES)")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1, help="Keras progress output")
    return p


def add_trick_flags(parser):
    """The leaderboard tricks' flags (``TRICK_FLAGS``), of every task script and of clue-run."""
    parser.add_argument("--ema", type=float, metavar="DECAY",
                        help="keep a moving average of the weights (DECAY per applied update, e.g. 0.999): dev is "
                             "scored, the best weights saved and the test set predicted with it")
    parser.add_argument("--layer-lr-decay", type=float, metavar="RATE",
                        help="layer-wise learning rate: the top encoder layer x1, each layer below x RATE, the "
                             "embeddings lowest; the head x1 (e.g. 0.9)")
    parser.add_argument("--rdrop", type=float, metavar="ALPHA",
                        help="R-Drop: each example twice per batch (two dropout masks); loss + ALPHA x the symmetric "
                             "KL of its two outputs. Classification and multiple choice only, not span tasks "
                             "(cmrc2018, cluener: no single distribution per example)")
    parser.add_argument("--fgm", type=float, metavar="EPSILON",
                        help="FGM adversarial training: each step taken with the token embeddings moved by "
                             "EPSILON x g/||g|| (g their loss gradient), then moved back (e.g. 1)")
    parser.add_argument("--eval-every", type=int, metavar="STEPS",
                        help="also score dev every STEPS training batches (counted over the run), not only at each "
                             "epoch's end; the best of all these is kept as the best weights")


class Run:
    """Flags, folders, model spec and tokenizer of one task run."""

    def __init__(self, task, args, task_dir, demo_banner=None):
        from clue.tokenizer import Tokenizer, builtin_vocab

        self.task, self.args, self.task_dir, self.demo = task, args, Path(task_dir), demo_banner is not None
        self.dirs = OutputDirs(args.output_dir).make()
        lock_task(self.dirs, task.name)   # one run per task and output folder
        self.weights_path = run_files.weights_path(self.dirs.weights, task.name)
        self.files = task.find_files(self.task_dir)
        self.test_outputs = task.test_outputs(self.task_dir)
        self._check_files()
        self._records = self._read_all()
        self.partial = self._cut_by_limit()
        self.spec = resolve_model(args.model, args.model_dir)
        vocab = self.spec.vocab_path or builtin_vocab()
        self.tokenizer = Tokenizer(str(vocab) if isinstance(vocab, Path) else vocab, self.spec.do_lower_case)
        from clue.models import spec_config

        self.config = spec_config(self.spec, self.tokenizer.vocab_size)   # config, vocabulary and checkpoint agree

    def _check_files(self):
        """Fail before any training when a file this mode needs is missing."""
        for split in NEEDS[self.args.mode]:
            if self.files.get(split) is None:
                raise MissingPathError(
                    f"{self.task.name}: no {split} file in {self.task_dir} (--mode {self.args.mode} needs it)")
        if self.args.mode != "train" and not self.weights_path.is_file():
            raise MissingPathError(f"--mode {self.args.mode} loads the best weights {self.weights_path}, "
                                   f"which do not exist: train first (--mode train) with this --output-dir")
        if not self.test_outputs:
            tests = dict.fromkeys(name for o in self.task.outputs for name in self.task.file_names(o.split))
            message = f"{self.task.name}: no test file in {self.task_dir} (looked for {', '.join(tests)})"
            if self.args.mode == "predict":
                raise MissingPathError(message)
            print(f"warning: {message}; no submission file will be written", file=sys.stderr)

    def _read_all(self):
        """Every file this run reads, read and checked now, before any training: a bad line in a test file
        costs seconds, not the run. An empty train or dev split, a train or dev record without its answer
        (``Task.check``) and duplicate test ids are errors."""
        from clue.data import DataError

        records = {}
        for split in NEEDS[self.args.mode]:
            found = records[_key(self.files[split])] = self.task.read(self.files[split])
            if not found:
                raise DataError(self.files[split][0], None, f"no {self.task.name} {split} records")
            self.task.check(split, self.files[split], found)
        for test, _ in ([] if self.args.mode == "eval" else self.test_outputs):
            found = records[_key(test)] = self.task.read(test)
            self.task.check("test", test, found)
            seen = set()
            for record in found:
                if record["id"] in seen:
                    raise DataError(test[0], None, f"test id {record['id']!r} appears more than once")
                seen.add(record["id"])
        return records

    def _cut_by_limit(self):
        """{file name: [kept, total]} for each file --limit cuts short: this run's scores and leaderboard
        files cover only part of it, which the state file, the summary and make_submission then say."""
        limit, cut = self.args.limit, {}
        for files, records in self._records.items():
            if limit is not None and len(records) > limit:
                cut[" + ".join(Path(f).name for f in files)] = [limit, len(records)]
        if cut:
            print(f"note: --limit {limit} cuts {', '.join(f'{n} ({t:,} records)' for n, (_, t) in cut.items())}: "
                  f"this run's scores and leaderboard files are partial", flush=True)
        return cut

    def read(self, split):
        """The records of ``split`` ("train", "dev") or of a test file (its parts), read as the registry
        says, at most --limit of them; [] for a split this --mode does not read (--mode predict needs no
        train file)."""
        if isinstance(split, str):
            if split not in NEEDS[self.args.mode]:
                return []
            split = self.files[split]
        records = self._records.get(_key(split))
        return (records if records is not None else self.task.read(split))[:self.args.limit]

    def outputs(self):
        """[(split, prediction file)] to predict with the best weights: "dev" first (results/dev/, for the
        record and a seeds' ensemble; not in --mode predict), then each test file (not in --mode eval)."""
        from clue.predictions import dev_path

        dev = [] if self.args.mode == "predict" else [("dev", dev_path(self.dirs.results, self.task.name))]
        tests = [] if self.args.mode == "eval" else [(t, self.dirs.results / name) for t, name in self.test_outputs]
        return dev + tests

    def encoder(self, **options):
        from clue.models import build_from_spec

        return build_from_spec(self.spec, self.tokenizer.vocab_size, seed=self.args.seed, **options)


def _key(files):
    return tuple(str(f) for f in ([files] if isinstance(files, (str, Path)) else files))


def explicit_flags(parser, argv):
    """The dests of the flags the command line actually gave (``--lr 1e-3`` or ``--lr=1e-3``)."""
    given = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    return {a.dest for a in parser._actions if given & set(a.option_strings)}


def parse_args(task_name, argv=None):
    task = registry.get(task_name)
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(task)
    args = parser.parse_args(argv)
    args.explicit = explicit_flags(parser, argv)
    if args.lr is None:
        args.lr = 5e-4 if args.optimizer == "adafactor" else 2e-5
    for flag in ("epochs", "batch_size", "maxlen", "grad_accum", "limit", "eval_every", "processes"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    if args.process_id is not None and args.process_id < 0:
        parser.error(f"--process-id must be at least 0, got {args.process_id}")
    check_tricks(parser, task, args)
    if args.tensorboard and importlib.util.find_spec("tensorboard") is None:
        parser.error("--tensorboard needs the tensorboard package: pip install tensorboard "
                     "(the CSV log in logs/ is always written)")
    return task, args


def check_tricks(parser, task, args):
    """Refuse a trick's flag that is out of range or does not apply to ``task``, before anything runs."""
    check_trick_values(parser, args)
    for refusal in trick_refusals(task, args):
        parser.error(refusal)


def check_trick_values(parser, args):
    """Refuse a trick's flag that is out of range for any task (also clue-run's)."""
    if args.ema is not None and not 0 < args.ema < 1:
        parser.error(f"--ema must be between 0 and 1 (e.g. 0.999), got {args.ema}")
    if args.layer_lr_decay is not None and not 0 < args.layer_lr_decay <= 1:
        parser.error(f"--layer-lr-decay must be above 0 and at most 1 (e.g. 0.9), got {args.layer_lr_decay}")
    if args.rdrop is not None and args.rdrop < 0:
        parser.error(f"--rdrop must be at least 0, got {args.rdrop}")
    if args.fgm is not None and args.fgm < 0:
        parser.error(f"--fgm must be at least 0, got {args.fgm}")


def trick_refusals(task, args):
    """Why ``task`` takes not the tricks ``args`` asks for: one line per trick that does not apply to it
    (clue-run skips such a task)."""
    refusals = []
    if args.rdrop and not task.softmax_per_example:
        refusals.append(f"--rdrop does not apply to {task.name}: it compares two output distributions per "
                        f"example, and {task.name} scores spans")
    return refusals


def wants_demo(task, args):
    """True when nothing points at data: no --data-dir, no $CLUE_DATA_DIR, no ./datasets/<task>."""
    if task.demo is None or args.data_dir or os.environ.get("CLUE_DATA_DIR"):
        return False
    try:
        find_task_dir(task.name)
    except MissingPathError:
        return True
    return False


def import_keras(verbose):
    """Keras, imported with its backend's start-up log held back unless --verbose 2: TensorFlow's oneDNN,
    CUDA and CPU-feature lines come from C++ straight to file descriptor 2 (TF_CPP_MIN_LOG_LEVEL no longer
    hides them), so that descriptor is pointed at a temporary file meanwhile; a failed import shows it all."""
    if verbose == 2 or "keras" in sys.modules:
        with clue.deferred_modules_hidden():
            import keras
        return keras
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")   # later INFO lines (tf.data's "Memory patch applied")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            with clue.deferred_modules_hidden():
                import keras
            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf
                tf.config.list_physical_devices()   # CUDA is probed (and its failure logged) here
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return keras


def start(task_name, argv=None):
    """Read the flags and set up a run: seeds, precision policy, demo data when nothing is configured."""
    task, args = parse_args(task_name, argv)
    devices.prepare(args)
    keras = import_keras(args.verbose)
    devices.start(args)
    banner = None
    if wants_demo(task, args):
        folder = task.demo(Path(args.output_dir) / "demo_data" / task.name, seed=args.seed)
        args.data_dir, args.model = str(folder.parent), args.model or "tiny"
        for flag, value in DEMO_DEFAULTS.items():
            if flag not in args.explicit:
                setattr(args, flag, value)
        banner = demo.BANNER.format(folder=folder)
        print(banner, flush=True)
    args.model = args.model or DEFAULT_MODEL
    set_random_seed(args.seed)
    keras.mixed_precision.set_dtype_policy(args.mixed_precision or "float32")
    task_dir = find_task_dir(task.name, args.data_dir)
    source = "generated demo data" if banner else data_root(args.data_dir)[1]
    print(f"{task.name}: data {task_dir} ({source}), model {args.model}, mode {args.mode}", flush=True)
    return Run(task, args, task_dir, banner)


def set_random_seed(seed):
    """``keras.utils.set_random_seed`` (Python, NumPy, Keras's global seed generator, PyTorch), which also
    seeds TensorFlow whenever it is installed: on JAX and PyTorch that import costs about 470 MB of memory
    and seeds nothing the run uses (no tf.data there), so it is left out."""
    import keras

    if keras.backend.backend() == "tensorflow":
        return keras.utils.set_random_seed(seed)
    import random

    import numpy as np
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    if keras.backend.backend() == "torch":
        import torch

        torch.manual_seed(seed)


def user_errors():
    """The exceptions that mean bad input (a missing path, a busy or unwritable output, bad data, a bad
    preset, config, vocabulary or checkpoint): their message is the ``error:`` line, not a traceback."""
    from clue.checkpoints import CheckpointError
    from clue.data import DataError
    from clue.presets import ConfigError
    from clue.tokenizer import VocabError

    return (MissingPathError, OutputBusyError, WriteError, DataError, CheckpointError, ConfigError, VocabError,
            devices.DeviceError)


def run(main):
    """Run a task script's ``main``: a missing path, bad data, a bad preset, config, vocabulary or checkpoint
    ends with its message (naming the file and line, key or variable) and exit status 1, not a traceback."""
    from clue import interrupt

    errors = user_errors()
    interrupt.install()
    try:
        main()
    except (interrupt.Interrupted, KeyboardInterrupt) as err:
        epoch = getattr(err, "epoch", None)
        where = f" at epoch {epoch}" if epoch else ""
        print(f"interrupted{where}; rerun with --resume to continue", file=sys.stderr, flush=True)
        sys.exit(130)
    except errors as err:
        sys.exit(f"error: {err}")
