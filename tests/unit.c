/* tests/unit.c - gridssl's unit tests, read as the specification they check.
 *
 * Built twice by `make test`: tests/unit_f32 (real = float, as gridssl trains) and tests/unit_f64
 * (real = double), which adds the finite-difference gradient check at tolerance 1e-6. Each check
 * prints "ok   name" or "FAIL name ..."; the exit code is the number of failures (capped at 1).
 * Expected values come from outside gridssl: published test vectors (PCG32, CRC-32, SHA-256),
 * glibc/musl's libm for the ulp measurements, and closed forms derived in the comments.
 */
#define GRIDSSL_TESTING
#include "../gridssl.c"

static int n_passed, n_failed;

static void check(int ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (ok) n_passed++;
    else n_failed++;
}

static int close_rel(double a, double b, double tol) { return fabs(a - b) <= tol * fabs(b); }

/* ---- PRNG: the output of pcg-c-basic's pcg32-demo for pcg32_srandom_r(&rng, 42, 54), round 1. */
static void test_pcg32_reference(void) {
    Rng rng = rng_seed(42u, 54u);
    const uint32_t expect32[6] = {0xa15c02b7, 0x7b47f409, 0xba1d3330, 0x83d2f293, 0xbfa4784b, 0xcbed606e};
    int ok = 1;
    for (int i = 0; i < 6; i++) ok &= rng_u32(&rng) == expect32[i];
    check(ok, "pcg32 (42, 54): first six outputs match the reference demo");
    char coins[66] = {0};
    for (int i = 0; i < 65; i++) coins[i] = rng_below(&rng, 2) ? 'H' : 'T';
    check(strcmp(coins, "HHTTTHTHHHTHTTTHHHHHTTTHHHTHTHTHTTHTTTHHHHHHTTTTHHTTTTTHTTTTTTTHT") == 0,
          "pcg32 bounded draws: the demo's 65 coin tosses");
    char rolls[100] = {0};
    for (int i = 0; i < 33; i++) snprintf(rolls + strlen(rolls), sizeof rolls - strlen(rolls), " %d", (int)rng_below(&rng, 6) + 1);
    check(strcmp(rolls, " 3 4 1 1 2 2 3 2 4 3 2 4 3 3 5 2 3 1 3 1 5 1 4 1 5 6 4 6 6 2 6 3 3") == 0,
          "pcg32 bounded draws: the demo's 33 dice rolls");
    /* The demo deals cards with the same Fisher-Yates (i from 52 down, chosen in [0, i)). */
    int32_t cards[52];
    for (int i = 0; i < 52; i++) cards[i] = i;
    rng_shuffle(&rng, cards, 52);
    char dealt[200] = {0};
    for (int i = 0; i < 52; i++)
        snprintf(dealt + strlen(dealt), sizeof dealt - strlen(dealt), " %c%c", "A23456789TJQK"[cards[i] / 4], "hcds"[cards[i] % 4]);
    check(strcmp(dealt, " Qd Ks 6d 3s 3d 4c 3h Td Kc 5c Jh Kd Jd As 4s 4h Ad Th Ac Jc 7s Qs 2s 7h Kh 2d 6c Ah 4d Qh 9h"
                        " 6s 5s 2c 9c Ts 8d 9s 3c 8c Js 5d 2h 6h 7d 8s 9d 5h 8h Qc 7c Tc") == 0,
          "pcg32 Fisher-Yates shuffle: the demo's deal of 52 cards");
    /* Uniform and normal draws: moments over 1e5 draws (a smoke test of the transforms; the
     * standard errors are ~1e-3, the bounds 5x that). */
    Rng r2 = rng_seed(1, STREAM_CHECK);
    double su = 0, sn = 0, sn2 = 0;
    int n = 100000, in_range = 1;
    for (int i = 0; i < n; i++) {
        double u = rng_uniform(&r2), z = rng_normal(&r2);
        in_range &= u >= 0 && u < 1;
        su += u, sn += z, sn2 += z * z;
    }
    check(in_range && fabs(su / n - 0.5) < 5 * 0.29 / sqrt(n) && fabs(sn / n) < 5 / sqrt(n) && fabs(sn2 / n - 1) < 5 * 1.42 / sqrt(n),
          "uniform in [0,1) with mean %.4f; normal mean %.4f variance %.4f", su / n, sn / n, sn2 / n);
}

/* ---- checksums: CRC-32 check value (zlib), SHA-256 examples of FIPS 180-2 appendix B. */
static void test_checksums(void) {
    check(crc32_update(0, (const uint8_t *)"123456789", 9) == 0xCBF43926u, "crc32(\"123456789\") = 0xCBF43926");
    char hex[65];
    sha256_hex((const uint8_t *)"abc", 3, hex);
    check(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0, "sha256(\"abc\")");
    sha256_hex((const uint8_t *)"", 0, hex);
    check(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0, "sha256(\"\")");
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex((const uint8_t *)two_blocks, strlen(two_blocks), hex);
    check(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0, "sha256(448-bit message)");
}

/* ---- byte order: files are little-endian whatever the host. */
static void test_little_endian(void) {
    Buf b = {0};
    buf_u32(&b, 0x01020304u);
    buf_f32(&b, 1.0f);
    buf_f64(&b, -2.0);
    const uint8_t expect[16] = {4, 3, 2, 1, 0, 0, 0x80, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0xc0};
    check(b.len == 16 && memcmp(b.data, expect, 16) == 0, "u32, f32 and f64 are written little-endian");
    Rd r = {b.data, b.len, 0, 0};
    check(rd_u32(&r) == 0x01020304u && rd_u32(&r) == 0x3f800000u && rd_f64(&r) == -2.0 && !r.short_read,
          "the reader reads back what the writer wrote");
    rd_u32(&r);
    check(r.short_read, "reading past the end is detected");
    buf_free(&b);
}

/* ---- portable math: ulp error against the C library's libm over >= 1e6 points per function. */
static int64_t ordered(double x) {
    int64_t i;
    memcpy(&i, &x, 8);
    return i < 0 ? INT64_MIN - i : i;
}

static double ulps(double got, double want) {
    int64_t d = ordered(got) - ordered(want);
    return (double)(d < 0 ? -d : d);
}

typedef double (*UnaryFn)(double);
/* Largest ulp distance over n points uniform in [lo, hi], or, with exp_spaced, x = e^u for u uniform
 * in [lo, hi] (to cover many binades). */
static double max_ulps(UnaryFn mine, UnaryFn ref, double lo, double hi, int n, int exp_spaced) {
    double worst = 0;
    Rng rng = rng_seed(11, STREAM_CHECK);
    for (int i = 0; i < n; i++) {
        double u = rng_uniform(&rng);
        double x = exp_spaced ? exp(lo + (hi - lo) * u) : lo + (hi - lo) * u;
        double e = ulps(mine(x), ref(x));
        worst = e > worst ? e : worst;
    }
    return worst;
}

static void test_portable_math(void) {
    const int n = 1000000;
    /* The measured maxima are stated beside each function in gridssl.c; these bounds are those. */
    double e_exp = max_ulps(gs_exp, exp, -708.0, 709.0, n, 0);
    double e_exp1 = max_ulps(gs_exp, exp, -1.0, 1.0, n, 0);
    check(e_exp <= 1 && e_exp1 <= 1, "gs_exp within 1 ulp of libm exp (max %.0f ulp on [-708,709], %.0f on [-1,1]; %d points each)", e_exp, e_exp1, n);
    double e_log = max_ulps(gs_log, log, -700.0, 700.0, n, 1);
    double e_log1 = max_ulps(gs_log, log, 0.5, 2.0, n, 0);
    check(e_log <= 1 && e_log1 <= 1, "gs_log within 1 ulp of libm log (max %.0f ulp over e^[-700,700], %.0f on [0.5,2])", e_log, e_log1);
    double e_sin = max_ulps(gs_sin, sin, -2 * PI, 2 * PI, n, 0), e_cos = max_ulps(gs_cos, cos, -2 * PI, 2 * PI, n, 0);
    double e_sin_far = max_ulps(gs_sin, sin, -1e5, 1e5, n, 0), e_cos_far = max_ulps(gs_cos, cos, -1e5, 1e5, n, 0);
    check(e_sin <= 1 && e_cos <= 1 && e_sin_far <= 1 && e_cos_far <= 1,
          "gs_sin, gs_cos within 1 ulp of libm (max %.0f, %.0f on [-2pi,2pi]; %.0f, %.0f on [-1e5,1e5])", e_sin, e_cos, e_sin_far, e_cos_far);
    check(gs_exp(0) == 1 && gs_log(1) == 0 && gs_sin(0) == 0 && gs_cos(0) == 1 && gs_exp(-800) == 0,
          "exact special values: exp(0) = 1, log(1) = 0, sin(0) = 0, cos(0) = 1, exp(-800) = 0");
}

/* ---- NormReLU (gridssl.c section 3) */
static void test_normrelu(void) {
    Rng rng = rng_seed(3, STREAM_CHECK);
    real z[37], g[37];
    double worst_norm = 0;
    int nonneg = 1, zero_where_negative = 1;
    for (int trial = 0; trial < 1000; trial++) {
        for (int i = 0; i < 37; i++) z[i] = (real)rng_normal(&rng);
        z[0] = 1; /* at least one unit alive */
        normrelu_forward(g, z, 37);
        double sq = 0;
        for (int i = 0; i < 37; i++) {
            sq += (double)g[i] * g[i];
            nonneg &= g[i] >= 0;
            zero_where_negative &= z[i] > 0 || g[i] == 0;
        }
        worst_norm = fabs(sqrt(sq) - 1) > worst_norm ? fabs(sqrt(sq) - 1) : worst_norm;
    }
    check(worst_norm < (sizeof(real) == 4 ? 1e-6 : 1e-14), "NormReLU output has unit norm (worst |norm - 1| = %.2e)", worst_norm);
    check(nonneg && zero_where_negative, "NormReLU output is non-negative and zero where z <= 0");
    for (int i = 0; i < 37; i++) z[i] = -(real)(i + 1);
    real norm = normrelu_forward(g, z, 37);
    int all_zero = 1;
    for (int i = 0; i < 37; i++) all_zero &= g[i] == 0;
    check(norm == 0 && all_zero, "dead state: all z < 0 gives g = 0 and norm 0");
    real d_g[37], d_z[37];
    for (int i = 0; i < 37; i++) d_g[i] = 1, d_z[i] = 99;
    normrelu_backward(d_z, d_g, g, z, norm, 37);
    int grad_zero = 1;
    for (int i = 0; i < 37; i++) grad_zero &= d_z[i] == 0;
    check(grad_zero, "dead state passes no gradient");
    /* Recurrence with W(v) = -I and g0 > 0: z = -g0 < 0, so every step is dead and counted. */
    int B = 2, T = 3, N = 4;
    real Wv[16] = {-1, 0, 0, 0, 0, -1, 0, 0, 0, 0, -1, 0, 0, 0, 0, -1}, g0[4] = {0.5, 0.5, 0.5, 0.5};
    real zz[24], gg[24], nn[6];
    int32_t index[6] = {0};
    int64_t dead = rnn_forward(zz, gg, nn, g0, Wv, index, B, T, N, 1);
    check(dead == B * T, "rnn_forward counts dead states (%lld of %d)", (long long)dead, B * T);
}

