"""Neural-operator surrogates: ``model(m) -> u`` on grids, trained on simulator data.

``SURROGATES`` maps a name to its :class:`Surrogate` subclass (checkpoints
store that name); ``load(path)`` rebuilds any saved surrogate.  Heavy
libraries (neuraloperator, deepxde) are imported only when a model is built.
"""
from pdeinv.nn.base import register_network
from pdeinv.surrogates.base import Normalizer, Surrogate, load
from pdeinv.surrogates.fno import FNO
from pdeinv.surrogates.deeponet import DeepONet
from pdeinv.surrogates.forward import SurrogateForward
from pdeinv.surrogates.sparse import SparseOperator
from pdeinv.surrogates.unet import UNet
from pdeinv.surrogates.nio import NIO
from pdeinv.surrogates.lepde import LEPDE
from pdeinv.surrogates.vito import ViTO

SURROGATES = {
    "fno": FNO,
    "deeponet": DeepONet,
    "sparse": SparseOperator,
    "unet": UNet,
    "nio": NIO,
    "lepde": LEPDE,
    "vito": ViTO,
}
for _name, _cls in SURROGATES.items():      # checkpoints find them through the networks' registry
    register_network(_name, _cls)


__all__ = ["Surrogate", "Normalizer", "load", "FNO", "DeepONet", "SurrogateForward", "SparseOperator", "SURROGATES",
           "UNet", "NIO", "LEPDE", "ViTO"]


def pretrained(name: str, device=None):
    """A forward surrogate or inverse operator that ships with pdeinv, e.g. ``pretrained("darcy64-fno")``.

    ``pdeinv models`` lists them; :mod:`pdeinv.nn.pretrained` is the mechanism (manifest, checks).
    """
    from pdeinv.nn import pretrained as _shipped
    if _shipped.info(name).get("kind") not in ("surrogate", "inverse"):
        raise ValueError(f"{name!r} is a {_shipped.info(name).get('kind')}, not a surrogate; shipped surrogates: "
                         f"{_shipped.available(kind='surrogate') + _shipped.available(kind='inverse') or 'none'}")
    return _shipped.load(name, device=device)


__all__ += ["pretrained"]
