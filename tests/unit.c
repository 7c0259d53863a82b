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

/* ---- NormReLU (SPEC §2) */
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
    int64_t dead = rnn_forward(zz, gg, nn, g0, Wv, index, B, T, N);
    check(dead == B * T, "rnn_forward counts dead states (%lld of %d)", (long long)dead, B * T);
}

/* ---- data invariants (SPEC §1) */
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
            check(!permutations || !same_multiset, "permute=0: trajectories no longer share their velocities");
        }
        batch_free(&bt);
    }
}

/* ---- closed forms for each loss term (SPEC §3), on hand-made states of N = 2 units.
 * States and positions:
 *     g1 = (1, 0) at (0, 0);   g2 = (0, 1) at (1, 0);   g3 = (0.6, 0.8) at (0, 0.03)
 * Pairs (sigma_x = 0.05, sigma_g = 0.4, so 2 sigma_g^2 = 0.32):
 *     (1,2): dx = 1 far,          dg^2 = 2                         -> e = exp(-2/0.32) = exp(-6.25)
 *     (1,3): dx = 0.03 near,      dg^2 = 0.4^2 + 0.8^2 = 0.8
 *     (2,3): dx = 1.00045 far,    dg^2 = 0.6^2 + 0.2^2 = 0.4      -> e = exp(-0.4/0.32) = exp(-1.25)
 * so  L_sep = (exp(-6.25) + exp(-1.25)) / 2,  L_inv = 0.8 / 1,
 *     L_cap(kernel) = -(2 / (3*2)) (exp(-6.25) + exp(-2.5) + exp(-1.25))   [dg^2 = 0.8 -> exp(-2.5)]
 *     L_cap(meannorm) = -|(1.6/3, 1.8/3)|^2 = -(2.56 + 3.24)/9 = -5.8/9.
 * Isometry, one trajectory of T = 3 from g0 = (1, 0), iso_vmax = 0.05:
 *     step 1: g = (0, 1), v = (2^-6, 0)    -> s = sqrt(2) / 2^-6 = 64 sqrt(2)
 *     step 2: g = (0, 1), v = (0, 2^-5)    -> s = 0
 *     step 3: g = (0.6, 0.8), v = (0.1, 0) -> |v| >= iso_vmax, left out
 *     L_iso = Var{64 sqrt(2), 0} = (64 sqrt(2) / 2)^2 = 2048.
 * The expected values use the C library's exp, not gridssl's. */
static void test_closed_forms(void) {
    real g[6] = {1, 0, 0, 1, (real)0.6, (real)0.8}, pos[6] = {0, 0, 1, 0, 0, (real)0.03};
    double tol = sizeof(real) == 4 ? 1e-6 : 1e-13;
    PairSums ps = pair_losses_forward(g, pos, 3, 2, 0.05, 0.4);
    check(ps.n_far == 2 && ps.n_near == 1, "pair classes: 2 far, 1 near");
    double sep = ps.sep_sum / ps.n_far, inv = ps.inv_sum / ps.n_near;
    check(close_rel(sep, (exp(-6.25) + exp(-1.25)) / 2, tol), "L_sep = (e^-6.25 + e^-1.25)/2 = %.9f", sep);
    check(close_rel(inv, 0.8, tol), "L_inv = 0.8 (%.9f)", inv);
    double ker = -(2.0 / 6.0) * ps.ker_sum;
    check(close_rel(ker, -(exp(-6.25) + exp(-2.5) + exp(-1.25)) / 3, tol), "L_cap(kernel) = -(e^-6.25 + e^-2.5 + e^-1.25)/3 = %.9f", ker);
    double mean[2];
    double cap = meannorm_forward(mean, g, 3, 2);
    check(close_rel(cap, -5.8 / 9, tol), "L_cap(meannorm) = -5.8/9 = %.9f", cap);
    real g0[2] = {1, 0}, gs[6] = {0, 1, 0, 1, (real)0.6, (real)0.8};
    real vel[6] = {(real)0.015625, 0, 0, (real)0.03125, (real)0.1, 0};
    int32_t index[3] = {0, 1, 2};
    double s[3];
    int64_t count;
    double iso = isometry_forward(s, &count, gs, g0, vel, index, 1, 3, 2, 0.05);
    check(count == 2 && close_rel(iso, 2048, 1e-13), "L_iso = Var{64 sqrt 2, 0} = 2048 over 2 steps (%.12g, %lld steps)", iso, (long long)count);
}