/* ---- data invariants (gridssl.c section 2) */
static void test_batch_invariants(void) {
    Config c;
    config_defaults(&c);
    c.B = 16, c.T = 25;
    for (int permute = 1; permute >= 0; permute--) {
        c.permute = permute;
        Batch bt;
        batch_alloc(&bt, &c);
        Rng rng = rng_seed(5, STREAM_DATA);
        batch_draw(&bt, &rng, &c);
        int same_end = 1, permutations = 1, on_grid = 1, same_multiset = 1;
        for (int v = 0; v < bt.V * 2; v++) {
            double k = (double)bt.vel[v] / VEL_QUANTUM;
            on_grid &= k == (double)(int64_t)k && fabs((double)bt.vel[v]) <= c.vmax;
        }
        const real *end0 = bt.pos + 2 * (size_t)(c.T - 1);
        double *sorted0 = xcalloc((size_t)c.T * 2, sizeof(double));
        for (int b = 0; b < c.B; b++) {
            const real *end = bt.pos + 2 * ((size_t)b * c.T + c.T - 1);
            same_end &= end[0] == end0[0] && end[1] == end0[1];
            int seen[25] = {0};
            for (int t = 0; t < c.T; t++) {
                int32_t i = bt.index[b * c.T + t];
                if (i >= 0 && i < c.T) seen[i]++;
            }
            for (int t = 0; t < c.T; t++) permutations &= seen[t] == 1;
            /* the multiset of velocities actually used, compared through its sorted x components */
            double xs[25];
            for (int t = 0; t < c.T; t++) xs[t] = bt.vel[2 * bt.index[b * c.T + t]];
            for (int i = 1; i < c.T; i++)
                for (int j = i; j > 0 && xs[j - 1] > xs[j]; j--) {
                    double tmp = xs[j];
                    xs[j] = xs[j - 1], xs[j - 1] = tmp;
                }
            if (b == 0) memcpy(sorted0, xs, sizeof xs);
            else same_multiset &= memcmp(sorted0, xs, sizeof xs) == 0;
        }
        free(sorted0);
        check(on_grid, "permute=%d: velocities are multiples of 2^-20 within [-vmax, vmax]", permute);
        if (permute) {
            check(same_end, "permute=1: all %d trajectories end at bitwise the same point", c.B);
            check(permutations && same_multiset, "permute=1: every trajectory uses each of the T velocities once");
        } else {
            check(!same_end, "permute=0: trajectories no longer share an end point");
            /* the velocity values themselves (not the index layout, which differs by construction) */
            check(!same_multiset, "permute=0: trajectories no longer share their velocities (the multisets differ)");
        }
        batch_free(&bt);
    }
}

/* Draws 3000 training velocities (30 batches of T = 100) with the given vel_dist; returns how many
 * have |v|^2 < below2 and sets *max2 to the largest |v|^2. */
static int count_slow_velocities(int vel_dist, double below2, double *max2) {
    Config c;
    config_defaults(&c);
    c.B = 4, c.T = 100, c.vel_dist = vel_dist;
    Batch bt;
    batch_alloc(&bt, &c);
    Rng rng = rng_seed(6, STREAM_DATA);
    int slow = 0;
    *max2 = 0;
    for (int rep = 0; rep < 30; rep++) {
        batch_draw(&bt, &rng, &c);
        for (int v = 0; v < bt.V; v++) {
            double s2 = (double)bt.vel[2 * v] * bt.vel[2 * v] + (double)bt.vel[2 * v + 1] * bt.vel[2 * v + 1];
            slow += s2 < below2;
            *max2 = s2 > *max2 ? s2 : *max2;
        }
    }
    batch_free(&bt);
    return slow;
}

/* The three velocity distributions, over 3000 draws each (binomial sd ~ 0.009 of a fraction):
 * disc: every |v| <= vmax; square: 1 - pi/4 = 21.5 % land outside that disc; speed (speed uniform
 * in [0, vmax], each component rounded to the 2^-20 m grid, i.e. moved by at most half a quantum):
 * a third are slower than vmax/3, where in the disc only a ninth are. */
static void test_velocity_distributions(void) {
    Config c;
    config_defaults(&c); /* count_slow_velocities draws with the default vmax */
    double vmax = c.vmax, max2;
    int inside = count_slow_velocities(VEL_DISC, 1e9, &max2);
    check(inside == 3000 && max2 <= vmax * vmax, "vel_dist=disc: 3000 of 3000 velocities within vmax (largest |v| %.6f)", sqrt(max2));
    double outside = 1.0 - count_slow_velocities(VEL_SQUARE, vmax * vmax, &max2) / 3000.0;
    check(outside > 0.185 && outside < 0.245, "vel_dist=square: %.3f of 3000 outside the disc (expect 0.215)", outside);
    double slow = count_slow_velocities(VEL_SPEED, vmax * vmax / 9, &max2) / 3000.0, limit = vmax + VEL_QUANTUM;
    check(max2 <= limit * limit && slow > 0.30 && slow < 0.365, "vel_dist=speed: every |v| <= vmax, %.3f of 3000 slower than vmax/3 (expect 1/3)", slow);
    slow = count_slow_velocities(VEL_DISC, vmax * vmax / 9, &max2) / 3000.0;
    check(slow > 0.085 && slow < 0.14, "vel_dist=disc: %.3f of 3000 slower than vmax/3 (expect 1/9)", slow);
}

/* ---- the fast kernels against the plain reference kernels: the same bytes, for sizes that are not
 * multiples of the vector widths and chunks, and for 1, 2 and 3 threads. */
static void fill(real *x, size_t n, Rng *rng, double scale) {
    for (size_t i = 0; i < n; i++) x[i] = (real)(scale * (2 * rng_uniform(rng) - 1));
}

static void test_fast_kernels(void) {
    Rng rng = rng_seed(8, STREAM_CHECK);
    const int rows = 7, in_dim = 101, out_dim = 131; /* odd, more than two LINEAR_BLOCKs, one 64-wide row block of d_W and 37 over */
    real *in = xcalloc((size_t)rows * in_dim, sizeof(real)), *W = xcalloc((size_t)out_dim * in_dim, sizeof(real));
    real *b = xcalloc((size_t)out_dim, sizeof(real)), *d_out = xcalloc((size_t)rows * out_dim, sizeof(real));
    fill(in, (size_t)rows * in_dim, &rng, 1), fill(W, (size_t)out_dim * in_dim, &rng, 0.3), fill(b, out_dim, &rng, 0.1);
    fill(d_out, (size_t)rows * out_dim, &rng, 1);
    real *ref = xcalloc((size_t)rows * out_dim, sizeof(real)), *got = xcalloc((size_t)rows * out_dim, sizeof(real));
    size_t nw = (size_t)out_dim * in_dim;
    real *ref_dW = xcalloc(nw, sizeof(real)), *ref_db = xcalloc((size_t)out_dim, sizeof(real)), *ref_din = xcalloc((size_t)rows * in_dim, sizeof(real));
    real *dW = xcalloc(nw, sizeof(real)), *db = xcalloc((size_t)out_dim, sizeof(real)), *din = xcalloc((size_t)rows * in_dim, sizeof(real));
    linear_forward(ref, in, W, b, rows, in_dim, out_dim);
    linear_backward(ref_din, ref_dW, ref_db, d_out, in, W, rows, in_dim, out_dim);
    real *ref1 = xcalloc((size_t)out_dim, sizeof(real)), *got1 = xcalloc((size_t)out_dim, sizeof(real));
    linear_forward(ref1, in, W, b, 1, in_dim, out_dim); /* one row takes the four-outputs path */
    linear_forward_fast(got1, in, W, b, 1, in_dim, out_dim, 2);
    check(memcmp(ref1, got1, (size_t)out_dim * sizeof(real)) == 0, "linear_forward_fast == linear_forward for a single row, bit for bit");
    free(ref1), free(got1);
    for (int threads = 1; threads <= 3; threads++) {
        linear_forward_fast(got, in, W, b, rows, in_dim, out_dim, threads);
        memset(dW, 0, nw * sizeof(real)), memset(db, 0, (size_t)out_dim * sizeof(real)), memset(din, 0, (size_t)rows * in_dim * sizeof(real));
        linear_backward_fast(din, dW, db, d_out, in, W, rows, in_dim, out_dim, threads);
        check(memcmp(ref, got, (size_t)rows * out_dim * sizeof(real)) == 0, "linear_forward_fast == linear_forward, bit for bit (%d thread%s)", threads, threads > 1 ? "s" : "");
        check(memcmp(ref_dW, dW, nw * sizeof(real)) == 0 && memcmp(ref_db, db, (size_t)out_dim * sizeof(real)) == 0 &&
                  memcmp(ref_din, din, (size_t)rows * in_dim * sizeof(real)) == 0,
              "linear_backward_fast == linear_backward, bit for bit (%d thread%s)", threads, threads > 1 ? "s" : "");
    }
    free(in), free(W), free(b), free(d_out), free(ref), free(got), free(ref_dW), free(ref_db), free(ref_din), free(dW), free(db), free(din);
    /* pairs: M = 75 states (not a multiple of 8, PAIR_CHUNK or PAIR_BLOCK; two row tasks of the
     * backward product, the second ending in three rows), N = 37 (two 16-column blocks and five over),
     * positions on the 2^-20 grid
     * and spread so that both classes occur; two dead (all-zero) states. */
    const int M = 75, N = 37;
    real *g = xcalloc((size_t)M * N, sizeof(real)), *pos = xcalloc(2 * (size_t)M, sizeof(real));
    for (int i = 0; i < M; i++) {
        double sq = 0;
        for (int k = 0; k < N; k++) g[i * N + k] = (real)rng_uniform(&rng), sq += (double)g[i * N + k] * g[i * N + k];
        for (int k = 0; k < N; k++) g[i * N + k] = i % 31 == 5 ? 0 : (real)(g[i * N + k] / sqrt(sq));
        pos[2 * i] = (real)(rng_below(&rng, 200000) * VEL_QUANTUM), pos[2 * i + 1] = (real)(rng_below(&rng, 200000) * VEL_QUANTUM);
    }
    /* L_dist off (dist_rmax = 0: no pair, and the fast kernels skip its work) and on (0.12 m: some far
     * pairs in, some out); L_sep over every far pair (sep_rmax = 0) and, with L_dist on, over those
     * within 0.15 m (some far pairs in, some out) */
    real *want_dg = xcalloc((size_t)M * N, sizeof(real)), *got_dg = xcalloc((size_t)M * N, sizeof(real));
    real *pq = xcalloc((size_t)M * M, sizeof(real));
    for (int on = 0; on <= 1; on++) {
        double rmax = on ? 0.12 : 0, c_dist = on ? 0.05 : 0, sep_rmax = on ? 0.15 : 0;
        PairSums want = pair_losses_forward(g, pos, M, N, 0.05, 0.4, sep_rmax, 6.0, rmax);
        memset(want_dg, 0, (size_t)M * N * sizeof(real));
        pair_losses_backward(want_dg, g, pos, M, N, 0.05, 0.4, sep_rmax, 6.0, rmax, 0.3, 0.07, -0.11, c_dist);
        PairSums every = pair_losses_forward(g, pos, M, N, 0.05, 0.4, 0, 6.0, rmax); /* L_sep over every far pair */
        int classes = want.n_near > 0 && want.n_far > 0 && (on ? want.n_dist > 0 && want.n_dist < want.n_far : want.n_dist == 0) &&
                      (on ? want.n_far < every.n_far && want.n_near == every.n_near : want.n_far == every.n_far);
        for (int threads = 1; threads <= 3; threads++) {
            memset(pq, 0xff, (size_t)M * M * sizeof(real)); /* NaN: a slope the forward fails to write shows */
            PairCtx pairs = pair_ctx(g, pos, pq, M, N, 0.05, 0.4, sep_rmax, 6.0, rmax, threads);
            PairSums have = pair_losses_forward_fast(pairs, 0.3, 0.07, -0.11, c_dist, threads);
            check(memcmp(&want, &have, sizeof want) == 0 && classes,
                  "pair_losses_forward_fast == pair_losses_forward, bit for bit (%d thread%s; %lld near, %lld far in L_sep of %lld, %lld in L_dist)",
                  threads, threads > 1 ? "s" : "", (long long)want.n_near, (long long)want.n_far, (long long)every.n_far,
                  (long long)want.n_dist);
            memset(got_dg, 0, (size_t)M * N * sizeof(real));
            pair_losses_backward_fast(got_dg, pairs, threads);
            check(memcmp(want_dg, got_dg, (size_t)M * N * sizeof(real)) == 0,
                  "pair_losses_backward_fast == pair_losses_backward, bit for bit (%d thread%s, L_dist %s, sep_rmax %s)", threads,
                  threads > 1 ? "s" : "", on ? "on" : "off", on ? "0.15" : "0");
            pair_ctx_free(&pairs);
        }
    }
    free(g), free(pos), free(want_dg), free(got_dg), free(pq);
}

