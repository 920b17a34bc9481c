"""The NS latent-inverse benchmark's building blocks (benchmarks/lepde_ns_inverse.py)."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.lepde_ns_inverse import ledoit_wolf, rollout_error_variance  # noqa: E402
from pdeinv.surrogates import LEPDE  # noqa: E402


@pytest.mark.parametrize("n,d", [(40, 16), (400, 16), (10, 30)])
def test_ledoit_wolf_matches_scikit_learn(n, d):
    """Peer reference: scikit-learn's Ledoit-Wolf estimator gives the same shrinkage and covariance."""
    cov = pytest.importorskip("sklearn.covariance")
    g = torch.Generator().manual_seed(n + d)
    A = torch.randn(d, d, generator=g, dtype=torch.float64)
    Z = torch.randn(n, d, generator=g, dtype=torch.float64) @ A.T + 3.0
    mu, C, r = ledoit_wolf(Z)
    C_ref, r_ref = cov.ledoit_wolf(Z.numpy())
    assert r == pytest.approx(r_ref, rel=1e-9, abs=1e-12)
    assert torch.allclose(C, torch.from_numpy(C_ref), rtol=1e-9, atol=1e-10)
    assert torch.allclose(mu, Z.mean(0))
    assert float(torch.linalg.eigvalsh(C).min()) > 0        # positive definite even with n < d


def test_rollout_error_variance_is_the_mean_squared_rollout_error():
    torch.manual_seed(0)
    model = LEPDE([16, 16], in_frames=2, latent_dim=8, width=4, n_down=2, evo_width=16, evo_layers=1)
    traj = torch.randn(3, 5, 1, 16, 16)
    model.fit_normalizers(traj)
    v = rollout_error_variance(model, traj, 2)
    with torch.no_grad():
        pred = model(traj[:, :2], 3)
    assert v.shape == (3,)
    for t in range(3):
        assert float(v[t]) == pytest.approx(float((pred[:, t] - traj[:, 2 + t]).pow(2).mean()), rel=1e-5)
