#!/usr/bin/env python3
"""Independent float64 numpy cross-check of one `gridssl dump CHECKPOINT DUMPDIR`.

    /usr/bin/python3 tests/crosscheck.py DUMPDIR
    /usr/bin/python3 tests/crosscheck.py --selftest

Only numpy and the standard library; the arrays are read with numpy.load, so a passing run also
proves that numpy reads gridssl's .npy files as they are. Every size, sigma, weight and mode comes
from DUMPDIR/config.txt (N, hidden, B, T, permute, sigma_x, sigma_g, sep_rmax, lambda_*, iso_vmax,
capacity, reduction); the weights of the loss come from losses.txt, which logs the ones actually
applied (lambda_iso_eff is the isometry weight after its ramp). gridssl.c sections 2-4 define the
model and the losses; the code below is written from them, not from gridssl's C.

One line per check, "ok   NAME  ERROR (tol TOL)" or "FAIL NAME  ERROR (tol TOL)", then
"N passed, N failed"; exit status 0 iff nothing failed. Lines starting with "#" are context only.

What is checked, and why each tolerance is what it is:

1. Data (exact, tol 0). Velocities are multiples of 2^-20 and positions stay far below 2^4, so
   every partial sum is exact in float32 and float64: the float64 cumulative sum of
   velocities[index] must equal positions.npy bit for bit. With permute = 1 each row of index is a
   permutation of 0..T-1 and all B trajectories end at exactly the same point; with permute = 0
   the B*T velocities are each used once. Shapes and dtypes (<f4, <i4) must be as documented.
2. Forward pass. g is recomputed in float64 from the dumped parameters. g0 = NormReLU(theta0) is
   one step, so float32 rounding (~1e-7) is all that separates it from g0.npy: tol 1e-6 (max abs).
   The T-step recurrence compounds float32 rounding, so g gets tol 1e-4 (max abs; states are unit
   vectors). Dead states (||r||^2 < FLT_MIN = 1.1754944e-38) are counted exactly, both in the
   float64 rerun and as all-zero rows of g.npy, against dead_states in losses.txt.
3. Loss terms, recomputed in float64 from the DUMPED g and g0 (float32 promoted), so they do not
   depend on the forward pass of check 2. gridssl computes each dg2 in float32 and accumulates in
   float64, so relative error tol 1e-5 per term. The pair counts n_near, n_far and the step count
   n_iso are exact (tol 0): the near/far test is done in float64 on float32 positions exactly as
   the spec says. The logged total must equal the weighted sum of the logged terms to rounding of
   a 4-term double sum (rel 1e-12); losses.npy must equal losses.txt exactly (%.17g round-trips);
   lambda_sep/inv/cap in losses.txt must equal config.txt to float32 rounding (rel 1e-7).
4. Gradients. L(params) is reimplemented in float64 (full forward from the parameters, positions
   and velocities fixed: the near/far mask depends only on positions, so L is smooth except at
   ReLU kinks). For each parameter block a fixed-seed Gaussian direction d
   (numpy.random.default_rng(0), drawn in block order W1 b1 W2 b2 W3 b3 theta0) is scaled to the
   block's own norm (or 1 if that is smaller), so the step h = 1e-6 is a relative perturbation of
   1e-6: large enough that float64 round-off in L stays below ~1e-7 of the derivative, small
   enough that truncation error (~h^2) is negligible. A ReLU kink inside the stencil is not
   negligible (measured at N=64, H=256: one first-layer unit crossing at h = 1e-5 moved the
   b1 difference by 3e-3), so the on/off pattern of every ReLU (both MLP layers, theta0, every
   NormReLU input) at p+hd and p-hd is compared with the one at p, and h is divided by 10, up to
   3 times, until they agree (a "#" line says so). sum(grad*d) is compared with
   (L(p+hd) - L(p-hd))/(2h); the C gradients are float32 from a float32 forward pass, so relative
   tol 2e-3. The relative error divides by max(|analytic|, |numeric|, 0.1*typical), typical =
   ||grad||*||d||/sqrt(size), the usual size of grad.d: a direction that happens to be almost
   orthogonal to the gradient must not turn float32 noise into a false failure. One more check
   moves all blocks at once (a new direction from the same generator). Each gradient block must
   also be finite and not all zero (a zero gradient would pass nothing else vacuously, but say it).

`--selftest` builds small random dumps in memory (N=5, hidden=4, B=3, T=4; once with meannorm,
mean reduction and permutation, once with kernel, sum reduction, no permutation and iso_vmax=0),
with arrays from this script's own float64 model saved as float32 and gradients by full central
differences of the same code; it then runs the checks on them, plus a negative control (a
corrupted dump must fail exactly the checks it should). It tests only the plumbing of this
script: the same code produced and checked the numbers, so it says nothing about gridssl.
"""