/* ---- the pair backward's precision. pair_losses_backward sums Q_ij g_j in real over blocks of
 * PAIR_BLOCK j's (the blocks in double) and rounds each Q_ij to real; here the same gradient,
 *     dL/dg_i = sum_{j != i} 2 Q_ij (g_i - g_j),
 * is computed independently, every operation in double (D included), on a batch the size of the
 * default run's (M = 640, N = 64; unit states with a quarter of the units active, as trained ones;
 * positions in a 2 m box; the weights of the default's L_sep and L_inv over their pair counts). The
 * largest error of any element, relative to the largest element, must stay within 5e-7 for real =
 * float (a block of 64 float additions errs by up to 64 * 6e-8 of its terms' sum, typically by
 * 8 * 6e-8; measured 7.8e-8, the size of D's own float rounding) and 1e-12 for real = double. */
static void test_pair_backward_precision(void) {
    const int M = 640, N = 64;
    Rng rng = rng_seed(7, 11);
    real *g = xcalloc((size_t)M * N, sizeof(real)), *pos = xcalloc(2 * (size_t)M, sizeof(real));
    real *d_g = xcalloc((size_t)M * N, sizeof(real));
    double *exact = xcalloc((size_t)M * N, sizeof(double));
    for (int i = 0; i < M; i++) {
        double sq = 0;
        for (int k = 0; k < N; k++) {
            double x = rng_uniform(&rng);
            g[i * N + k] = (real)(rng_below(&rng, 4) == 0 ? x : 0);
            sq += (double)g[i * N + k] * g[i * N + k];
        }
        for (int k = 0; k < N; k++) g[i * N + k] = sq > 0 ? (real)(g[i * N + k] / sqrt(sq)) : 0;
        pos[2 * i] = (real)(2 * rng_uniform(&rng)), pos[2 * i + 1] = (real)(2 * rng_uniform(&rng));
    }
    PairSums ps = pair_losses_forward(g, pos, M, N, 0.05, 0.4, 0, 8.0, 0);
    double c_sep = 1.0 / (double)ps.n_far, c_inv = 0.1 / (double)ps.n_near, inv_2sg2 = 1.0 / (2 * 0.4 * 0.4), worst = 0, largest = 0;
    pair_losses_backward(d_g, g, pos, M, N, 0.05, 0.4, 0, 8.0, 0, c_sep, c_inv, 0, 0);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < M; j++) {
            if (j == i) continue;
            double D = 0, dx = (double)pos[2 * i] - pos[2 * j], dy = (double)pos[2 * i + 1] - pos[2 * j + 1];
            for (int k = 0; k < N; k++) D += ((double)g[i * N + k] - g[j * N + k]) * ((double)g[i * N + k] - g[j * N + k]);
            double q = dx * dx + dy * dy > 0.05 * 0.05 ? -c_sep * exp(-D * inv_2sg2) * inv_2sg2 : c_inv;
            for (int k = 0; k < N; k++) exact[i * N + k] += 2 * q * ((double)g[i * N + k] - g[j * N + k]);
        }
    for (size_t k = 0; k < (size_t)M * N; k++) {
        worst = fabs(d_g[k] - exact[k]) > worst ? fabs(d_g[k] - exact[k]) : worst;
        largest = fabs(exact[k]) > largest ? fabs(exact[k]) : largest;
    }
    double tol = sizeof(real) == sizeof(float) ? 5e-7 : 1e-12;
    check(ps.n_near > 0 && largest > 0 && worst <= tol * largest,
          "pair backward against the same gradient in double: largest error %.2g of the largest element (tol %g; %lld near pairs)",
          worst / largest, tol, (long long)ps.n_near);
    free(g), free(pos), free(d_g), free(exact);
}

/* ---- the optimiser (section 6). The gradient norm is summed in blocks whose order does not depend on
 * the threads: with every gradient 0.5 each square is 0.25, all sums are exact, and the norm is exactly
 * 0.5 sqrt(n); with random gradients 1, 2 and 3 threads agree bit for bit. AdamW's first step has a
 * closed form: m = (1-b1) g and v = (1-b2) g^2 are undone by the bias corrections, so each parameter
 * moves by -lr g / (|g| + eps) (and by -lr wd p for weight decay): checked to float rounding. */
static void test_optimiser(void) {
    Model m;
    Config c;
    config_defaults(&c);
    c.N = 32, c.hidden = 32;
    model_build(&m, &c); /* 34 976 parameters: three blocks of ADAM_BLOCK */
    for (size_t i = 0; i < m.num_params; i++) m.grads[i] = 0.5;
    check(m.num_params > 2 * ADAM_BLOCK && grad_norm(&m, 2) == 0.5 * sqrt((double)m.num_params),
          "grad_norm of %zu gradients 0.5 = 0.5 sqrt(n) exactly", m.num_params);
    Rng rng = rng_seed(3, 5);
    for (size_t i = 0; i < m.num_params; i++) m.grads[i] = (real)(rng_uniform(&rng) - 0.5);
    double n1 = grad_norm(&m, 1), n2 = grad_norm(&m, 2), n3 = grad_norm(&m, 3);
    check(memcmp(&n1, &n2, sizeof n1) == 0 && memcmp(&n1, &n3, sizeof n1) == 0, "grad_norm: 1, 2, 3 threads, bit for bit");
    c.weight_decay = 0.01;
    TrainState s = {0};
    s.lr = 1e-3, s.beta1_pow = s.beta2_pow = 1;
    real *p0 = xcalloc(m.num_params, sizeof(real));
    for (size_t i = 0; i < m.num_params; i++) m.params[i] = p0[i] = (real)(rng_uniform(&rng) - 0.5);
    adamw_update(&m, &s, &c, 0.5, 3);
    double worst = 0;
    for (size_t i = 0; i < m.num_params; i++) {
        double g = 0.5 * m.grads[i], want = p0[i] - s.lr * c.weight_decay * p0[i] - s.lr * g / (fabs(g) + c.adam_eps);
        worst = fabs(m.params[i] - want) > worst ? fabs(m.params[i] - want) : worst;
    }
    check(worst <= 1e-7, "AdamW's first step (clip scale 0.5, weight decay 0.01): p - lr wd p - lr g / (|g| + eps), error %.2g (tol 1e-7)", worst);
    free(p0);
    model_free(&m);
}

/* ---- closed forms for each loss term (gridssl.c section 4), on hand-made states of N = 2 units.
 * States and positions:
 *     g1 = (1, 0) at (0, 0);   g2 = (0, 1) at (1, 0);   g3 = (0.6, 0.8) at (0, 0.03)
 * Pairs (sigma_x = 0.05, sigma_g = 0.4, so 2 sigma_g^2 = 0.32):
 *     (1,2): dx = 1 far,          dg^2 = 2                         -> e = exp(-2/0.32) = exp(-6.25)
 *     (1,3): dx = 0.03 near,      dg^2 = 0.4^2 + 0.8^2 = 0.8
 *     (2,3): dx = 1.00045 far,    dg^2 = 0.6^2 + 0.2^2 = 0.4      -> e = exp(-0.4/0.32) = exp(-1.25)
 * so  L_sep = (exp(-6.25) + exp(-1.25)) / 2,  L_inv = 0.8 / 1,
 *     L_cap(kernel) = -(2 / (3*2)) (exp(-6.25) + exp(-2.5) + exp(-1.25))   [dg^2 = 0.8 -> exp(-2.5)]
 *     L_cap(meannorm) = -|(1.6/3, 1.8/3)|^2 = -(2.56 + 3.24)/9 = -5.8/9.
 *     L_sparse = mean L1 norm = (1 + 1 + (0.6 + 0.8)) / 3 = 3.4/3.
 * L_dist with s = 1: dist_rmax = 1 keeps pair (1,2) (dx^2 = 1 exactly) and drops (2,3) (dx^2 = 1.0009):
 *     L_dist = (sqrt 2 - 1)^2 = 3 - 2 sqrt 2;
 * dist_rmax = 2 keeps both far pairs: L_dist = ((sqrt 2 - 1)^2 + (sqrt 0.4 - sqrt 1.0009)^2) / 2.
 * sep_rmax = 1 likewise keeps (1,2) in L_sep and drops (2,3): L_sep = exp(-6.25) over 1 pair, while
 * L_inv and L_cap(kernel) are as above.
 * Isometry, one trajectory of T = 3 from g0 = (1, 0), iso_vmax = 0.05:
 *     step 1: g = (0, 1), v = (2^-6, 0)    -> s = sqrt(2) / 2^-6 = 64 sqrt(2)
 *     step 2: g = (0, 1), v = (0, 2^-5)    -> s = 0
 *     step 3: g = (0.6, 0.8), v = (0.1, 0) -> |v| >= iso_vmax, left out
 *     L_iso = Var{64 sqrt(2), 0} = (64 sqrt(2) / 2)^2 = 2048.
 * The expected values use the C library's exp, not gridssl's. */
