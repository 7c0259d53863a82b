#!/usr/bin/env python3
"""Does the loss itself prefer several grid modules at CPU scale? (data/recipes.md, "Modules")

    /usr/bin/python3 tests/ideal_codes.py DUMPDIR [DUMPDIR ...]

Each DUMPDIR is `gridssl dump CHECKPOINT DIR` of a trained network: one training batch (its
positions.npy), the network's loss terms on it (losses.txt) and the config (config.txt). On the
SAME positions this script evaluates the separation + invariance + capacity part of the loss
(gridssl.c section 4: mean reduction, capacity = meannorm; sigma_x, sigma_g, sep_rmax and lambdas
from config.txt)
for idealised codes written down as functions of position instead of learned:

    module(lam, kappa, theta): n units, unit u fires r_u(x) = exp(kappa (sum_j cos(k_j.(x - p_u)) - 3)),
        three wave vectors k_j 60 degrees apart at angle theta with |k| = 4 pi / (sqrt(3) lam)
        (a hexagonal lattice of spacing lam), phases p_u on an a x a grid of the lattice cell;
        the module's vector is normalised to unit length;
    code = concat_m sqrt(share_m) module_m, a unit vector on the positive orthant, as the RNN's are.

The isometry term is left out (its weight is 0.01 in the default; the network's number below leaves
it out too). Every code gets at most N units (one module a x a with a = floor(sqrt N), m modules
floor(sqrt(N/m))^2 each), so the multi-module codes never have more units than the single one.
Printed: the network's own sep + inv + cap on the batch, the best single module over a grid of
periods and tuning widths, the best two and three modules (period ratios >= 1.3), the path that
splits the best single module into two (the ratio grows from 1, same orientation, so ratio 1 is
the single module up to the phase grid): a loss that falls along it means the single module is
not a minimum of the loss over these codes. Then the best two modules by how much of the code
(its squared norm) the finer one holds, from none (one module) to half. Last, the best one and two
modules of square lattices.
numpy only; nothing here is random.

Two checks come first, one "ok"/"FAIL" line each (exit status 1 on a failure): the Loss below,
applied to the network's own dumped states g.npy, reproduces the sep, inv and cap that gridssl
logged in losses.txt (relative 1e-5: gridssl forms each dg2 in float32, as in tests/crosscheck.py);
and every ideal module, hexagonal or square, is periodic, r(x + e) = r(x) for a lattice vector e
(abs 1e-9), so the codes are the lattices they claim to be.
"""
import sys
import numpy as np
from crosscheck import read_keyvals, sep_pairs   # the dump's files and L_sep's pairs, as crosscheck.py reads them


def module(X, lam, kappa, theta, a, square=False):
    """(M, a*a) unit-norm rows: a hexagonal (or square) grid module of spacing lam, orientation theta.
    Hexagonal: three wave vectors 60 degrees apart, |k| = 4 pi / (sqrt(3) lam); square: two at 90
    degrees, |k| = 2 pi / lam. Either way r = exp(kappa (sum_j cos(k_j.(x - p)) - count)) <= 1."""
    if square:
        ang, kk = theta + np.array([0.0, np.pi / 2]), 2 * np.pi / lam
        e1 = lam * np.array([np.cos(theta), np.sin(theta)])                         # lattice vectors
        e2 = lam * np.array([-np.sin(theta), np.cos(theta)])
    else:
        ang, kk = theta + np.array([0.0, np.pi / 3, 2 * np.pi / 3]), 4 * np.pi / (np.sqrt(3) * lam)
        e1 = lam * np.array([np.cos(theta + np.pi / 6), np.sin(theta + np.pi / 6)])
        e2 = lam * np.array([np.cos(theta - np.pi / 6), np.sin(theta - np.pi / 6)])
    K = kk * np.stack([np.cos(ang), np.sin(ang)], 1)                                  # (2 or 3, 2)
    P = np.array([(i / a) * e1 + (j / a) * e2 for i in range(a) for j in range(a)])  # (a*a, 2) phases
    s = np.cos((X[:, None, :] - P[None]) @ K.T).sum(-1)                               # (M, a*a)
    r = np.exp(kappa * (s - len(ang)))
    return r / np.linalg.norm(r, axis=1, keepdims=True)


def code(X, mods, a, square=False, shares=None):
    """mods: list of (lam, kappa, theta); shares: each module's part of the squared norm (default
    equal); (M, sum units) unit-norm rows."""
    shares = shares or [1.0 / len(mods)] * len(mods)
    return np.concatenate([np.sqrt(w) * module(X, lam, kap, th, a, square) for (lam, kap, th), w in zip(mods, shares)], 1)


class Loss:
    """sep + inv + cap of gridssl.c section 4 (mean over qualifying unordered pairs, meannorm capacity)."""

    def __init__(self, X, cfg):
        iu = np.triu_indices(len(X), 1)
        dx2 = ((X[:, None] - X[None]) ** 2).sum(-1)[iu]
        far = ~(dx2 <= float(cfg['sigma_x']) ** 2)
        self.iu, self.near = iu, ~far
        self.far = sep_pairs(far, dx2, float(cfg.get('sep_rmax', 0)))  # L_sep's pairs, the window's too
        self.sg, self.cfg = float(cfg['sigma_g']), cfg

    def terms(self, G):
        sq = (G * G).sum(1)
        dg2 = np.maximum(sq[:, None] + sq[None] - 2.0 * (G @ G.T), 0.0)[self.iu]
        return (np.exp(-dg2[self.far] / (2 * self.sg ** 2)).mean(), dg2[self.near].mean(), -(G.mean(0) ** 2).sum())

    def __call__(self, G):
        c = self.cfg
        return sum(float(c['lambda_' + k]) * t for k, t in zip(('sep', 'inv', 'cap'), self.terms(G)))


