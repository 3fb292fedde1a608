"""Ctrl-C and SIGTERM stop a run at a safe point: a handler only raises a flag, and the training loop (after
each batch) and prediction (after each batch) check it and raise ``Interrupted``; ``cli.run`` turns that into
one line and exit status 130. The weights on disk are those of the last finished epoch, so ``--resume``
continues exactly. A second signal stops at once."""

import signal
import time

_signalled = []   # the times of the signals received since install()


class Interrupted(Exception):
    """The run was asked to stop (SIGINT/SIGTERM); ``epoch`` is the one in progress, from 1 (or None)."""

    def __init__(self, epoch=None):
        super().__init__(epoch)
        self.epoch = epoch


def _handler(signum, frame):
    # asked again a second later: stop now (a Ctrl-C forwarded by run_clue and also sent by the terminal to
    # the whole process group arrives twice at once, and counts once)
    if _signalled and time.monotonic() - _signalled[0] > 1:
        raise KeyboardInterrupt
    _signalled.append(time.monotonic())


def install():
    """Route SIGINT and SIGTERM to the flag (main thread only, as Python's signal module requires)."""
    _signalled.clear()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _handler)


def check(epoch=None):
    """Raise ``Interrupted(epoch)`` when a stop was asked for."""
    if _signalled:
        raise Interrupted(epoch)
