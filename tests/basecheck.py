#!/usr/bin/env python3
"""Independent float64 numpy cross-check of one `gridssl dump` of a supervised baseline.

    /usr/bin/python3 tests/basecheck.py DUMPDIR

DUMPDIR comes from `gridssl dump CHECKPOINT DUMPDIR` of a model=cw or model=sorscher checkpoint.
Only numpy and the standard library. Every size and weight comes from DUMPDIR/config.txt. The model
is written here from its papers as gridssl.c section 5 states them, not from gridssl's C:

  Cueva & Wei:  x_t = 0.9 x_{t-1} + 0.1 (W_rec u_{t-1} + W_in I_t + b_rec + xi_t),  u = tanh(x),
                x_0 = 0;  y = W_out u;  L = mean (y - pos)^2 + alpha (mean W_in^2 + mean W_out^2)
                + beta mean u^2
  Sorscher:     h_0 = W_enc p(x_0),  h_t = ReLU(W_rec h_{t-1} + W_in v_t) (or linear);
                L = -mean_t sum_j p_j(x_t) log softmax(W_out h_t)_j + wd |W_rec|^2,
                p = difference of Gaussians over the place cells, shifted to >= 0, summing to 1

One line per check, "ok   NAME  ERROR (tol TOL)" or "FAIL ...", then "N passed, N failed"; exit
status 0 iff nothing failed. What is checked, and why each tolerance is what it is:

1. Data. cw: every input's (cos, sin) has unit length (tol 1e-6, float32 rounding), speeds lie in
   [0, cw_speed], the positions are the running sum of speed * (cos, sin) (tol 1e-5: float32
   rounding of the inputs and positions over T steps), every position lies in the arena (the
   polygon of the config's shape and width, tol 1e-6 m), and the share of still steps is within
   5 standard errors of cw_still. sorscher: positions = start + running sum of the inputs (tol 1e-5),
   every start in the arena, and the place-cell codes p(x_t) and p(x_0) recomputed from the
   centres in float64 (tol 1e-6: one float32 rounding of values <= 1; each sums to 1, >= 0).
2. Forward. The states are recomputed in float64 from the dumped parameters, inputs, noise (cw)
   and start codes (sorscher): tol 1e-4 max abs (T float32 steps compound rounding); the readout
   likewise. The units' ReLU pattern of the rerun must match the dump's except for states within
   1e-5 of the kink.
3. Loss terms, from the DUMPED readout, states and codes (float32 promoted): each accumulates in double in
   gridssl, so rel tol 1e-9 (the cross-entropy's exp and log are gridssl's own, within an ulp);
   the total equals the weighted sum of the terms (rel 1e-12).
4. Gradients. L(params) in float64 from the parameters and the fixed batch; for each block a Gaussian
   direction d (numpy default_rng(0), in block order), scaled to the block's norm (or 1), and the
   central difference with h = 1e-6 (divided by 10 while a ReLU flips inside the stencil) is compared
   with sum(grad * d): rel tol 2e-3, as gridssl's gradients are float32 from a float32 forward pass.
   One more check moves all blocks at once. Each gradient must be finite and not all zero.
5. Negative control: the same gradient check with one gradient block negated must fail.
"""

import math
import os
import sys

try:
    import numpy as np
except ImportError:
    sys.exit("basecheck.py needs numpy: apt-get install python3-numpy, then run it with /usr/bin/python3")

TOL_GRAD = 2e-3
FD_STEP = 1e-6


class Report:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, name, err, tol, passed=None):
        ok = (err <= tol) if passed is None else passed
        self.passed += ok
        self.failed += not ok
        print("%s %s  %.3e (tol %.1e)" % ("ok  " if ok else "FAIL", name, err, tol))

    def say(self, text):
        print(text)


