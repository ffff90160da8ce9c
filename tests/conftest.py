"""Shared fixtures. The thread setting is process-global, so tests that touch
it get it reset afterwards whatever happens. The MLP's tests take their
networks from the ``MLP`` fixture, so that each runs on both engines."""
import functools
import os
import sys

import pytest

import cydrop

# tests/reference.py is a helper module, importable under any --import-mode
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _debug_build():
    # getattr: an extension built before debug_build() existed is a release build
    return getattr(cydrop._openmp, "debug_build", lambda: False)()


def pytest_report_header(config):
    return f"cydrop: {os.path.dirname(cydrop.__file__)} ({'debug' if _debug_build() else 'release'} build)"


def pytest_configure(config):
    # CI's debug-build run sets this, so that the run fails rather than
    # silently testing the release build
    if os.environ.get("CYDROP_EXPECT_DEBUG_BUILD") == "1" and not _debug_build():
        raise pytest.UsageError(f"CYDROP_EXPECT_DEBUG_BUILD=1, but {cydrop.__file__} is not a debug build")


@pytest.fixture
def reset_threads():
    cydrop.set_num_threads(None)
    yield
    cydrop.set_num_threads(None)


@pytest.fixture(params=["reference", "compiled"])
def engine(request):
    """Each engine of cydrop.MLP in turn (cydrop.mlp.engines)."""
    return request.param


@pytest.fixture
def MLP(engine):
    """cydrop.MLP on the engine under test: a test written with it runs on
    both engines and must hold on each (thinc's pattern for its two Ops)."""
    return functools.partial(cydrop.MLP, engine=engine)
