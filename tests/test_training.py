"""Training harness: exact resume, checkpoints + loss log, early stopping, custom losses, CLI."""
import csv

import pytest
import torch
from torch.utils.data import TensorDataset

from pdeinv.surrogates import FNO, load
from pdeinv.nn.training import log_path, relative_l2, train




def _data(n=48, res=8, seed=0):
    """u = smoothed m (a linear operator an FNO represents), float32."""
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(n, 1, res, res, generator=g)
    k = torch.fft.fftfreq(res) * res
    mult = 1.0 / (1.0 + k[:, None] ** 2 + k[None, :] ** 2)
    u = torch.fft.ifft2(torch.fft.fft2(m) * mult).real
    return TensorDataset(m[: n - 16], u[: n - 16]), TensorDataset(m[n - 16:], u[n - 16:])


def _model():
    return FNO(n_modes=(4, 4), hidden_channels=8, n_layers=2, seed=0)


class Interrupt(Exception):
    pass


def test_resume_after_interruption_gives_identical_final_weights(tmp_path):
    tr, va = _data()
    kw = dict(epochs=5, batch_size=8, lr=1e-2, seed=3, verbose=False, scheduler="cosine")
    ref = _model()
    h_ref = train(ref, tr, va, **kw)

    calls = {"n": 0}

    def dying_loss(model, batch):          # the process "dies" in the middle of epoch 3
        calls["n"] += 1                     # per epoch: 4 training + 2 validation batches
        if calls["n"] == 2 * 6 + 2:
            raise Interrupt
        return relative_l2(model(batch[0]), batch[1])

    ck = tmp_path / "run.pt"
    with pytest.raises(Interrupt):
        train(_model(), tr, va, loss_fn=dying_loss, checkpoint=ck, **kw)
    with open(log_path(ck)) as fh:
        assert len(list(csv.DictReader(fh))) == 2          # two finished epochs were logged
    resumed = _model()                                      # a fresh process: new model, same settings
    h_res = train(resumed, tr, va, checkpoint=ck, resume=True, **kw)
    for (k, p), q in zip(ref.state_dict().items(), resumed.state_dict().values()):
        if torch.is_tensor(p):
            assert torch.equal(p, q), k
    assert h_res["train_loss"] == h_ref["train_loss"] and h_res["val_loss"] == h_ref["val_loss"]
    # the final checkpoint is a usable model, the log has one row per epoch
    again = load(ck)
    x = tr.tensors[0][:4]
    with torch.no_grad():
        assert torch.equal(again(x), resumed(x))
    with open(log_path(ck)) as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
    assert float(rows[-1]["val_loss"]) == pytest.approx(h_ref["val_loss"][-1])
    # resuming a finished run changes nothing
    h_again = train(_model(), tr, va, checkpoint=ck, resume=True, **kw)
    assert h_again["train_loss"] == h_ref["train_loss"]


def test_training_reduces_loss_and_leaves_global_rng_alone():
    tr, va = _data()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    model = _model()
    model.fit_normalizers(tr.tensors[0], tr.tensors[1])
    h = train(model, tr, va, epochs=16, batch_size=4, lr=1e-2, verbose=False)
    assert torch.equal(torch.get_rng_state(), state)
    # baselines on the same validation pairs (the loss is the mean relative L2): the training-set mean, and the
    # best multiple of the input fitted on the training pairs (the trivial linear guess)
    (m, u), (mv, uv) = tr.tensors, va.tensors
    c = float((m * u).sum() / (m * m).sum())
    blind = min(float(relative_l2(u.mean(0, keepdim=True).expand_as(uv), uv)), float(relative_l2(c * mv, uv)))
    assert h["val_loss"][-1] < 0.8 * blind, (h["val_loss"], blind)
    assert h["val_loss"][-1] < h["val_loss"][0]
    assert h["best_epoch"] == 1 + min(range(16), key=lambda i: h["val_loss"][i])