def read_keyvals(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                key, _, value = line.partition("=")
                out[key.strip()] = value.strip()
    return out


def load(d):
    cfg = read_keyvals(os.path.join(d, "config.txt"))
    dump = {"cfg": cfg, "losses": {k: float(v) for k, v in read_keyvals(os.path.join(d, "losses.txt")).items()}}
    model = cfg["model"]
    names = ["input", "positions", "start", "h0", "x", "h", "out"]
    names += ["noise"] if model == "cw" else ["centres", "targets", "p0"]
    for n in names:
        dump[n] = np.load(os.path.join(d, n + ".npy"))
    tensors = ["W_in", "b_rec", "W_rec", "W_out"] if model == "cw" else ["W_enc", "W_in", "W_rec", "W_out"]
    dump["tensors"] = tensors
    dump["params"] = {k: np.load(os.path.join(d, k + ".npy")).astype(np.float64) for k in tensors}
    dump["grads"] = {k: np.load(os.path.join(d, "grad_" + k + ".npy")).astype(np.float64) for k in tensors}
    return dump


def shapes(dump):
    """The parameters in their matrix shapes (gridssl stores them flat, row-major, (out, in))."""
    c = dump["cfg"]
    N, P = int(c["N"]), int(c["place_cells"])
    D = 3 if c["model"] == "cw" else 2
    O = 2 if c["model"] == "cw" else P
    return {"W_in": (N, D), "b_rec": (N,), "W_rec": (N, N), "W_out": (O, N), "W_enc": (N, P)}


def arena_polygon(shape, size):
    h, r3 = size / 2, math.sqrt(3) / 2
    if shape == "hexagon":
        return [(h, 0), (h / 2, h * r3), (-h / 2, h * r3), (-h, 0), (-h / 2, -h * r3), (h / 2, -h * r3)]
    if shape == "triangle":
        t = size * r3 / 2
        return [(-h, -t), (h, -t), (0, t)]
    return [(h, h), (-h, h), (-h, -h), (h, -h)]


def outside_distance(poly, pts):
    """Largest distance by which any point lies outside the convex counter-clockwise polygon."""
    worst = 0.0
    for i in range(len(poly)):
        (x0, y0), (x1, y1) = poly[i], poly[(i + 1) % len(poly)]
        ex, ey = x1 - x0, y1 - y0
        cross = (ex * (pts[:, 1] - y0) - ey * (pts[:, 0] - x0)) / math.hypot(ex, ey)
        worst = max(worst, float(np.max(-cross)))
    return worst


def place_code(pos, centres, sigma, surround):
    """p(x) for positions (..., 2) -> (..., P), in float64."""
    d2 = ((pos[..., None, :] - centres) ** 2).sum(-1)

    def softmax(a):
        a = a - a.max(-1, keepdims=True)
        e = np.exp(a)
        return e / e.sum(-1, keepdims=True)
    p = softmax(-d2 / (2 * sigma ** 2)) - softmax(-d2 / (2 * surround * sigma ** 2))
    p = p - p.min(-1, keepdims=True)
    return p / p.sum(-1, keepdims=True)


def forward(dump, q, pattern=None):
    """States (B, T, N), pre-activations and readout (B, T, O) of the model in float64 from the
    parameters q and the dumped batch; pattern, if a list, receives each step's ReLU on/off."""
    c, S = dump["cfg"], shapes(dump)
    W = {k: q[k].reshape(S[k]) for k in dump["tensors"]}
    inp = dump["input"].astype(np.float64)
    B, T, _ = inp.shape
    N = int(c["N"])
    if c["model"] == "cw":
        noise = dump["noise"].astype(np.float64)
        x, u = np.zeros((B, N)), np.zeros((B, N))
        xs, hs = [], []
        for t in range(T):
            x = 0.9 * x + 0.1 * (u @ W["W_rec"].T + inp[:, t] @ W["W_in"].T + W["b_rec"] + noise[:, t])
            u = np.tanh(x)
            xs.append(x)
            hs.append(u)
    else:
        p0 = place_code(dump["start"].astype(np.float64), dump["centres"].astype(np.float64),
                        float(c["place_sigma"]), float(c["place_surround"]))
        h = p0 @ W["W_enc"].T
        xs, hs = [], []
        for t in range(T):
            pre = h @ W["W_rec"].T + inp[:, t] @ W["W_in"].T
            h = np.maximum(pre, 0) if c["sorscher_relu"] == "1" else pre
            if pattern is not None:
                pattern.append(pre > 0)
            xs.append(pre)
            hs.append(h)
    xs, hs = np.stack(xs, 1), np.stack(hs, 1)
    return xs, hs, hs @ W["W_out"].T


def loss_terms(dump, h, out, q, targets=None):
    """task, weights, rate, total from states h and readout out (float64), parameters q; sorscher's
    codes are recomputed unless targets are given."""
    c = dump["cfg"]
    pos = dump["positions"].astype(np.float64)
    if c["model"] == "cw":
        task = float(np.mean((out - pos) ** 2))
        weights = float(np.mean(q["W_in"] ** 2) + np.mean(q["W_out"] ** 2))
        rate = float(np.mean(h ** 2))
        return task, weights, rate, task + float(c["cw_alpha"]) * weights + float(c["cw_beta"]) * rate
    if targets is None:
        targets = place_code(pos, dump["centres"].astype(np.float64), float(c["place_sigma"]), float(c["place_surround"]))
    top = out.max(-1, keepdims=True)
    logsm = out - top - np.log(np.exp(out - top).sum(-1, keepdims=True))
    task = float(-(targets * logsm).sum(-1).mean())
    weights = float((q["W_rec"] ** 2).sum())
    return task, weights, 0.0, task + float(c["sorscher_wd"]) * weights


def check_data(rep, dump):
    c = dump["cfg"]
    pos = dump["positions"].astype(np.float64)
    size = float(c["arena_size"])
    if c["model"] == "cw":
        inp = dump["input"].astype(np.float64)
        rep.check("data: |(cos, sin)| = 1", float(np.max(np.abs(np.hypot(inp[..., 1], inp[..., 2]) - 1))), 1e-6)
        speed = inp[..., 0]
        rep.check("data: speeds in [0, cw_speed]", float(max(-speed.min(), speed.max() - float(c["cw_speed"]), 0)), 0.0)
        steps = speed[..., None] * inp[..., 1:]
        rep.check("data: positions = running sum of speed (cos, sin)", float(np.max(np.abs(np.cumsum(steps, 1) - pos))), 1e-5)
        rep.check("data: positions inside the %s arena, metres outside" % c["arena"],
                  outside_distance(arena_polygon(c["arena"], size), pos.reshape(-1, 2)), 1e-6)
        still, n = float(np.mean(speed == 0)), speed.size
        se = math.sqrt(float(c["cw_still"]) * (1 - float(c["cw_still"])) / n)
        rep.check("data: share of still steps %.3f vs cw_still %s, standard errors" % (still, c["cw_still"]),
                  abs(still - float(c["cw_still"])) / se, 5.0)
    else:
        start = dump["start"].astype(np.float64)
        inp = dump["input"].astype(np.float64)
        rep.check("data: positions = start + running sum of the inputs",
                  float(np.max(np.abs(start[:, None] + np.cumsum(inp, 1) - pos))), 1e-5)
        rep.check("data: starts inside the arena, metres outside", float(max(np.max(np.abs(start)) - size / 2, 0)), 0.0)
        centres = dump["centres"].astype(np.float64)
        rep.check("data: place-cell centres inside the arena", float(max(np.max(np.abs(centres)) - size / 2, 0)), 0.0)
        sig, sur = float(c["place_sigma"]), float(c["place_surround"])
        rep.check("data: p(x_t) recomputed", float(np.max(np.abs(place_code(pos, centres, sig, sur) - dump["targets"]))), 1e-6)
        rep.check("data: p(x_0) recomputed", float(np.max(np.abs(place_code(start, centres, sig, sur) - dump["p0"]))), 1e-6)
        t = dump["targets"].astype(np.float64)
        rep.check("data: codes >= 0 and sum to 1", float(max(-t.min(), np.max(np.abs(t.sum(-1) - 1)))), 1e-6)


def check_forward(rep, dump):
    xs, hs, out = forward(dump, dump["params"])
    rep.check("forward: states h recomputed, max abs", float(np.max(np.abs(hs - dump["h"]))), 1e-4)
    rep.check("forward: x (cw) / pre-activations (sorscher), max abs", float(np.max(np.abs(xs - dump["x"]))), 1e-4)
    rep.check("forward: readout recomputed, max abs", float(np.max(np.abs(out - dump["out"]))), 1e-4)
    if dump["cfg"]["model"] == "sorscher" and dump["cfg"]["sorscher_relu"] == "1":
        flips = np.sum(((xs > 0) != (dump["x"] > 0)) & (np.abs(xs) > 1e-5))
        rep.check("forward: ReLU pattern matches away from the kink, units that differ", float(flips), 0.0)


def check_losses(rep, dump):
    lg = dump["losses"]
    h, out = dump["h"].astype(np.float64), dump["out"].astype(np.float64)
    targets = dump["targets"].astype(np.float64) if "targets" in dump else None  # gridssl's float32 codes
    task, weights, rate, total = loss_terms(dump, h, out, dump["params"], targets)
    for name, mine in [("task", task), ("weights", weights), ("rate", rate)]:
        rep.check("loss: %s from the dumped states, rel" % name, abs(mine - lg[name]) / max(abs(lg[name]), 1e-300), 1e-9)
    c = dump["cfg"]
    weighted = (lg["task"] + float(c["cw_alpha"]) * lg["weights"] + float(c["cw_beta"]) * lg["rate"] if c["model"] == "cw"
                else lg["task"] + float(c["sorscher_wd"]) * lg["weights"])
    rep.check("loss: total = weighted sum of the terms, rel", abs(weighted - lg["total"]) / abs(lg["total"]), 1e-12)
    rep.say("# float64 total from the dumped states %.17g, gridssl %.17g" % (total, lg["total"]))


def total_loss(dump, q, pattern=None):
    _, hs, out = forward(dump, q, pattern)
    return loss_terms(dump, hs, out, q)[3]


def directional(dump, grads, dirs):
    """(analytic, numeric) derivative of L along dirs, the step shrunk while a ReLU flips."""
    p = dump["params"]
    here = []
    total_loss(dump, p, here)
    h = FD_STEP
    for attempt in range(4):
        ends, smooth = [], True
        for sign in (1.0, -1.0):
            pat = []
            ends.append(total_loss(dump, {k: p[k] + sign * h * dirs[k] if k in dirs else p[k] for k in p}, pat))
            smooth &= all(np.array_equal(a, b) for a, b in zip(here, pat))
        if smooth or attempt == 3:
            break
        h /= 10
    numeric = (ends[0] - ends[1]) / (2 * h)
    analytic = sum(float(np.sum(grads[k] * dirs[k])) for k in dirs)
    typical = math.sqrt(sum((np.linalg.norm(grads[k]) * np.linalg.norm(dirs[k])) ** 2 / dirs[k].size for k in dirs))
    return analytic, numeric, max(abs(analytic), abs(numeric), 0.1 * typical)


def gradient_errors(dump, grads):
    rng = np.random.default_rng(0)
    p = dump["params"]
    def direction(k):
        d = rng.standard_normal(p[k].shape)
        return d * (max(float(np.linalg.norm(p[k])), 1.0) / float(np.linalg.norm(d)))
    out = []
    for k in dump["tensors"]:
        a, n, denom = directional(dump, grads, {k: direction(k)})
        out.append(("grad: %s directional derivative, rel" % k, abs(a - n) / denom, a, n))
    a, n, denom = directional(dump, grads, {k: direction(k) for k in dump["tensors"]})
    out.append(("grad: all blocks at once, rel", abs(a - n) / denom, a, n))
    return out


def check_gradients(rep, dump):
    for k in dump["tensors"]:
        g = dump["grads"][k]
        norm = float(np.linalg.norm(g))
        rep.check("grad: grad_%s finite and not all zero, norm" % k, norm, 0.0, passed=bool(np.all(np.isfinite(g))) and norm > 0)
    for name, err, a, n in gradient_errors(dump, dump["grads"]):
        rep.say("# %s: gridssl %.9g, central difference %.9g" % (name, a, n))
        rep.check(name, err, TOL_GRAD)
    broken = dict(dump["grads"])
    broken["W_rec"] = -broken["W_rec"]
    worst = max(err for name, err, _, _ in gradient_errors(dump, broken) if "W_rec" in name)
    rep.check("negative control: W_rec's gradient negated is caught (its error > tol)", worst, TOL_GRAD,
              passed=worst > TOL_GRAD)


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: basecheck.py DUMPDIR")
    rep = Report()
    dump = load(argv[1])
    c = dump["cfg"]
    rep.say("# %s: model=%s N=%s B=%s T=%s" % (argv[1], c["model"], c["N"], c["B"], c["T"]))
    for group in (check_data, check_forward, check_losses, check_gradients):
        group(rep, dump)
    print("%d passed, %d failed" % (rep.passed, rep.failed))
    return 0 if rep.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
