"""``SOLVERS``: method name -> solver class.  The contract tests are parametrised over it and
:func:`pdeinv.solvers.build` looks methods up in it; register a new solver here."""
from pdeinv.solvers.amortized import Amortized
from pdeinv.solvers.diffusion import DAPS, DiffusionPDE, FunDPS
from pdeinv.solvers.gaussian import GaussianPosterior
from pdeinv.solvers.laplace import Laplace
from pdeinv.solvers.map import MAP
from pdeinv.solvers.mcmc import MCMC, TwoLevelMCMC
from pdeinv.solvers.pinn import PINN
from pdeinv.solvers.surrogate_map import SurrogateMAP

SOLVERS = {
    "map": MAP,
    "surrogate-map": SurrogateMAP,
    "amortized": Amortized,
    "fundps": FunDPS,
    "diffusionpde": DiffusionPDE,
    "daps": DAPS,
    "pinn": PINN,
    "mcmc": MCMC,
    "mcmc-2level": TwoLevelMCMC,
    "gaussian": GaussianPosterior,
    "laplace": Laplace,
}