/* L_dir, one state g = (1, 0) and K = 3 probe matrices (row-major 2 x 2):
 *     W_0 = [[0, 0], [1, 0]]: z' = (0, 1), g' = (0, 1),             d_0 = sqrt 2
 *     W_1 = [[1, 0], [0, 0]]: z' = (1, 0), g' = (1, 0),             d_1 = 0
 *     W_2 = [[1, 0], [1, 0]]: z' = (1, 1), g' = (1, 1) / sqrt 2,    d_2 = sqrt(2 - sqrt 2)
 *     L_dir = sum (d_k - dbar)^2 / sum d_k^2 = 1 - (sum d_k)^2 / (K sum d_k^2)
 *           = 1 - (sqrt 2 + sqrt(2 - sqrt 2))^2 / (3 (4 - sqrt 2)) = 0.38760...
 * and with three equal probes (every W = W_0) the steps are equal: L_dir = 0 whatever their length. */
static void test_direction_closed_form(void) {
    real g[2] = {1, 0}, W[12] = {0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0}, same[12] = {0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0};
    real z[6], gp[6], norm[3];
    double d[3], tol = sizeof(real) == 4 ? 1e-6 : 1e-13;
    double sum = sqrt(2.0) + sqrt(2 - sqrt(2.0)), want = 1 - sum * sum / (3 * (4 - sqrt(2.0)));
    double L = direction_forward(z, gp, norm, d, g, W, 1, 3, 2, 1);
    check(close_rel(L, want, tol), "L_dir = 1 - (sqrt 2 + sqrt(2 - sqrt 2))^2 / (3 (4 - sqrt 2)) = %.9f (%.9f)", want, L);
    check(close_rel(d[0], sqrt(2.0), tol) && d[1] == 0 && close_rel(d[2], sqrt(2 - sqrt(2.0)), tol),
          "L_dir's probe steps: sqrt 2, 0, sqrt(2 - sqrt 2)");
    L = direction_forward(z, gp, norm, d, g, same, 1, 3, 2, 1);
    check(L == 0 && close_rel(d[0], sqrt(2.0), tol), "L_dir = 0 when every heading moves the state alike (%.3g)", L);
}

static void test_closed_forms(void) {
    real g[6] = {1, 0, 0, 1, (real)0.6, (real)0.8}, pos[6] = {0, 0, 1, 0, 0, (real)0.03};
    double tol = sizeof(real) == 4 ? 1e-6 : 1e-13;
    PairSums ps = pair_losses_forward(g, pos, 3, 2, 0.05, 0.4, 0, 1.0, 1.0);
    check(ps.n_far == 2 && ps.n_near == 1, "pair classes: 2 far, 1 near");
    check(ps.n_dist == 1 && close_rel(ps.dist_sum, 3 - 2 * sqrt(2.0), tol), "L_dist (s = 1, dist_rmax = 1) = 3 - 2 sqrt 2 over 1 pair (%.9f)", ps.dist_sum);
    PairSums ps2 = pair_losses_forward(g, pos, 3, 2, 0.05, 0.4, 0, 1.0, 2.0);
    double d23 = sqrt(0.4) - sqrt(1.0009), want_dist = (3 - 2 * sqrt(2.0) + d23 * d23) / 2;
    check(ps2.n_dist == 2 && close_rel(ps2.dist_sum / 2, want_dist, tol), "L_dist (s = 1, dist_rmax = 2) over both far pairs = %.9f (%.9f)", want_dist, ps2.dist_sum / 2);
    double sep = ps.sep_sum / ps.n_far, inv = ps.inv_sum / ps.n_near;
    check(close_rel(sep, (exp(-6.25) + exp(-1.25)) / 2, tol), "L_sep = (e^-6.25 + e^-1.25)/2 = %.9f", sep);
    check(close_rel(inv, 0.8, tol), "L_inv = 0.8 (%.9f)", inv);
    PairSums ps3 = pair_losses_forward(g, pos, 3, 2, 0.05, 0.4, 1.0, 1.0, 1.0);
    check(ps3.n_far == 1 && ps3.n_near == 1 && close_rel(ps3.sep_sum, exp(-6.25), tol) && ps3.inv_sum == ps.inv_sum &&
              ps3.ker_sum == ps.ker_sum,
          "L_sep (sep_rmax = 1) = e^-6.25 over 1 pair (%.9g); L_inv and the kernel sum unchanged", ps3.sep_sum);
    double ker = -(2.0 / 6.0) * ps.ker_sum;
    check(close_rel(ker, -(exp(-6.25) + exp(-2.5) + exp(-1.25)) / 3, tol), "L_cap(kernel) = -(e^-6.25 + e^-2.5 + e^-1.25)/3 = %.9f", ker);
    double mean[2];
    double cap = meannorm_forward(mean, g, 3, 2);
    check(close_rel(cap, -5.8 / 9, tol), "L_cap(meannorm) = -5.8/9 = %.9f", cap);
    double sparse = sparse_forward(g, 3, 2);
    check(close_rel(sparse, 3.4 / 3, tol), "L_sparse = (1 + 1 + 1.4)/3 = 3.4/3 = %.9f", sparse);
    real g0[2] = {1, 0}, gs[6] = {0, 1, 0, 1, (real)0.6, (real)0.8};
    real vel[6] = {(real)0.015625, 0, 0, (real)0.03125, (real)0.1, 0};
    int32_t index[3] = {0, 1, 2};
    double s[3];
    int64_t count;
    double iso = isometry_forward(s, &count, gs, g0, vel, index, 1, 3, 2, 0, 0.05);
    check(count == 2 && close_rel(iso, 2048, 1e-13), "L_iso = Var{64 sqrt 2, 0} = 2048 over 2 steps (%.12g, %lld steps)", iso, (long long)count);
    iso = isometry_forward(s, &count, gs, g0, vel, index, 1, 3, 2, 0.02, 0.05);
    check(count == 1 && iso == 0, "iso_vmin = 0.02 drops the 0.0156 m step: L_iso = Var{0} = 0 over 1 step (%.12g, %lld)", iso, (long long)count);
    test_direction_closed_form();
}

/* ---- config: the built-in defaults are data/default.cfg, and values round-trip through text. */
static void test_config(void) {
    Config builtin, from_file, round_trip, builtin_defaults;
    config_defaults(&builtin);
    config_defaults(&builtin_defaults);
    config_defaults(&from_file);
    Buf text = {0};
    Err err;
    int read_ok = read_file("data/default.cfg", &text, 1048576, &err) == 0;
    int parse_ok = read_ok && config_parse_text(&from_file, (const char *)text.data, text.len, 0, "data/default.cfg", &err) == 0;
    check(parse_ok && memcmp(&builtin, &from_file, sizeof builtin) == 0, "data/default.cfg equals the built-in defaults");
    /* a config with every key changed prints and parses back to itself */
    config_defaults(&builtin);
    for (int i = 0; i < NUM_CONFIG_KEYS; i++) {
        const ConfigKey *k = &config_keys[i];
        char *field = (char *)&builtin + k->offset;
        if (k->type == KEY_REAL) *(double *)field = k->min + (k->max - k->min) / 3.0;
        else *(int *)field = (int)k->max;
    }
    text.len = 0;
    config_print(&text, &builtin);
    config_defaults(&round_trip);
    int ok = config_parse_text(&round_trip, (const char *)text.data, text.len, 1, "round trip", &err) == 0;
    check(ok && memcmp(&builtin, &round_trip, sizeof builtin) == 0, "every key survives print -> parse exactly");
    /* Every value is a decimal number in range (integers for integer keys), each key set once, no
     * NUL byte: the text, what the error must say (NULL: accepted). */
    struct { const char *text; size_t len; const char *expect; } cases[] = {
        {"N = 12x\n", 0, "'12x' is not a decimal number"},
        {"N = 0x10\n", 0, "'0x10' is not a decimal number"},
        {"lr = inf\n", 0, "'inf' is not a decimal number"},
        {"lr = nan\n", 0, "'nan' is not a decimal number"},
        {"N = 1e\n", 0, "'1e' is not a decimal number"},
        {"N = .\n", 0, "'.' is not a decimal number"},
        {"B = -4\n", 0, "-4 is out of range"},
        {"seed = 1e300\n", 0, "1e300 is out of range"},     /* before any conversion to an integer */
        {"lr = 1e999\n", 0, "1e999 is out of range"},       /* beyond double's range */
        {"B = 2.5\n", 0, "'2.5' is not an integer"},
        {"capacity = entropy\n", 0, "meannorm|kernel"},
        {"N = 12\nhidden = 8\nN = 13\n", 0, "t:3: key 'N' is already set on line 1"},
        {"N = 12\n\0steps = abc\n", 21, "t:2: NUL byte in the config text"},
        {"lr = 4.9e-324\n", 0, NULL},                          /* a subnormal is a number */
        {"N = 12.0\nB = +3\nlr = .5\nvmax = 5.e-2\n", 0, NULL}, /* decimal spellings */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Config c;
        config_defaults(&c);
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        int rc = config_parse_text(&c, cases[i].text, len, 0, "t", &err);
        if (cases[i].expect)
            check(rc != 0 && strstr(err.msg, cases[i].expect) && !strchr(err.msg, '\n'), "config text #%zu rejected: %s", i, err.msg);
        else check(rc == 0, "config text #%zu accepted", i);
    }
    Config c;
    config_defaults(&c);
    check(config_parse_text(&c, "lr = 4.9e-324\n", 14, 0, "t", &err) == 0 && c.lr == 4.9e-324, "lr = 4.9e-324 keeps its value");
    /* a checkpoint's config lists every key: one line less is an error, not a default */
    text.len = 0;
    config_print(&text, &builtin);
    const char *second_line = (const char *)memchr(text.data, '\n', text.len) + 1;
    size_t first_len = (size_t)(second_line - (const char *)text.data);
    check(config_parse_text(&c, second_line, text.len - first_len, 1, "ckpt", &err) != 0 && strstr(err.msg, "key 'model' is missing"),
          "a checkpoint's config without one key is refused: %s", err.msg);
    /* what a person reads is what they wrote: reals in their shortest exact form */
    text.len = 0;
    config_print(&text, &builtin_defaults);
    buf_put(&text, "", 1);
    check(strstr((const char *)text.data, "\neval_speed_max = 0.15\n") && strstr((const char *)text.data, "\nsigma_g = 0.4\n") &&
          strstr((const char *)text.data, "\nlr = 0.0003\n") && strstr((const char *)text.data, "\nadam_eps = 1e-08\n"),
          "config_print writes 0.15, 0.4, 0.0003 and 1e-08, not their 17-digit expansions");
    /* one error line whatever the value held (a newline in a key=value argument) */
    check(config_set(&c, "N", "1\n2", &err) != 0 && !strchr(err.msg, '\n') && strstr(err.msg, "'1?2'"),
          "control characters in an error message become '?': %s", err.msg);
    buf_free(&text);
}

