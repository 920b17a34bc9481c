r"""MCMC diagnostics (written here, formulas of Gelman et al., *Bayesian Data Analysis*, 3rd ed., §11.4--11.5).

* :func:`split_rhat`: split-:math:`\hat R`, each chain split in halves (BDA3 eq. 11.4);
* :func:`ess`: the multi-chain effective sample size with Geyer's initial monotone sequence on the combined
  autocorrelation :math:`\hat\rho_t = 1 - (W - \overline{\gamma_t})/\widehat{\mathrm{var}}^+` (BDA3 §11.5).

Both take chains ``(K, N, D)`` (K chains of N draws of D components) and return one value per component.
"""
from __future__ import annotations

import numpy as np




def _autocov(x: np.ndarray) -> np.ndarray:
    """Autocovariance along axis 1 of ``x`` (K, N, D), biased (divided by N), by FFT."""
    K, N, D = x.shape
    xc = x - x.mean(1, keepdims=True)
    nfft = 1 << (2 * N - 1).bit_length()
    f = np.fft.rfft(xc, n=nfft, axis=1)
    ac = np.fft.irfft(f * np.conj(f), n=nfft, axis=1)[:, :N]
    return ac / N


def _varies(W: np.ndarray) -> np.ndarray:
    """Components whose within-chain variance is not round-off (e.g. pinned boundary values)."""
    top = np.max(W) if W.size else 0.0
    return W > max(top * 1e-20, np.finfo(float).tiny)


def split_rhat(chains: np.ndarray) -> np.ndarray:
    r"""Split-:math:`\hat R` per component of ``chains`` (K, N, D) (BDA3 eq. 11.4, chains split in halves).

    Components with zero within-chain variance get ``nan`` (constant pixels).
    """
    chains = np.asarray(chains, dtype=float)
    if chains.ndim == 2:
        chains = chains[..., None]
    K, N, D = chains.shape
    h = N // 2
    if h < 2:
        raise ValueError(f"R-hat needs at least 4 samples per chain; got {N}")
    s = np.concatenate([chains[:, :h], chains[:, N - h:]], 0)     # (2K, h, D)
    n = h
    means = s.mean(1)
    W = s.var(1, ddof=1).mean(0)
    B = n * means.var(0, ddof=1)
    var_plus = (n - 1) / n * W + B / n
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt(var_plus / W)
    return np.where(_varies(W), r, np.nan)


def ess(chains: np.ndarray, block: int | None = None) -> np.ndarray:
    r"""Multi-chain effective sample size per component of ``chains`` (K, N, D) (BDA3 §11.5).

    :math:`\hat\rho_t = 1 - (W - \frac1K\sum_k \gamma_{k,t})/\widehat{\mathrm{var}}^+`, summed in pairs
    :math:`P_t = \hat\rho_{2t} + \hat\rho_{2t+1}` while positive, made monotone (Geyer 1992);
    :math:`\mathrm{ESS} = KN / (-1 + 2\sum_t P_t)`.

    Components are processed ``block`` at a time (default: about 256 MB of FFT workspace per block), so the
    memory stays bounded for long chains of large fields; each component's value does not depend on it.
    """
    chains = np.asarray(chains, dtype=float)
    if chains.ndim == 2:
        chains = chains[..., None]
    K, N, D = chains.shape
    if N < 4:
        raise ValueError(f"ESS needs at least 4 samples per chain; got {N}")
    if block is None:
        nfft = 1 << (2 * N - 1).bit_length()
        block = max(1, (1 << 24) // (K * (nfft // 2 + 1)))
    out = np.concatenate([_ess(chains[..., i:i + block]) for i in range(0, D, int(block))])
    return np.where(_varies(chains.var(1, ddof=1).mean(0)), out, np.nan)   # constant components: over all D


def _ess(chains: np.ndarray) -> np.ndarray:
    """ESS of each component of ``chains`` (K, N, D), constant components not yet masked."""
    K, N, D = chains.shape
    acov = _autocov(chains)                                       # (K, N, D)
    W = chains.var(1, ddof=1).mean(0)
    means = chains.mean(1)
    var_plus = (N - 1) / N * W + (means.var(0, ddof=1) if K > 1 else 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (W - acov.mean(0)) / var_plus                 # (N, D)
    rho[0] = 1.0
    npairs = N // 2
    P = rho[0:2 * npairs:2] + rho[1:2 * npairs:2]                 # (npairs, D)
    # initial positive sequence, then monotone
    pos = P > 0
    first_neg = np.where(pos.all(0), npairs, np.argmin(pos, 0))
    mask = np.arange(npairs)[:, None] < first_neg[None, :]
    P = np.where(mask, P, 0.0)
    P = np.minimum.accumulate(np.where(mask, P, np.inf), 0)
    P = np.where(mask, P, 0.0)
    tau = -1.0 + 2.0 * P.sum(0)
    tau = np.maximum(tau, 1.0 / np.log10(max(K * N, 10)))         # cap ESS for antithetic chains
    return K * N / tau
