"""Priors for MAP and sampling: Gaussian random field (``gaussian``), smoothed total
variation and H¹ Tikhonov (``tv``), and diffusion priors (``priors.diffusion``).

Every prior exposes ``log_prob(m) -> (B,)`` (unnormalised).
"""
from pdeinv.priors.gaussian import LawPrior, grf_prior
from pdeinv.priors.tv import H1Prior, TotalVariation

__all__ = ["grf_prior", "LawPrior", "TotalVariation", "H1Prior"]
