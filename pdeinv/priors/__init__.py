"""Priors for MAP and sampling: Gaussian random field (``gaussian``), smoothed total
variation and H¹ Tikhonov (``tv``), and diffusion priors (``priors.diffusion``).

Every prior exposes ``log_prob(m) -> (B,)`` (unnormalised).
"""
from pdeinv.priors.gaussian import LawPrior, grf_prior
from pdeinv.priors.tv import H1Prior, TotalVariation

__all__ = ["grf_prior", "LawPrior", "TotalVariation", "H1Prior"]


def pretrained(name: str, device=None):
    """A diffusion prior (EDM denoiser) that ships with pdeinv, e.g. ``pretrained("darcy64-uno")``.

    ``pdeinv models`` lists them; :mod:`pdeinv.nn.pretrained` is the mechanism (manifest, checks).
    """
    from pdeinv.nn import pretrained as _shipped
    if _shipped.info(name).get("kind") != "prior":
        raise ValueError(f"{name!r} is a {_shipped.info(name).get('kind')}, not a prior; shipped priors: "
                         f"{_shipped.available(kind='prior') or 'none'}")
    return _shipped.load(name, device=device)


__all__ += ["pretrained"]
