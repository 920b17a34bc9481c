"""Data-parallel training: 2 CPU processes on gloo follow the same trajectory as one process
on the same global batch (the loss is re-weighted by shard size, so uneven tails match too)."""
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import TensorDataset

from pdeinv.nn.training import train

SETTINGS = dict(epochs=3, batch_size=16, lr=1e-2, seed=2, verbose=False, scheduler="cosine")


def _data():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(41, 1, 8, 8, generator=g)      # 41 = 2 full batches of 16 + a tail of 9 (shards 5 / 4)
    u = torch.roll(m, 1, -1) + 0.5 * m.pow(2)
    va = torch.randn(7, 1, 8, 8, generator=g)      # odd validation size: uneven shards too
    return TensorDataset(m, u), TensorDataset(va, torch.roll(va, 1, -1) + 0.5 * va.pow(2))


def _model():
    """A small CNN: the harness is model-agnostic, and the child processes then skip importing
    neuraloperator (seconds each on a loaded 2-core machine)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.GELU(),
                                   torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.GELU(),
                                   torch.nn.Conv2d(8, 1, 3, padding=1))


def _worker(rank, world, port, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        tr, va = _data()
        model = _model()
        hist = train(model, tr, va, ddp=True, **SETTINGS)
        if rank == 0:
            torch.save({"hist": hist, "state": {k: v for k, v in model.state_dict().items() if torch.is_tensor(v)}},
                       out)
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not available")
def test_ddp_two_processes_match_single_process(tmp_path):
    out = tmp_path / "ddp.pt"
    # fork: the children inherit the imported modules (spawn would re-import torch: ~10 s on a loaded CI box);
    # they run single-threaded, so no OpenMP pool is carried across the fork.
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True, start_method=method)
    ddp = torch.load(out, weights_only=False)

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tr, va = _data()
        model = _model()
        single = train(model, tr, va, ddp=False, **SETTINGS)
    finally:
        torch.set_num_threads(n)
    assert ddp["hist"]["world_size"] == 2 and single["world_size"] == 1
    torch.testing.assert_close(torch.tensor(ddp["hist"]["train_loss"]), torch.tensor(single["train_loss"]),
                               rtol=1e-5, atol=0)
    torch.testing.assert_close(torch.tensor(ddp["hist"]["val_loss"]), torch.tensor(single["val_loss"]),
                               rtol=1e-5, atol=0)
    for k, v in model.state_dict().items():
        if torch.is_tensor(v):
            torch.testing.assert_close(ddp["state"][k], v, rtol=1e-4, atol=1e-6)
    assert single["train_loss"][-1] < single["train_loss"][0]       # it trained at all
