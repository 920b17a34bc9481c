"""The external-solver bridge (pdeinv.physics.external) and the mesh coupling round trip.

The "external code" here is a small NumPy/SciPy finite-difference Darcy solver
written independently of pdeinv (its own assembly and its own adjoint), so the
bridge is tested the way a user would use it: through callables on arrays.
"""
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from pdeinv.checks import taylor_test
from pdeinv.physics import Darcy, ForwardModel, GaussianNoise, GaussianRandomField, Grid2D, PointObservation
from pdeinv.physics.external import ExternalProblem


class NumpyDarcy:
    """-div(a grad u) = 1, u = 0 on the boundary, conservative 5-point FD on an n x n node grid."""

    def __init__(self, n):
        self.n, self.h = n, 1.0 / (n - 1)
        self.calls = 0

    def matrix(self, a):
        n, h2 = self.n, self.h ** 2
        ax = 0.5 * (a[1:, :] + a[:-1, :]) / h2
        ay = 0.5 * (a[:, 1:] + a[:, :-1]) / h2
        m = n - 2
        idx = np.arange(m * m).reshape(m, m)
        w, e, s, no = ax[:-1, 1:-1], ax[1:, 1:-1], ay[1:-1, :-1], ay[1:-1, 1:]
        rows = [idx.ravel()]
        cols = [idx.ravel()]
        vals = [(w + e + s + no).ravel()]
        for sl_r, sl_c, v in (((slice(1, None), slice(None)), (slice(None, -1), slice(None)), w[1:, :]),
                              ((slice(None, -1), slice(None)), (slice(1, None), slice(None)), e[:-1, :]),
                              ((slice(None), slice(1, None)), (slice(None), slice(None, -1)), s[:, 1:]),
                              ((slice(None), slice(None, -1)), (slice(None), slice(1, None)), no[:, :-1])):
            rows.append(idx[sl_r].ravel()); cols.append(idx[sl_c].ravel()); vals.append(-v.ravel())
        return sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m * m,) * 2)

    def forward(self, a):
        self.calls += 1
        m = self.n - 2
        u = np.zeros((self.n, self.n))
        u[1:-1, 1:-1] = spla.spsolve(self.matrix(a), np.ones(m * m)).reshape(m, m)
        return u

    def _dR_da_T(self, u, lam):
        """(dR/da)^T lam for R(u; a) = A(a) u - f at interior nodes (lam zero on the boundary)."""
        h2, g = self.h ** 2, np.zeros_like(u)
        tx = (lam[1:, :] - lam[:-1, :]) * (u[1:, :] - u[:-1, :]) / h2   # horizontal edges
        ty = (lam[:, 1:] - lam[:, :-1]) * (u[:, 1:] - u[:, :-1]) / h2   # vertical edges
        g[1:, :] += 0.5 * tx; g[:-1, :] += 0.5 * tx
        g[:, 1:] += 0.5 * ty; g[:, :-1] += 0.5 * ty
        return g

    def vjp(self, a, du):
        u = self.forward(a)
        m = self.n - 2
        lam = np.zeros_like(u)
        lam[1:-1, 1:-1] = spla.spsolve(self.matrix(a).T.tocsc(), du[1:-1, 1:-1].ravel()).reshape(m, m)
        return -self._dR_da_T(u, lam)

    def jvp(self, a, da):
        """du = -A^{-1} (dR/da) da."""
        u = self.forward(a)
        n, h2 = self.n, self.h ** 2
        dax = 0.5 * (da[1:, :] + da[:-1, :]) * (u[1:, :] - u[:-1, :]) / h2
        day = 0.5 * (da[:, 1:] + da[:, :-1]) * (u[:, 1:] - u[:, :-1]) / h2
        r = -((dax[1:, 1:-1] - dax[:-1, 1:-1]) + (day[1:-1, 1:] - day[1:-1, :-1]))
        out = np.zeros((n, n))
        out[1:-1, 1:-1] = -spla.spsolve(self.matrix(a), r.ravel()).reshape(n - 2, n - 2)
        return out


N = 12


@pytest.fixture(scope="module")
def setup():
    grid = Grid2D(N)
    ext = NumpyDarcy(N)
    prob = ExternalProblem(grid, ext.forward, ext.vjp, jvp=ext.jvp, name="numpy-darcy")
    mu = GaussianRandomField(grid, alpha=2.0, tau=3.0, basis="cosine").sample(2, seed=3)
    a = 4.0 + 2.0 * torch.tanh(mu)   # smooth positive coefficient, (2, 1, N, N)
    return grid, ext, prob, a