/* A file with exactly these bytes (test inputs). */
static void write_bytes(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (f) fwrite(data, 1, len, f), fclose(f);
}

/* ---- checkpoint: encode -> load -> encode gives the same bytes; corruption is caught. */
static void test_checkpoint_roundtrip(void) {
    Config c;
    config_defaults(&c);
    c.N = 5, c.hidden = 7, c.B = 3, c.T = 4;
    Model m, m2;
    TrainState s = {0}, s2;
    model_build(&m, &c);
    Rng rng = rng_seed(9, STREAM_INIT);
    model_init(&m, &c, &rng);
    for (size_t i = 0; i < m.num_params; i++) m.adam_m[i] = (real)i, m.adam_v[i] = (real)(1.0 / (i + 1));
    s.step = 12345, s.data_rng = rng_seed(1, 2), s.lr = 1e-3, s.loss_ema = -0.5, s.best = -0.75;
    s.bad_steps = 17, s.ema_steps = 12345, s.beta1_pow = 0.25, s.beta2_pow = 0.5;
    Buf a = {0}, b = {0};
    checkpoint_encode(&a, &m, &s, &c);
    Err err;
    const char *path = "tests/tmp_roundtrip.bin";
    write_bytes(path, a.data, a.len);
    int ok = checkpoint_load(path, &m2, &s2, &c, &err) == 0;
    if (ok) checkpoint_encode(&b, &m2, &s2, &c);
    check(ok && a.len == b.len && memcmp(a.data, b.data, a.len) == 0, "checkpoint encode -> load -> encode is byte-identical");
    if (ok) model_free(&m2);
    a.data[a.len / 2] ^= 0x10;
    write_bytes(path, a.data, a.len);
    ok = checkpoint_load(path, &m2, &s2, &c, &err) != 0;
    check(ok && strstr(err.msg, "CRC-32"), "a flipped bit is caught: %s", err.msg);
    /* A valid CRC proves only that the bytes are the ones written: each field that no run could have
     * written is refused by name (checkpoint_encode writes whatever it is given, CRC included). */
    struct { const char *what, *expect; } bad[] = {
        {"step -1", "step -1 is outside [0, steps = 14000]"},
        {"step 10^12", "step 1000000000000 is outside"},
        {"step past the config's steps", "step 14001 is outside"},
        {"even PCG increment", "PCG32 increment is even"},
        {"lr NaN", "learning rate nan is outside"},
        {"lr -1", "learning rate -1 is outside"},
        {"loss EMA NaN", "smoothed loss is not finite"},
        {"ema steps != step", "12344 smoothed steps"},
        {"negative bad steps", "-3 steps without improvement"},
        {"beta1^t = 1 after step 0", "beta1^t = 1, beta2^t = 0.5"},
        {"beta2^t NaN", "beta2^t = nan"},
        {"a NaN parameter", "parameter 7 is nan"},
        {"an infinite Adam moment", "Adam first moment 3 is inf"},
        {"a negative Adam second moment", "Adam second moment 5 is -1"},
        {"a config of another model size", "needs"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        TrainState t = s;
        Config cc = c;
        real saved[3] = {m.params[7], m.adam_m[3], m.adam_v[5]};
        switch (i) {
        case 0: t.step = t.ema_steps = -1; break;
        case 1: t.step = t.ema_steps = 1000000000000ll; break;
        case 2: t.step = t.ema_steps = 14001; break;
        case 3: t.data_rng.inc ^= 1; break;
        case 4: t.lr = gs_nan(); break;
        case 5: t.lr = -1; break;
        case 6: t.loss_ema = gs_nan(); break;
        case 7: t.ema_steps = 12344; break;
        case 8: t.bad_steps = -3; break;
        case 9: t.beta1_pow = 1; break;
        case 10: t.beta2_pow = gs_nan(); break;
        case 11: m.params[7] = real_nan(); break;
        case 12: m.adam_m[3] = (real)gs_inf(); break;
        case 13: m.adam_v[5] = -1; break;
        case 14: cc.N = 512, cc.hidden = 1000; break; /* 4 GB of parameters: refused before allocating */
        }
        a.len = 0;
        checkpoint_encode(&a, &m, &t, &cc);
        m.params[7] = saved[0], m.adam_m[3] = saved[1], m.adam_v[5] = saved[2];
        write_bytes(path, a.data, a.len);
        ok = checkpoint_load(path, &m2, &s2, &c, &err) != 0;
        check(ok && strstr(err.msg, bad[i].expect) && !strchr(err.msg, '\n'), "a CRC-valid checkpoint with %s is refused: %s", bad[i].what, err.msg);
    }
    remove(path);
    buf_free(&a), buf_free(&b);
    model_free(&m);
}

/* ---- .npy header: what NumPy's format 1.0 requires. */
static void test_npy_header(void) {
    Buf b = {0};
    int64_t shape[3] = {12, 16, 16}, one[1] = {5};
    npy_header(&b, "<f4", shape, 3);
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (12, 16, 16), }";
    check(b.len % 64 == 0 && memcmp(b.data, "\x93NUMPY\x01\x00", 8) == 0 && b.data[8] + 256 * b.data[9] == (int)b.len - 10 &&
              memcmp(b.data + 10, dict, strlen(dict)) == 0 && b.data[b.len - 1] == '\n',
          "npy header: magic, version 1.0, length, dict, padded to 64 bytes");
    b.len = 0;
    npy_header(&b, "<i4", one, 1);
    check(strstr((const char *)b.data + 10, "'shape': (5,)") != NULL, "npy header: a 1-d shape is written (5,)");
    buf_free(&b);
}


/* ---- grid analysis (gridssl.c section 9) on synthetic ratemaps whose answers are known ------------------------
 * A hexagonal lattice of period L (distance between neighbouring fields) and orientation a is the
 * rectified sum of three plane waves with |k| = 4 pi / (sqrt(3) L) at angles a + 30 + 60 j degrees
 * (the reciprocal lattice); a square lattice is the sum of two waves, |k| = 2 pi / L, at a and a + 90.
 * Maps are n x n bins over a box of side `box` centred on 0; the C library's cos (not gridssl's). */
static void lattice_map(real *R, int n, double box, double period, double orient_deg, double phase_x, double phase_y, int waves) {
    double kmag = waves == 3 ? 4 * PI / (sqrt(3.0) * period) : 2 * PI / period;
    double first = waves == 3 ? orient_deg + 30 : orient_deg, step = waves == 3 ? 60 : 90, bin = box / n;
    for (int iy = 0; iy < n; iy++)
        for (int ix = 0; ix < n; ix++) {
            double x = -box / 2 + (ix + 0.5) * bin - phase_x, y = -box / 2 + (iy + 0.5) * bin - phase_y, sum = 0;
            for (int j = 0; j < waves; j++) {
                double a = (first + step * j) * PI / 180;
                sum += cos(kmag * (cos(a) * x + sin(a) * y));
            }
            R[iy * n + ix] = (real)(sum > 0 ? sum : 0);
        }
}

/* Angular distance on the 60-degree circle. */
static double orientation_error(double got, double want) {
    double d = fmod(fabs(got - want), 60.0);
    return d > 30 ? 60 - d : d;
}

static UnitScores score_one(const real *R, int n, double box) {
    Analysis an;
    analysis_run(&an, R, 1, n, box, 1);
    UnitScores u = an.units[0];
    analysis_free(&an);
    return u;
}