import math
import os
import sys
import tempfile

try:
    import numpy as np
except ImportError:  # pyenv's python3 may lack numpy; Debian's python3-numpy is for /usr/bin
    sys.exit("crosscheck.py needs numpy: apt-get install python3-numpy, then run it with "
             "/usr/bin/python3")

FLT_MIN = 1.1754944e-38          # float32 smallest normal: NormReLU's zero test on ||r||^2
PARAM_NAMES = ["W1", "b1", "W2", "b2", "W3", "b3", "theta0"]
TERM_NAMES = ["sep", "inv", "cap", "iso", "dist", "sparse", "dir"]
COUNT_NAMES = ["n_near", "n_far", "n_iso", "n_dist"]

TOL_G0 = 1e-6        # one NormReLU step: float32 rounding only
TOL_G = 1e-4         # T float32 recurrence steps
TOL_TERM = 1e-5      # dg2 in float32, pair sums accumulated in float64
TOL_TOTAL = 1e-12    # 4-term double sum
TOL_LAMBDA = 1e-7    # config.txt may print a float32 weight with %.9g
TOL_GRAD = 2e-3      # float32 gradients vs float64 central differences
FD_STEP = 1e-6       # relative perturbation of a parameter block


# ------------------------------------------------------------------------------------------------
# reading the dump