/* ---- config: the built-in defaults are data/default.cfg, and values round-trip through text. */
static void test_config(void) {
    Config builtin, from_file, round_trip;
    config_defaults(&builtin);
    config_defaults(&from_file);
    Buf text = {0};
    Err err;
    int read_ok = read_file("data/default.cfg", &text, &err) == 0;
    buf_put(&text, "", 1);
    int parse_ok = read_ok && config_parse_text(&from_file, (const char *)text.data, "data/default.cfg", &err) == 0;
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
    buf_put(&text, "", 1);
    config_defaults(&round_trip);
    int ok = config_parse_text(&round_trip, (const char *)text.data, "round trip", &err) == 0;
    check(ok && memcmp(&builtin, &round_trip, sizeof builtin) == 0, "every key survives print -> parse exactly");
    check(config_parse_text(&round_trip, "N = 12x\n", "t", &err) != 0 && strstr(err.msg, "not a finite number"),
          "malformed number rejected: %s", err.msg);
    check(config_parse_text(&round_trip, "B = -4\n", "t", &err) != 0 && strstr(err.msg, "out of range"),
          "out-of-range value rejected: %s", err.msg);
    check(config_parse_text(&round_trip, "B = 2.5\n", "t", &err) != 0 && strstr(err.msg, "not an integer"),
          "fractional integer rejected: %s", err.msg);
    check(config_parse_text(&round_trip, "capacity = entropy\n", "t", &err) != 0 && strstr(err.msg, "meannorm|kernel"),
          "unknown enum value rejected: %s", err.msg);
    buf_free(&text);
}

/* ---- checkpoint: encode -> load -> encode gives the same bytes; corruption is caught. */
static void test_checkpoint_roundtrip(void) {
    Config c;
    config_defaults(&c);
    c.N = 5, c.hidden = 7, c.B = 3, c.T = 4;
    Model m, m2;
    TrainState s = {0}, s2;
    model_build(&m, c.N, c.hidden);
    Rng rng = rng_seed(9, STREAM_INIT);
    model_init(&m, &c, &rng);
    for (size_t i = 0; i < m.num_params; i++) m.adam_m[i] = (real)i, m.adam_v[i] = (real)(1.0 / (i + 1));
    s.step = 12345, s.data_rng = rng_seed(1, 2), s.lr = 1e-3, s.loss_ema = -0.5, s.best = -0.75;
    s.bad_steps = 17, s.ema_steps = 12345, s.beta1_pow = 0.25, s.beta2_pow = 0.5;
    Buf a = {0}, b = {0};
    checkpoint_encode(&a, &m, &s, &c);
    Err err;
    const char *path = "tests/tmp_roundtrip.bin";
    int ok = write_file_atomic(path, a.data, a.len, &err) == 0 && checkpoint_load(path, &m2, &s2, &c, &err) == 0;
    if (ok) checkpoint_encode(&b, &m2, &s2, &c);
    check(ok && a.len == b.len && memcmp(a.data, b.data, a.len) == 0, "checkpoint encode -> load -> encode is byte-identical");
    if (ok) model_free(&m2);
    a.data[a.len / 2] ^= 0x10;
    ok = write_file_atomic(path, a.data, a.len, &err) == 0 && checkpoint_load(path, &m2, &s2, &c, &err) != 0;
    check(ok && strstr(err.msg, "CRC-32"), "a flipped bit is caught: %s", err.msg);
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

#ifdef GRIDSSL_DOUBLE
/* ---- gradients (SPEC §3): central differences, every block, every term, both readings. */
static void test_gradcheck(void) {
    double max_rel;
    FILE *sink = fopen("tests/gradcheck_f64.txt", "w");
    int failures = gradcheck_run(sink ? sink : stdout, 1e-5, 1e-6, &max_rel);
    if (sink) fclose(sink);
    check(failures == 0, "gradcheck: 84 blocks (12 term/capacity/reduction/permute cases x 7 parameter blocks), "
                         "largest relative error %.2e <= 1e-6 (table in tests/gradcheck_f64.txt)", max_rel);
}
#endif

int main(void) {
    printf("# unit tests, real = %s\n", sizeof(real) == 4 ? "float" : "double");
    test_pcg32_reference();
    test_checksums();
    test_little_endian();
    test_portable_math();
    test_normrelu();
    test_batch_invariants();
    test_closed_forms();
    test_config();
    test_checkpoint_roundtrip();
    test_npy_header();
#ifdef GRIDSSL_DOUBLE
    test_gradcheck();
#else
    printf("# the gradient check runs in tests/unit_f64 (double precision)\n");
#endif
    printf("# %d passed, %d failed\n", n_passed, n_failed);
    return n_failed != 0;
}
