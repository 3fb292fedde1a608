"""clue: CLUE (Chinese GLUE) baselines on Keras 3, numerically equal to bert4keras 0.11.5."""

import contextlib
import importlib.util
import sys
import types

__version__ = "0.1.0"

# The modules that import Keras, themselves or through another (and with it TensorFlow: seconds), load on
# first use, not at `from clue import training`, so that `tasks/<task>.py --help` and bad flags answer at once.
# (The standard library's LazyLoader does exactly this; the task scripts keep their plain imports.)
KERAS_MODULES = frozenset({"batching", "heads", "layers", "models", "multiple_choice", "ner", "optimizers",
                           "predict", "reading", "training"})


def __getattr__(name):
    if name not in KERAS_MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    full = f"{__name__}.{name}"
    if full not in sys.modules:
        spec = importlib.util.find_spec(full)
        spec.loader = importlib.util.LazyLoader(spec.loader)
        module = importlib.util.module_from_spec(spec)
        sys.modules[full] = module
        spec.loader.exec_module(module)
    globals()[name] = sys.modules[full]
    return sys.modules[full]


@contextlib.contextmanager
def deferred_modules_hidden():
    """The modules above not yet loaded are out of sys.modules meanwhile. For Keras's import: on PyTorch it
    imports torch, whose import walks sys.modules (inspect.getmodule), which would load them, and with them
    Keras, in the middle of Keras's own import (a circular-import error)."""
    hidden = {}
    for name in [f"{__name__}.{m}" for m in KERAS_MODULES]:
        if name in sys.modules and type(sys.modules[name]) is not types.ModuleType:   # loaded ones are plain
            hidden[name] = sys.modules.pop(name)
    try:
        yield
    finally:
        for name, module in hidden.items():
            sys.modules.setdefault(name, module)
