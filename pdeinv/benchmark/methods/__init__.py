"""The benchmark's method adapters, registered in :data:`METHODS` in the order of the tables.

========================  ====================================================================
module                    methods
========================  ====================================================================
:mod:`.base`              :class:`Method`, :data:`METHODS`, :func:`register_method`, helpers
:mod:`.classical`         ``map`` (MAP on the true simulator), ``mean`` (training-mean floor)
:mod:`.learned`           ``fno``, ``deeponet`` (sparse baselines), ``vito``, ``nio``
:mod:`.sampling`          ``mcmc`` (pCN on the task's law), ``pinn``
:mod:`.diffusion`         ``fundps``, ``diffusionpde``, ``fundps-obs``, ``fundps-sim``, ``daps``
:mod:`.reference`         ``bayes`` (exact Gaussian posterior), ``laplace``, ``mcmc-ref`` (long Darcy pCN)
========================  ====================================================================
"""
from pdeinv.benchmark.methods.base import (METHODS, Identity, Method, MethodUnavailable, NotAdapted,
                                           load_cached_model, module_missing, parse_variant, register_method,
                                           resolve_method, split_methods, target_of, weighting_noise)
from pdeinv.benchmark.methods.classical import MAPMethod, MeanMethod
from pdeinv.benchmark.methods.diffusion import DiffusionMethod
from pdeinv.benchmark.methods.learned import NIOMethod, SparseBaseline, ViTOSparse
from pdeinv.benchmark.methods.reference import BayesMethod, LaplaceMethod, MCMCRefMethod
from pdeinv.benchmark.methods.sampling import MCMCMethod, PINNMethod

register_method(BayesMethod())
register_method(MCMCRefMethod())
register_method(MAPMethod())
register_method(LaplaceMethod())
register_method(SparseBaseline("fno"))
register_method(SparseBaseline("deeponet"))
register_method(PINNMethod())
register_method(MCMCMethod())
register_method(DiffusionMethod("fundps", "fundps", "uno", "grf", step_divisor=4))
register_method(DiffusionMethod("diffusionpde", "diffusionpde", "unet", "white"))
register_method(DiffusionMethod("fundps-obs", "fundps", "uno", "grf", physics="none", step_divisor=4))
register_method(DiffusionMethod("fundps-sim", "fundps", "uno", "grf", physics="simulator", step_divisor=4))
register_method(DiffusionMethod("daps", "daps", "uno", "grf", step_divisor=4))
register_method(NIOMethod())
register_method(ViTOSparse())
register_method(MeanMethod())

__all__ = ["METHODS", "Method", "MethodUnavailable", "NotAdapted", "register_method", "MAPMethod", "MeanMethod",
           "SparseBaseline", "ViTOSparse", "NIOMethod", "MCMCMethod", "PINNMethod", "DiffusionMethod",
           "BayesMethod", "LaplaceMethod", "MCMCRefMethod", "Identity", "load_cached_model", "module_missing", "target_of", "weighting_noise",
           "resolve_method", "split_methods", "parse_variant"]