def read_keyvals(path):
    """`key = value` lines; '#' starts a comment; blank lines ignored. Values stay strings."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise ValueError("%s: not a 'key = value' line: %r" % (path, line))
            out[key.strip()] = value.strip()
    return out


def parse_config(raw):
    """The config values this check uses, typed; a missing key is an error, not a default."""
    def get(key, kind):
        if key not in raw:
            raise KeyError("config.txt lacks '%s'" % key)
        return kind(raw[key])
    cfg = {k: get(k, int) for k in ["N", "hidden", "B", "T", "permute", "dir_headings",
                                    "dir_states"]}
    cfg.update({k: get(k, float) for k in ["sigma_x", "sigma_g", "sep_rmax", "lambda_sep", "lambda_inv",
                                           "lambda_cap", "lambda_iso", "iso_vmax", "iso_vmin",
                                           "lambda_dist", "dist_scale", "dist_rmax",
                                           "lambda_sparse", "lambda_dir", "dir_speed"]})
    cfg["capacity"] = get("capacity", str)
    cfg["reduction"] = get("reduction", str)
    if cfg["capacity"] not in ("meannorm", "kernel"):
        raise ValueError("unknown capacity %r" % cfg["capacity"])
    if cfg["reduction"] not in ("mean", "sum"):
        raise ValueError("unknown reduction %r" % cfg["reduction"])
    return cfg


def parse_losses(raw):
    out = {k: float(raw[k]) for k in TERM_NAMES + ["total", "lambda_sep", "lambda_inv",
                                                   "lambda_cap", "lambda_iso_eff",
                                                   "lambda_dist_eff", "lambda_sparse",
                                                   "lambda_dir_eff"]}
    out.update({k: int(raw[k]) for k in COUNT_NAMES + ["dead_states"]})
    return out


def load_dump(d):
    """Everything in DUMPDIR, arrays exactly as numpy.load returns them."""
    load = lambda name: np.load(os.path.join(d, name + ".npy"))
    dump = {"cfg": parse_config(read_keyvals(os.path.join(d, "config.txt"))),
            "losses": parse_losses(read_keyvals(os.path.join(d, "losses.txt"))),
            "losses_npy": load("losses")}
    for name in ["velocities", "index", "positions", "g0", "g"]:
        dump[name] = load(name)
    on = dump["cfg"]["lambda_dir"] > 0        # L_dir's probes are written only when it is on
    dump["dir_velocities"] = load("dir_velocities") if on else np.zeros((0, 2), np.float32)
    dump["params"] = {k: load(k) for k in PARAM_NAMES}
    dump["grads"] = {k: load("grad_" + k) for k in PARAM_NAMES}
    return dump


def as64(params):
    return {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}


# ------------------------------------------------------------------------------------------------
# the model, float64 (gridssl.c section 3)

def relu(z):
    return np.maximum(z, 0.0)


def norm_relu(z):
    """r/||r|| with r = max(z,0) along the last axis; 0 and dead where ||r||^2 < FLT_MIN."""
    r = relu(z)
    n2 = np.sum(r * r, axis=-1, keepdims=True)
    dead = n2 < FLT_MIN
    g = np.where(dead, 0.0, r / np.sqrt(np.where(dead, 1.0, n2)))
    return g, dead[..., 0]


def velocity_matrices(p, vel, n, signs=None):
    """W(v) for each distinct velocity: (V, N, N), nn.Linear layout y = W x + b, row-major.
    If `signs` is a list, the on/off pattern of every ReLU is appended to it."""
    a1 = vel @ p["W1"].T + p["b1"]
    a2 = relu(a1) @ p["W2"].T + p["b2"]
    if signs is not None:
        signs += [a1 > 0, a2 > 0]
    return (relu(a2) @ p["W3"].T + p["b3"]).reshape(len(vel), n, n)


def rollout(p, vel, index, n, signs=None):
    """g0 (N,), g (B,T,N), number of dead states among g_{b,t}, t = 1..T, and whether g0 is.
    If `signs` is a list, the on/off pattern of every ReLU is appended to it."""
    wv = velocity_matrices(p, np.asarray(vel, np.float64), n, signs)
    if signs is not None:
        signs.append(p["theta0"] > 0)
    g0, g0_dead = norm_relu(p["theta0"])
    b, t_len = index.shape
    g = np.empty((b, t_len, n))
    cur = np.broadcast_to(g0, (b, n))
    n_dead = 0
    for t in range(t_len):
        z = np.matmul(wv[index[:, t]], cur[:, :, None])[:, :, 0]
        if signs is not None:
            signs.append(z > 0)
        cur, dead = norm_relu(z)
        g[:, t] = cur
        n_dead += int(dead.sum())
    return g0, g, n_dead, bool(g0_dead)


# ------------------------------------------------------------------------------------------------
# the losses, float64 (gridssl.c section 4)

def sep_pairs(far, dx2, sep_rmax):
    """L_sep's pairs: the far ones, and of those only the ones within sep_rmax when sep_rmax > 0
    (gridssl.c section 4 compares squares: dx2 <= sep_rmax^2)."""
    return far & (dx2 <= sep_rmax * sep_rmax) if sep_rmax > 0 else far


def pair_sums(G, X, sigma_x, sigma_g, sep_rmax, dist_scale, dist_rmax):
    """Sums over unordered pairs i<j, row block by row block (never an M x M temporary).

    far_kernel = sum over far pairs of exp(-dg2/(2 sg^2)) (those with dx2 <= sep_rmax^2 when
    sep_rmax > 0; n_far counts them), near_dg2 = sum over near pairs of dg2,
    all_kernel = sum over all pairs of the kernel; near iff dx2 <= sigma_x*sigma_x in float64;
    dist = sum over far pairs with dx2 <= dist_rmax^2 of (sqrt(dg2) - dist_scale sqrt(dx2))^2.
    """
    m = len(G)
    sx2 = sigma_x * sigma_x
    r2 = dist_rmax * dist_rmax
    inv2s2 = 1.0 / (2.0 * sigma_g * sigma_g)
    sq = np.einsum("ij,ij->i", G, G)
    acc = {"far_kernel": 0.0, "near_dg2": 0.0, "all_kernel": 0.0, "dist": 0.0, "n_near": 0,
           "n_far": 0, "n_dist": 0}
    rows = max(1, (1 << 21) // max(m, 1))
    for s in range(0, m, rows):
        e = min(m, s + rows)
        dg2 = sq[s:e, None] + sq[None, s:] - 2.0 * (G[s:e] @ G[s:].T)
        dx = X[s:e, None, :] - X[None, s:, :]
        dx2 = dx[..., 0] * dx[..., 0] + dx[..., 1] * dx[..., 1]
        upper = np.arange(s, m)[None, :] > np.arange(s, e)[:, None]
        near = upper & (dx2 <= sx2)
        far = upper & ~(dx2 <= sx2)
        kern = np.exp(-dg2 * inv2s2)
        in_sep = sep_pairs(far, dx2, sep_rmax)
        acc["far_kernel"] += float(kern[in_sep].sum())
        acc["near_dg2"] += float(dg2[near].sum())
        acc["all_kernel"] += float(kern[upper].sum())
        acc["n_near"] += int(near.sum())
        acc["n_far"] += int(in_sep.sum())
        in_dist = far & (dx2 <= r2)
        res = np.sqrt(np.maximum(dg2[in_dist], 0.0)) - dist_scale * np.sqrt(dx2[in_dist])
        acc["dist"] += float(np.sum(res * res))
        acc["n_dist"] += int(in_dist.sum())
    return acc


def iso_term(g, g0, vel, index, iso_vmin, iso_vmax):
    """Population variance of ||g_t - g_{t-1}||/||v_t|| over qualifying steps
    (iso_vmin < ||v|| < iso_vmax, ||v|| > 0), and their count."""
    v = np.asarray(vel, np.float64)[index]                           # (B,T,2)
    speed = np.sqrt(v[..., 0] * v[..., 0] + v[..., 1] * v[..., 1])
    prev = np.concatenate([np.broadcast_to(g0, (g.shape[0], 1, g.shape[2])), g[:, :-1]], axis=1)
    step = np.sqrt(np.sum((g - prev) ** 2, axis=-1))
    q = (speed > 0) & (speed > iso_vmin)
    if iso_vmax > 0:
        q &= speed < iso_vmax
    n = int(q.sum())
    if n < 1:
        return 0.0, 0
    s = step[q] / speed[q]
    return float(np.mean((s - s.mean()) ** 2)), n


def dir_term(p, G, dir_vel, cfg, signs=None):
    """L_dir: from each of the first S states of G (M,N), one step with each probe velocity u_k:
    d_rk = ||NormReLU(W(u_k) g_r) - g_r||; L = sum (d_rk - mean_k d_rk)^2 / sum d_rk^2."""
    if cfg["lambda_dir"] <= 0:
        return 0.0
    w = velocity_matrices(p, np.asarray(dir_vel, np.float64), cfg["N"], signs)   # (K,N,N)
    s = min(cfg["dir_states"], len(G))
    z = np.einsum("kij,rj->rki", w, G[:s])
    if signs is not None:
        signs.append(z > 0)
    gp, _ = norm_relu(z)
    d = np.sqrt(np.sum((gp - G[:s, None, :]) ** 2, axis=-1))                  # (S,K)
    q = float(np.sum(d * d))
    return float(np.sum((d - d.mean(axis=1, keepdims=True)) ** 2)) / q if q > 0 else 0.0


def loss_terms(g, g0, positions, vel, index, cfg, p=None, dir_vel=None, signs=None):
    """sep, inv, cap, iso, dist, sparse, dir and the counts n_near, n_far, n_iso, n_dist from
    states g (B,T,N); L_dir also needs the parameters p and its probe velocities."""
    b, t_len, n = g.shape
    m = b * t_len
    G = np.asarray(g, np.float64).reshape(m, n)
    X = np.asarray(positions, np.float64).reshape(m, 2)
    rmax = cfg["dist_rmax"] if cfg["lambda_dist"] > 0 else 0.0    # L_dist off: no pair
    ps = pair_sums(G, X, cfg["sigma_x"], cfg["sigma_g"], cfg["sep_rmax"], cfg["dist_scale"], rmax)
    mean = cfg["reduction"] == "mean"
    sep = ps["far_kernel"] / ps["n_far"] if mean and ps["n_far"] else ps["far_kernel"]
    inv = ps["near_dg2"] / ps["n_near"] if mean and ps["n_near"] else ps["near_dg2"]
    if cfg["capacity"] == "meannorm":
        c = G.mean(axis=0)
        cap = -float(c @ c)
    else:
        cap = -2.0 * ps["all_kernel"] / (m * (m - 1)) if m > 1 else 0.0
    iso, n_iso = iso_term(np.asarray(g, np.float64), np.asarray(g0, np.float64), vel, index,
                          cfg["iso_vmin"], cfg["iso_vmax"])
    dist = ps["dist"] / ps["n_dist"] if mean and ps["n_dist"] else ps["dist"]
    sparse = float(G.sum() / m) if cfg["lambda_sparse"] > 0 else 0.0   # L1 norm: g >= 0
    direction = dir_term(p, G, dir_vel, cfg, signs) if p is not None else 0.0
    return {"sep": sep, "inv": inv, "cap": cap, "iso": iso, "dist": dist, "sparse": sparse,
            "dir": direction,
            "n_near": ps["n_near"], "n_far": ps["n_far"], "n_iso": n_iso, "n_dist": ps["n_dist"]}


def weighted_total(terms, lam):
    return (lam["lambda_sep"] * terms["sep"] + lam["lambda_inv"] * terms["inv"]
            + lam["lambda_cap"] * terms["cap"] + lam["lambda_iso_eff"] * terms["iso"]
            + lam["lambda_dist_eff"] * terms["dist"] + lam["lambda_sparse"] * terms["sparse"]
            + lam["lambda_dir_eff"] * terms["dir"])


def total_loss(p, positions, vel, index, cfg, lam, dir_vel, signs=None):
    """L(params) in float64: full forward from the parameters, then the weighted loss."""
    g0, g, _, _ = rollout(p, vel, index, cfg["N"], signs)
    return weighted_total(loss_terms(g, g0, positions, vel, index, cfg, p, dir_vel, signs), lam)


# ------------------------------------------------------------------------------------------------
# reporting

class Report:
    """Collects check results; prints one line per check unless quiet."""

    def __init__(self, quiet=False):
        self.quiet = quiet
        self.results = []            # (name, passed)

    def say(self, text):
        if not self.quiet:
            print(text)

    def check(self, name, err, tol, passed=None, tol_text=None):
        """Passes iff err <= tol (NaN fails), unless `passed` is given."""
        if passed is None:
            passed = bool(err <= tol)
        shown = str(err) if isinstance(err, (int, np.integer)) else "%.3g" % err
        self.results.append((name, passed))
        self.say("%s %s  %s (tol %s)" % ("ok  " if passed else "FAIL", name, shown,
                                         tol_text if tol_text else "%.3g" % tol))

    def error(self, name, exc):
        self.results.append((name, False))
        self.say("FAIL %s  error: %s: %s" % (name, type(exc).__name__, exc))

    def counts(self):
        n_pass = sum(1 for _, ok in self.results if ok)
        return n_pass, len(self.results) - n_pass

    def failed(self):
        return [name for name, ok in self.results if not ok]


def rel_err(a, b):
    scale = max(abs(a), abs(b))
    return 0.0 if scale == 0 else abs(a - b) / scale


# ------------------------------------------------------------------------------------------------
# the checks

def check_layout(rep, dump):
    """Shapes and dtypes as documented, derived from config.txt."""
    c = dump["cfg"]
    n, h, b, t = c["N"], c["hidden"], c["B"], c["T"]
    v = t if c["permute"] else b * t
    k = c["dir_headings"] if c["lambda_dir"] > 0 else 0
    want = {"velocities": ((v, 2), "<f4"), "index": ((b, t), "<i4"),
            "positions": ((b, t, 2), "<f4"), "g0": ((n,), "<f4"), "g": ((b, t, n), "<f4"),
            "dir_velocities": ((k, 2), "<f4")}
    shapes = {"W1": (h, 2), "b1": (h,), "W2": (h, h), "b2": (h,), "W3": (n * n, h),
              "b3": (n * n,), "theta0": (n,)}
    arrays = {k: dump[k] for k in want}
    for k in PARAM_NAMES:
        want[k] = want["grad_" + k] = (shapes[k], "<f4")
        arrays[k] = dump["params"][k]
        arrays["grad_" + k] = dump["grads"][k]
    want["losses"] = ((len(TERM_NAMES) + 1,), "<f8")
    arrays["losses"] = dump["losses_npy"]
    bad = [k for k in want if arrays[k].shape != want[k][0]
           or arrays[k].dtype != np.dtype(want[k][1])]
    for k in bad:
        rep.say("# %s: shape %s dtype %s, expected %s %s" % (k, arrays[k].shape,
                                                           arrays[k].dtype.str, *want[k]))
    rep.check("layout: shapes and dtypes of %d arrays" % len(want), len(bad), 0)
    return not bad


def check_data(rep, dump):
    c = dump["cfg"]
    vel, index, pos = dump["velocities"], dump["index"], dump["positions"]
    v = len(vel)
    scaled = vel.astype(np.float64) * 2.0 ** 20
    rep.check("data: velocities are multiples of 2^-20",
              int(np.count_nonzero(scaled != np.round(scaled))), 0)
    in_range = (index >= 0) & (index < v)
    rep.check("data: index within 0..V-1", int(np.count_nonzero(~in_range)), 0)
    if not in_range.all():
        return
    if c["permute"]:
        bad_rows = sum(1 for row in index if not np.array_equal(np.sort(row), np.arange(c["T"])))
        rep.check("data: every row of index is a permutation of 0..T-1", bad_rows, 0)
    else:
        flat = np.sort(index.reshape(-1))
        rep.check("data: permute=0 uses each of the B*T velocities once",
                  int(np.count_nonzero(flat != np.arange(v))), 0)
    steps = vel.astype(np.float64)[index]
    recon = np.cumsum(steps, axis=1)
    rep.check("data: positions == cumsum(velocities[index]) exactly",
              float(np.max(np.abs(recon - pos.astype(np.float64)))), 0.0)
    if c["permute"]:
        end = pos[:, -1, :]
        rep.check("data: all trajectories end at the same point exactly",
                  float(np.max(np.abs(end - end[0]))), 0.0)
    u = dump["dir_velocities"].astype(np.float64)
    if len(u):                    # L_dir's probes: one length, evenly spaced headings (float32)
        length = np.sqrt(np.sum(u * u, axis=1))
        rep.check("data: L_dir's probes have length dir_speed, max rel",
                  float(np.max(np.abs(length / c["dir_speed"] - 1))), 1e-6)
        turn = np.diff(np.unwrap(np.arctan2(u[:, 1], u[:, 0])))
        rep.check("data: L_dir's headings are 2 pi / dir_headings apart, max abs (rad)",
                  float(np.max(np.abs(turn - 2 * math.pi / len(u)))), 1e-6)


def check_forward(rep, dump):
    c = dump["cfg"]
    p = as64(dump["params"])
    g0, g, n_dead, g0_dead = rollout(p, dump["velocities"], dump["index"], c["N"])
    rep.say("# float64 rerun: %d dead states among B*T = %d, g0 %s"
            % (n_dead, c["B"] * c["T"], "dead" if g0_dead else "alive"))
    rep.check("forward: g0 vs NormReLU(theta0), max abs",
              float(np.max(np.abs(g0 - dump["g0"]))), TOL_G0)
    rep.check("forward: g vs float64 rerun from parameters, max abs",
              float(np.max(np.abs(g - dump["g"]))), TOL_G)
    logged = dump["losses"]["dead_states"]
    rep.check("forward: dead_states vs float64 rerun", abs(n_dead - logged), 0)
    zero_rows = int(np.count_nonzero(~np.any(dump["g"] != 0, axis=-1)))
    rep.check("forward: dead_states vs all-zero rows of g.npy", abs(zero_rows - logged), 0)


def check_losses(rep, dump):
    c, lg = dump["cfg"], dump["losses"]
    terms = loss_terms(dump["g"], dump["g0"], dump["positions"], dump["velocities"],
                       dump["index"], c, as64(dump["params"]), dump["dir_velocities"])
    rep.say("# M = %d states: %d near pairs, %d far pairs (%d in L_dist), %d isometry steps"
            % (c["B"] * c["T"], terms["n_near"], terms["n_far"], terms["n_dist"], terms["n_iso"]))
    for k in COUNT_NAMES:
        rep.check("loss: %s exact" % k, abs(terms[k] - lg[k]), 0)
    for k in TERM_NAMES:
        rep.say("# %s: gridssl %.17g, numpy %.17g" % (k, lg[k], terms[k]))
        rep.check("loss: %s from dumped g, rel" % k, rel_err(terms[k], lg[k]), TOL_TERM)
    rep.check("loss: total vs weighted logged terms, rel",
              rel_err(weighted_total(lg, lg), lg["total"]), TOL_TOTAL)
    for k in ["lambda_sep", "lambda_inv", "lambda_cap", "lambda_sparse"]:
        rep.check("loss: %s in losses.txt vs config.txt, rel" % k, rel_err(lg[k], c[k]),
                  TOL_LAMBDA)
    lam_ok = 0.0 <= lg["lambda_iso_eff"] <= c["lambda_iso"] * (1 + TOL_LAMBDA)
    rep.check("loss: 0 <= lambda_iso_eff <= lambda_iso", lg["lambda_iso_eff"], c["lambda_iso"],
              passed=lam_ok, tol_text="<= %.9g" % c["lambda_iso"])
    for k in ["dist", "dir"]:
        lam_ok = 0.0 <= lg["lambda_%s_eff" % k] <= c["lambda_" + k] * (1 + TOL_LAMBDA)
        rep.check("loss: 0 <= lambda_%s_eff <= lambda_%s" % (k, k), lg["lambda_%s_eff" % k],
                  c["lambda_" + k], passed=lam_ok, tol_text="<= %.9g" % c["lambda_" + k])
    logged = np.array([lg[k] for k in TERM_NAMES + ["total"]])
    rep.check("loss: losses.npy == losses.txt exactly",
              float(np.max(np.abs(logged - dump["losses_npy"]))), 0.0)


def fd_direction(rng, p):
    """Gaussian direction of the block's shape, scaled to length max(||p||, 1)."""
    d = rng.standard_normal(p.shape)
    return d * (max(float(np.linalg.norm(p)), 1.0) / float(np.linalg.norm(d)))


