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
