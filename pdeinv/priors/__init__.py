"""Priors for MAP and sampling: Gaussian random field (``gaussian``), smoothed total
variation (``tv``), H¹ Tikhonov, and diffusion priors (``priors.diffusion``)."""
