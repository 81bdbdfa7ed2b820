"""courseutils.algorithms.obs against the KKT system, brute force and least squares on small quadratics."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from courseutils.core.errors import CourseError
from courseutils.calib.hessian import dampen, hessian_inverse
from courseutils.algorithms.obs import (obd_saliency, obq_update, obs_saliency, obs_update, obs_update_set, prune,
                                       prune_magnitude, prune_obd, prune_obs, reconstruction_error, remove_from_inverse)


def problem(d=6, n=40, rows=3, seed=0):
    """Correlated inputs X (n, d), H = 2 X^T X / n, weights W (rows, d)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) @ rng.standard_normal((d, d))   # correlated channels
    return X, 2 * X.T @ X / n, rng.standard_normal((rows, d))


def kkt_step(w, H, q):
    """argmin 1/2 dw^T H dw subject to dw_q = -w_q, from the KKT system [[H, e_q], [e_q^T, 0]]."""
    d = len(w)
    K = np.zeros((d + 1, d + 1))
    K[:d, :d], K[:d, d], K[d, :d] = H, np.eye(d)[q], np.eye(d)[q]
    rhs = np.zeros(d + 1)
    rhs[d] = -w[q]
    dw = np.linalg.solve(K, rhs)[:d]
    return dw, 0.5 * dw @ H @ dw


def test_obs_update_is_the_kkt_optimum():
    _, H, W = problem()
    w, H_inv = W[0], np.linalg.inv(H)
    for q in range(len(w)):
        dw, L = obs_update(w, H_inv, q)
        dw_kkt, L_kkt = kkt_step(w, H, q)
        np.testing.assert_allclose(dw.numpy(), dw_kkt, atol=1e-10)
        assert L == pytest.approx(L_kkt, rel=1e-9)
        assert (w + dw.numpy())[q] == pytest.approx(0, abs=1e-12)
        assert float(obs_saliency(w, H_inv)[q]) == pytest.approx(L_kkt, rel=1e-9)


def test_obs_picks_the_best_single_removal_found_by_numerical_search():
    from scipy.optimize import minimize

    _, H, W = problem(seed=1)
    H_inv = np.linalg.inv(H)
    for w in W:
        costs, steps = [], []
        for q in range(len(w)):                       # search each constrained problem numerically
            free = [i for i in range(len(w)) if i != q]

            def cost(x, q=q, free=free):
                dw = np.zeros(len(w))
                dw[q], dw[free] = -w[q], x
                return 0.5 * dw @ H @ dw

            res = minimize(cost, np.zeros(len(free)), method="BFGS", options={"gtol": 1e-12})
            costs.append(res.fun)
            steps.append(np.insert(res.x, q, -w[q]))
        q_best = int(np.argmin(costs))
        assert int(np.argmin(obs_saliency(w, H_inv).numpy())) == q_best
        dw, L = obs_update(w, H_inv, q_best)
        np.testing.assert_allclose(dw.numpy(), steps[q_best], atol=1e-5)
        assert L == pytest.approx(costs[q_best], rel=1e-6)


def test_remove_from_inverse_is_the_inverse_of_the_reduced_hessian():
    _, H, _ = problem()
    H_inv = remove_from_inverse(np.linalg.inv(H), 2).numpy()
    keep = [0, 1, 3, 4, 5]
    np.testing.assert_allclose(H_inv[np.ix_(keep, keep)], np.linalg.inv(H[np.ix_(keep, keep)]), rtol=1e-9)
    assert np.abs(H_inv[2]).max() < 1e-12 and np.abs(H_inv[:, 2]).max() < 1e-12


@pytest.mark.parametrize("damp", [0.0, 0.05])
def test_prune_obs_is_least_squares_optimal_for_its_mask(damp):
    X, H, W = problem(d=7, rows=4, seed=2)
    k = 3
    W_obs = prune_obs(W, H, sparsity=k / 7, damp=damp).numpy()
    assert np.all((W_obs == 0).sum(1) == k)
    Hd = dampen(H, damp).numpy()
    for w, w_obs in zip(W, W_obs):
        P = np.flatnonzero(w_obs == 0)                   # pruned
        R = np.flatnonzero(w_obs != 0)                   # kept
        # optimal kept weights for this mask: minimise (w_hat - w)^T H (w_hat - w) with w_hat_P = 0
        w_ls = w[R] + np.linalg.solve(Hd[np.ix_(R, R)], Hd[np.ix_(R, P)] @ w[P])
        np.testing.assert_allclose(w_obs[R], w_ls, rtol=1e-8, atol=1e-10)