def test_bridge_matches_pdeinv_darcy(setup):
    """The bridged NumPy solver and pdeinv's own Darcy share the discretisation: same u, same gradient."""
    grid, _, prob, a = setup
    u_ext, u_ref = prob(a), Darcy(grid, f=1.0, method="direct")(a)
    assert u_ext.shape == (2, 1, N, N) and u_ext.dtype == torch.float64
    assert torch.allclose(u_ext, u_ref, rtol=1e-10, atol=1e-13)
    w = torch.randn(u_ref.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    g = []
    for p in (prob, Darcy(grid, f=1.0, method="direct")):
        aa = a.clone().requires_grad_(True)
        (p(aa) * w).sum().backward()
        g.append(aa.grad)
    assert torch.allclose(g[0], g[1], rtol=1e-8, atol=1e-12 * float(g[1].abs().max()))


def test_bridge_taylor_through_forward_model(setup):
    """Misfit J(a) = 1/2 |(O F(a) - y)/s|^2 through ForwardModel + the bridge: Taylor remainder rate 2."""
    grid, _, prob, a = setup
    obs = PointObservation.random(grid, fraction=0.2, seed=1)
    fwd = ForwardModel(prob, obs, noise=GaussianNoise(relative=0.01))
    y = fwd(a.flip(-1), seed=2)            # data from another coefficient, so the misfit is not at its minimum
    dm = torch.randn(a.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    rate = taylor_test(lambda m: fwd.misfit(m, y).sum(), a, dm, h0=0.5, n=4)
    assert 1.9 < rate < 2.2, rate
    # a wrong vjp (sign flipped) is caught: the remainder only decreases at rate 1
    bad = ExternalProblem(grid, prob._forward, lambda m, du: -prob._vjp(m, du))
    fwd_bad = ForwardModel(bad, obs, noise=GaussianNoise(relative=0.01))
    assert taylor_test(lambda m: fwd_bad.misfit(m, y).sum(), a, dm, h0=1e-3, n=4) < 1.2


def test_jvp_forward_mode_and_dot_product(setup):
    grid, _, prob, a = setup
    assert prob.check_vjp(a) < 1e-10
    da = torch.randn(a.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    import torch.autograd.forward_ad as fwAD
    with fwAD.dual_level():
        tangent = fwAD.unpack_dual(prob(fwAD.make_dual(a, da))).tangent
    assert torch.allclose(tangent, prob.jvp(a, da), rtol=1e-12)
    eps = 1e-6
    fd = (prob(a + eps * da) - prob(a - eps * da)) / (2 * eps)
    assert torch.allclose(tangent, fd, rtol=1e-6, atol=1e-8 * float(fd.abs().max()))


def test_batched_float32_and_errors(setup):
    grid, ext, _, a = setup
    batched = ExternalProblem(grid, lambda m: np.stack([ext.forward(x[0])[None] for x in m]), batched=True)
    u32 = batched(a.float())
    assert u32.dtype == torch.float32
    assert torch.allclose(u32.double(), Darcy(grid, f=1.0)(a), rtol=1e-5)
    with pytest.raises(RuntimeError, match="no vjp= callable"):
        aa = a.clone().requires_grad_(True)
        batched(aa).sum().backward()
    with pytest.raises(ValueError, match=r"expects \(B, 1, 12, 12\)"):
        batched(a[:, :, :5])
    bad_shape = ExternalProblem(grid, lambda m: np.zeros(7))
    with pytest.raises(ValueError, match="returned an array of shape"):
        bad_shape(a)
    nan = ExternalProblem(grid, lambda m: np.full(m.shape, np.nan))
    with pytest.raises(ValueError, match="non-finite"):
        nan(a)


# ------------------------------------------------------------------ meshio round trip
def test_mesh_round_trip_exact_for_linear_field(tmp_path):
    """Unstructured mesh -> pdeinv grid -> back onto the mesh nodes, exact for a linear field.

    Why exact: the mesh triangulates the whole unit square (its four corners are
    nodes), so linear interpolation on its Delaunay triangles reproduces a linear
    field at every grid node (no grid node is outside the hull, where nearest
    fill would be used), and bilinear interpolation from the grid back to the
    mesh nodes is exact for a linear field too.  The field travels through a
    real VTU file written and read by meshio.
    """
    import meshio
    from scipy.spatial import Delaunay

    import pdeinv.data.mesh as mesh_mod

    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 9)
    border = np.unique(np.concatenate([np.stack([t, 0 * t], 1), np.stack([t, 0 * t + 1], 1),
                                       np.stack([0 * t, t], 1), np.stack([0 * t + 1, t], 1)]), axis=0)
    pts = np.concatenate([border, rng.uniform(0.02, 0.98, size=(150, 2))])
    tri = Delaunay(pts).simplices
    field = 1.5 + 2.0 * pts[:, 0] - 0.7 * pts[:, 1]
    path = tmp_path / "other_code.vtu"
    meshio.write(path, meshio.Mesh(np.c_[pts, np.zeros(len(pts))], [("triangle", tri)],
                                   point_data={"p": field}))
    back = meshio.read(path)
    grid = Grid2D(17)
    on_grid = mesh_mod.mesh_to_grid(back.points[:, :2], back.point_data["p"], grid)
    on_grid = torch.as_tensor(np.asarray(on_grid), dtype=torch.float64).reshape(grid.shape)
    X, Y = grid.mesh()
    assert torch.allclose(on_grid, 1.5 + 2.0 * X - 0.7 * Y, atol=1e-12)
    at_nodes = np.asarray(mesh_mod.grid_to_points(on_grid[None], grid, back.points[:, :2])).reshape(-1)
    np.testing.assert_allclose(at_nodes, field, atol=1e-12)
    out = tmp_path / "recovered.vtu"
    meshio.write(out, meshio.Mesh(back.points, back.cells, point_data={"p_recovered": at_nodes}))
    np.testing.assert_allclose(meshio.read(out).point_data["p_recovered"], field, atol=1e-12)