static void test_grid_scores(void) {
    const int n = 40;
    const double box = 2.0;
    real R[40 * 40];
    /* An ideal hexagonal SAC gives c60 = c120 = 1 and c30 = c90 = c150 near -0.5, i.e. score60 ~ 1.5;
     * the finite box, the 5 cm bins and the annuli cost some of that. The thresholds sit a little below
     * what this analysis measures on these maps (score60 >= 0.920, SAC period within 0.51 %,
     * orientation within 0.24 degrees, Fourier period within 3.24 %, square score90 >= 1.068), so a
     * change that costs the scores a few percent fails here (scaling every score60 by 0.95 would). */
    const double periods[3] = {0.3, 0.5, 0.8}, orients[4] = {0, 7, 23, 41}, phases[3][2] = {{0, 0}, {0.13, -0.07}, {-0.21, 0.17}};
    double min60 = HUGE_VAL, max_period_err = 0, max_orient_err = 0, max_fourier_err = 0;
    for (int p = 0; p < 3; p++)
        for (int o = 0; o < 4; o++)
            for (int ph = 0; ph < 3; ph++) {
                lattice_map(R, n, box, periods[p], orients[o], phases[ph][0], phases[ph][1], 3);
                UnitScores u = score_one(R, n, box);
                min60 = u.score60 < min60 ? u.score60 : min60;
                double pe = fabs(u.period_m / periods[p] - 1), oe = orientation_error(u.orientation_deg, orients[o]);
                double fe = fabs(u.fourier_period_m / periods[p] - 1);
                max_period_err = pe > max_period_err || !(pe == pe) ? pe : max_period_err;
                max_orient_err = oe > max_orient_err || !(oe == oe) ? oe : max_orient_err;
                max_fourier_err = fe > max_fourier_err || !(fe == fe) ? fe : max_fourier_err;
            }
    check(min60 > 0.9, "hexagonal lattices (periods 0.3, 0.5, 0.8 m; 4 orientations; 3 phases): score60 >= %.3f > 0.9", min60);
    check(max_period_err < 0.01, "hexagonal lattices: SAC period within %.2f%% (< 1%%)", 100 * max_period_err);
    check(max_orient_err < 0.5, "hexagonal lattices: orientation within %.2f degrees (< 0.5)", max_orient_err);
    check(max_fourier_err < 0.04, "hexagonal lattices: Fourier period within %.2f%% (< 4%%)", 100 * max_fourier_err);
    double min90 = HUGE_VAL, max60 = -HUGE_VAL;
    for (int p = 0; p < 3; p++)
        for (int o = 0; o < 4; o++) {
            lattice_map(R, n, box, periods[p], orients[o], 0.05, 0.11, 2);
            UnitScores u = score_one(R, n, box);
            min90 = u.score90 < min90 ? u.score90 : min90;
            max60 = u.score60 > max60 ? u.score60 : max60;
        }
    check(min90 > 1.0 && max60 < -0.2, "square lattices: score90 >= %.3f > 1.0 and score60 <= %.3f < -0.2", min90, max60);
    /* Noise: every bin i.i.d. uniform. Its SAC is ~0 off the centre, so the score should be near 0. */
    Rng rng = rng_seed(21, STREAM_CHECK);
    int quiet = 0;
    double worst = 0;
    for (int trial = 0; trial < 100; trial++) {
        for (int b = 0; b < n * n; b++) R[b] = (real)rng_uniform(&rng);
        UnitScores u = score_one(R, n, box);
        quiet += fabs(u.score60) < 0.3;
        worst = fabs(u.score60) > worst ? fabs(u.score60) : worst;
    }
    check(quiet >= 95 && worst < 0.25, "noise maps: |score60| < 0.3 in %d of 100 (largest %.3f < 0.25)", quiet, worst);
    /* A single Gaussian bump (sigma 0.2 m) off-centre is a place field, not a grid. */
    for (int iy = 0; iy < n; iy++)
        for (int ix = 0; ix < n; ix++) {
            double x = -1 + (ix + 0.5) * 0.05 - 0.3, y = -1 + (iy + 0.5) * 0.05 + 0.2;
            R[iy * n + ix] = (real)exp(-(x * x + y * y) / (2 * 0.04));
        }
    UnitScores bump = score_one(R, n, box);
    check(bump.score60 < 0.1, "a single Gaussian bump is not grid-like (score60 %.3f < 0.1)", bump.score60);
    /* Holes: 20 % of the bins unvisited (NaN) must not move the period. */
    double max_hole_err = 0;
    int hole_bins = 0;
    for (int p = 0; p < 3; p++) {
        lattice_map(R, n, box, periods[p], 11, 0.02, -0.04, 3);
        for (int b = 0; b < n * n; b++)
            if (rng_below(&rng, 5) == 0) R[b] = real_nan(), hole_bins++;
        UnitScores u = score_one(R, n, box);
        double e = fabs(u.period_m / periods[p] - 1);
        max_hole_err = e > max_hole_err || !(e == e) ? e : max_hole_err;
    }
    check(max_hole_err < 0.01, "lattices with %.0f%% of bins unvisited: period within %.2f%% (< 1%%)",
          100.0 * hole_bins / (3 * n * n), 100 * max_hole_err);
}

/* Three periods -> exactly three modules with those periods; one period -> one module. */
static void test_modules(void) {
    const int n = 40, per = 6;
    const double periods[3] = {0.3, 0.5, 0.8};
    real *maps = xcalloc((size_t)3 * per * n * n, sizeof(real));
    for (int p = 0; p < 3; p++)
        for (int k = 0; k < per; k++)
            lattice_map(maps + (size_t)(p * per + k) * n * n, n, 2.0, periods[p], 5 + 3 * k, 0.07 * k, -0.05 * k, 3);
    Analysis an;
    analysis_run(&an, maps, 3 * per, n, 2.0, 2);
    int right = an.n_modules == 3;
    for (int i = 0; i < an.n_modules && right; i++) right = fabs(an.modules[i].period_m / periods[i] - 1) < 0.05 && an.modules[i].units == per;
    check(right, "three periods give three modules (%d: %.3g, %.3g, %.3g m)", an.n_modules, an.n_modules > 0 ? an.modules[0].period_m : 0,
          an.n_modules > 1 ? an.modules[1].period_m : 0, an.n_modules > 2 ? an.modules[2].period_m : 0);
    analysis_free(&an);
    analysis_run(&an, maps + (size_t)per * n * n, per, n, 2.0, 3);
    check(an.n_modules == 1 && an.modules[0].units == per, "a single period gives one module (%d)", an.n_modules);
    analysis_free(&an);
    free(maps);
}

/* Fourier symmetry of the dominant ring: six peaks for a hexagonal lattice, four for a square one, two
 * (opposite) for a band; and place fields of Gaussian bumps, whose half-maximum diameter is known. */
static void band_map(real *R, int n, double box, double wavelength, double angle_deg, double phase_m) {
    double k = 2 * PI / wavelength, a = angle_deg * PI / 180, bin = box / n;
    for (int iy = 0; iy < n; iy++)
        for (int ix = 0; ix < n; ix++) {
            double x = -box / 2 + (ix + 0.5) * bin, y = -box / 2 + (iy + 0.5) * bin, v = cos(k * (cos(a) * x + sin(a) * y - phase_m));
            R[iy * n + ix] = (real)(v > 0 ? v : 0);
        }
}

/* Gaussian bumps (sd sigma) at the given centres, summed. */
static void bumps_map(real *R, int n, double box, const double (*centres)[2], int count, double sigma) {
    double bin = box / n;
    for (int iy = 0; iy < n; iy++)
        for (int ix = 0; ix < n; ix++) {
            double x = -box / 2 + (ix + 0.5) * bin, y = -box / 2 + (iy + 0.5) * bin, v = 0;
            for (int c = 0; c < count; c++) {
                double dx = x - centres[c][0], dy = y - centres[c][1];
                v += exp(-(dx * dx + dy * dy) / (2 * sigma * sigma));
            }
            R[iy * n + ix] = (real)v;
        }
}

static void test_fourier_symmetry_and_fields(void) {
    const int n = 40;
    const double box = 2.0, periods[3] = {0.3, 0.5, 0.8}, orients[3] = {0, 17, 41};
    real R[40 * 40];
    /* A finite box blurs each peak over about 1/box cycles per metre, which spreads it along the ring
     * by more the longer the period: a6 of these hexagonal lattices falls from 0.91 at 0.3 m to 0.70 at
     * 0.8 m; a4 of the square ones from 0.95 to 0.76. The thresholds sit a little below what the
     * analysis measures here (hexagonal a6 >= 0.698, a4 and a2 <= 0.054; square a4 >= 0.761, a6 and
     * a2 <= 0.018; bands a2 >= 0.919). */
    double hex_a6 = HUGE_VAL, hex_other = 0, sq_a4 = HUGE_VAL, sq_other = 0, band_min = HUGE_VAL;
    for (int p = 0; p < 3; p++)
        for (int o = 0; o < 3; o++) {
            lattice_map(R, n, box, periods[p], orients[o], 0.03, -0.05, 3);
            UnitScores u = score_one(R, n, box);
            hex_a6 = u.fourier_a6 < hex_a6 || !(u.fourier_a6 == u.fourier_a6) ? u.fourier_a6 : hex_a6;
            hex_other = fmax(hex_other, fmax(u.fourier_a4, u.fourier_a2));
            lattice_map(R, n, box, periods[p], orients[o], 0.03, -0.05, 2);
            u = score_one(R, n, box);
            sq_a4 = u.fourier_a4 < sq_a4 || !(u.fourier_a4 == u.fourier_a4) ? u.fourier_a4 : sq_a4;
            sq_other = fmax(sq_other, fmax(u.fourier_a6, u.fourier_a2));
            band_map(R, n, box, periods[p], orients[o], 0.07);
            u = score_one(R, n, box);
            band_min = fmin(band_min, u.fourier_a2);
        }
    check(hex_a6 > 0.65 && hex_other < 0.1, "hexagonal lattices: Fourier ring a6 >= %.3f > 0.65, a4 and a2 <= %.3f < 0.1", hex_a6, hex_other);
    check(sq_a4 > 0.7 && sq_other < 0.05, "square lattices: Fourier ring a4 >= %.3f > 0.7, a6 and a2 <= %.3f < 0.05", sq_a4, sq_other);
    check(band_min > 0.9, "bands: Fourier ring a2 >= %.3f > 0.9 (two opposite peaks)", band_min);
    /* k bumps of sd 0.08 m far apart: k fields; at half maximum a bump's diameter is 2 sqrt(2 ln 2) sd. */
    const double centres[4][2] = {{-0.5, -0.5}, {0.5, 0.4}, {-0.4, 0.6}, {0.6, -0.6}}, sigma = 0.08;
    int right = 1;
    double worst = 0, want = 2 * sqrt(2 * log(2.0)) * sigma;
    for (int k = 1; k <= 4; k++) {
        bumps_map(R, n, box, centres, k, sigma);
        UnitScores u = score_one(R, n, box);
        right &= u.fields == k;
        worst = fmax(worst, fabs(u.field_diameter_m / want - 1));
    }
    check(right && worst < 0.1, "1-4 Gaussian bumps: 1-4 place fields, diameter within %.1f%% of 2 sqrt(2 ln 2) sd (< 10%%)", 100 * worst);
    for (int b = 0; b < n * n; b++) R[b] = 1;
    UnitScores flat = score_one(R, n, box);
    check(flat.fields == 0 && !(flat.field_diameter_m == flat.field_diameter_m), "a flat map has no place field");
}

/* Border score (Solstad et al. 2008): a field along a wall is a border field, a lattice or a bump in
 * the middle is not. Its closed forms: a bump touching no wall has c_M = 0, so b = -1 exactly; a
 * band one bin wide on a wall has c_M = 1 and d_m = 0.5 bin / (n/2 bins) = 1/n, so b = (1 - 1/n) / (1 + 1/n). */
static void test_border_score(void) {
    const int n = 40;
    const double box = 2.0, bin = box / n;
    real R[40 * 40];
    double worst_border = HUGE_VAL;
    for (int wall = 0; wall < 4; wall++) { /* a field 15 cm wide along each wall in turn */
        for (int iy = 0; iy < n; iy++)
            for (int ix = 0; ix < n; ix++) {
                double d = (wall == 0 ? ix : wall == 1 ? n - 1 - ix : wall == 2 ? iy : n - 1 - iy) * bin;
                R[iy * n + ix] = (real)exp(-d * d / (2 * 0.05 * 0.05));
            }
        worst_border = fmin(worst_border, score_one(R, n, box).border_score);
    }
    check(worst_border > 0.8, "a field along any of the four walls: border score >= %.3f > 0.8", worst_border);
    for (int b = 0; b < n * n; b++) R[b] = (real)(b % n == n - 1 ? 1.0 : 0.0); /* the east column only */
    double line = score_one(R, n, box).border_score, want = (1 - 1.0 / n) / (1 + 1.0 / n);
    check(fabs(line - want) < 1e-12, "a one-bin band on the east wall: border score %.6f = (1 - 1/n)/(1 + 1/n)", line);
    const double centre[1][2] = {{0.1, -0.2}};
    bumps_map(R, n, box, centre, 1, 0.1);
    double bump = score_one(R, n, box).border_score;
    check(bump == -1, "a bump in the middle (touching no wall): border score %.3f = -1", bump);
    double worst_grid = -HUGE_VAL;
    for (int p = 0; p < 3; p++) {
        lattice_map(R, n, box, 0.3 + 0.25 * p, 13 * p, 0.04, -0.02, 3);
        worst_grid = fmax(worst_grid, score_one(R, n, box).border_score);
    }
    check(worst_grid < 0, "hexagonal lattices (0.3, 0.55, 0.8 m): border score <= %.3f < 0", worst_grid);
}