def test_reconstruction_error_written_with_H_equals_the_output_error():
    X, H, W = problem(d=7, rows=4, seed=2)
    W_hat = prune_obs(W, H, sparsity=3 / 7).numpy()
    # 1/2 sum_r dw_r^T H dw_r  ==  ||X W_hat^T - X W^T||_F^2 / N   for H = 2 X^T X / N
    err = reconstruction_error(W, W_hat, H)
    assert err == pytest.approx(np.sum((X @ W_hat.T - X @ W.T) ** 2) / X.shape[0], rel=1e-9)


def test_obd_equals_obs_when_H_is_diagonal():
    rng = np.random.default_rng(3)
    H = np.diag(rng.uniform(0.5, 3.0, 8))
    W = rng.standard_normal((5, 8))
    np.testing.assert_allclose(obd_saliency(W, H).numpy(), obs_saliency(W, np.linalg.inv(H)).numpy(), rtol=1e-12)
    dw, _ = obs_update(W[0], np.linalg.inv(H), 4)
    assert np.count_nonzero(dw.numpy()) == 1          # no compensation: other weights do not move
    np.testing.assert_allclose(prune_obs(W, H, 0.5, damp=0).numpy(), prune_obd(W, H, 0.5).numpy(), atol=1e-12)


def test_obd_saliency_is_the_exact_cost_of_removing_one_weight_without_update():
    _, H, W = problem(seed=4)
    sal = obd_saliency(W, H).numpy()
    for r, q in [(0, 0), (1, 3), (2, 5)]:
        dw = np.zeros(W.shape[1])
        dw[q] = -W[r, q]
        assert sal[r, q] == pytest.approx(0.5 * dw @ H @ dw)


def test_prune_magnitude_and_dispatch():
    _, H, W = problem()
    Wm = prune_magnitude(W, 0.5).numpy()
    for w, wm in zip(W, Wm):
        dropped = np.flatnonzero(wm == 0)
        assert len(dropped) == 3 and np.abs(w[dropped]).max() <= np.abs(w[wm != 0]).min()
    np.testing.assert_array_equal(prune(W, H, "magnitude", 0.5).numpy(), Wm)
    assert torch.equal(prune(W, H, "obs", 0.0), torch.as_tensor(W))
    errs = {m: reconstruction_error(W, prune(W, H, m, 0.5), H) for m in ("magnitude", "obd", "obs")}
    assert errs["obs"] < errs["obd"] and errs["obs"] < errs["magnitude"]


def test_bad_inputs():
    _, H, W = problem()
    with pytest.raises(CourseError, match=r"H has shape \(5, 5\).*d_in=6"):
        obd_saliency(W, H[:5, :5])
    with pytest.raises(CourseError, match="sparsity=1.5"):
        prune_magnitude(W, 1.5)
    with pytest.raises(CourseError, match="method='random'"):
        prune(W, H, "random")
    with pytest.raises(CourseError, match="q=9"):
        obs_update(W[0], np.linalg.inv(H), 9)
    with pytest.raises(CourseError, match="W is empty"):
        prune_magnitude(np.zeros((0, 4)))
    X = np.random.default_rng(0).standard_normal((3, 6))    # 3 tokens, 6 channels: H is singular
    with pytest.raises(CourseError, match="damp=0"):
        prune_obs(W, 2 * X.T @ X / 3, damp=0)
    with pytest.raises(CourseError, match="NaN"):
        obd_saliency(np.full((2, 6), np.nan), H)
    with pytest.raises(CourseError, match="W_hat has shape"):
        reconstruction_error(W, W[:, :3], H)
    with pytest.raises(CourseError, match="non-positive"):
        obs_saliency(W, -np.eye(6))
    assert hessian_inverse(H).shape == (6, 6)


def test_obs_saliency_never_exceeds_obd_saliency():
    """[H^-1]_qq >= 1/H_qq for SPD H (Cauchy-Schwarz), with equality for a diagonal H."""
    rng = np.random.default_rng(5)
    for _ in range(20):
        d = int(rng.integers(2, 9))
        A = rng.standard_normal((d, d))
        H = A @ A.T + 0.05 * np.eye(d)
        w = rng.standard_normal(d)
        H_inv = np.linalg.inv(H)
        assert np.all(np.diag(H_inv) * np.diag(H) >= 1 - 1e-12)
        assert np.all(obs_saliency(w, H_inv).numpy() <= obd_saliency(w, H).numpy() * (1 + 1e-12))


