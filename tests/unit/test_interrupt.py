"""SIGINT, SIGTERM and SIGHUP raise Interrupted once; later ones wait for the clean-up."""

from __future__ import annotations

import os
import signal

import pytest

from glancesync.exceptions import Interrupted
from glancesync.interrupt import signals_deferred, stop_on_signals


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_a_signal_raises_interrupted_with_the_shell_exit_code(sig, code):
    before = signal.getsignal(sig)
    with pytest.raises(Interrupted) as info:
        with stop_on_signals():
            os.kill(os.getpid(), sig)
            signal.sigtimedwait([], 0)  # let the handler run here
    assert info.value.exit_code == code
    assert signal.getsignal(sig) == before  # handlers restored


def test_a_second_signal_during_the_clean_up_is_only_logged(caplog):
    cleaned = False
    with pytest.raises(Interrupted):
        with stop_on_signals():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                signal.sigtimedwait([], 0)
            finally:
                os.kill(os.getpid(), signal.SIGINT)  # impatient operator: Ctrl-C
                signal.sigtimedwait([], 0)
                cleaned = True
    assert cleaned
    assert "SIGINT received: already stopping, cleaning up first" in caplog.text


def test_a_signal_during_a_deferred_block_is_raised_right_after_it():
    done = []
    with pytest.raises(Interrupted) as info:
        with stop_on_signals():
            with signals_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                signal.sigtimedwait([], 0)
                done.append("the whole block")
            done.append("after it")  # not reached
    assert (info.value.exit_code, done) == (143, ["the whole block"])
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # unblocked