/* The state space of a module (section 9): units that tile a lattice cell make a torus, units that
 * tile the period of a band make a ring, place fields tiling the box make neither. */
static void test_state_space(void) {
    const int n = 40, side = 6, count = side * side;
    const double box = 2.0, period = 0.5, orient = 10;
    real *maps = xcalloc((size_t)count * n * n, sizeof(real));
    double *phases = xcalloc((size_t)2 * count, sizeof(double));
    int units[36];
    for (int j = 0; j < count; j++) units[j] = j;
    /* hexagonal: unit (i, j) shifted by (i/6) a1 + (j/6) a2, a1 and a2 the lattice vectors */
    double a1x = period * cos(orient * PI / 180), a1y = period * sin(orient * PI / 180);
    double a2x = period * cos((orient + 60) * PI / 180), a2y = period * sin((orient + 60) * PI / 180);
    for (int i = 0; i < side; i++)
        for (int j = 0; j < side; j++)
            lattice_map(maps + (size_t)(i * side + j) * n * n, n, box, period, orient, (i * a1x + j * a2x) / side, (i * a1y + j * a2y) / side, 3);
    StateSpace s;
    state_space(&s, phases, maps, units, count, n, box);
    double kerr = 0, want_k = 2 / (sqrt(3.0) * period);
    for (int d = 0; d < 3; d++) kerr = fmax(kerr, fabs(sqrt(s.ring_k[d][0] * s.ring_k[d][0] + s.ring_k[d][1] * s.ring_k[d][1]) / want_k - 1));
    double var6 = 0;
    for (int i = 0; i < 6; i++) var6 += s.variance[i];
    check(strcmp(state_shape(&s), "torus") == 0 && s.rings == 3 && kerr < 0.05,
          "hexagonal module, phases tiling the cell: a torus of %d rings (coherence %.2f %.2f %.2f), waves within %.1f%% of 2/(sqrt 3 L)",
          s.rings, s.ring_coherence[0], s.ring_coherence[1], s.ring_coherence[2], 100 * kerr);
    check(s.phase_resultant < 0.1 && var6 > 0.8, "hexagonal module: phases tile the cell (resultant %.3f < 0.1); PCs 1-6 hold %.0f%% of the variance",
          s.phase_resultant, 100 * var6);
    /* the phases come back: unit (i, j)'s phase along each wave differs from unit (0, 0)'s by a multiple of 1/6 */
    double off = 0;
    for (int j = 0; j < count; j++)
        for (int d = 0; d < 2; d++) {
            double x = (phases[2 * j + d] - phases[d]) * side;
            off = fmax(off, fabs(x - floor(x + 0.5)));
        }
    check(off < 0.05, "hexagonal module: each unit's phase is its shift, to %.3f of a sixth of the cell", off);
    state_space_free(&s);
    /* a band population: one wave, phases tiling its period */
    for (int j = 0; j < count; j++) band_map(maps + (size_t)j * n * n, n, box, period, orient, period * j / count);
    state_space(&s, phases, maps, units, count, n, box);
    check(strcmp(state_shape(&s), "ring") == 0, "band module, phases tiling the period: a ring (%d ring(s); fractions %.2f %.2f %.2f)", s.rings,
          s.ring_fraction[0], s.ring_fraction[1], s.ring_fraction[2]);
    state_space_free(&s);
    /* place fields: one Gaussian bump per unit (sd 0.2 m) on a 6 x 6 grid over the box */
    for (int i = 0; i < side; i++)
        for (int j = 0; j < side; j++) {
            double centre[1][2] = {{-box / 2 + (i + 0.5) * box / side, -box / 2 + (j + 0.5) * box / side}};
            bumps_map(maps + (size_t)(i * side + j) * n * n, n, box, (const double (*)[2])centre, 1, 0.2);
        }
    state_space(&s, phases, maps, units, count, n, box);
    check(strcmp(state_shape(&s), "none") == 0, "place fields tiling the box: no ring (%d; coherence %.2f %.2f %.2f)", s.rings,
          s.ring_coherence[0], s.ring_coherence[1], s.ring_coherence[2]);
    state_space_free(&s);
    /* Jacobi: the eigenpairs of a known symmetric matrix, A v = lambda v to 1e-12 */
    double A[9] = {4, 1, 2, 1, 3, 0, 2, 0, 5}, B[9], V[9], worst = 0;
    memcpy(B, A, sizeof A);
    jacobi_eigen(B, V, 3);
    for (int c = 0; c < 3; c++)
        for (int r = 0; r < 3; r++) {
            double av = 0;
            for (int k = 0; k < 3; k++) av += A[r * 3 + k] * V[k * 3 + c];
            worst = fmax(worst, fabs(av - B[c * 4] * V[r * 3 + c]));
        }
    check(worst < 1e-12 && fabs(B[0] + B[4] + B[8] - 12) < 1e-12, "Jacobi eigenpairs: |A v - lambda v| %.1e < 1e-12, trace kept", worst);
    free(maps), free(phases);
}

/* The SAC of any map is 1 at lag 0 and symmetric under lag -> -lag. */
static void test_autocorrelogram(void) {
    const int n = 12, size = 23;
    real R[144];
    Rng rng = rng_seed(4, STREAM_CHECK);
    for (int b = 0; b < n * n; b++) R[b] = b % 7 == 0 ? real_nan() : (real)rng_uniform(&rng);
    double sac[23 * 23];
    autocorrelogram(sac, R, n);
    int symmetric = 1;
    for (int i = 0; i < size * size; i++) {
        double a = sac[i], b = sac[size * size - 1 - i];
        symmetric &= (a == b) || (!(a == a) && !(b == b));
    }
    check(fabs(sac[(n - 1) * size + n - 1] - 1) < 1e-12 && symmetric, "SAC: 1 at the centre, symmetric under lag -> -lag");
    check(!(sac[0] == sac[0]), "SAC: a lag with fewer than 20 overlapping bins is NaN");
}

/* ---- .npy reader: the good case and every rejection. */
static void test_npy_reader(void) {
    const char *path = "tests/tmp_maps.npy";
    Buf b = {0};
    int64_t shape[3] = {2, 3, 3};
    npy_header(&b, "<f8", shape, 3);
    for (int i = 0; i < 18; i++) buf_f64(&b, i == 4 ? gs_nan() : i * 0.5);
    write_bytes(path, b.data, b.len);
    real *maps = NULL;
    int N = 0, n = 0;
    Err err;
    int ok = npy_read_maps(path, &maps, &N, &n, &err) == 0;
    check(ok && N == 2 && n == 3 && maps[17] == (real)8.5 && !(maps[4] == maps[4]), "npy reader: '<f8' (2, 3, 3) with a NaN reads back");
    free(maps);
    struct { const char *what, *header, *expect; size_t cut; } bad[] = {
        {"bad magic", NULL, "bad magic", 0},
        {"wrong dtype", "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3, 3), }", "is not supported", 0},
        {"Fortran order", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3, 3), }", "Fortran", 0},
        {"wrong rank", "{'descr': '<f4', 'fortran_order': False, 'shape': (6, 3), }", "shape must be", 0},
        {"truncated data", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 3), }", "truncated", 5},
        {"a shape without commas", "{'descr': '<f4', 'fortran_order': False, 'shape': (2 3 3), }", "tuple of whole numbers", 0},
        {"junk after the shape", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 3)x, }", "tuple of whole numbers", 0},
        {"a signed dimension", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3, 3), }", "tuple of whole numbers", 0},
        {"maps larger than the analysis takes", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 300, 300), }", "2 to 256", 0},
        {"a shape whose size overflows 64 bits", "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99, 99), }", "more than 2^28", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        Buf f = {0};
        if (!bad[i].header) buf_put(&f, "NOTNUMPY..........", 18);
        else {
            size_t hl = strlen(bad[i].header), pad = (64 - (10 + hl + 1) % 64) % 64;
            buf_put(&f, "\x93NUMPY\x01\x00", 8);
            uint8_t le[2] = {(uint8_t)(hl + pad + 1), (uint8_t)((hl + pad + 1) >> 8)};
            buf_put(&f, le, 2), buf_put(&f, bad[i].header, hl);
            for (size_t k = 0; k < pad; k++) buf_put(&f, " ", 1);
            buf_put(&f, "\n", 1);
            for (int k = 0; k < 18; k++) buf_f32(&f, 1.0f);
            f.len -= bad[i].cut;
        }
        write_bytes(path, f.data, f.len);
        maps = NULL;
        int rejected = npy_read_maps(path, &maps, &N, &n, &err) != 0;
        check(rejected && strstr(err.msg, bad[i].expect) && !strchr(err.msg, '\n'), "npy reader rejects %s: %s", bad[i].what, err.msg);
        free(maps);
        buf_free(&f);
    }
    /* values: NaN marks an unvisited bin; an infinity, or a '<f8' beyond float's range, is refused */
    double values[2] = {gs_inf(), 1e300};
    for (int v = 0; v < 2; v++) {
        b.len = 0;
        npy_header(&b, "<f8", shape, 3);
        for (int i = 0; i < 18; i++) buf_f64(&b, i == 7 ? (v ? values[v] : -values[v]) : 0.5);
        write_bytes(path, b.data, b.len);
        int rejected = npy_read_maps(path, &maps, &N, &n, &err) != 0;
        check(rejected && strstr(err.msg, "value 7 is") && maps == NULL, "npy reader rejects %s: %s", v ? "1e300 in '<f8'" : "-inf", err.msg);
    }
    remove(path);
    buf_free(&b);
}

/* ---- PNG writer, checked by an independent decoder: a table-driven CRC-32 (not gridssl's bitwise
 * one), the stored deflate blocks unpacked by hand, Adler-32 recomputed, dimensions and pixels. */
