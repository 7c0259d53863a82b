#!/usr/bin/env python3
"""make bench: seconds per SIC training step, gridssl against PyTorch, on this machine, in one run.

    /usr/bin/python3 tests/bench.py [--threads N] [--steps K] [--configs tiny,default,paper]

For each config (data/<name>.cfg) this runs `gridssl bench` (median seconds per optimiser step over K
steps after a warm-up, the share and GFLOP/s of each phase, the measured peak of the add/multiply
mix gridssl uses, and its peak resident memory, VmHWM), then times the same step in
PyTorch with torch.set_num_threads(N): the same data (T shared velocities, B permutations), the same
model (MLP W(v), NormReLU recurrence, learned g0), the same four losses written the ordinary PyTorch
way (an M x M distance matrix, masks, exp), autograd, global-norm clipping and AdamW. It prints
one table and the ratio PyTorch time / gridssl time. Speed is measured here, never asserted in a test.
Needs Debian's python3-torch (and libopenblas0-pthread so torch's BLAS is OpenBLAS); gridssl does not.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_gridssl(name, threads, steps):
    cmd = [os.path.join(ROOT, "gridssl"), "bench", "--config", os.path.join(ROOT, "data", name + ".cfg"),
           "--threads", str(threads), "--steps", str(steps)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit("gridssl bench failed: " + err.strip())
    res = {"phases": [], "peak": {}, "cfg": {}}
    for line in out.splitlines():
        f = line.split("\t")
        if f[0] == "cfg":  # the resolved config, every key, as gridssl reads it
            k, v = (s.strip() for s in f[1].split("=", 1))
            res["cfg"][k] = v
        elif f[0] == "step_seconds_median":
            res["step"] = float(f[1])
        elif f[0] == "phase":
            res["phases"].append((f[1], float(f[2]), f[3], float(f[4]), f[5]))
        elif f[0] == "peak_rss_mib":
            res["rss"] = float(f[1])
        elif f[0] == "peak_gflops":
            res["peak"][int(f[1])] = float(f[2])
    return res


def torch_step_times(cfg, threads, steps):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    N, H, B, T = (int(cfg[k]) for k in ("N", "hidden", "B", "T"))
    vmax, sx, sg = float(cfg["vmax"]), float(cfg["sigma_x"]), float(cfg["sigma_g"])
    lam = [float(cfg[k]) for k in ("lambda_sep", "lambda_inv", "lambda_cap", "lambda_iso")]
    iso_vmin, iso_vmax = float(cfg["iso_vmin"]), float(cfg["iso_vmax"])
    accum, clip = int(cfg["accum"]), float(cfg["clip"])
    mean_red, kernel_cap = cfg["reduction"] == "mean", cfg["capacity"] == "kernel"
    mlp = torch.nn.Sequential(torch.nn.Linear(2, H), torch.nn.ReLU(), torch.nn.Linear(H, H), torch.nn.ReLU(),
                              torch.nn.Linear(H, N * N))
    theta0 = torch.nn.Parameter(torch.randn(N))
    params = list(mlp.parameters()) + [theta0]
    opt = torch.optim.AdamW(params, lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]))
    M = B * T
    upper = torch.triu(torch.ones(M, M, dtype=torch.bool), diagonal=1)

    def normrelu(z):
        r = torch.relu(z)
        return r / r.norm(dim=-1, keepdim=True).clamp_min(1e-30)

    dist = cfg["vel_dist"]

    def loss_of_one_batch():
        if dist in ("disc", "speed"):  # uniform in the disc of radius vmax, or uniform speed
            u = torch.rand(T)
            r, a = vmax * (torch.sqrt(u) if dist == "disc" else u), 2 * torch.pi * torch.rand(T)
            vel = torch.stack([r * torch.cos(a), r * torch.sin(a)], 1)
        else:
            vel = (torch.rand(T, 2) * 2 - 1) * vmax
        perm = torch.argsort(torch.rand(B, T), dim=1)
        v = vel[perm]                                   # (B, T, 2)
        pos = torch.cumsum(v, dim=1).reshape(M, 2)
        Wv = mlp(vel).view(T, N, N)
        g = normrelu(theta0).expand(B, N)
        states, prev = [], [g]
        for t in range(T):
            g = normrelu(torch.bmm(Wv[perm[:, t]], g.unsqueeze(2)).squeeze(2))
            states.append(g)
        S = torch.stack(states, 1)                      # (B, T, N)
        G = S.reshape(M, N)
        sq = (G * G).sum(1)
        D = (sq[:, None] + sq[None, :] - 2 * G @ G.t()).clamp_min(0)
        dx2 = torch.cdist(pos, pos) ** 2
        far = (dx2 > sx * sx) & upper
        near = (dx2 <= sx * sx) & upper
        E = torch.exp(-D / (2 * sg * sg))
        sep = (E * far).sum() / (far.sum() if mean_red else 1)
        inv = (D * near).sum() / (near.sum() if mean_red else 1)
        cap = -(E * upper).sum() * 2 / (M * (M - 1)) if kernel_cap else -(G.mean(0) ** 2).sum()
        Prev = torch.cat([normrelu(theta0).expand(B, 1, N), S[:, :-1]], 1)
        speed = v.norm(dim=2)
        ok = (speed > 0) & (speed > iso_vmin) & ((speed < iso_vmax) if iso_vmax > 0 else True)
        ratio = (S - Prev).norm(dim=2)[ok] / speed[ok]
        iso = ratio.var(unbiased=False) if ratio.numel() > 0 else torch.zeros(())
        return lam[0] * sep + lam[1] * inv + lam[2] * cap + lam[3] * iso

    def step():
        opt.zero_grad()
        for _ in range(accum):
            (loss_of_one_batch() / accum).backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()

    step()  # warm-up
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--configs", default="tiny,default,paper")
    a = ap.parse_args()
    try:
        import torch
        blas = [l.strip() for l in torch.__config__.show().splitlines() if "BLAS_INFO" in l]
        print("# PyTorch %s, threads %d; %s" % (torch.__version__, a.threads, "; ".join(blas)[:160]))
        try:
            import ctypes.util
            print("# libblas.so.3 ->", os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3"))
        except Exception:
            pass
    except ImportError:
        torch = None
        print("# PyTorch is not installed (apt-get install python3-torch): gridssl only")
    rows = []
    for name in a.configs.split(","):
        g = run_gridssl(name, a.threads, a.steps)
        cfg = g["cfg"]
        rss = g.get("rss", float("nan"))
        print("\n== %s: N=%s hidden=%s B=%s T=%s accum=%s, %d threads ==" % (
            name, cfg["N"], cfg["hidden"], cfg["B"], cfg["T"], cfg["accum"], a.threads))
        print("%-14s %10s %7s %9s %8s" % ("phase", "seconds", "share", "GFLOP/s", "of peak"))
        for ph, secs, share, gf, of_peak in g["phases"]:
            print("%-14s %10.6f %7s %9.2f %8s" % (ph, secs, share, gf, of_peak))
        print("peak (mul+add, no FMA): %.1f GFLOP/s on 1 thread%s" % (
            g["peak"][1], ", %.1f on %d" % (g["peak"][a.threads], a.threads) if a.threads > 1 else ""))
        print("gridssl: %.6f s/step (median of %d), peak RSS %.1f MiB" % (g["step"], a.steps, rss))
        t_torch = None
        if torch is not None:
            times = torch_step_times(cfg, a.threads, a.steps)
            t_torch = statistics.median(times)
            print("PyTorch: %.6f s/step (median of %d)" % (t_torch, a.steps))
            print("ratio PyTorch / gridssl: %.2f" % (t_torch / g["step"]))
        rows.append((name, g["step"], t_torch, rss))
    print("\n%-8s %14s %14s %8s %10s" % ("config", "gridssl s/step", "PyTorch s/step", "ratio", "RSS MiB"))
    for name, tg, tt, rss in rows:
        print("%-8s %14.6f %14s %8s %10.1f" % (name, tg, "%.6f" % tt if tt else "-", "%.2f" % (tt / tg) if tt else "-", rss))


if __name__ == "__main__":
    main()