def test_obs_update_set_is_the_exact_least_squares_solution():
    """Removing Q at once: the refit of the other weights by least squares on X (the oracle)."""
    X, H, W = problem(d=7, n=50, rows=3, seed=4)
    H_inv = np.linalg.inv(H)
    for w, Q in zip(W, ([0, 3], [1, 2, 5], [6])):
        dw, L = obs_update_set(w, H_inv, Q)
        keep = [i for i in range(len(w)) if i not in Q]
        w_ls = np.zeros_like(w)
        w_ls[keep] = np.linalg.lstsq(X[:, keep], X @ w, rcond=None)[0]   # min ||X w_hat - X w||, w_hat_Q = 0
        np.testing.assert_allclose((w + dw.numpy()), w_ls, atol=1e-10)
        assert L == pytest.approx(0.5 * dw.numpy() @ H @ dw.numpy(), rel=1e-10)
        assert L == pytest.approx(np.sum((X @ (w_ls - w)) ** 2) / len(X), rel=1e-10)   # H = 2 X^T X / n


def test_obs_update_set_of_one_weight_is_obs_and_sequential_obs_reaches_the_joint_optimum():
    _, H, W = problem(seed=6)
    w, H_inv = W[0], np.linalg.inv(H)
    for q in range(len(w)):
        dw1, L1 = obs_update(w, H_inv, q)
        dws, Ls = obs_update_set(w, H_inv, [q])
        np.testing.assert_allclose(dws.numpy(), dw1.numpy(), atol=1e-12)
        assert Ls == pytest.approx(L1, rel=1e-12)
    # remove 1, then 4 (with the downdated inverse): the same weights as removing {1, 4} jointly
    dw_a, La = obs_update(w, H_inv, 1)
    w_a = w + dw_a.numpy()
    dw_b, Lb = obs_update(w_a, remove_from_inverse(H_inv, 1), 4)
    dw_j, Lj = obs_update_set(w, H_inv, [1, 4])
    np.testing.assert_allclose(w_a + dw_b.numpy(), w + dw_j.numpy(), atol=1e-10)
    assert La + Lb == pytest.approx(Lj, rel=1e-9)
    # and the joint cost exceeds the sum of the two single saliencies from the start in general
    s = obs_saliency(w, H_inv).numpy()
    assert not np.isclose(Lj, s[1] + s[4])


def test_obq_update_moves_one_weight_to_its_grid_value_at_least_cost():
    X, H, W = problem(d=6, n=40, rows=2, seed=7)
    H_inv = np.linalg.inv(H)
    for w in W:
        for q in range(len(w)):
            v = np.round(w[q] * 2) / 2                                # a grid of step 0.5
            dw, L = obq_update(w, H_inv, q, v)
            assert (w + dw.numpy())[q] == pytest.approx(v, abs=1e-12)
            # oracle: the other weights refit by least squares with w_q pinned to v
            keep = [i for i in range(len(w)) if i != q]
            w_ls = np.full_like(w, v)
            w_ls[keep] = np.linalg.lstsq(X[:, keep], X @ w - X[:, q] * v, rcond=None)[0]
            np.testing.assert_allclose(w + dw.numpy(), w_ls, atol=1e-10)
            assert L == pytest.approx((w[q] - v) ** 2 / (2 * H_inv[q, q]), rel=1e-10)
            # rounding w_q alone (no compensation) costs the OBD-like (w_q - v)^2 H_qq / 2, never less
            assert L <= (w[q] - v) ** 2 * H[q, q] / 2 * (1 + 1e-12)
        dw0, L0 = obq_update(w, H_inv, 2, 0.0)                       # target 0 is pruning
        np.testing.assert_allclose(dw0.numpy(), obs_update(w, H_inv, 2)[0].numpy(), atol=1e-12)


def test_obs_update_set_bad_inputs():
    _, H, W = problem()
    H_inv = np.linalg.inv(H)
    with pytest.raises(CourseError, match="distinct"):
        obs_update_set(W[0], H_inv, [1, 1])
    with pytest.raises(CourseError, match="distinct"):
        obs_update_set(W[0], H_inv, [])
    with pytest.raises(CourseError, match="target has shape"):
        obs_update_set(W[0], H_inv, [0, 1], [0.0])