def same_pattern(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def central_difference(loss, p, dirs):
    """(L(p+hd) - L(p-hd))/(2h), h = FD_STEP, divided by 10 (at most 3 times) while some ReLU
    is on at one end of the stencil and off at p: across a kink the difference measures a mix of
    two slopes. Returns the difference and the step used."""
    here = []
    loss(p, here)
    h = FD_STEP
    for attempt in range(4):
        ends = []
        for sign in (1.0, -1.0):
            signs = []
            q = {k: v + sign * h * dirs[k] if k in dirs else v for k, v in p.items()}
            ends.append((loss(q, signs), signs))
        smooth = all(same_pattern(here, signs) for _, signs in ends)
        if smooth or attempt == 3:
            return (ends[0][0] - ends[1][0]) / (2.0 * h), h, smooth
        h /= 10.0


def directional_check(rep, name, loss, p, grads, dirs):
    """Compare sum(grad*d) over the blocks in dirs with a central difference of loss."""
    numeric, h, smooth = central_difference(loss, p, dirs)
    if h != FD_STEP or not smooth:
        rep.say("# %s: step %.0e%s" % (name, h, "" if smooth else ", still across a ReLU kink"))
    analytic = sum(float(np.sum(grads[k].astype(np.float64) * dirs[k])) for k in dirs)
    typical = math.sqrt(sum((float(np.linalg.norm(grads[k])) * float(np.linalg.norm(dirs[k])))
                            ** 2 / dirs[k].size for k in dirs))
    rep.say("# %s: gridssl %.9g, central difference %.9g" % (name, analytic, numeric))
    denom = max(abs(analytic), abs(numeric), 0.1 * typical)
    err = abs(analytic - numeric) / denom if denom > 0 else 0.0
    rep.check(name, err, TOL_GRAD)


def check_gradients(rep, dump):
    c, lg = dump["cfg"], dump["losses"]
    p = as64(dump["params"])
    grads = dump["grads"]
    loss = lambda q, signs=None: total_loss(q, dump["positions"], dump["velocities"],
                                            dump["index"], c, lg, dump["dir_velocities"], signs)
    rep.say("# float64 L at the dumped parameters: %.17g (gridssl total %.17g)"
            % (loss(p), lg["total"]))
    for k in PARAM_NAMES:
        norm = float(np.linalg.norm(grads[k].astype(np.float64)))
        ok = bool(np.all(np.isfinite(grads[k]))) and norm > 0
        rep.check("grad: grad_%s finite and not all zero, norm" % k, norm, 0.0, passed=ok,
                  tol_text="> 0")
    rng = np.random.default_rng(0)
    for k in PARAM_NAMES:
        directional_check(rep, "grad: %s directional derivative, rel" % k, loss, p, grads,
                          {k: fd_direction(rng, p[k])})
    directional_check(rep, "grad: all blocks at once, directional derivative, rel", loss, p,
                      grads, {k: fd_direction(rng, p[k]) for k in PARAM_NAMES})


def run_checks(dumpdir, quiet=False):
    """Run every check on DUMPDIR; returns the Report."""
    rep = Report(quiet)
    try:
        dump = load_dump(dumpdir)
    except Exception as exc:       # a missing or malformed file is one failure, not a traceback
        rep.error("load %s" % dumpdir, exc)
        return rep
    c = dump["cfg"]
    rep.say("# %s: N=%d hidden=%d B=%d T=%d permute=%d capacity=%s reduction=%s"
            % (dumpdir, c["N"], c["hidden"], c["B"], c["T"], c["permute"], c["capacity"],
               c["reduction"]))
    if not check_layout(rep, dump):
        return rep                 # everything below relies on the shapes
    for group in [check_data, check_forward, check_losses, check_gradients]:
        try:
            group(rep, dump)
        except Exception as exc:
            rep.error(group.__name__, exc)
    return rep


# ------------------------------------------------------------------------------------------------
# self-test: the plumbing of this script only

def write_config(path, cfg):
    with open(path, "w") as f:
        f.write("# fake gridssl config written by crosscheck.py --selftest\n\nseed = 7\n")
        for k, v in cfg.items():
            f.write("%s = %s   # a trailing comment\n" % (k, v))
        f.write("lr = 0.001\n")                  # keys the check does not use are ignored


def fake_dump(dirpath, seed, capacity, reduction, permute, iso_vmax, iso_vmin=0.0, lambda_dist=0.0,
              lambda_sparse=0.0, lambda_dir=0.0, sep_rmax=0.0):
    """A random small dump made by this script's own float64 model, stored as float32."""
    rng = np.random.default_rng(seed)
    n, h, b, t = 5, 4, 3, 4
    cfg = {"N": n, "hidden": h, "B": b, "T": t, "permute": permute, "sigma_x": 0.1,
           "sigma_g": 0.4, "sep_rmax": sep_rmax, "lambda_sep": 1.0, "lambda_inv": 0.1, "lambda_cap": 0.5,
           "lambda_iso": 0.1, "iso_vmax": iso_vmax, "iso_vmin": iso_vmin, "lambda_dist": lambda_dist,
           "dist_scale": 3.0, "dist_rmax": 0.25, "lambda_sparse": lambda_sparse,
           "lambda_dir": lambda_dir, "dir_speed": 0.1, "dir_headings": 5, "dir_states": 7,
           "capacity": capacity, "reduction": reduction}
    write_config(os.path.join(dirpath, "config.txt"), cfg)
    v = t if permute else b * t
    vel = np.round(rng.uniform(-0.15, 0.15, (v, 2)) * 2 ** 20) / 2 ** 20
    if permute:
        index = np.array([rng.permutation(t) for _ in range(b)])
    else:
        index = rng.permutation(v).reshape(b, t)
    pos = np.cumsum(vel[index], axis=1)
    shapes = {"W1": (h, 2), "b1": (h,), "W2": (h, h), "b2": (h,), "W3": (n * n, h),
              "b3": (n * n,), "theta0": (n,)}
    fan_in = {"W1": 2, "b1": 2, "W2": h, "b2": h, "W3": h, "b3": h}
    p = {k: rng.uniform(-1, 1, shapes[k]) / math.sqrt(fan_in[k]) if k in fan_in
         else rng.standard_normal(shapes[k]) for k in PARAM_NAMES}
    p = as64({k: v.astype(np.float32) for k, v in p.items()})   # the stored values are the truth
    k = cfg["dir_headings"] if lambda_dir > 0 else 0              # L_dir's probes, drawn last
    heading = (rng.uniform(0, 2 * math.pi / k) if k else 0) + 2 * math.pi * np.arange(k) / max(k, 1)
    dir_vel = (cfg["dir_speed"] * np.stack([np.cos(heading), np.sin(heading)], axis=1)).astype(np.float32)
    g0, g, n_dead, _ = rollout(p, vel, index, n)
    terms = loss_terms(g, g0, pos, vel, index, cfg, p, dir_vel)
    lam = {"lambda_sep": 1.0, "lambda_inv": 0.1, "lambda_cap": 0.5, "lambda_iso_eff": 0.05,
           "lambda_dist_eff": lambda_dist / 2, "lambda_sparse": lambda_sparse,
           "lambda_dir_eff": lambda_dir / 2}
    loss = lambda q: total_loss(q, pos, vel, index, cfg, lam, dir_vel)
    grads = {k: np.zeros_like(p[k]) for k in PARAM_NAMES}
    for k in PARAM_NAMES:                      # full central differences, entry by entry
        for i in range(p[k].size):
            e = np.zeros(p[k].size)
            e[i] = 1e-6
            e = e.reshape(p[k].shape)
            grads[k].flat[i] = (loss({**p, k: p[k] + e}) - loss({**p, k: p[k] - e})) / 2e-6
    save = lambda name, a, dt="<f4": np.save(os.path.join(dirpath, name + ".npy"),
                                              np.asarray(a).astype(dt))
    save("velocities", vel)
    save("index", index, "<i4")
    save("positions", pos)
    save("g0", g0)
    save("g", g)
    if lambda_dir > 0:
        save("dir_velocities", dir_vel)
    for k in PARAM_NAMES:
        save(k, p[k])
        save("grad_" + k, grads[k])
    total = weighted_total(terms, lam)
    values = [terms[k] for k in TERM_NAMES] + [total]
    save("losses", values, "<f8")
    with open(os.path.join(dirpath, "losses.txt"), "w") as f:
        for k, x in zip(TERM_NAMES + ["total"], values):
            f.write("%s = %.17g\n" % (k, x))
        for k, x in lam.items():
            f.write("%s = %.17g\n" % (k, x))
        for k in COUNT_NAMES:
            f.write("%s = %d\n" % (k, terms[k]))
        f.write("dead_states = %d\n" % n_dead)


def corrupt(dirpath):
    """Damage a copy of a good dump in three independent places; returns the checks that must
    fail."""
    path = lambda name: os.path.join(dirpath, name + ".npy")
    gw2 = np.load(path("grad_W2"))
    np.save(path("grad_W2"), (gw2 * 1.05).astype("<f4"))
    g = np.load(path("g"))
    g[1, 2, 0] += np.float32(1e-3)
    np.save(path("g"), g)
    pos = np.load(path("positions"))
    pos[0, 1, 1] = np.nextafter(pos[0, 1, 1], np.float32(1))
    np.save(path("positions"), pos)
    return {"grad: W2 directional derivative, rel",
            "grad: all blocks at once, directional derivative, rel",
            "forward: g vs float64 rerun from parameters, max abs",
            "data: positions == cumsum(velocities[index]) exactly"}


def selftest():
    """Run the checks on two fake dumps and one corrupted one; return the exit status."""
    rep = Report()
    with tempfile.TemporaryDirectory() as tmp:
        variants = [("meannorm", "mean", 1, 0.1), ("kernel", "sum", 0, 0.0),
                    ("meannorm", "mean", 1, 0.1, 0.0, 0.5, 0.2, 3.0),  # L_dist, L_sparse, L_dir
                    ("kernel", "mean", 1, 0.1, 0.0, 0.0, 0.0, 0.0, 0.2)]  # L_sep within 0.2 m
        for seed, variant in enumerate(variants):
            d = os.path.join(tmp, "dump%d" % seed)
            os.mkdir(d)
            fake_dump(d, seed, *variant)
            sub = run_checks(d)
            rep.results += sub.results
        d = os.path.join(tmp, "corrupt")
        os.mkdir(d)
        fake_dump(d, 0, *variants[0])
        must_fail = corrupt(d)
        failed = set(run_checks(d, quiet=True).failed())
        # the corrupted g also moves the loss terms computed from it; that is allowed
        unexpected = {f for f in failed - must_fail if not f.startswith("loss: ")}
        rep.check("selftest: corrupted dump fails exactly the expected checks",
                  len(must_fail - failed) + len(unexpected), 0)
    return rep


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 2
    rep = selftest() if argv[1] == "--selftest" else run_checks(argv[1])
    n_pass, n_fail = rep.counts()
    print("%d passed, %d failed" % (n_pass, n_fail))
    return 0 if n_fail == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
