"""Neural-operator surrogates: ``model(m) -> u`` on grids, trained on simulator data.

``SURROGATES`` maps a name to its :class:`Surrogate` subclass (checkpoints
store that name); ``load(path)`` rebuilds any saved surrogate.  Heavy
libraries (neuraloperator, deepxde) are imported only when a model is built.
"""
from .base import Normalizer, Surrogate, load
from .fno import FNO
from .deeponet import DeepONet
from .forward import SurrogateForward
from .sparse import SparseOperator
from .unet import UNet
from .nio import NIO
from .lepde import LEPDE
from .vito import ViTO

SURROGATES = {
    "fno": FNO,
    "deeponet": DeepONet,
    "sparse": SparseOperator,
    "unet": UNet,
    "nio": NIO,
    "lepde": LEPDE,
    "vito": ViTO,
}

from ..priors.diffusion import denoisers as _diffusion_denoisers  # noqa: E402  registers "diffusion" (EDMDenoiser)

__all__ = ["Surrogate", "Normalizer", "load", "FNO", "DeepONet", "SurrogateForward", "SparseOperator", "SURROGATES",
           "UNet", "NIO", "LEPDE", "ViTO"]
