"""Shared fixtures. The thread setting is process-global, so tests that touch
it get it reset afterwards whatever happens."""
import os
import sys

import pytest

import cydrop

# tests/reference.py is a helper module, importable under any --import-mode
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def reset_threads():
    cydrop.set_num_threads(None)
    yield
    cydrop.set_num_threads(None)