static uint32_t crc_table_crc(const uint8_t *p, size_t len) {
    static uint32_t table[256];
    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static int png_verify(const Buf *png, const Image *im, char *why) {
    const uint8_t *p = png->data;
    size_t pos = 8, idat_len = 0;
    uint8_t *idat = xcalloc(png->len, 1);
    int chunks = 0, ok = memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0, ihdr_ok = 0, iend = 0;
    while (ok && pos + 12 <= png->len) {
        uint32_t len = be32(p + pos);
        if (pos + 12 + len > png->len) break;
        const uint8_t *type = p + pos + 4;
        ok &= crc_table_crc(type, 4 + len) == be32(p + pos + 8 + len);
        if (memcmp(type, "IHDR", 4) == 0) ihdr_ok = be32(type + 4) == (uint32_t)im->width && be32(type + 8) == (uint32_t)im->height && type[12] == 8 && type[13] == 2;
        if (memcmp(type, "IDAT", 4) == 0) memcpy(idat + idat_len, type + 4, len), idat_len += len;
        if (memcmp(type, "IEND", 4) == 0) iend = 1;
        pos += 12 + len, chunks++;
    }
    if (!ok) strcpy(why, "bad signature or chunk CRC");
    else if (!ihdr_ok || !iend || pos != png->len) ok = 0, strcpy(why, "IHDR, IEND or file length wrong");
    size_t raw_len = (1 + (size_t)3 * im->width) * im->height, got = 0, at = 2;
    uint8_t *raw = xcalloc(raw_len + 1, 1);
    int last = 0;
    if (ok && (idat[0] != 0x78 || (idat[0] * 256 + idat[1]) % 31 != 0)) ok = 0, strcpy(why, "zlib header");
    while (ok && !last && at + 5 <= idat_len) { /* stored blocks: BFINAL/BTYPE, LEN, NLEN, data */
        last = idat[at] & 1;
        unsigned len = idat[at + 1] | idat[at + 2] << 8, nlen = idat[at + 3] | idat[at + 4] << 8;
        if ((idat[at] & 6) != 0 || (len ^ 0xFFFFu) != nlen || got + len > raw_len) ok = 0, strcpy(why, "stored block header");
        else memcpy(raw + got, idat + at + 5, len), got += len, at += 5 + len;
    }
    uint32_t a = 1, s = 0;
    for (size_t i = 0; i < got; i++) a = (a + raw[i]) % 65521, s = (s + a) % 65521;
    if (ok && (got != raw_len || at + 4 != idat_len || be32(idat + at) != (s << 16 | a))) ok = 0, strcpy(why, "length or Adler-32");
    for (int y = 0; ok && y < im->height; y++) {
        const uint8_t *row = raw + y * (1 + (size_t)3 * im->width);
        if (row[0] != 0 || memcmp(row + 1, im->rgb + (size_t)3 * y * im->width, (size_t)3 * im->width) != 0) ok = 0, strcpy(why, "pixels");
    }
    free(idat), free(raw);
    return ok;
}

static void test_png(void) {
    int sizes[2][2] = {{5, 3}, {200, 150}}; /* the second needs two stored blocks */
    for (int s = 0; s < 2; s++) {
        Image im = {sizes[s][0], sizes[s][1], NULL, xcalloc((size_t)3 * sizes[s][0] * sizes[s][1], 1)};
        for (int i = 0; i < 3 * im.width * im.height; i++) im.rgb[i] = (uint8_t)(i * 37 + s);
        Buf png = {0};
        png_encode(&png, &im);
        char why[64] = "";
        check(png_verify(&png, &im, why), "PNG %dx%d: CRCs, stored blocks, Adler-32, size and pixels verified independently %s", im.width, im.height, why);
        buf_free(&png);
        image_free(&im);
    }
}

#ifdef GRIDSSL_DOUBLE
/* ---- gradients (gridssl.c section 4): central differences, every block, every term, both readings. */
static void test_gradcheck(void) {
    double max_rel;
    FILE *sink = fopen("tests/gradcheck_f64.txt", "w");
    int failures = gradcheck_run(sink ? sink : stdout, 1e-5, 1e-6, &max_rel);
    if (sink) fclose(sink);
    check(failures == 0, "gradcheck: 84 blocks (12 term/capacity/reduction/permute cases x 7 parameter blocks), "
                         "largest relative error %.2e <= 1e-6 (table in tests/gradcheck_f64.txt)", max_rel);
}
#endif

/* ---- the supervised baselines' pieces (section 5): tanh, the arenas, the walks, the place cells. */
static void test_baselines(void) {
    /* tanh from gs_exp: odd, exact at 0, tanh(ln 3) = (9 - 1)/(9 + 1) = 0.8, saturating without overflow */
    double t = gs_tanh(1.0986122886681098); /* ln 3 */
    check(gs_tanh(0) == 0 && gs_tanh(-0.7) == -gs_tanh(0.7) && fabs(t - 0.8) < 4e-16 && gs_tanh(800) == 1 && gs_tanh(-800) == -1,
          "gs_tanh: odd, tanh(0) = 0, tanh(ln 3) = 0.8 (error %.1e), +-1 at +-800", fabs(t - 0.8));
    /* arenas 2 m wide: the square's corners are in, a hexagon's corner (1, 0) is in and (1, 0.01) is not;
     * the triangle's apex (0, sqrt(3)/2) is in and its bottom corners' outside neighbours are not */
    int in_ok = arena_contains(ARENA_SQUARE, 2, 1, -1) && !arena_contains(ARENA_SQUARE, 2, 1.001, 0) &&
                arena_contains(ARENA_HEXAGON, 2, 1, 0) && !arena_contains(ARENA_HEXAGON, 2, 1, 0.01) &&
                arena_contains(ARENA_HEXAGON, 2, 0.5, 0.866) && !arena_contains(ARENA_HEXAGON, 2, 0, 0.87) &&
                arena_contains(ARENA_TRIANGLE, 2, 0, 0.866) && !arena_contains(ARENA_TRIANGLE, 2, 0.3, 0.5) &&
                arena_contains(ARENA_TRIANGLE, 2, -0.99, -0.865) && !arena_contains(ARENA_TRIANGLE, 2, 0, -0.867);
    check(in_ok, "arena_contains: corners of the square, hexagon and triangle in, points just beyond an edge out");
    /* Cueva & Wei's walks never leave the arena, and stand still on about cw_still of the steps */
    Config c;
    config_defaults(&c);
    c.cw_still = 0.5, c.cw_speed = 0.3, c.cw_turn_sd = 0.3;
    int S = 20000;
    real *input = xcalloc((size_t)S * 3, sizeof(real)), *vel = xcalloc((size_t)S * 2, sizeof(real)), *pos = xcalloc((size_t)S * 2, sizeof(real));
    for (int arena = ARENA_SQUARE; arena <= ARENA_TRIANGLE; arena++) {
        Rng rng = rng_seed(12, STREAM_CHECK);
        cw_walk(input, vel, pos, &rng, &c, arena, 1.0, S);
        int outside = 0, still = 0;
        double reach = 0;
        for (int k = 0; k < S; k++) {
            outside += !arena_contains(arena, 1.0 + 1e-6, pos[2 * k], pos[2 * k + 1]);
            still += input[3 * k] == 0;
            reach = fabs(pos[2 * k]) > reach ? fabs(pos[2 * k]) : reach;
        }
        check(outside == 0 && fabs(still / (double)S - 0.5) < 0.02 && reach > 0.45,
              "cw_walk in arena %d: %d of %d steps outside, %.3f still (cw_still 0.5), reaches |x| = %.3f of 0.5", arena, outside,
              S, still / (double)S, reach);
    }
    /* Sorscher et al.'s walks turn away from the walls. Their generator lets a walk creep past a wall
     * (the turn comes a step late and the random turn can point it back in); rarely, and not far */
    real start[2];
    Rng rng = rng_seed(13, STREAM_CHECK);
    sorscher_walk(start, vel, pos, &rng, 1.0, 0.5, S);
    double beyond = 0, mean_step = 0;
    int outside = 0;
    for (int k = 0; k < S; k++) {
        double b = (fabs(pos[2 * k]) > fabs(pos[2 * k + 1]) ? fabs(pos[2 * k]) : fabs(pos[2 * k + 1])) - 0.5;
        beyond = b > beyond ? b : beyond;
        outside += b > 0;
        mean_step += sqrt((double)vel[2 * k] * vel[2 * k] + (double)vel[2 * k + 1] * vel[2 * k + 1]) / S;
    }
    check(outside < S / 20 && beyond < 0.1 && fabs(mean_step - 0.8168140899333463 * 0.02 * 1.2533141373155) < 0.003,
          "sorscher_walk: %d of %d steps past a wall of the 1 m box, at most %.3f m; mean step %.4f m (Rayleigh mean 0.0205, "
          "quartered near walls)", outside, S, beyond, mean_step);
    free(input), free(vel), free(pos);
    /* place cells: the code sums to 1, is >= 0, and peaks at the centre nearest the position */
    c.place_cells = 50, c.arena_size = 2, c.place_sigma = 0.12, c.place_surround = 2;
    real *centres = xcalloc(100, sizeof(real)), *p = xcalloc(50, sizeof(real));
    double *scratch = xcalloc(100, sizeof(double));
    place_centres(centres, &c);
    int peaks_ok = 1;
    double worst_sum = 0;
    for (int j = 0; j < 50; j++) {
        place_code(p, centres[2 * j], centres[2 * j + 1], centres, &c, scratch);
        double sum = 0;
        int top = 0, negative = 0;
        for (int k = 0; k < 50; k++) sum += p[k], top = p[k] > p[top] ? k : top, negative += p[k] < 0;
        worst_sum = fabs(sum - 1) > worst_sum ? fabs(sum - 1) : worst_sum;
        peaks_ok &= top == j && !negative;
    }
    check(peaks_ok && worst_sum < 1e-6, "place_code at each of 50 centres: >= 0, peaks at that centre, sums to 1 (worst %.1e)", worst_sum);
    free(centres), free(p), free(scratch);
}

int main(void) {
    printf("# unit tests, real = %s\n", sizeof(real) == 4 ? "float" : "double");
    test_pcg32_reference();
    test_checksums();
    test_little_endian();
    test_portable_math();
    test_normrelu();
    test_batch_invariants();
    test_velocity_distributions();
    test_closed_forms();
    test_fast_kernels();
    test_pair_backward_precision();
    test_optimiser();
    test_config();
    test_checkpoint_roundtrip();
    test_npy_header();
    test_autocorrelogram();
    test_grid_scores();
    test_modules();
    test_fourier_symmetry_and_fields();
    test_border_score();
    test_baselines();
    test_state_space();
    test_npy_reader();
    test_png();
#ifdef GRIDSSL_DOUBLE
    test_gradcheck();
#else
    printf("# the gradient check runs in tests/unit_f64 (double precision)\n");
#endif
    printf("# %d passed, %d failed\n", n_passed, n_failed);
    return n_failed != 0;
}
