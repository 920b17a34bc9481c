"""An external finite-element code as pdeinv's forward model (scikit-fem, P1 triangles).

The "external code" below knows nothing about torch: it is a plain
scikit-fem Darcy solver

    -div(a grad u) = 1 in the unit square,   u = 0 on the boundary,

with P1 (piecewise-linear) elements on a triangulated unit square whose nodes
are the nodes of a pdeinv ``Grid2D``, the permeability ``a`` a P1 field given
by its nodal values, and -- what makes it usable for inversion -- its adjoint:

    vjp(a, du) = -(dR/da)^T lam,   K(a) lam = du  (K symmetric),
    (dR/da)^T lam at node k = integral of phi_k grad(u) . grad(lam).

``pdeinv.physics.external.ExternalProblem`` wraps ``forward`` and ``vjp``
into a differentiable pdeinv problem; the script checks the gradient with a
Taylor test, then recovers a binary permeability from 5 % noisy pressure
sensors with pdeinv's MAP solver running on the finite-element model.

    python examples/external_fem_darcy.py [--quick] [--n 33]

It needs scikit-fem, which a plain install does not bring: ``pip install -e ".[fem]"``
(the ``[test]`` extra includes it too).
"""
import argparse
import time

import numpy as np
import scipy.sparse.linalg as spla
import torch
try:
    from skfem import Basis, BilinearForm, ElementTriP1, LinearForm, MeshTri, asm
    from skfem.helpers import dot, grad
except ImportError:  # pragma: no cover - the optional dependency is missing
    raise SystemExit('this example needs scikit-fem: pip install -e ".[fem]"') from None

import pdeinv as pi
from pdeinv.checks import taylor_test
from pdeinv.physics.external import ExternalProblem
from pdeinv.tasks import TASKS


@BilinearForm
def stiffness(u, v, w):
    return w["a"] * dot(grad(u), grad(v))


@LinearForm
def unit_source(v, w):
    return 1.0 * v


@LinearForm
def coefficient_sensitivity(v, w):
    return v * dot(grad(w["u"]), grad(w["lam"]))


class FEMDarcy:
    """scikit-fem P1 Darcy solver on an n x n node triangulation of the unit square (NumPy in, NumPy out)."""

    def __init__(self, n: int):
        x = np.linspace(0.0, 1.0, n)
        self.n = n
        self.mesh = MeshTri.init_tensor(x, x)
        self.basis = Basis(self.mesh, ElementTriP1())
        boundary = self.mesh.boundary_nodes()
        self.interior = np.setdiff1d(np.arange(self.mesh.nvertices), boundary)
        # node k of the mesh sits on grid node (i, j) = flat index perm[k] (ij indexing, row-major)
        ij = np.rint(self.mesh.p * (n - 1)).astype(int)
        self.perm = ij[0] * n + ij[1]
        self.load = asm(unit_source, self.basis)
        self._cache = (None, None, None)   # (a bytes, LU of K_II, u)

    def _nodes(self, field):
        return np.asarray(field, dtype=float).reshape(-1)[self.perm]

    def _grid(self, nodal):
        out = np.empty(self.n * self.n)
        out[self.perm] = nodal
        return out.reshape(self.n, self.n)

    def _solve(self, a_nodes):
        key = a_nodes.tobytes()
        if self._cache[0] != key:
            K = asm(stiffness, self.basis, a=self.basis.interpolate(a_nodes)).tocsr()
            lu = spla.splu(K[self.interior][:, self.interior].tocsc())
            u = np.zeros(self.mesh.nvertices)
            u[self.interior] = lu.solve(self.load[self.interior])
            self._cache = (key, lu, u)
        return self._cache[1], self._cache[2]

    def forward(self, a):
        """a (n, n) nodal permeability on the grid -> pressure u (n, n)."""
        _, u = self._solve(self._nodes(a))
        return self._grid(u)

    def vjp(self, a, du):
        """(du/da)^T du by one adjoint solve."""
        a_nodes = self._nodes(a)
        lu, u = self._solve(a_nodes)
        lam = np.zeros_like(u)
        lam[self.interior] = lu.solve(self._nodes(du)[self.interior])   # K is symmetric
        g = asm(coefficient_sensitivity, self.basis, u=self.basis.interpolate(u), lam=self.basis.interpolate(lam))
        return self._grid(-g)

    def jvp(self, a, da):
        """(du/da) da by one tangent solve: K du = -K(da) u."""
        lu, u = self._solve(self._nodes(a))
        Kda = asm(stiffness, self.basis, a=self.basis.interpolate(self._nodes(da)))
        out = np.zeros_like(u)
        out[self.interior] = -lu.solve((Kda @ u)[self.interior])
        return self._grid(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=33, help="nodes per side (default 33)")
    p.add_argument("--iters", type=int, default=80, help="MAP iterations (default 80)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (used by the tests)")
    args = p.parse_args(argv)
    n, iters = (17, 30) if args.quick else (args.n, args.iters)

    grid = pi.Grid2D(n)
    fem = FEMDarcy(n)
    problem = ExternalProblem(grid, fem.forward, fem.vjp, jvp=fem.jvp, name="scikit-fem P1 Darcy")

    # truth from the benchmark law, and pdeinv's own finite-difference solver for comparison
    a_true = TASKS["darcy"].sample_m(grid, 1, seed=3)   # a draw with both phases (seed 0 is all 3)
    u_fem, u_fd = problem(a_true), pi.physics.Darcy(grid, f=1.0)(a_true)
    print(f"FEM vs pdeinv FD pressure: relative difference {float((u_fem - u_fd).norm() / u_fd.norm()):.2e}")

    obs = pi.PointObservation.random(grid, fraction=0.05, seed=1, exclude_boundary=True)
    fwd = pi.ForwardModel(problem, obs, noise=pi.GaussianNoise(relative=0.01))
    y = fwd(a_true, seed=2)

    # the adjoint of the external code is right: Taylor remainder O(h^2), dot-product test ~1e-15
    a0 = torch.full_like(a_true, 7.5)
    da = torch.randn(a0.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    rate = taylor_test(lambda a: fwd.misfit(a, y).sum(), a0, da, h0=1.0)
    print(f"Taylor test through the bridge: rate {rate:.3f} (2 expected); "
          f"dot-product test {problem.check_vjp(a0):.1e}")

    t0 = time.perf_counter()
    result = pi.solvers.MAP(prior="tv", bounds=(3.0, 12.0), max_iter=iters)(y, fwd)
    wall = time.perf_counter() - t0
    err = float(pi.metrics.relative_l2(result.m, a_true)[0])
    rate_px = float(pi.metrics.error_rate(result.m, a_true)[0])
    print(f"MAP on the FE model ({n}x{n} nodes, {obs.n_obs} sensors, 1 % noise): relative L2 {err:.1%}, "
          f"pixel error rate {rate_px:.1%}, {problem.n_forward} FE solves + {problem.n_vjp} adjoint solves "
          f"in {wall:.1f} s")
    assert 1.9 < rate < 2.1, "the adjoint of the FE code does not match its forward solve"
    return {"taylor_rate": rate, "rel_l2": err, "error_rate": rate_px}


if __name__ == "__main__":
    main()