def checks(d, X, L, net):
    """The two self-checks of the docstring; returns the number of failures."""
    G = np.load(d + '/g.npy').astype(np.float64).reshape(len(X), -1)
    ok = True
    for name, mine in zip(('sep', 'inv', 'cap'), L.terms(G)):
        err = abs(mine - float(net[name])) / max(abs(float(net[name])), 1e-30)
        print('%s %s loss %s of g.npy vs losses.txt: rel %.2e (tol 1e-5)' % ('ok  ' if err < 1e-5 else 'FAIL', d, name, err))
        ok = ok and err < 1e-5
    failures = int(not ok)
    lam, th = 0.55, 0.3
    for kind, square, angle in (('hexagonal', False, th + np.pi / 6), ('square', True, th + np.pi / 2)):
        e = lam * np.array([np.cos(angle), np.sin(angle)])   # one lattice vector of that module
        err = np.abs(module(X, lam, 0.8, th, 4, square) - module(X + e, lam, 0.8, th, 4, square)).max()
        print('%s %s %s module periodic over its lattice vector: max abs %.1e (tol 1e-9)' % ('ok  ' if err < 1e-9 else 'FAIL', d, kind, err))
        failures += err >= 1e-9
    return failures


def main(dirs):
    lams = [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5]
    kappas = [0.4, 0.6, 0.8, 1.0, 1.5]
    failures = 0
    for d in dirs:
        cfg = read_keyvals(d + '/config.txt')
        assert cfg['capacity'] == 'meannorm' and cfg['reduction'] == 'mean', 'written for meannorm, mean'
        X = np.load(d + '/positions.npy').astype(np.float64).reshape(-1, 2)
        L, N = Loss(X, cfg), int(cfg['N'])
        net = read_keyvals(d + '/losses.txt')
        failures += checks(d, X, L, net)
        own = sum(float(net['lambda_' + k]) * float(net[k]) for k in ('sep', 'inv', 'cap'))
        a1, a2, a3 = int(np.sqrt(N)), int(np.sqrt(N / 2)), int(np.sqrt(N / 3))
        best_one = lambda square: min((L(code(X, [(l, k, 0.0)], a1, square)), l, k) for l in lams for k in kappas)
        best_two = lambda square: min((L(code(X, [(l1, k, 0.0), (l2, k, th)], a2, square)), l1, l2, k, th)
                                      for l1 in lams for l2 in lams if l2 >= 1.3 * l1 for k in kappas for th in (0.0, 0.3))
        one, two = best_one(False), best_two(False)
        three = min((L(code(X, [(l, k, 0.0), (l * r, k, 0.3), (l * r * r, k, 0.6)], a3)), l, r, k)
                    for l in lams[:8] for r in (1.3, 1.4, 1.6, 1.8) for k in kappas)
        print('%s (seed %s, N %s, B %s, T %s, vel_dist %s): sep + inv + cap on one training batch'
              % (d, cfg['seed'], N, cfg['B'], cfg['T'], cfg['vel_dist']))
        print('  trained network (losses.txt)         %.4f' % own)
        print('  best single module  (%3d units)      %.4f  period %.2f m, kappa %.1f' % ((a1 * a1,) + one))
        print('  best two modules    (%3d units)      %.4f  periods %.2f / %.2f m, kappa %.1f, 2nd turned %.1f rad'
              % ((2 * a2 * a2,) + two))
        print('  best three modules  (%3d units)      %.4f  periods %.2f x %.1f^k m, kappa %.1f' % ((3 * a3 * a3,) + three))
        lam, kap = one[1], one[2]
        path = ['%.1f: %.4f' % (r, L(code(X, [(lam / np.sqrt(r), kap, 0.0), (lam * np.sqrt(r), kap, 0.0)], a2)))
                for r in (1.0, 1.1, 1.2, 1.4, 1.7, 2.0, 2.5)]
        print('  splitting the best single module, period ratio: ' + ', '.join(path))
        share = ['%.1f: %.4f' % (w, min(L(code(X, [(l1, k, 0.0), (l2, k, 0.3)], a2, shares=[w, 1 - w])) for l1 in (0.3, 0.35)
                                        for l2 in (0.55, 0.6, 0.7) for k in (0.6, 0.8))) for w in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)]
        print('  two modules (0.30-0.35 / 0.55-0.70 m), by the finer one\'s share of the code: ' + ', '.join(share))
        print('  square lattices instead: one module %.4f (%.2f m, kappa %.1f), two %.4f (%.2f / %.2f m, kappa %.1f, %.1f rad)'
              % (best_one(True) + best_two(True)))
    return failures


if __name__ == '__main__':
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(1 if main(sys.argv[1:]) else 0)
