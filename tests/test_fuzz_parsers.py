"""Fuzzing every parser: mutated seeds and raw bytes give a clean result or the documented error
(a NetpolgenError naming the file), never another exception; the CLI answers any input with a
documented exit code and no traceback. Example counts are modest so the suite stays fast; the
long run is ``fuzz/run_atheris.py`` (coverage-guided) or ``fuzz/run_hypothesis.py``.

"Never a hang" is guarded by an alarm far beyond any real parse time (minutes, not a timing
claim): a parser stuck in a loop fails the example instead of stalling the suite.
"""

from __future__ import annotations

import contextlib
import io
import signal
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.harness import PARSERS, SEEDS, mutate, run_one
from netpolgen import exitcodes

_HANG_SECONDS = 300
OPS = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=8)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)


@contextlib.contextmanager
def _no_hang():
    def hung(signum, frame):
        raise AssertionError(f"no answer after {_HANG_SECONDS} s: a hang")
    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(_HANG_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


_SEED_BYTES = {name: make() for name, make in SEEDS.items()}


def test_every_seed_parses_cleanly() -> None:
    """The starting points are valid input: mutations start from a parse that succeeds."""
    with tempfile.TemporaryDirectory() as d:
        assert {name: run_one(name, data, d) for name, data in _SEED_BYTES.items()} == dict.fromkeys(PARSERS, "ok")


@pytest.mark.parametrize("parser", PARSERS)
@FUZZ
@given(ops=OPS)
def test_mutated_input_gives_a_result_or_the_documented_error(parser: str, ops: list) -> None:
    data = mutate(_SEED_BYTES[parser], ops)
    with tempfile.TemporaryDirectory() as d, _no_hang():
        assert run_one(parser, data, d) in ("ok", "error")


@pytest.mark.parametrize("parser", PARSERS)
@settings(max_examples=15, deadline=None, database=None)
@given(data=st.binary(max_size=2048))
def test_random_bytes_give_a_result_or_the_documented_error(parser: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d, _no_hang():
        assert run_one(parser, data, d) in ("ok", "error")


@pytest.mark.parametrize("parser", ["pcap", "hubble", "calico", "vpc", "csv"])
@settings(max_examples=15, deadline=None, database=None)
@given(ops=OPS)
def test_format_detection_on_mutated_input_is_a_result_or_the_documented_error(parser: str, ops: list) -> None:
    data = mutate(_SEED_BYTES[parser], ops)
    with tempfile.TemporaryDirectory() as d, _no_hang():
        assert run_one(parser, data, d, detect=True) in ("ok", "error")


@settings(max_examples=20, deadline=None, database=None)
@given(parser=st.sampled_from(["hubble", "calico", "vpc", "csv", "pcap"]), ops=OPS)
def test_the_cli_answers_mutated_traffic_with_a_documented_exit_code_and_no_traceback(parser: str, ops: list) -> None:
    from netpolgen.cli import main

    data = mutate(_SEED_BYTES[parser], ops)
    with tempfile.TemporaryDirectory() as d, _no_hang():
        path = f"{d}/input.dat"
        with open(path, "wb") as f:
            f.write(data)
        err = io.StringIO()
        handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGXFSZ)}  # main() installs its own
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
                    pytest.raises(SystemExit) as exit_:
                main(["generate", path, "--output", f"{d}/out"])
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
    documented = {exitcodes.OK, exitcodes.INPUT_ERROR, exitcodes.SELF_CHECK_FAILED, exitcodes.NO_TRAFFIC}
    assert exit_.value.code in documented, err.getvalue()
    assert "Traceback" not in err.getvalue()
    if exit_.value.code not in (exitcodes.OK, exitcodes.SELF_CHECK_FAILED):
        assert err.getvalue().splitlines()[-1].startswith("Error: "), err.getvalue()