def test_early_stopping_restores_best_weights(tmp_path):
    tr, va = _data()
    snapshots = []
    scores = iter([0.5, 0.4, 0.45, 0.47, 0.6, 0.1])     # best at epoch 2, then two worse epochs -> stop

    def on_epoch_score(model, batch):                     # one validation batch per epoch (16 samples, batch 16)
        snapshots.append({k: v.clone() for k, v in model.state_dict().items() if torch.is_tensor(v)})
        return torch.tensor(next(scores))

    model = _model()
    h = train(model, tr, va, epochs=6, batch_size=16, lr=1e-2, patience=2, verbose=False,
              val_loss_fn=on_epoch_score, checkpoint=tmp_path / "es.pt")
    assert h["stopped_early"] and h["epoch"] == [1, 2, 3, 4] and h["best_epoch"] == 2
    for k, v in model.state_dict().items():
        if torch.is_tensor(v):
            assert torch.equal(v, snapshots[1][k]), k      # weights of epoch 2 restored


def test_custom_loss_fn_plugs_in():
    """A denoising-style loss with its own randomness: seeded, reproducible."""
    tr, _ = _data()

    def denoise_loss(model, batch):
        x = batch[0]
        noisy = x + 0.1 * torch.randn_like(x)       # global RNG, re-seeded per epoch by train()
        return (model(noisy) - x).pow(2).mean()

    runs = []
    for _ in range(2):
        model = _model()
        runs.append(train(model, tr, epochs=2, batch_size=8, lr=1e-2, seed=1, loss_fn=denoise_loss,
                          verbose=False)["train_loss"])
    assert runs[0] == runs[1]
    with pytest.raises(ValueError, match="epochs"):
        train(_model(), tr, epochs=0, batch_size=8, lr=1e-2)
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        train(_model(), tr, epochs=1, batch_size=8, lr=1e-2, resume=True)


def test_extending_a_finished_cosine_run_follows_the_longer_plan(tmp_path):
    """`--resume --epochs E'` on a finished cosine run (whose last lr is 0) trains on with the schedule of a run
    planned for E' epochs from the start: the lr of its later epochs equals that plan's, not 0."""
    tr, va = _data()
    kw = dict(batch_size=8, lr=1e-2, seed=3, verbose=False, scheduler="cosine")
    ck = tmp_path / "run.pt"
    h3 = train(_model(), tr, va, epochs=3, checkpoint=ck, **kw)
    state = torch.load(ck, weights_only=False)["training"]["optimizer"]["param_groups"][0]["lr"]
    assert state == pytest.approx(0.0, abs=1e-12)            # the finished plan ends at lr 0
    h6 = train(_model(), tr, va, epochs=6, checkpoint=ck, resume=True, **kw)
    ref = train(_model(), tr, va, epochs=6, **kw)
    assert len(h6["lr"]) == 6 and h6["lr"][:3] == h3["lr"]
    assert h6["lr"][3:] == pytest.approx(ref["lr"][3:], rel=1e-9)
    assert min(h6["lr"][3:-1]) > 0.1 * kw["lr"]
    assert h6["train_loss"][-1] < h3["train_loss"][-1]       # it trained on


def test_cli_train_fno_and_resume(tmp_path):
    from pdeinv.cli.app import main
    from pdeinv.data.generate import generate
    from pdeinv.data.io import save_dataset
    ds = generate("poisson", n=24, res=12, seed=0, verbose=False)
    data = save_dataset(ds, tmp_path / "poisson.nc")
    out = tmp_path / "fno.pt"
    args = ["train", "fno", "--data", str(data), "-o", str(out), "--epochs", "2", "--batch-size", "5",
            "--modes", "4", "--width", "8", "--layers", "2", "--quiet", "--val-fraction", "0.25"]
    assert main(args) == 0
    model = load(out)
    rows = list(csv.DictReader(open(log_path(out))))
    assert len(rows) == 2 and model.config["n_modes"] == [4, 4]
    assert main(args[:7] + ["3"] + args[8:] + ["--resume"]) == 0      # one more epoch on top
    assert len(list(csv.DictReader(open(log_path(out))))) == 3
    sparse = tmp_path / "sparse.pt"
    assert main(["train", "deeponet", "--data", str(data), "-o", str(sparse), "--epochs", "1", "--mode", "inverse",
                 "--sparse", "0.1", "--width", "8", "--layers", "2", "--quiet"]) == 0
    sp = load(sparse)
    assert type(sp).__name__ == "SparseOperator" and sp.in_channels == 2 and sp.config["operator"] == "deeponet"
    assert main(["train", "fno", "--data", str(tmp_path / "missing.nc"), "--quiet"]) == 2     # clear error, no traceback
