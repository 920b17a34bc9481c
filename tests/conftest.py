import os

import pytest
import torch

# keep runs reproducible and the 2-core CI machine responsive
torch.set_num_threads(int(os.environ.get("PDEINV_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _restore_torch_defaults():
    """Fail loudly if a test (e.g. a deepxde import) changes torch's global defaults."""
    dtype = torch.get_default_dtype()
    yield
    assert torch.get_default_dtype() == dtype, "a test changed torch's default dtype"


# ------------------------------------------------------------------ break-it counts -> benchmarks/results/robustness.md
_BREAKIT_FILES = ("tests/test_breakit_cli.py", "tests/test_breakit_api.py")
_breakit_outcomes = {}


def pytest_runtest_logreport(report):
    """Outcome of each break-it case (runs in the xdist controller too, which receives the workers' reports)."""
    if not report.nodeid.startswith(_BREAKIT_FILES):
        return
    if report.failed:
        _breakit_outcomes[report.nodeid] = "failed"
    elif report.when == "call" and _breakit_outcomes.get(report.nodeid) != "failed":
        _breakit_outcomes[report.nodeid] = "passed" if report.passed else "skipped"
    elif report.skipped and report.nodeid not in _breakit_outcomes:
        _breakit_outcomes[report.nodeid] = "skipped"


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput") or not _breakit_outcomes:   # an xdist worker, or no break-it case ran
        return
    from _robustness import write_report
    write_report(_breakit_outcomes)
