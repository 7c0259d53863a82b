/* gridssl - v0.1.0 - MIT license (see end of file)
 *
 * Self-supervised learning of representations for space, in one C file: the recipe that makes a
 * recurrent network grow grid cells (Schaeffer, Khona, Ma, Eyzaguirre, Koyejo, Fiete, NeurIPS 2023,
 * arXiv 2311.02316), written to be read top to bottom and to give the same bytes on every machine,
 * with the two supervised models it answers (Cueva & Wei, ICLR 2018; Sorscher, Mel, Ganguli & Ocko,
 * NeurIPS 2019) trained, checked and analysed the same way.
 * The method is written beside its code: each section's banner states the equations it implements
 * and the paper's figure or table they come from, and METHOD NOTES below say what gridssl chose
 * where the paper is silent, and why. "Section n" means a numbered section of this file.
 *
 * BUILD
 *     make                 ./gridssl (float; trains) and ./gridssl_f64 (double; gradient check), with
 *                          -O3 -march=native and the determinism flags; libc, libm and pthreads only
 *     make test            unit tests (float and double builds) and command-line tests
 *     make crosscheck      numpy recomputes dumped batches (python3-numpy; not needed by make test)
 *     make portability     the determinism matrix: compilers, libcs, CPUs under qemu, Windows under wine
 *     make bench           seconds per step, per phase, against the same step in PyTorch
 *
 * USAGE (every command takes --threads N, default: all cores; the bytes never depend on it)
 *     gridssl train [--config FILE] [key=value ...] [--out DIR] [--resume FILE]
 *         Trains the config's model: SIC (model = sic, the default) or a supervised baseline (model = cw,
 *         model = sorscher: data/cw.cfg, data/sorscher.cfg). Without --config the built-in defaults
 *         (= data/default.cfg) are used;
 *         key=value arguments override the file. The resolved config is printed on stdout and saved as
 *         DIR/config.txt; progress goes to stderr every log_every steps; DIR/log.tsv records the loss
 *         terms; DIR/checkpoint.bin is written every save_every steps and at the end. --resume FILE
 *         continues a checkpoint bit-exactly (its config, overridable by key=value, e.g. steps=; lr= also
 *         resets the current learning rate, which otherwise continues where the scheduler left it).
 *         DIR defaults to "out".
 *     gridssl eval CHECKPOINT [--box 2,3,4] [--out DIR] [eval_key=value ...]
 *         Walks the trained network through square boxes (section 8) and analyses every unit (section 9).
 *         A baseline walks as it was trained, in arenas of its shape: by default its arena's width and
 *         1.5 and 2 times it (box_<width>m).
 *         Per box, in DIR/box_<L>m: ratemaps.npy (<f4, shape (N, n, n), NaN = unvisited bin),
 *         unit_NNN.pgm, montage.pgm, montage.png/.ppm (colour, sorted by module then phase or score,
 *         each tile labelled "unit score60 M<module>"), sac_NNN.pgm, autocorrelograms.pgm,
 *         period_histogram.png, fourier.png (each unit's 2-D Fourier power, same order, labelled
 *         "unit a6"), scores.csv, summary.json, and per module of >= 6 units
 *         state_space_module_K.png and phases_module_K.png (section 9); and DIR/generalisation.csv.
 *         Only eval_* keys may be overridden. DIR: "<checkpoint dir>/eval".
 *     gridssl score RATEMAPS.npy --box METRES [--out DIR]
 *         The same analysis on (units, n, n) ratemaps from any source ('<f4' or '<f8', NaN = unvisited).
 *     gridssl dump CHECKPOINT DIR
 *         Draws the batch the checkpoint would train on next and writes every array of it as .npy:
 *         velocities, index (the permutations), positions, g0, g, each parameter and its gradient,
 *         L_dir's probe velocities when it is on (dir_velocities), the loss terms (losses.txt,
 *         losses.npy) and config.txt. tests/crosscheck.py recomputes them.
 *         For a baseline: its inputs, positions, starts, noise or place cells, states, readout,
 *         parameters, gradients, losses.txt and config.txt; tests/basecheck.py recomputes them.
 *     gridssl bench [--config FILE] [key=value ...] [--steps K]
 *         Times K training steps of the config's model: median seconds per step; for SIC each phase's share, GFLOP/s and share of
 *         the measured peak, peak memory.
 *     gridssl gradcheck
 *         Central finite differences against the hand-written gradients, for every parameter block,
 *         every loss term alone and the total, both capacity readings, both reductions, with and
 *         without permutations, L_sep over every far pair and within sep_rmax, and the baselines' (each
 *         cost, ReLU and linear): tolerance 1e-6, in the double build (./gridssl_f64 gradcheck).
 *     gridssl --help | --version
 *
 * FILE FORMATS (all binary data little-endian, whatever the host)
 *     checkpoint.bin  "GRIDSSL\x1a", u32 format version, u32 bytes per real, u32 n + n bytes of
 *                     resolved config text, u64 step, u64 PCG32 state + increment, scheduler (f64 lr,
 *                     f64 ema, f64 best, u64 bad steps, u64 ema steps), f64 beta1^t and beta2^t,
 *                     u64 num_params, then params, Adam m, Adam v (num_params reals each), then the
 *                     CRC-32 (IEEE 802.3, as zlib) of everything before it.
 *     *.npy           NumPy format 1.0, '<f4' / '<f8' / '<i4', C order.
 *     *.pgm, *.ppm    8-bit binary P5 / P6. Unvisited bins are 0 (black); visited bins are min-max
 *                     normalised to 1..255.
 *     *.png           RGB, 8 bits, stored (uncompressed) deflate blocks, CRC-32 and Adler-32.
 *
 * ERRORS AND OUTPUTS
 *     A command that fails exits 1 with one line on stderr, "gridssl: error: ...", and leaves nothing
 *     behind: inputs (config, checkpoint, .npy) are validated field by field and every buffer's size
 *     is checked before anything is allocated or written; files are written as NAME.tmp and renamed
 *     into place only when the whole command has succeeded (see "outputs" in section 7). train
 *     commits config.txt, log.tsv and checkpoint.bin together at each checkpoint, so a train that fails
 *     later (a full disk, a diverged loss) keeps its last checkpoint. make fuzz checks all of this.
 *
 * METHOD NOTES
 *     The paper (its Fig. 3 and hyperparameter table) fixes the data, the network, the four losses
 *     and sigma_x = 0.05 m, sigma_g = 0.4, lambda_sep 1, lambda_inv 0.1, lambda_cap 0.5, AdamW with
 *     lr 2e-5, clip 0.1, 2 accumulated batches and 2e6 steps (data/paper.cfg). Where it is silent the
 *     config key marks the choice "AMBIGUOUS" (--help, README) and this is what gridssl does:
 *     hidden = 256           the MLP's width is not given; 256 costs little beside the N*N-wide last
 *                            layer, and 512 changed nothing on the seed tried (H512_s1 in recipes.tsv).
 *     reduction = mean       the paper writes sums over pairs; at its M = 7800 states a sum holds ~3e7
 *                            pairs and would drown the O(1) capacity and isometry terms, whose effect
 *                            the paper's ablations (Fig. 7) show. Means keep all four terms O(1);
 *                            reduction = sum is the literal reading.
 *     capacity = meannorm    L_cap = -|mean g|^2; on the unit sphere this is (1/2M^2) sum_ij |g_i-g_j|^2
 *                            - 1, the pull of the whole code together that the paper describes.
 *                            capacity = kernel (minus the mean Gaussian kernel) is offered as a variant.
 *     lambda_cap = 1         twice the paper's 0.5 (data/paper.cfg keeps 0.5). With the separation
 *                            window below, the capacity weight sets how many units the finer of the two
 *                            modules takes: a second module of at least 10 units in 15 of seeds 1-20
 *                            at 1, in 9 at 0.5 (data/recipes.md, "The second module with the window"),
 *                            as the paper's ablation, where capacity makes the modules, would have it.
 *     lambda_iso = 0.01      not in the paper's table. At weight 1 from the first step the isometry
 *                            term (~100 times the others at initialisation) collapsed small networks
 *                            within ~250 steps in a PyTorch prototype; ramped to 0.1, gridssl's runs
 *                            grew no lattice or only a few grid-like units (disc_default, isomin02_s4,
 *                            isomin02np_s2 in recipes.tsv): a variance is also lowered by making every
 *                            step small. So gridssl ramps it in (iso_start, iso_ramp_steps) to 0.01.
 *     iso_vmax = 0.1         the paper applies isometry to small steps; gridssl's reading is steps
 *                            shorter than iso_vmax (paper.cfg: sigma_x = 0.05). The default band
 *                            5-10 cm holds ~7 of a batch's 20 distinct velocities (2-5 cm held ~2).
 *     plateau_factor 0.5, plateau_patience 1000, plateau_ema 0.99: the paper names ReduceLROnPlateau
 *                            but not its settings; these are PyTorch-like values on a smoothed loss
 *                            (the raw loss of one batch is too noisy to watch). The default turns the
 *                            scheduler off (factor 1): the isometry ramp raises the loss by design and
 *                            the scheduler read that as a plateau, cutting the rate 4-32 times.
 *     eval_*                 the paper evaluates on smooth walks without giving their generator,
 *                            counts or bins. gridssl walks from the centre (where g0 sits) with a
 *                            heading random walk (sd 0.3 rad/step), Rayleigh speeds (mean 6 cm,
 *                            clipped at 15 cm) and reflecting walls; 1000 walks of 3 T steps in 5 cm
 *                            bins of a 2 m box. Walks much longer than T let path integration drift,
 *                            which smears lattices and can raise score60 without any real tuning
 *                            (one network's median score60 went from -0.22 at 60 steps to +0.54 at
 *                            500), hence 3 T and the early/late stability beside every score.
 *     gridssl's additions (data/paper.cfg leaves every one off):
 *     vel_dist = disc        velocities uniform in a disc instead of the paper's square, whose 4-fold
 *                            symmetry may favour square lattices: with it the seed tried grew
 *                            axis-aligned squares (square_noiso: 53 of 64 units square-like), and
 *                            every hexagonal network of the default grew with the disc.
 *     vel_dist = speed       uniform speed and heading, for experiments.
 *     init_last_scale        scales the MLP's last layer at initialisation (1: PyTorch's default).
 *     iso_vmin = 0.05        isometry skips steps slower than this: |dg|/|v| divides by almost nothing
 *                            as |v| -> 0, and without a floor a few near-zero steps owned the term
 *                            (L_iso of 100-1000 where the typical value is ~1).
 *     iso_start, iso_ramp_steps   the isometry ramp above (3000 steps in the default).
 *     lambda_dist, dist_scale, dist_rmax   L_dist (section 4): isometry at a fixed scale s over far
 *                            pairs closer than dist_rmax (Xu et al., ICLR 2025), ramped in with L_iso;
 *                            tested as a lever on the lattice type, off in the default (data/recipes.md).
 *     sep_rmax = 0.65        L_sep over the far pairs closer than sep_rmax only (section 4; 0: every far
 *                            pair, the paper's): a code may repeat itself beyond it at no cost, so the
 *                            lattice packs discs of radius sep_rmax, densest when hexagonal. With it the
 *                            default grows hexagons in all of seeds 1-20 (full runs), without it in 3
 *                            (data/recipes.md, "Separation over a finite range"); 0.65 rather than 0.5
 *                            grows a second module beside the main one (data/recipes.md, "The second
 *                            module with the window"); at 0.68 squares come back in 2 of seeds 1-10.
 *     lambda_sparse          L_sparse (section 4): the states' mean L1 norm, a pressure towards few active
 *                            units from the first step; tested as a lever too, off in the default.
 *     lambda_dir, dir_speed, dir_headings, dir_states   L_dir (section 4): from one state, steps of
 *                            one length in evenly spaced headings should move the code alike (Gao et
 *                            al., NeurIPS 2021), ramped in with L_iso; a lever on the lattice type, off.
 *     lr_drop_step, lr_drop_factor   one drop of the learning rate (x0.1 at step 10 000 in the
 *                            default): the lattice settles and stops drifting over long walks.
 *     plateau_threshold, min_lr      the scheduler's details (PyTorch's 1e-4; no floor).
 *     The default (data/default.cfg) is a CPU-sized recipe found by measurement (data/recipes.tsv),
 *     not the paper's scale: N 64, H 256, B 32, T 20, 14 000 steps at lr 3e-4 then 3e-5, sep_rmax 0.65,
 *     lambda_cap 1.
 *     The baselines (section 5) follow their papers where they are specific (data/cw_paper.cfg,
 *     data/sorscher_paper.cfg) and say what gridssl chose where they are not (the cw_* keys, the
 *     input encoding, Adam for Cueva & Wei's Hessian-free); data/cw.cfg and data/sorscher.cfg are
 *     CPU-sized runs (ref_outputs/baselines/README.md: what they grow, and what they cost).
 *
 * DETERMINISM
 *     Same config and seed give the same bytes on every conforming platform: no libm transcendental
 *     (gs_exp, gs_log, gs_sin, gs_cos, gs_atan2 below use + - * / and sqrt only), an integer PRNG,
 *     every reduction in one fixed order (stated beside it) whatever the number of threads,
 *     -ffp-contract=off, SSE2 rather than x87, float arithmetic in float, and explicit little-endian
 *     files. The tests compare SHA-256 hashes of the outputs across builds, threads and machines.
 *
 * SECTIONS (in the order of the method; the machinery it leans on comes last, in appendices)
 *     1 config   2 data   3 model (and the plain kernels)   4 losses   5 the supervised baselines
 *     6 training step and optimiser   7 files: outputs, .npy, .pgm, checkpoint   8 evaluation
 *     9 grid analysis   10 gradient check   11 command line
 *     A portable math and the PRNG   B checksums   C threads and the fast kernels   D images
 */
#if defined(_WIN32) && !defined(__USE_MINGW_ANSI_STDIO)
#define __USE_MINGW_ANSI_STDIO 1 /* mingw's C99 printf (%zu, %lld, exact %.17g), not msvcrt's */
#elif !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* clock_gettime, mkdir */
#endif
#include <errno.h>
#include <float.h>
#include <math.h> /* sqrt, fabs and floor only: IEEE-754 requires them to be exact (correctly rounded) */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <pthread.h> /* POSIX threads; mingw-w64 provides them too (winpthreads) */
#ifndef _WIN32
#include <unistd.h>    /* sysconf: the number of cores; rmdir */
#endif
#ifdef _WIN32
#include <direct.h>   /* _mkdir, _rmdir */
#include <sys/timeb.h> /* _ftime64: msvcrt has no timespec_get */
#endif

#include "gridssl.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* clang contracts a*b+c by default; gcc obeys -ffp-contract=off */
#endif

/* Determinism guards (DETERMINISM above): refuse builds whose floating point is not plain IEEE binary32/64. */
#if defined(__TINYC__) && defined(__x86_64__)
/* tcc's float.h omits FLT_EVAL_METHOD; on x86-64 tcc computes float and double in SSE registers. */
#elif !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "gridssl needs FLT_EVAL_METHOD == 0 (no excess precision): on 32-bit x86 build with -msse2 -mfpmath=sse (never x87); with gcc on s390x add -fexcess-precision=fast (its C11 mode evaluates float in double)."
#endif
#if defined(__FAST_MATH__)
#error "gridssl must not be built with -ffast-math: it breaks bit-for-bit reproducibility."
#endif
#if FLT_RADIX != 2 || FLT_MANT_DIG != 24 || DBL_MANT_DIG != 53
#error "gridssl needs IEEE-754 binary32 and binary64."
#endif

/* ----------------------------------------------------------------------------------------------
 * Errors. Functions that can fail take an Err*, fill it with one line that names the problem and
 * return -1; only main() prints. Running out of memory is the one fatal error (like llm.c's
 * mallocCheck): it exits at once with the size that failed.
 */
typedef struct { char msg[600]; } Err;

static int fail(Err *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    for (char *p = err->msg; *p; p++) /* one line, whatever bytes the quoted input held */
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return -1;
}

static void *xcalloc(size_t count, size_t size) {
    if (count == 0) count = 1;
    if (size != 0 && count > SIZE_MAX / size) {
        fprintf(stderr, "gridssl: error: allocation of %zu x %zu bytes overflows\n", count, size);
        exit(1);
    }
    void *p = calloc(count, size);
    if (!p) {
        fprintf(stderr, "gridssl: error: out of memory allocating %zu bytes\n", count * size);
        exit(1);
    }
    return p;
}

/* Wall-clock seconds, for progress lines and gridssl bench only (never in any output file). */
static double now_seconds(void) {
#ifdef _WIN32
    struct __timeb64 t;
    _ftime64(&t);
    return (double)t.time + t.millitm * 1e-3;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
#endif
}

/* A growing byte buffer: files are built in memory, then written in one go (see out_file)
 * so that a failure never leaves half a file. Numbers go in explicitly little-endian. */
typedef struct { uint8_t *data; size_t len, cap; } Buf;

static void buf_put(Buf *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d) {
            fprintf(stderr, "gridssl: error: out of memory growing a buffer to %zu bytes\n", cap);
            exit(1);
        }
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void buf_printf(Buf *b, const char *fmt, ...) {
    char tmp[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    buf_put(b, tmp, n < 0 ? 0 : (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void buf_u32(Buf *b, uint32_t x) {
    uint8_t le[4] = {(uint8_t)x, (uint8_t)(x >> 8), (uint8_t)(x >> 16), (uint8_t)(x >> 24)};
    buf_put(b, le, 4);
}

static void buf_u64(Buf *b, uint64_t x) {
    buf_u32(b, (uint32_t)x);
    buf_u32(b, (uint32_t)(x >> 32));
}

static void buf_f32(Buf *b, float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if (x != x) u = 0x7fc00000u; /* one NaN for every platform (x86 makes 0xffc00000) */
    buf_u32(b, u);
}

static void buf_f64(Buf *b, double x) {
    uint64_t u;
    memcpy(&u, &x, 8);
    if (x != x) u = 0x7ff8000000000000ull;
    buf_u64(b, u);
}

static void buf_real(Buf *b, real x) {
    if (sizeof(real) == 4) buf_f32(b, (float)x);
    else buf_f64(b, (double)x);
}

static void buf_free(Buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* Little-endian reader over a byte range; reading past the end sets short_read. */
typedef struct { const uint8_t *p; size_t len, pos; int short_read; } Rd;

static const uint8_t *rd_bytes(Rd *r, size_t n) {
    if (r->short_read || n > r->len - r->pos) {
        r->short_read = 1;
        return NULL;
    }
    r->pos += n;
    return r->p + r->pos - n;
}

static uint32_t rd_u32(Rd *r) {
    const uint8_t *b = rd_bytes(r, 4);
    return b ? (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24 : 0;
}

static uint64_t rd_u64(Rd *r) {
    uint64_t lo = rd_u32(r);
    return lo | (uint64_t)rd_u32(r) << 32;
}

/* An int64 written as its two's-complement u64 (the conversion avoids implementation-defined casts). */
static int64_t rd_i64(Rd *r) {
    uint64_t u = rd_u64(r);
    return u > INT64_MAX ? -(int64_t)~u - 1 : (int64_t)u;
}

static double rd_f64(Rd *r) {
    uint64_t u = rd_u64(r);
    double x;
    memcpy(&x, &u, 8);
    return x;
}

static real rd_real(Rd *r) {
    if (sizeof(real) == 8) return (real)rd_f64(r);
    uint32_t u = rd_u32(r);
    float x;
    memcpy(&x, &u, 4);
    return (real)x;
}

#define PI 3.14159265358979323846
#define CW_INPUTS 3 /* Cueva & Wei's input channels: speed, cos and sin of the heading (section 5) */

/* ----------------------------------------------------------------------------------------------
 * What the method leans on - portable math, the PRNG, checksums, threads, the fast twins of the
 * kernels and the image writers - is in appendices A to D at the end of the file, so that the
 * sections below read in the order of the method. These declarations let them call it.
 */
/* A. portable math (exactly the same bits on every machine) and the PCG32 generator */
static inline double gs_exp(double x);
static double gs_log(double x);
static double gs_sin(double x);
static double gs_cos(double x);
static double gs_atan2(double y, double x);
static inline double gs_nan(void);
static inline double gs_inf(void);
static double one_nan(double x);
enum { STREAM_INIT = 1, STREAM_DATA = 2, STREAM_EVAL = 3, STREAM_CHECK = 4, STREAM_PLACE = 5 }; /* a PCG32 stream per purpose */
static Rng rng_seed(uint64_t initstate, uint64_t initseq);
static uint32_t rng_u32(Rng *rng);
static uint32_t rng_below(Rng *rng, uint32_t bound);
static double rng_uniform(Rng *rng);
static double rng_normal(Rng *rng);
static void rng_shuffle(Rng *rng, int32_t *a, int n);
/* B. checksums */
static uint32_t crc32_update(uint32_t crc, const uint8_t *data, size_t len);
static void sha256_hex(const uint8_t *data, size_t len, char *hex);
/* C. threads, and the fast twins of the plain kernels (same sums, same order, bit for bit) */
#define MAX_THREADS 256
typedef void (*TaskFn)(void *ctx, int task);
static void parallel_for(int threads, int n_tasks, TaskFn fn, void *ctx);
static void linear_forward_fast(real *out, const real *in, const real *W, const real *b, int rows, int in_dim, int out_dim,
                                int threads);
static void linear_backward_fast(real *d_in, real *d_W, real *d_b, const real *d_out, const real *in, const real *W,
                                 int rows, int in_dim, int out_dim, int threads);
/* The fast pair kernels share one context per batch: the states transposed and padded, the pair
 * counts, and the M x M matrix of the pairs' slopes Q_ij, which the forward pass fills for the
 * backward (appendix C). */
#define PAIR_CHUNK 32 /* a multiple of 8, so a chunk's lane l is lane (j & 7) of the plain loop */
#define PAIR_BLOCK 64 /* the backward sums Q_ij g_j in real over blocks of PAIR_BLOCK j's (section 4) */

typedef struct {
    const real *g, *gT;     /* (M, N) and (N, Mp) */
    const double *px, *py;  /* (Mp) positions, padded */
    real *pq;               /* (M, M): Q_ij (i < j; Q_ji = Q_ij is not written), from the forward pass */
    int M, N, Mp;
    int64_t n_near, n_far, n_dist; /* the pairs in each sum: they depend on the positions alone */
    double sigma_x2, sep_r2, inv_2sg2, c_sep, c_inv, c_ker; /* sep_r2 = 0: every far pair in L_sep */
    double dist_scale, dist_r2, c_dist; /* L_dist (section 4); dist_r2 = 0: no pair takes part */
    double *row_sums;       /* forward: (M, 4) folded sep, inv, kernel, dist sums of each row */
    int64_t *row_far, *row_sep, *row_dist; /* pair_ctx: (M) far pairs, L_sep's and L_dist's pairs of each row */
    real *d_g;              /* backward: (M, N) */
} PairCtx;
/* Sums over the unordered pairs, before any weighting or averaging. */
typedef struct { double sep_sum, inv_sum, ker_sum, dist_sum; int64_t n_near, n_far, n_dist; } PairSums;
static PairCtx pair_ctx(const real *g, const real *pos, real *pq, int M, int N, double sigma_x, double sigma_g,
                        double sep_rmax, double dist_scale, double dist_rmax, int threads);
static void pair_ctx_free(PairCtx *c);
static PairSums pair_losses_forward_fast(PairCtx c, double c_sep, double c_inv, double c_ker, double c_dist, int threads);
static void pair_losses_backward_fast(real *d_g, PairCtx c, int threads);
/* D. images: colour map, montages, PPM and PNG writers, the period histogram */
typedef struct { int width, height; uint8_t *grey, *rgb; } Image;
static void map_pixels(uint8_t *out, const double *v, int n, int colour);
#define MONTAGE_LABEL 24 /* bytes per tile legend */
static Image tile_montage(const double *tiles, int n, const int *order, int count, int colour, int scale, const char *labels);
static void image_free(Image *im);
static void ppm_encode(Buf *b, const Image *im);
static void png_encode(Buf *b, const Image *im);

/* ==============================================================================================
 * 1. CONFIG
 * One table lists every key: type, range, default, the paper's value and what it does. The parser,
 * the printer, --help and the README's table all come from it. Defaults = data/default.cfg.
 * ============================================================================================== */

typedef enum { KEY_INT, KEY_REAL, KEY_ENUM } KeyType;

typedef struct {
    const char *name;
    KeyType type;
    size_t offset;     /* into Config */
    double min, max;   /* inclusive range (enum: index range) */
    double def;        /* default (enum: index into choices) */
    const char *choices; /* enum names, '|'-separated, in index order */
    const char *paper; /* the paper's value, "AMBIGUOUS ..." where it is silent (METHOD NOTES), "-" if gridssl's own */
    const char *doc;
} ConfigKey;

#define KEY(name, type, min, max, def, choices, paper, doc) \
    {#name, type, offsetof(Config, name), min, max, def, choices, paper, doc}

static const ConfigKey config_keys[] = {
    KEY(model, KEY_ENUM, 0, 2, MODEL_SIC, "sic|cw|sorscher", "-", "what is trained: SIC (self-supervised, sections 2-4), or a supervised baseline (section 5): Cueva & Wei 2018 (cw) or Sorscher et al. 2019 (sorscher)"),
    KEY(seed, KEY_INT, 0, 2147483647, 4, NULL, "-", "PRNG seed (initialisation, data; evaluation walks use their own stream)"),
    KEY(B, KEY_INT, 1, 100000, 32, NULL, "130", "trajectories per batch"),
    KEY(T, KEY_INT, 1, 1000, 20, NULL, "60", "steps per trajectory (SIC: <= 100, which keeps positions exact in float)"),
    KEY(permute, KEY_INT, 0, 1, 1, NULL, "1", "1: trajectories permute T shared velocities (SIC); 0: independent velocities (ablation)"),
    KEY(vmax, KEY_REAL, 1e-6, 1.0, 0.15, NULL, "0.15", "velocity components ~ Uniform(-vmax, vmax), metres per step"),
    KEY(vel_dist, KEY_ENUM, 0, 2, VEL_DISC, "square|disc|speed", "square", "training velocities uniform in the square [-vmax, vmax]^2, uniform in the disc of radius vmax, or of speed uniform in [0, vmax] and uniform heading"),
    KEY(N, KEY_INT, 1, 8192, 64, NULL, "128", "recurrent units (SIC: its MLP's last layer has N*N*hidden weights, at most 2^28: N <= 1024 at hidden = 256)"),
    KEY(hidden, KEY_INT, 1, 8192, 256, NULL, "AMBIGUOUS (not given; 256)", "MLP hidden width H"),
    KEY(init_last_scale, KEY_REAL, 0, 1e3, 1, NULL, "1 (PyTorch default init)", "scales the initial weights and biases of the MLP's last layer"),
    KEY(sigma_x, KEY_REAL, 1e-9, 1e3, 0.05, NULL, "0.05", "spatial scale (m): pairs closer than sigma_x are 'same place'"),
    KEY(sigma_g, KEY_REAL, 1e-9, 1e3, 0.4, NULL, "0.4", "neural scale of the separation kernel"),
    KEY(sep_rmax, KEY_REAL, 0, 1e3, 0.65, NULL, "- (0: every far pair)", "L_sep uses the pairs with sigma_x < |dx| <= sep_rmax (metres; 0: no upper bound; gridssl's addition)"),
    KEY(lambda_sep, KEY_REAL, 0, 1e6, 1.0, NULL, "1.0", "weight of L_sep (separation)"),
    KEY(lambda_inv, KEY_REAL, 0, 1e6, 0.1, NULL, "0.1", "weight of L_inv (path invariance)"),
    KEY(lambda_cap, KEY_REAL, 0, 1e6, 1, NULL, "0.5", "weight of L_cap (capacity)"),
    KEY(lambda_iso, KEY_REAL, 0, 1e6, 0.01, NULL, "AMBIGUOUS (not in the paper's table)", "weight of L_iso (conformal isometry), after the ramp"),
    KEY(iso_vmax, KEY_REAL, 0, 1e3, 0.1, NULL, "AMBIGUOUS (small steps: sigma_x)", "isometry uses steps with speed in (0, iso_vmax); 0 = every step"),
    KEY(iso_vmin, KEY_REAL, 0, 1e3, 0.05, NULL, "- (0: every step above 0)", "isometry skips steps with speed <= iso_vmin, where |dg|/|v| divides by almost nothing"),
    KEY(iso_start, KEY_INT, 0, 2147483647, 0, NULL, "- (0: no ramp)", "optimiser step at which lambda_iso starts ramping in"),
    KEY(iso_ramp_steps, KEY_INT, 0, 2147483647, 3000, NULL, "- (0: no ramp)", "steps over which lambda_iso ramps from 0 to its value (0: full weight at iso_start)"),
    KEY(lambda_dist, KEY_REAL, 0, 1e6, 0, NULL, "- (0: off)", "weight of L_dist (isometry at a fixed scale over far pairs within dist_rmax; gridssl's addition), ramped in with lambda_iso"),
    KEY(dist_scale, KEY_REAL, 0, 1e6, 8, NULL, "-", "L_dist's scale s: the code should move s |dx| for a displacement dx (per metre)"),
    KEY(dist_rmax, KEY_REAL, 0, 1e3, 0.15, NULL, "-", "L_dist uses the pairs with sigma_x < |dx| <= dist_rmax (metres)"),
    KEY(lambda_sparse, KEY_REAL, 0, 1e6, 0, NULL, "- (0: off)", "weight of L_sparse, the mean L1 norm of the states (lowest when few units are active; gridssl's addition)"),
    KEY(lambda_dir, KEY_REAL, 0, 1e6, 0, NULL, "- (0: off)", "weight of L_dir (steps of one length in every heading from a state should move the code alike; gridssl's addition), ramped in with lambda_iso"),
    KEY(dir_speed, KEY_REAL, 1e-6, 1.0, 0.1, NULL, "-", "L_dir's probe step length (metres)"),
    KEY(dir_headings, KEY_INT, 3, 64, 8, NULL, "-", "L_dir's probe headings per state, evenly spaced from a random offset drawn per batch"),
    KEY(dir_states, KEY_INT, 1, 100000, 160, NULL, "-", "L_dir probes the first dir_states states of a batch (all B*T if fewer)"),
    KEY(capacity, KEY_ENUM, 0, 1, CAPACITY_MEANNORM, "meannorm|kernel", "meannorm", "capacity reading: minus the squared norm of the mean state, or minus the mean Gaussian kernel over all pairs"),
    KEY(reduction, KEY_ENUM, 0, 1, REDUCTION_MEAN, "mean|sum", "AMBIGUOUS (paper writes sums)", "reduction of L_sep, L_inv and L_dist over their pairs"),
    KEY(arena, KEY_ENUM, 0, 2, ARENA_SQUARE, "square|hexagon|triangle", "square (CW: each shape)", "baselines: shape of the training arena (sorscher: square only)"),
    KEY(arena_size, KEY_REAL, 0.1, 100, 2.2, NULL, "2.2 (sorscher); AMBIGUOUS (cw)", "baselines: width of the training arena, metres"),
    KEY(cw_alpha, KEY_REAL, 0, 1e6, 0.01, NULL, "AMBIGUOUS (not given)", "cw: weight of the L2 cost mean(W_in^2) + mean(W_out^2)"),
    KEY(cw_beta, KEY_REAL, 0, 1e6, 0.01, NULL, "AMBIGUOUS (not given)", "cw: weight of the metabolic cost mean(u^2)"),
    KEY(cw_noise, KEY_REAL, 0, 100, 0.1, NULL, "AMBIGUOUS (not given)", "cw: standard deviation of the recurrent noise xi"),
    KEY(cw_still, KEY_REAL, 0, 0.99, 0.5, NULL, "AMBIGUOUS (e.g. 0.9)", "cw: probability that a step stands still"),
    KEY(cw_speed, KEY_REAL, 1e-6, 10, 0.1, NULL, "AMBIGUOUS (not given)", "cw: speed of a moving step ~ Uniform(0, cw_speed), metres per step"),
    KEY(cw_turn_sd, KEY_REAL, 0, 10, 0.2, NULL, "AMBIGUOUS (straight runs)", "cw: heading random walk, rad per step"),
    KEY(place_cells, KEY_INT, 1, 100000, 512, NULL, "512", "sorscher: place cells N_p"),
    KEY(place_sigma, KEY_REAL, 1e-6, 100, 0.12, NULL, "0.12", "sorscher: place-cell width sigma, metres"),
    KEY(place_surround, KEY_REAL, 1, 100, 2, NULL, "2", "sorscher: variance of the surround Gaussian over the centre's (difference of Gaussians)"),
    KEY(sorscher_wd, KEY_REAL, 0, 1e6, 1e-4, NULL, "1e-4", "sorscher: weight of the squared norm of W_rec in the loss"),
    KEY(sorscher_relu, KEY_INT, 0, 1, 1, NULL, "1", "sorscher: 1 = ReLU recurrence, 0 = linear (the ablation)"),
    KEY(lr, KEY_REAL, 0, 10, 3e-4, NULL, "2e-5", "AdamW learning rate"),
    KEY(beta1, KEY_REAL, 0, 0.999999, 0.9, NULL, "0.9", "AdamW beta1"),
    KEY(beta2, KEY_REAL, 0, 0.999999999, 0.999, NULL, "0.999", "AdamW beta2"),
    KEY(adam_eps, KEY_REAL, 1e-30, 1, 1e-8, NULL, "1e-8", "AdamW epsilon"),
    KEY(weight_decay, KEY_REAL, 0, 1e3, 0, NULL, "0", "AdamW decoupled weight decay"),
    KEY(clip, KEY_REAL, 0, 1e9, 0.1, NULL, "0.1", "global gradient-norm clip (0: off)"),
    KEY(accum, KEY_INT, 1, 1000, 1, NULL, "2", "batches per optimiser step (gradients averaged)"),
    KEY(plateau_factor, KEY_REAL, 0, 1, 1, NULL, "AMBIGUOUS (0.5)", "ReduceLROnPlateau: lr *= factor on a plateau (1: off)"),
    KEY(plateau_patience, KEY_INT, 0, 2147483647, 1000, NULL, "AMBIGUOUS (1000)", "steps without improvement of the smoothed loss before a reduction"),
    KEY(plateau_threshold, KEY_REAL, 0, 1, 1e-4, NULL, "- (PyTorch's 1e-4)", "relative improvement that resets the patience"),
    KEY(plateau_ema, KEY_REAL, 0, 0.999999, 0.99, NULL, "AMBIGUOUS (smoothed loss)", "EMA factor of the loss the scheduler watches"),
    KEY(min_lr, KEY_REAL, 0, 10, 0, NULL, "-", "the scheduler never goes below this"),
    KEY(lr_drop_step, KEY_INT, 0, 2147483647, 10000, NULL, "- (0: off)", "from this optimiser step on, the learning rate is multiplied by lr_drop_factor (0: never)"),
    KEY(lr_drop_factor, KEY_REAL, 0, 1, 0.1, NULL, "-", "the one-time learning-rate drop at lr_drop_step"),
    KEY(steps, KEY_INT, 0, 2147483647, 14000, NULL, "2000000", "optimiser steps"),
    KEY(log_every, KEY_INT, 1, 2147483647, 100, NULL, "-", "progress line (stderr) and log.tsv row every this many steps"),
    KEY(save_every, KEY_INT, 1, 2147483647, 1000, NULL, "-", "checkpoint every this many steps (and at the end)"),
    KEY(eval_walks, KEY_INT, 1, 10000000, 1000, NULL, "AMBIGUOUS (1000)", "evaluation: K walks from the box centre in a 2 m box (times box/2 in others)"),
    KEY(eval_walk_mult, KEY_INT, 1, 10000, 3, NULL, "AMBIGUOUS (3)", "evaluation: walks have eval_walk_mult * T steps in a 2 m box (times box/2 in others)"),
    KEY(eval_bin_m, KEY_REAL, 1e-3, 10, 0.05, NULL, "AMBIGUOUS (0.05: 40 x 40 bins in 2 m)", "evaluation: side of a ratemap bin, metres"),
    KEY(eval_heading_sd, KEY_REAL, 0, 10, 0.3, NULL, "AMBIGUOUS (0.3)", "evaluation: heading random walk, rad per step"),
    KEY(eval_speed_mean, KEY_REAL, 1e-6, 10, 0.06, NULL, "AMBIGUOUS (0.06)", "evaluation: mean Rayleigh speed, m per step"),
    KEY(eval_speed_max, KEY_REAL, 1e-6, 10, 0.15, NULL, "AMBIGUOUS (0.15)", "evaluation: speeds are clipped here, m per step"),
};
#define NUM_CONFIG_KEYS ((int)(sizeof config_keys / sizeof config_keys[0]))

static const ConfigKey *config_find(const char *name) {
    for (int i = 0; i < NUM_CONFIG_KEYS; i++)
        if (strcmp(config_keys[i].name, name) == 0) return &config_keys[i];
    return NULL;
}

/* The index-th '|'-separated choice of an enum key, copied into out (size 32). */
static void enum_choice(const ConfigKey *k, int index, char *out) {
    const char *p = k->choices;
    for (int i = 0; i < index && p; i++) {
        p = strchr(p, '|');
        if (p) p++;
    }
    size_t n = p ? strcspn(p, "|") : 0;
    if (n > 31) n = 31;
    memcpy(out, p ? p : "", n);
    out[n] = 0;
}

static void config_defaults(Config *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < NUM_CONFIG_KEYS; i++) {
        const ConfigKey *k = &config_keys[i];
        char *field = (char *)c + k->offset;
        if (k->type == KEY_REAL) *(double *)field = k->def;
        else *(int *)field = (int)k->def;
    }
}

/* A number as a config writes it: [sign] digits [. digits] [e [sign] digits], with a digit before
 * the exponent. strtod alone would also take hex, "inf", "nan" and leading spaces. */
static int is_decimal(const char *s) {
    int digits = 0;
    if (*s == '+' || *s == '-') s++;
    for (; *s >= '0' && *s <= '9'; s++) digits++;
    if (*s == '.')
        for (s++; *s >= '0' && *s <= '9'; s++) digits++;
    if (digits && (*s == 'e' || *s == 'E')) {
        s += s[1] == '+' || s[1] == '-' ? 2 : 1;
        if (!(*s >= '0' && *s <= '9')) return 0;
        while (*s >= '0' && *s <= '9') s++;
    }
    return digits && *s == 0;
}

/* Sets one key from its text: a decimal number within the key's range (an integer for integer
 * keys) or one of an enum's names. Errors name the key. */
static int config_set(Config *c, const char *name, const char *value, Err *err) {
    const ConfigKey *k = config_find(name);
    if (!k) return fail(err, "unknown config key '%s' (gridssl --help lists them)", name);
    char *field = (char *)c + k->offset;
    if (k->type == KEY_ENUM) {
        char choice[32];
        for (int i = 0; i <= (int)k->max; i++) {
            enum_choice(k, i, choice);
            if (strcmp(choice, value) == 0) {
                *(int *)field = i;
                return 0;
            }
        }
        return fail(err, "config key '%s': '%s' is not one of %s", name, value, k->choices);
    }
    if (!is_decimal(value)) return fail(err, "config key '%s': '%s' is not a decimal number", name, value);
    double x = strtod(value, NULL); /* beyond DBL_MAX: +-HUGE_VAL, below the range: the nearest value */
    if (!(x >= k->min && x <= k->max))
        return fail(err, "config key '%s': %s is out of range [%.17g, %.17g]", name, value, k->min, k->max);
    if (k->type == KEY_INT && x != floor(x)) /* the range check first: only then is the cast defined */
        return fail(err, "config key '%s': '%s' is not an integer", name, value);
    if (k->type == KEY_REAL) *(double *)field = x;
    else *(int *)field = (int)x;
    return 0;
}

/* Parses the len bytes of text as "key = value" lines; '#' starts a comment; a key may be set once.
 * require_all (a checkpoint's config) also demands every key. source names the text in errors. */
static int config_parse_text(Config *c, const char *text, size_t len, int require_all, const char *source, Err *err) {
    int line_no = 0, set_on_line[NUM_CONFIG_KEYS] = {0};
    if (len == 0) text = ""; /* an empty file's buffer may be NULL */
    const char *p = text, *end = text + len, *nul = memchr(text, 0, len);
    if (nul) {
        for (const char *q = text; q < nul; q++) line_no += *q == '\n';
        return fail(err, "%s:%d: NUL byte in the config text", source, line_no + 1);
    }
    while (p < end) {
        line_no++;
        const char *newline = memchr(p, '\n', (size_t)(end - p));
        size_t line_len = newline ? (size_t)(newline - p) : (size_t)(end - p);
        char line[1024];
        if (line_len >= sizeof line) return fail(err, "%s:%d: line too long", source, line_no);
        memcpy(line, p, line_len);
        line[line_len] = 0;
        p += line_len + (newline != NULL);
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char *s = line;
        while (*s == ' ' || *s == '\t' || *s == '\r') s++;
        char *e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) *--e = 0;
        if (!*s) continue;
        char *eq = strchr(s, '=');
        if (!eq) return fail(err, "%s:%d: expected 'key = value', got '%s'", source, line_no, s);
        char *key_end = eq, *value = eq + 1;
        while (key_end > s && (key_end[-1] == ' ' || key_end[-1] == '\t')) key_end--;
        *key_end = 0;
        while (*value == ' ' || *value == '\t') value++;
        Err inner;
        if (config_set(c, s, value, &inner)) return fail(err, "%s:%d: %s", source, line_no, inner.msg);
        int key = (int)(config_find(s) - config_keys);
        if (set_on_line[key]) return fail(err, "%s:%d: key '%s' is already set on line %d", source, line_no, s, set_on_line[key]);
        set_on_line[key] = line_no;
    }
    for (int i = 0; i < NUM_CONFIG_KEYS && require_all; i++)
        if (!set_on_line[i]) return fail(err, "%s: key '%s' is missing (a checkpoint's config lists every key)", source, config_keys[i].name);
    return 0;
}

/* No buffer gridssl allocates holds more than 2^28 elements (1 GiB of floats): sizes are computed
 * in double from the config before anything is allocated or written, so a config that is too big
 * is refused at once, and every index fits its type. */
#define MAX_BUFFER_ELEMENTS 268435456.0

/* The parameter tensors of the config's model in buffer order: the name, the named pointer in
 * ParamTensors it sets (an offset), its element count, and its initialisation (section 3 for SIC,
 * section 5 for the baselines): Uniform(-init, init), or N(0, init^2) when normal, or zeros (init 0). */
typedef struct { const char *name; size_t offset; double size, init; int normal; } TensorSpec;

static int model_tensors(TensorSpec *t, const Config *c) {
    double N = c->N, H = c->hidden, P = c->place_cells, last = c->init_last_scale / sqrt(H);
    int n = 0;
#define TENSOR(field, count, init, normal) t[n++] = (TensorSpec){#field, offsetof(ParamTensors, field), count, init, normal}
    if (c->model == MODEL_SIC) { /* PyTorch's nn.Linear: Uniform(+-1/sqrt(fan_in)); theta0 ~ N(0, 1) */
        TENSOR(W1, H * 2, 1 / sqrt(2.0), 0), TENSOR(b1, H, 1 / sqrt(2.0), 0);
        TENSOR(W2, H * H, 1 / sqrt(H), 0), TENSOR(b2, H, 1 / sqrt(H), 0);
        TENSOR(W3, N * N * H, last, 0), TENSOR(b3, N * N, last, 0);
        TENSOR(theta0, N, 1, 1);
    } else if (c->model == MODEL_CW) { /* Cueva & Wei: W_in ~ N(0, 1/D), W_rec ~ N(0, 1.5^2/N), b = 0, W_out = 0 */
        TENSOR(W_in, N * CW_INPUTS, 1 / sqrt((double)CW_INPUTS), 1), TENSOR(b_rec, N, 0, 0);
        TENSOR(W_rec, N * N, 1.5 / sqrt(N), 1), TENSOR(W_out, 2 * N, 0, 0);
    } else { /* Sorscher et al.'s code: PyTorch's defaults for Linear and RNN, Uniform(+-1/sqrt(fan_in)) */
        TENSOR(W_enc, N * P, 1 / sqrt(P), 0), TENSOR(W_in, N * 2, 1 / sqrt(N), 0);
        TENSOR(W_rec, N * N, 1 / sqrt(N), 0), TENSOR(W_out, P * N, 1 / sqrt(N), 0);
    }
#undef TENSOR
    return n;
}

/* The number of parameters of the config's model (the sizes model_build lays out). */
static double param_count(const Config *c) {
    TensorSpec t[MAX_PARAM_TENSORS];
    double count = 0;
    for (int i = 0, n = model_tensors(t, c); i < n; i++) count += t[i].size;
    return count;
}

/* L_dir's probe headings per batch (section 4): dir_headings when it is on, else none, so a run
 * without it draws and computes exactly what it did before L_dir existed. */
static int dir_probes(const Config *c) {
    return c->model == MODEL_SIC && c->lambda_dir > 0 ? c->dir_headings : 0;
}

/* The states L_dir probes: the first dir_states rows of a batch (all B*T if there are fewer). */
static int dir_states(const Config *c) {
    double M = (double)c->B * c->T;
    return dir_probes(c) ? (int)(c->dir_states < M ? c->dir_states : M) : 0;
}

/* Checks that involve several keys: every training buffer's size (model_build, batch_alloc,
 * acts_alloc, pair_ctx). V = distinct velocities per batch: T with permutations, B*T without. */
static int config_validate(const Config *c, Err *err) {
    double M = (double)c->B * c->T, N = c->N, H = c->hidden;
    int sic = c->model == MODEL_SIC;
    double V = (c->permute ? c->T : M) + dir_probes(c), S = dir_states(c);
    struct { const char *what; double count; } buffers[] = {
        {"parameters", param_count(c)},
        {"states (B*T*N)", M * N},
        {"MLP activations (V*hidden, V = B*T when permute=0, plus L_dir's headings)", sic ? V * H : 0},
        {"matrices W(v) (V*N*N, V = B*T when permute=0, plus L_dir's headings)", sic ? V * N * N : 0},
        {"L_dir's probe states (dir_states*dir_headings*N)", sic ? S * dir_probes(c) * N : 0},
        {"pair distances ((B*T)^2)", sic ? M * M : 0},
        {"place-cell codes (B*T*place_cells)", c->model == MODEL_SORSCHER ? M * c->place_cells : 0},
    };
    if (c->model == MODEL_SIC && c->T > 100)
        return fail(err, "config: T=%d: SIC takes at most 100 steps per trajectory (positions stay exact in float)", c->T);
    if (c->model == MODEL_SORSCHER && c->arena != ARENA_SQUARE)
        return fail(err, "config: model=sorscher trains in a square arena only (arena=square)");
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++)
        if (buffers[i].count > MAX_BUFFER_ELEMENTS)
            return fail(err, "config: N=%d, hidden=%d, B=%d, T=%d, permute=%d need %.0f %s, more than 2^28", c->N,
                        c->hidden, c->B, c->T, c->permute, buffers[i].count, buffers[i].what);
    return 0;
}

/* x in the fewest significant digits (15, 16 or 17) that read back to exactly x: 0.15, not
 * 0.14999999999999999. printf and strtod round correctly on every supported libc, so the digits
 * chosen are the same everywhere. */
static void shortest_real(char *out, size_t size, double x) {
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(out, size, "%.*g", digits, x);
        if (strtod(out, NULL) == x) return;
    }
}

/* Appends "key = value" lines to b, each real in its shortest exact form (shortest_real). */
static void config_print(Buf *b, const Config *c) {
    for (int i = 0; i < NUM_CONFIG_KEYS; i++) {
        const ConfigKey *k = &config_keys[i];
        const char *field = (const char *)c + k->offset;
        char number[40];
        if (k->type == KEY_REAL) {
            shortest_real(number, sizeof number, *(const double *)field);
            buf_printf(b, "%s = %s\n", k->name, number);
        }
        else if (k->type == KEY_INT) buf_printf(b, "%s = %d\n", k->name, *(const int *)field);
        else {
            char choice[32];
            enum_choice(k, *(const int *)field, choice);
            buf_printf(b, "%s = %s\n", k->name, choice);
        }
    }
}

/* ==============================================================================================
 * 2. DATA: one SIC batch (the paper's Fig. 3d)
 *     v_1 .. v_T  i.i.d. Uniform(-vmax, vmax)^2 per step (vel_dist = square, the paper's; disc and
 *                 speed are gridssl's additions, METHOD NOTES)
 *     pi_b        a uniformly random permutation of 1..T for each trajectory b = 1..B
 *     x_{b,t}     = x_{b,t-1} + v_{pi_b(t)},  x_{b,0} = 0:  every trajectory ends at the same point and
 *                 they cross often, which is what makes path invariance learnable
 *     permute = 0 (ablation): B*T independent velocities instead of permutations
 * ============================================================================================== */

/* Velocities live on the grid of multiples of 2^-20 m (about 1 micrometre). The distribution is
 * Uniform(-vmax, vmax) to within that resolution, and it buys exactness: every position (a sum of
 * at most 100 steps of at most 1 m) is a multiple of 2^-20 below 2^7 and so fits float's 24-bit
 * significand exactly. All B trajectories of a batch therefore end at bitwise the same point, and
 * whether a pair is closer than sigma_x never depends on summation order. */
#define VEL_QUANTUM (1.0 / 1048576.0)

/* A batch of the config's model: SIC's, or a baseline's (section 5: V = B*T, its inputs, starts and,
 * for Cueva & Wei, noise). */
static void batch_alloc(Batch *bt, const Config *c) {
    size_t M = (size_t)c->B * c->T;
    memset(bt, 0, sizeof *bt);
    bt->B = c->B;
    bt->T = c->T;
    bt->V = c->permute && c->model == MODEL_SIC ? c->T : c->B * c->T;
    bt->n_dir = dir_probes(c);
    bt->vel = xcalloc((size_t)(bt->V + bt->n_dir) * 2, sizeof(real));
    bt->index = xcalloc(M, sizeof(int32_t));
    bt->pos = xcalloc(M * 2, sizeof(real));
    if (c->model == MODEL_SIC) return;
    bt->D = c->model == MODEL_CW ? CW_INPUTS : 2;
    bt->input = xcalloc(M * bt->D, sizeof(real));
    bt->start = xcalloc((size_t)c->B * 2, sizeof(real));
    if (c->model == MODEL_CW) bt->noise = xcalloc(M * c->N, sizeof(real));
}

static void batch_free(Batch *bt) {
    free(bt->vel), free(bt->index), free(bt->pos), free(bt->input), free(bt->start), free(bt->noise);
    memset(bt, 0, sizeof *bt);
}

/* Draws a batch: the V velocities (x then y, in order; vel_dist = disc keeps only those inside the
 * disc of radius vmax, an isotropic distribution without the square's 4-fold symmetry), then, with permute = 1, one Fisher-Yates
 * permutation of 0..T-1 per trajectory; with permute = 0 trajectory b simply uses velocities
 * b*T .. b*T+T-1. Positions are the running sums x_t = x_{t-1} + v_t from x_0 = 0. */
static void batch_draw(Batch *bt, Rng *rng, const Config *c) {
    int B = bt->B, T = bt->T;
    int64_t k_max = (int64_t)(c->vmax / VEL_QUANTUM + 0.5);
    for (int v = 0; v < bt->V; v++) {
        int64_t kx, ky;
        if (c->vel_dist == VEL_SPEED) { /* speed k quanta, heading a; rounded to the quantum grid */
            double k = (double)rng_below(rng, (uint32_t)(k_max + 1)), a = 6.283185307179586 * rng_uniform(rng);
            kx = (int64_t)floor(k * gs_cos(a) + 0.5);
            ky = (int64_t)floor(k * gs_sin(a) + 0.5);
        } else do { /* vel_dist = disc: rejection from the square, in integers, so the test is exact */
            kx = (int64_t)rng_below(rng, (uint32_t)(2 * k_max + 1)) - k_max;
            ky = (int64_t)rng_below(rng, (uint32_t)(2 * k_max + 1)) - k_max;
        } while (c->vel_dist == VEL_DISC && kx * kx + ky * ky > k_max * k_max);
        bt->vel[2 * v] = (real)((double)kx * VEL_QUANTUM);
        bt->vel[2 * v + 1] = (real)((double)ky * VEL_QUANTUM);
    }
    for (int b = 0; b < B; b++) {
        int32_t *idx = bt->index + (size_t)b * T;
        for (int t = 0; t < T; t++) idx[t] = c->permute ? t : b * T + t;
        if (c->permute) rng_shuffle(rng, idx, T);
        real x = 0, y = 0;
        for (int t = 0; t < T; t++) {
            x += bt->vel[2 * idx[t]];
            y += bt->vel[2 * idx[t] + 1];
            bt->pos[2 * ((size_t)b * T + t)] = x;
            bt->pos[2 * ((size_t)b * T + t) + 1] = y;
        }
    }
    /* L_dir's probes (section 4), drawn last, so a batch without them is unchanged: K steps of length
     * dir_speed at headings offset + 2 pi k / K, the offset uniform in [0, 2 pi / K) */
    double offset = bt->n_dir ? 6.283185307179586 / bt->n_dir * rng_uniform(rng) : 0;
    for (int k = 0; k < bt->n_dir; k++) {
        double heading = offset + 6.283185307179586 * k / bt->n_dir;
        bt->vel[2 * (bt->V + k)] = (real)(c->dir_speed * gs_cos(heading));
        bt->vel[2 * (bt->V + k) + 1] = (real)(c->dir_speed * gs_sin(heading));
    }
}

/* ==============================================================================================
 * 3. MODEL (the paper's Fig. 3c): W(v) = MLP(v), g_t = NormReLU(W(v_t) g_{t-1}), g_0 = NormReLU(theta0)
 * Plain loops, shapes in the comment above each. Two reduction orders exist in gridssl and both are
 * fixed: dot8 (eight interleaved partial sums, lane = index mod 8, folded pairwise) for a dot
 * product along a contiguous row, and "sequential in index order" for everything written as an
 * accumulation (+=) over an outer loop. Neither depends on the compiler, the flags or the threads.
 * ============================================================================================== */

/* a (n) . b (n) -> scalar; lane l sums a_i b_i for i = l mod 8, folded ((0+1)+(2+3))+((4+5)+(6+7)).
 * Eight independent sums let a compiler use SIMD registers without reassociating anything. */
static real fold8_real(const real *lane) {
    return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

static real dot8(const real *a, const real *b, int n) {
    real lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) lane[l] += a[i + l] * b[i + l];
    for (int l = 0; i < n; i++, l++) lane[l] += a[i] * b[i];
    return fold8_real(lane);
}

/* The plain kernels below (linear_forward, linear_backward, and pair_losses_forward/backward in
 * section 4) are the readable reference: training runs their fast twins, which compute the same sums
 * in the same order, and tests/unit.c checks the two agree bit for bit. */
#if defined(__GNUC__) || defined(__clang__) || defined(__TINYC__)
#define REFERENCE static __attribute__((unused)) /* used by the tests only */
#else
#define REFERENCE static
#endif

/* out (rows, out_dim) = in (rows, in_dim) . W^T + b;  W (out_dim, in_dim), b (out_dim).
 * out[r][o] = dot8(W[o], in[r]) + b[o]  (nn.Linear) */
REFERENCE void linear_forward(real *out, const real *in, const real *W, const real *b, int rows, int in_dim, int out_dim) {
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < out_dim; o++)
            out[(size_t)r * out_dim + o] = dot8(W + (size_t)o * in_dim, in + (size_t)r * in_dim, in_dim) + b[o];
}

/* Backward of linear_forward, accumulating (+=) into d_W (out_dim, in_dim), d_b (out_dim) and, if
 * d_in is not NULL, d_in (rows, in_dim):
 *     d_W[o][i] += sum_r d_out[r][o] in[r][i]      (sequential over r)
 *     d_b[o]    += sum_r d_out[r][o]               (sequential over r)
 *     d_in[r][i] += sum_o d_out[r][o] W[o][i]      (sequential over o, in double: out_dim may be N*N) */
REFERENCE void linear_backward(real *d_in, real *d_W, real *d_b, const real *d_out, const real *in, const real *W,
                            int rows, int in_dim, int out_dim) {
    double *acc = xcalloc((size_t)in_dim, sizeof *acc);
    for (int r = 0; r < rows; r++) {
        const real *d_out_r = d_out + (size_t)r * out_dim, *in_r = in + (size_t)r * in_dim;
        for (int o = 0; o < out_dim; o++) {
            real *d_W_o = d_W + (size_t)o * in_dim;
            for (int i = 0; i < in_dim; i++) d_W_o[i] += d_out_r[o] * in_r[i];
            d_b[o] += d_out_r[o];
        }
        if (!d_in) continue;
        for (int i = 0; i < in_dim; i++) acc[i] = 0.0;
        for (int o = 0; o < out_dim; o++) {
            const real *W_o = W + (size_t)o * in_dim;
            for (int i = 0; i < in_dim; i++) acc[i] += (double)d_out_r[o] * W_o[i];
        }
        for (int i = 0; i < in_dim; i++) d_in[(size_t)r * in_dim + i] += (real)acc[i];
    }
    free(acc);
}

/* x (n) = max(x, 0), in place. */
static void relu_forward(real *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0;
}

/* fwd: out = max(in, 0) -> d_in = d_out * [out > 0], in place on d (n). */
static void relu_backward(real *d, const real *out, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(out[i] > 0)) d[i] = 0;
}

/* NormReLU (section 3): g (n) = r / |r|, r = max(z, 0). Returns |r|.
 * Dead state: if |r|^2 is below the smallest normal number (every unit rectified to zero, or so
 * close to it that the square underflows) the output is g = 0 and the return value 0; that is the
 * only epsilon. Otherwise no epsilon is added, so |g| = 1 up to rounding. */
static real normrelu_forward(real *g, const real *z, int n) {
    for (int i = 0; i < n; i++) g[i] = z[i] > 0 ? z[i] : 0;
    real sq = dot8(g, g, n);
    if (sq < REAL_MIN_NORMAL) {
        for (int i = 0; i < n; i++) g[i] = 0;
        return 0;
    }
    real norm = (real)sqrt((double)sq);
    for (int i = 0; i < n; i++) g[i] = g[i] / norm;
    return norm;
}

/* fwd: g = r/|r| -> d_r = (d_g - g (g . d_g)) / |r|;  r = max(z, 0) -> d_z = d_r [z > 0].
 * Writes (=) d_z (n). A dead state (norm 0) passes no gradient. */
static void normrelu_backward(real *d_z, const real *d_g, const real *g, const real *z, real norm, int n) {
    if (norm == 0) {
        for (int i = 0; i < n; i++) d_z[i] = 0;
        return;
    }
    real g_dot_dg = dot8(g, d_g, n);
    for (int i = 0; i < n; i++) d_z[i] = z[i] > 0 ? (d_g[i] - g[i] * g_dot_dg) / norm : 0;
}

/* |a - b|^2 for a, b (n), sequential over the index. */
static real sq_dist(const real *a, const real *b, int n) {
    real s = 0;
    for (int k = 0; k < n; k++) {
        real d = a[k] - b[k];
        s += d * d;
    }
    return s;
}

/* Lays out the config's model (model_tensors): one flat buffer each for the parameters, their
 * gradients and Adam's two moments, and the named pointers of p and g into the first two. */
static void model_build(Model *m, const Config *c) {
    TensorSpec t[MAX_PARAM_TENSORS];
    memset(m, 0, sizeof *m);
    m->model = c->model, m->N = c->N, m->H = c->hidden;
    m->num_tensors = model_tensors(t, c);
    for (int i = 0; i < m->num_tensors; i++) {
        m->names[i] = t[i].name;
        m->sizes[i] = (size_t)t[i].size;
        m->num_params += m->sizes[i];
    }
    m->params = xcalloc(m->num_params, sizeof(real));
    m->grads = xcalloc(m->num_params, sizeof(real));
    m->adam_m = xcalloc(m->num_params, sizeof(real));
    m->adam_v = xcalloc(m->num_params, sizeof(real));
    ParamTensors *views[2] = {&m->p, &m->g};
    real *base[2] = {m->params, m->grads};
    for (int which = 0; which < 2; which++) {
        real *it = base[which];
        for (int i = 0; i < m->num_tensors; i++) {
            *(real **)((char *)views[which] + t[i].offset) = it;
            it += m->sizes[i];
        }
        if (it != base[which] + m->num_params) abort(); /* the pointer walk must consume the buffer */
    }
}

static void model_free(Model *m) {
    free(m->params);
    free(m->grads);
    free(m->adam_m);
    free(m->adam_v);
    memset(m, 0, sizeof *m);
}

/* Initial parameters as model_tensors gives them (SIC: PyTorch's nn.Linear default, weights and
 * biases ~ Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), the last layer's bound times init_last_scale,
 * theta0 ~ N(0, 1)), drawn in buffer order. */
static void model_init(Model *m, const Config *c, Rng *rng) {
    TensorSpec t[MAX_PARAM_TENSORS];
    model_tensors(t, c);
    real *it = m->params;
    for (int i = 0; i < m->num_tensors; i++)
        for (size_t j = 0; j < m->sizes[i]; j++, it++)
            *it = (real)(t[i].init == 0 ? 0 : t[i].normal ? t[i].init * rng_normal(rng) : (2 * rng_uniform(rng) - 1) * t[i].init);
}

/* Everything one forward pass keeps for the backward pass, and the gradients of those activations. */
typedef struct {
    real *h1, *h2;    /* (V, H)    MLP hidden layers, after ReLU (V counts L_dir's probe velocities too) */
    real *Wv;         /* (V, N*N)  W(v) for each distinct velocity, row-major N x N */
    real *g0;         /* (N)       NormReLU(theta0) */
    real norm0;       /*           |max(theta0, 0)| */
    real *z, *g;      /* (B*T, N)  pre-activations and states g_{b,t}, t = 1..T (row b*T + t-1) */
    real *norm;       /* (B*T)     |max(z, 0)|, 0 for a dead state */
    double *iso_s;    /* (B*T)     isometry ratios |g_t - g_{t-1}| / |v_t| */
    double *g_mean;   /* (N)       mean state, for the meannorm capacity */
    real *dir_z, *dir_g; /* (S*K, N) L_dir: z' = W(u_k) g_r and g' = NormReLU(z') for probed state r, heading k */
    real *dir_dz;     /* (S*K, N)  dL/dz' */
    real *dir_norm;   /* (S*K)     |max(z', 0)| */
    double *dir_d;    /* (S*K)     probe step lengths d_rk = |g' - g_r| */
    real *d_g;        /* (B*T, N)  dL/dg from the losses, then the BPTT carries */
    real *d_z;        /* (B*T, N)  */
    real *d_g0;       /* (N)       */
    real *d_Wv;       /* (V, N*N)  */
    real *d_h1, *d_h2; /* (V, H)   */
    real *pair_q;     /* (B*T, B*T) the pairs' slopes Q_ij (appendix C) */
    /* the baselines (section 5) use z (x or pre), g (h), d_g (dL/dh) and d_z (dL/dpre) above, and: */
    real *drive, *h_prev; /* (B*T, N) W_in I (+ b_rec); h_{r-1} */
    real *h0, *d_h0;  /* (B, N)    start states and their gradient */
    real *out, *d_out; /* (B*T, O) readout (O = 2, or N_p logits) and its gradient */
    real *target;     /* (B*T, N_p) Sorscher: p(x_r) */
    real *p0;         /* (B, N_p)  Sorscher: p(x_{b,0}) */
    double *row_lse;  /* (B*T)     Sorscher: log sum_j exp(logit_j) of each row */
    real *centres;    /* (N_p, 2)  Sorscher: the place-cell centres */
    double *place_scratch; /* (2 N_p) */
    real *zeros, *d_bias; /* (max(N, O)) a bias of zeros; a sink for bias gradients no parameter takes */
    PairCtx pairs;     /*          the states transposed for the pair kernels, built by the forward pass */
    double grad_scale; /*          the factor sic_forward folded into Q_ij, for sic_backward */
    double phase_seconds[8]; /* wall time spent in each PHASE_ (gridssl bench reports it) */
    double phase_mark;       /* when the current phase began */
} Acts;

enum { PHASE_BATCH, PHASE_MLP, PHASE_RNN, PHASE_PAIRS, PHASE_LOSS_BACKWARD, PHASE_BPTT, PHASE_MLP_BACKWARD, PHASE_OPTIMISER };
static const char *const phase_names[8] = {"batch", "mlp W(v)", "recurrence", "pair losses", "loss backward",
                                           "bptt", "mlp backward", "optimiser"};

/* Phase timing, for gridssl bench only: the time since the last mark goes to phase p. */
static void phase_end(Acts *a, int p) {
    double t = now_seconds();
    a->phase_seconds[p] += t - a->phase_mark;
    a->phase_mark = t;
}

static void place_centres(real *centres, const Config *c); /* section 5 */

static void acts_alloc(Acts *a, const Config *c) {
    size_t M = (size_t)c->B * c->T, N = (size_t)c->N, H = (size_t)c->hidden;
    memset(a, 0, sizeof *a);
    if (c->model != MODEL_SIC) {
        size_t B = (size_t)c->B, P = c->model == MODEL_SORSCHER ? (size_t)c->place_cells : 0, O = P ? P : 2;
        size_t wide = N > O ? N : O;
        a->z = xcalloc(M * N, sizeof(real)), a->g = xcalloc(M * N, sizeof(real));
        a->d_z = xcalloc(M * N, sizeof(real)), a->d_g = xcalloc(M * N, sizeof(real));
        a->drive = xcalloc(M * N, sizeof(real)), a->h_prev = xcalloc(M * N, sizeof(real));
        a->h0 = xcalloc(B * N, sizeof(real)), a->d_h0 = xcalloc(B * N, sizeof(real));
        a->out = xcalloc(M * O, sizeof(real)), a->d_out = xcalloc(M * O, sizeof(real));
        a->target = xcalloc(M * P, sizeof(real)), a->p0 = xcalloc(B * P, sizeof(real));
        a->row_lse = xcalloc(M, sizeof(double)), a->centres = xcalloc(2 * P, sizeof(real));
        a->place_scratch = xcalloc(2 * P, sizeof(double));
        a->zeros = xcalloc(wide, sizeof(real)), a->d_bias = xcalloc(wide, sizeof(real));
        if (P) place_centres(a->centres, c);
        return;
    }
    size_t V = (c->permute ? (size_t)c->T : M) + (size_t)dir_probes(c), SK = (size_t)dir_states(c) * dir_probes(c);
    a->dir_z = xcalloc(SK * N, sizeof(real));
    a->dir_g = xcalloc(SK * N, sizeof(real));
    a->dir_dz = xcalloc(SK * N, sizeof(real));
    a->dir_norm = xcalloc(SK, sizeof(real));
    a->dir_d = xcalloc(SK, sizeof(double));
    a->h1 = xcalloc(V * H, sizeof(real));
    a->h2 = xcalloc(V * H, sizeof(real));
    a->Wv = xcalloc(V * N * N, sizeof(real));
    a->g0 = xcalloc(N, sizeof(real));
    a->z = xcalloc(M * N, sizeof(real));
    a->g = xcalloc(M * N, sizeof(real));
    a->norm = xcalloc(M, sizeof(real));
    a->iso_s = xcalloc(M, sizeof(double));
    a->g_mean = xcalloc(N, sizeof(double));
    a->d_g = xcalloc(M * N, sizeof(real));
    a->d_z = xcalloc(M * N, sizeof(real));
    a->d_g0 = xcalloc(N, sizeof(real));
    a->d_Wv = xcalloc(V * N * N, sizeof(real));
    a->d_h1 = xcalloc(V * H, sizeof(real));
    a->d_h2 = xcalloc(V * H, sizeof(real));
    a->pair_q = xcalloc(M * M, sizeof(real));
}

static void acts_free(Acts *a) {
    void *all[] = {a->h1, a->h2, a->Wv, a->g0, a->z, a->g, a->norm, a->iso_s, a->g_mean,
                   a->dir_z, a->dir_g, a->dir_dz, a->dir_norm, a->dir_d,
                   a->d_g, a->d_z, a->d_g0, a->d_Wv, a->d_h1, a->d_h2, a->pair_q,
                   a->drive, a->h_prev, a->h0, a->d_h0, a->out, a->d_out, a->target, a->p0, a->row_lse,
                   a->centres, a->place_scratch, a->zeros, a->d_bias};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
    pair_ctx_free(&a->pairs);
    memset(a, 0, sizeof *a);
}

/* MLP over V velocities: vel (V, 2) -> h1 = relu(W1 v + b1) (V, H) -> h2 = relu(W2 h1 + b2) (V, H)
 * -> Wv = W3 h2 + b3 (V, N*N). Each layer is linear_forward; its fast twin runs (appendix C; equal bit
 * for bit: tests/unit.c, "linear_forward_fast == linear_forward"). */
static void mlp_forward(real *h1, real *h2, real *Wv, const real *vel, const ParamTensors *p, int V, int H, int N,
                        int threads) {
    linear_forward_fast(h1, vel, p->W1, p->b1, V, 2, H, threads);
    relu_forward(h1, (size_t)V * H);
    linear_forward_fast(h2, h1, p->W2, p->b2, V, H, H, threads);
    relu_forward(h2, (size_t)V * H);
    linear_forward_fast(Wv, h2, p->W3, p->b3, V, H, N * N, threads);
}

/* Backward of mlp_forward, from d_Wv (V, N*N) into the parameter gradients d (accumulating); each
 * layer is linear_backward's fast twin (tests/unit.c, "linear_backward_fast == linear_backward"). */
static void mlp_backward(real *d_h1, real *d_h2, const real *d_Wv, const real *vel, const real *h1, const real *h2,
                         const ParamTensors *p, const ParamTensors *d, int V, int H, int N, int threads) {
    memset(d_h2, 0, (size_t)V * H * sizeof(real));
    memset(d_h1, 0, (size_t)V * H * sizeof(real));
    linear_backward_fast(d_h2, d->W3, d->b3, d_Wv, h2, p->W3, V, H, N * N, threads); /* fwd: Wv = W3 h2 + b3 */
    relu_backward(d_h2, h2, (size_t)V * H);                                           /* fwd: h2 = relu(.) */
    linear_backward_fast(d_h1, d->W2, d->b2, d_h2, h1, p->W2, V, H, H, threads);      /* fwd: h2 = W2 h1 + b2 */
    relu_backward(d_h1, h1, (size_t)V * H);                                           /* fwd: h1 = relu(.) */
    linear_backward_fast(NULL, d->W1, d->b1, d_h1, vel, p->W1, V, 2, H, threads);     /* fwd: h1 = W1 v + b1 */
}

/* Recurrence over B trajectories of T steps. For b, t (t = 1..T, row r = b*T + t-1):
 *     z_r = W(v_{index[r]}) g_{b,t-1}      (N x N matrix times N vector, each row a dot8)
 *     g_r = NormReLU(z_r),                 g_{b,0} = g0
 * Trajectories are independent tasks. Returns the number of dead states. */
typedef struct {
    real *z, *g, *norm, *d_z, *d_Wv, *d_g, *carry0;
    const real *g0, *Wv;
    const int32_t *index;
    int B, T, N;
    int64_t *dead; /* (B) */
} RnnCtx;

static void rnn_forward_task(void *ctx, int b) {
    const RnnCtx *c = ctx;
    int T = c->T, N = c->N;
    size_t n2 = (size_t)N * N;
    int64_t dead = 0;
    for (int t = 0; t < T; t++) {
        size_t r = (size_t)b * T + t;
        const real *prev = t == 0 ? c->g0 : c->g + (r - 1) * N;
        const real *W = c->Wv + (size_t)c->index[r] * n2;
        for (int i = 0; i < N; i++) c->z[r * N + i] = dot8(W + (size_t)i * N, prev, N);
        c->norm[r] = normrelu_forward(c->g + r * N, c->z + r * N, N);
        dead += c->norm[r] == 0;
    }
    c->dead[b] = dead;
}

static int64_t rnn_forward(real *z, real *g, real *norm, const real *g0, const real *Wv, const int32_t *index,
                           int B, int T, int N, int threads) {
    RnnCtx c = {z, g, norm, NULL, NULL, NULL, NULL, g0, Wv, index, B, T, N, xcalloc((size_t)B, sizeof(int64_t))};
    parallel_for(threads, B, rnn_forward_task, &c);
    int64_t dead = 0;
    for (int b = 0; b < B; b++) dead += c.dead[b];
    free(c.dead);
    return dead;
}

/* Backpropagation through time. In: d_g (B*T, N) = dL/dg_r from the losses (the carries from later
 * steps are added into it as we go), d_g0 (N) likewise. Out: d_z (B*T, N), d_Wv (V, N*N) (+=).
 * pass 1, each trajectory (a task) from its last step back (t = T..1):
 *     fwd: g_r = NormReLU(z_r)          -> d_z_r = normrelu_backward(d_g_r)
 *     fwd: z_r = W g_prev               -> d_g_prev += W^T d_z_r   (sequential over rows i)
 *   the carry into g0 is kept per trajectory and added to d_g0 in order b = 0..B-1;
 * pass 2, tasks = blocks of 16 rows i of W; within one, rows r in order (b, then t ascending):
 *     fwd: z_r = W g_prev               -> d_W(v_index[r]) += d_z_r (x) g_prev
 * So every sum has one order, whatever the number of threads. */
static void rnn_backward_task(void *ctx, int b) {
    const RnnCtx *c = ctx;
    int T = c->T, N = c->N;
    size_t n2 = (size_t)N * N;
    real *carry = xcalloc((size_t)N, sizeof(real));
    for (int t = T - 1; t >= 0; t--) {
        size_t r = (size_t)b * T + t;
        normrelu_backward(c->d_z + r * N, c->d_g + r * N, c->g + r * N, c->z + r * N, c->norm[r], N);
        const real *W = c->Wv + (size_t)c->index[r] * n2;
        for (int j = 0; j < N; j++) carry[j] = 0;
        for (int i = 0; i < N; i++) {
            real dz_i = c->d_z[r * N + i];
            for (int j = 0; j < N; j++) carry[j] += W[(size_t)i * N + j] * dz_i;
        }
        real *d_prev = t == 0 ? c->carry0 + (size_t)b * N : c->d_g + (r - 1) * N;
        for (int j = 0; j < N; j++) d_prev[j] += carry[j];
    }
    free(carry);
}

static void rnn_dW_task(void *ctx, int task) {
    const RnnCtx *c = ctx;
    int T = c->T, N = c->N, i_end = (task + 1) * 16 < N ? (task + 1) * 16 : N;
    size_t n2 = (size_t)N * N;
    for (size_t r = 0; r < (size_t)c->B * T; r++) {
        const real *prev = r % T == 0 ? c->g0 : c->g + (r - 1) * N;
        real *dW = c->d_Wv + (size_t)c->index[r] * n2;
        for (int i = task * 16; i < i_end; i++) {
            real dz_i = c->d_z[r * N + i];
            for (int j = 0; j < N; j++) dW[(size_t)i * N + j] += dz_i * prev[j];
        }
    }
}

static void rnn_backward(real *d_z, real *d_Wv, real *d_g, real *d_g0, const real *z, const real *g, const real *norm,
                         const real *g0, const real *Wv, const int32_t *index, int B, int T, int N, int threads) {
    RnnCtx c = {(real *)z, (real *)g, (real *)norm, d_z, d_Wv, d_g, xcalloc((size_t)B * N, sizeof(real)), g0, Wv, index, B, T, N, NULL};
    parallel_for(threads, B, rnn_backward_task, &c);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < N; j++) d_g0[j] += c.carry0[(size_t)b * N + j];
    free(c.carry0);
    parallel_for(threads, (N + 15) / 16, rnn_dW_task, &c);
}

/* ==============================================================================================
 * 4. LOSSES (the paper's Fig. 3a-b and its loss equations; weights from its hyperparameter table)
 * States are pooled over trajectories and times: i = 0..M-1 indexes the rows of g (M = B*T).
 * For an unordered pair i < j: dx^2 = |x_i - x_j|^2, D = dg^2 = |g_i - g_j|^2.
 *     L_sep = mean_{far pairs, sigma_x < dx (<= sep_rmax when sep_rmax > 0)}  exp(-D / (2 sigma_g^2))
 *     L_inv = mean_{near pairs, dx <= sigma_x} D
 *     L_cap = -|mean_i g_i|^2                          (capacity = meannorm)
 *           = -(2 / (M (M-1))) sum_{i<j} exp(-D / (2 sigma_g^2))   (capacity = kernel)
 *     L_iso = Var_{b,t: iso_vmin < |v| < iso_vmax} |g_{b,t} - g_{b,t-1}| / |v_{b,t}|   (|v| > 0)
 *     L_dist = mean_{pairs with sigma_x < dx <= dist_rmax} (|g_i - g_j| - s dx)^2,  s = dist_scale
 *     L_sparse = (1/M) sum_i sum_k g_ik                (the L1 norm; g_ik >= 0)
 *     L_dir = sum_{r,k} (d_rk - dbar_r)^2 / sum_{r,k} d_rk^2,  d_rk = |NormReLU(W(u_k) g_r) - g_r|  (below)
 * reduction = sum replaces the three means by plain sums.
 * L_dist is gridssl's addition (off by default and in paper.cfg): the conformal isometry of Xu, Gao,
 * Zhang, Wei and Wu (ICLR 2025) at a fixed scale and over finite displacements, where L_iso asks only
 * that single steps be scaled alike. A fixed s cannot be met by shrinking every step (the collapse a
 * strong L_iso produces), and over displacements beyond a step a hexagonal lattice is the more
 * distance-preserving one, while for tiny steps a square lattice is as isometric. Pairs closer than
 * sigma_x belong to L_inv (which wants D = 0) and stay out. Every pair of the batch takes part,
 * across trajectories too: their positions share one origin, as the other pair terms use.
 * sep_rmax > 0 is gridssl's addition (0, every far pair, in paper.cfg): separation then
 * asks only places closer than sep_rmax to differ, and a periodic code is free to repeat itself beyond
 * it. A lattice whose nearest repeats lie just beyond sep_rmax packs discs of that radius, and the
 * densest packing (the finest code for the same freedom from aliasing) is hexagonal; with every far
 * pair the batch's own spread of distances sets where repeats cost, a smooth tail. n_far counts L_sep's
 * pairs.
 * L_sparse is gridssl's addition too (off by default and in paper.cfg): for a state of unit length it
 * runs from 1 (one active unit) to sqrt(N) (all equal), so it asks for fewer active units. Sparse,
 * non-negative codes favour hexagonal lattices in the models of Sorscher et al. (2019, 2023), Dordek et
 * al. (2016) and Dorrell et al. (2023); its weight is constant, so it acts from the first step on.
 * ============================================================================================== */

/* dx^2 = |x_i - x_j|^2 in double from the (exact) float positions, so the pair masks are exact:
 * far when dx^2 > sigma_x^2, in L_sep when far and (sep_rmax = 0 or dx^2 <= sep_rmax^2), in L_dist when
 * far and dx^2 <= dist_rmax^2. */
static double pair_dx2(const real *xi, const real *xj) {
    double dx = (double)xi[0] - xj[0], dy = (double)xi[1] - xj[1];
    return dx * dx + dy * dy;
}

/* The eight lanes of a pair sum, folded pairwise as dot8 folds its lanes: ((0+1)+(2+3))+((4+5)+(6+7)). */
static double fold8(const double *lane) {
    return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

/* L_dist's residual of one pair: |g_i - g_j| - s dx, from D = |g_i - g_j|^2 and dx^2. */
static double dist_residual(double D, double dx2, double dist_scale) {
    return sqrt(D) - dist_scale * sqrt(dx2);
}

/* L_dist's slope dl/dD of one pair, l = (sqrt(D) - s dx)^2: dl/dD = 1 - s dx / sqrt(D). A pair with
 * D = 0 has no direction to move along and passes no gradient (as a zero step in L_iso). */
static double dist_slope(double D, double dx2, double dist_scale) {
    return D > 0 ? 1.0 - dist_scale * sqrt(dx2) / sqrt(D) : 0.0;
}

/* Whether a far pair takes part in L_sep: every one (sep_r2 = 0, the paper's), or those with
 * dx^2 <= sep_rmax^2. */
static int in_sep(double dx2, double sep_r2) {
    return sep_r2 == 0 || dx2 <= sep_r2;
}


/* Forward of the pair terms over g (M, N), positions pos (M, 2).
 * Order: row i sums its pairs j > i in eight lanes (lane = j mod 8, in double), folded pairwise;
 * the rows are then added in order i = 0..M-1. */
REFERENCE PairSums pair_losses_forward(const real *g, const real *pos, int M, int N, double sigma_x, double sigma_g,
                                      double sep_rmax, double dist_scale, double dist_rmax) {
    PairSums s = {0, 0, 0, 0, 0, 0, 0};
    double sigma_x2 = sigma_x * sigma_x, inv_2sg2 = 1.0 / (2.0 * sigma_g * sigma_g), dist_r2 = dist_rmax * dist_rmax;
    double sep_r2 = sep_rmax * sep_rmax;
    for (int i = 0; i < M; i++) {
        double sep[8] = {0}, inv[8] = {0}, ker[8] = {0}, dist[8] = {0};
        for (int j = i + 1; j < M; j++) {
            double D = (double)sq_dist(g + (size_t)i * N, g + (size_t)j * N, N);
            double e = gs_exp(-D * inv_2sg2);
            double dx2 = pair_dx2(pos + 2 * (size_t)i, pos + 2 * (size_t)j);
            if (dx2 > sigma_x2) {
                if (in_sep(dx2, sep_r2)) {
                    sep[j & 7] += e;
                    s.n_far++;
                }
                if (dx2 <= dist_r2) {
                    double r = dist_residual(D, dx2, dist_scale);
                    dist[j & 7] += r * r;
                    s.n_dist++;
                }
            } else {
                inv[j & 7] += D;
                s.n_near++;
            }
            ker[j & 7] += e;
        }
        s.sep_sum += fold8(sep), s.inv_sum += fold8(inv), s.ker_sum += fold8(ker), s.dist_sum += fold8(dist);
    }
    return s;
}

/* One pair's slope Q = dl/dD (see the backward below) without L_dist's part, from e = exp(-D / (2 sigma_g^2)):
 * far pairs -(c_sep [in L_sep] + c_ker) e / (2 sigma_g^2), near pairs c_inv - c_ker e / (2 sigma_g^2). A far
 * pair beyond sep_rmax (sep = 0) adds 0 for c_sep, and -(0 + c_ker) is -c_ker exactly. */
static double pair_slope(double e, int far, int sep, double c_sep, double c_inv, double c_ker, double inv_2sg2) {
    return far ? -((sep ? c_sep : 0.0) + c_ker) * e * inv_2sg2 : c_inv - c_ker * e * inv_2sg2;
}

/* Backward of the pair terms, accumulating into d_g (M, N). With the total written as
 *     L = sum_{i<j} l_ij(D_ij),   l = c_sep e (L_sep's) or c_inv D (near), plus c_ker e (all pairs),
 *     plus c_dist (sqrt(D) - s dx)^2 (L_dist's pairs),   e = exp(-D / (2 sigma_g^2)),
 * each pair's slope is Q_ij = dl/dD = -(c_sep [L_sep's] + c_ker) e / (2 sigma_g^2) + c_inv [near]
 * + c_dist dist_slope [L_dist's pairs], and
 *     dL/dg_i = sum_{j != i} 2 Q_ij (g_i - g_j) = 2 (s_i g_i - sum_j Q_ij g_j),  s_i = sum_j Q_ij.
 * So the backward is one matrix product, A = Q G with Q (M, M) symmetric, Q_ii = 0: the fast twin
 * (appendix C) runs it like a GEMM. Order and precision: Q_ij is computed in double and rounded once
 * to real; s_i adds them over j = 0..M-1 in double; A_ik adds Q_ij g_jk in real, in sequence, over
 * blocks of PAIR_BLOCK j's, and the blocks' sums in double, in order. (Real blocks run at twice the
 * vector width of double ones; tests/unit.c bounds their error against the product in double.) */
REFERENCE void pair_losses_backward(real *d_g, const real *g, const real *pos, int M, int N, double sigma_x,
                                    double sigma_g, double sep_rmax, double dist_scale, double dist_rmax, double c_sep,
                                    double c_inv, double c_ker, double c_dist) {
    double sigma_x2 = sigma_x * sigma_x, inv_2sg2 = 1.0 / (2.0 * sigma_g * sigma_g), dist_r2 = dist_rmax * dist_rmax;
    double sep_r2 = sep_rmax * sep_rmax;
    double *acc = xcalloc((size_t)N, sizeof *acc);
    real *block = xcalloc((size_t)N, sizeof *block);
    for (int i = 0; i < M; i++) {
        const real *gi = g + (size_t)i * N;
        double s_i = 0;
        for (int k = 0; k < N; k++) acc[k] = 0;
        for (int j0 = 0; j0 < M; j0 += PAIR_BLOCK) {
            for (int k = 0; k < N; k++) block[k] = 0;
            for (int j = j0; j < j0 + PAIR_BLOCK && j < M; j++) {
                const real *gj = g + (size_t)j * N;
                double D = (double)sq_dist(gi, gj, N);
                double dx2 = pair_dx2(pos + 2 * (size_t)i, pos + 2 * (size_t)j);
                int far = dx2 > sigma_x2;
                double q = pair_slope(gs_exp(-D * inv_2sg2), far, in_sep(dx2, sep_r2), c_sep, c_inv, c_ker, inv_2sg2);
                if (far && dx2 <= dist_r2) q += c_dist * dist_slope(D, dx2, dist_scale);
                real q_ij = j == i ? 0 : (real)q;
                s_i += q_ij;
                for (int k = 0; k < N; k++) block[k] += q_ij * gj[k];
            }
            for (int k = 0; k < N; k++) acc[k] += block[k];
        }
        real *d_gi = d_g + (size_t)i * N;
        for (int k = 0; k < N; k++) d_gi[k] += (real)(2.0 * (s_i * gi[k] - acc[k]));
    }
    free(acc), free(block);
}

/* 2 / (M (M-1)): the mean over the M (M-1) / 2 unordered pairs, as a factor (0 without pairs). */
static double pair_mean_factor(int M) {
    return M > 1 ? 2.0 / ((double)M * (M - 1)) : 0;
}

/* A pair term from its sum over n pairs: the mean (0 without pairs) or, with reduction = sum, the sum. */
static double pair_reduce(double sum, int64_t n, int mean) {
    return mean ? (n ? sum / (double)n : 0) : sum;
}

/* d(pair_reduce)/d(sum): 1/n (0 without pairs) or 1. */
static double pair_reduce_slope(int64_t n, int mean) {
    return mean ? (n ? 1.0 / (double)n : 0) : 1.0;
}

/* The pair terms from their sums, as the banner writes them: with reduction = mean
 *     L_sep = sep_sum / n_far,   L_inv = inv_sum / n_near,   L_dist = dist_sum / n_dist   (0 without pairs),
 * with reduction = sum the sums themselves; capacity = kernel: L_cap = -(2 / (M (M-1))) ker_sum. */
static void pair_terms(LossTerms *L, PairSums ps, int M, const Config *c) {
    int mean = c->reduction == REDUCTION_MEAN;
    L->n_near = ps.n_near;
    L->n_far = ps.n_far;
    L->n_dist = ps.n_dist;
    L->sep = pair_reduce(ps.sep_sum, ps.n_far, mean);
    L->inv = pair_reduce(ps.inv_sum, ps.n_near, mean);
    L->dist = pair_reduce(ps.dist_sum, ps.n_dist, mean);
    if (c->capacity == CAPACITY_KERNEL) L->cap = -pair_mean_factor(M) * ps.ker_sum;
}

/* Their backward: the slopes dL/d(pair sum) the pair kernels apply, each times the term's weight and
 * grad_scale: c_sep = scale w_sep / n_far (or scale w_sep), c_inv and c_dist likewise, c_ker = -scale w_cap 2/(M(M-1)). */
static void pair_slopes(double *c_sep, double *c_inv, double *c_ker, double *c_dist, const LossTerms *L, int M,
                        const Config *c, double grad_scale) {
    int mean = c->reduction == REDUCTION_MEAN;
    *c_sep = grad_scale * L->w_sep * pair_reduce_slope(L->n_far, mean);
    *c_inv = grad_scale * L->w_inv * pair_reduce_slope(L->n_near, mean);
    *c_dist = grad_scale * L->w_dist * pair_reduce_slope(L->n_dist, mean);
    *c_ker = c->capacity == CAPACITY_KERNEL ? -grad_scale * L->w_cap * pair_mean_factor(M) : 0;
}

/* Capacity, meannorm reading: mean (N) = (1/M) sum_i g_i (sequential over i); returns -|mean|^2. */
static double meannorm_forward(double *mean, const real *g, int M, int N) {
    for (int k = 0; k < N; k++) mean[k] = 0;
    for (int i = 0; i < M; i++)
        for (int k = 0; k < N; k++) mean[k] += g[(size_t)i * N + k];
    double sq = 0;
    for (int k = 0; k < N; k++) {
        mean[k] /= M;
        sq += mean[k] * mean[k];
    }
    return -sq;
}

/* fwd: L = -|mean|^2, mean = (1/M) sum_i g_i  ->  dL/dg_i = -2 mean / M, times the weight c. */
static void meannorm_backward(real *d_g, const double *mean, int M, int N, double c) {
    for (int i = 0; i < M; i++)
        for (int k = 0; k < N; k++) d_g[(size_t)i * N + k] += (real)(c * -2.0 * mean[k] / M);
}

/* Sparsity: L_sparse = (1/M) sum_i sum_k g_ik (in double, sequential over i, then k). */
static double sparse_forward(const real *g, int M, int N) {
    double sum = 0;
    for (size_t r = 0; r < (size_t)M * N; r++) sum += g[r];
    return M > 0 ? sum / M : 0;
}

/* fwd: L = (1/M) sum_ik g_ik  ->  dL/dg_ik = 1/M, times the weight c. */
static void sparse_backward(real *d_g, int M, int N, double c) {
    for (size_t r = 0; r < (size_t)M * N; r++) d_g[r] += (real)(c / M);
}

/* The speed |v| of a step (v: 2) if it takes part in the isometry term, else 0: steps with
 * iso_vmin < |v| < iso_vmax (iso_vmax = 0: no upper bound; |v| = 0 never takes part). */
static double iso_speed(const real *v, double iso_vmin, double iso_vmax) {
    double speed = sqrt((double)v[0] * v[0] + (double)v[1] * v[1]);
    return speed > iso_vmin && (iso_vmax == 0 || speed < iso_vmax) ? speed : 0; /* iso_vmin >= 0 */
}

/* |g_r - g_prev| in double (sequential over k). */
static double state_step(const real *g_r, const real *prev, int N) {
    double sq = 0;
    for (int k = 0; k < N; k++) {
        double d = (double)g_r[k] - prev[k];
        sq += d * d;
    }
    return sqrt(sq);
}

/* Conformal isometry: s_r = |g_r - g_prev| / |v_r| over qualifying steps (s (B*T), 0 elsewhere);
 * returns their population variance (two passes: mean, then mean squared deviation) and the count. */
static double isometry_forward(double *s, int64_t *count, const real *g, const real *g0, const real *vel,
                               const int32_t *index, int B, int T, int N, double iso_vmin, double iso_vmax) {
    double sum = 0;
    int64_t n = 0;
    for (size_t r = 0; r < (size_t)B * T; r++) {
        double speed = iso_speed(vel + 2 * (size_t)index[r], iso_vmin, iso_vmax);
        const real *prev = r % T == 0 ? g0 : g + (r - 1) * N;
        s[r] = speed > 0 ? state_step(g + r * N, prev, N) / speed : 0;
        sum += s[r];
        n += speed > 0;
    }
    *count = n;
    if (n == 0) return 0;
    double mean = sum / (double)n, var = 0;
    for (size_t r = 0; r < (size_t)B * T; r++)
        if (iso_speed(vel + 2 * (size_t)index[r], iso_vmin, iso_vmax) > 0) var += (s[r] - mean) * (s[r] - mean);
    return var / (double)n;
}

/* fwd: L = (1/n) sum_r (s_r - mean)^2  ->  dL/ds_r = 2 (s_r - mean) / n  (the mean's own derivative
 * sums to zero); fwd: s_r = |g_r - g_prev| / |v|  ->  ds/dg_r = (g_r - g_prev) / (|g_r - g_prev| |v|),
 * ds/dg_prev = -ds/dg_r. A zero step passes no gradient. Weight c; accumulates into d_g and d_g0. */
static void isometry_backward(real *d_g, real *d_g0, const double *s, int64_t count, const real *g, const real *g0,
                              const real *vel, const int32_t *index, int B, int T, int N, double iso_vmin, double iso_vmax, double c) {
    if (count == 0) return;
    double mean = 0;
    for (size_t r = 0; r < (size_t)B * T; r++) mean += s[r];
    mean /= (double)count;
    for (size_t r = 0; r < (size_t)B * T; r++) {
        double speed = iso_speed(vel + 2 * (size_t)index[r], iso_vmin, iso_vmax);
        if (speed == 0) continue;
        const real *prev = r % T == 0 ? g0 : g + (r - 1) * N;
        real *d_prev = r % T == 0 ? d_g0 : d_g + (r - 1) * N;
        double step = state_step(g + r * N, prev, N);
        if (step == 0) continue;
        double coef = c * 2.0 * (s[r] - mean) / (double)count / (step * speed);
        for (int k = 0; k < N; k++) {
            real d = (real)(coef * ((double)g[r * N + k] - prev[k]));
            d_g[r * N + k] += d;
            d_prev[k] -= d;
        }
    }
}

/* Direction-independence (L_dir, gridssl's addition). From each of the first S states g_r of the batch
 * (r = 0..S-1, S = dir_states), one step of length u = dir_speed in each of K evenly spaced headings
 * (the probes u_k, rows V..V+K-1 of the batch's velocities):
 *     z'_rk = W(u_k) g_r,   g'_rk = NormReLU(z'_rk),   d_rk = |g'_rk - g_r|
 *     L_dir = sum_{r,k} (d_rk - dbar_r)^2 / sum_{r,k} d_rk^2,   dbar_r = (1/K) sum_k d_rk
 * the share of the probe steps' squared length that depends on the heading. Scale-free: it is 0 when
 * every state moves alike in every heading, whatever the common length, so unlike a variance it
 * cannot be lowered by shrinking every step (the collapse a strong L_iso produces). Why it may tell
 * the lattices apart: for a code of plane waves with wave vectors k_j, |dg|^2 = sum_j a_j^2 2 (1 -
 * cos(k_j . u)) is isotropic to second order in |k| u for squares and hexagons alike (as L_iso sees
 * them), but at a sixth of the period a square lattice's squared step varies with the heading by
 * 4.5 % (as cos 4 theta), a hexagonal one's by 0.3 % (as cos 6 theta). Gao, Xie, Wei, Zhu and Wu
 * (NeurIPS 2021) ask the same of a step from one state. L_iso compares steps of different states,
 * speeds and headings; L_dir compares headings alone. Measured (data/recipes.md): trained square and
 * hexagonal networks leave the same L_dir (about 0.002 at u = 10 cm), and as a lever (weight 10) it
 * lengthens the lattice, so that u is a smaller share of a period, rather than turning it hexagonal.
 * Forward: each state a task; the two sums sequential over r, then k. */
typedef struct {
    const real *g, *Wp;        /* states (M, N); the probes' W(u_k) (K, N*N) */
    real *z, *gp, *norm, *dz;  /* (S*K, N), (S*K, N), (S*K), (S*K, N) */
    double *d;                 /* (S*K) */
    real *d_g, *d_Wp;          /* backward: (M, N) and (K, N*N), accumulated */
    double coef, L, Q;         /* backward: weight times grad_scale, L_dir, sum_{r,k} d_rk^2 */
    int K, N, S;
} DirCtx;

static void direction_forward_task(void *ctx, int r) {
    const DirCtx *c = ctx;
    int K = c->K, N = c->N;
    const real *g_r = c->g + (size_t)r * N;
    for (int k = 0; k < K; k++) {
        size_t rk = (size_t)r * K + k;
        const real *W = c->Wp + (size_t)k * N * N;
        real *z = c->z + rk * N, *gp = c->gp + rk * N;
        for (int i = 0; i < N; i++) z[i] = dot8(W + (size_t)i * N, g_r, N);   /* z' = W(u_k) g_r */
        c->norm[rk] = normrelu_forward(gp, z, N);                            /* g' = NormReLU(z') */
        c->d[rk] = state_step(gp, g_r, N);                                   /* d = |g' - g_r| */
    }
}

static double direction_forward(real *z, real *gp, real *norm, double *d, const real *g, const real *Wp, int S, int K, int N,
                                int threads) {
    DirCtx c = {g, Wp, z, gp, norm, NULL, d, NULL, NULL, 0, 0, 0, K, N, S};
    parallel_for(threads, S, direction_forward_task, &c);
    double var = 0, sq = 0;
    for (int r = 0; r < S; r++) {
        double mean = 0;
        for (int k = 0; k < K; k++) mean += d[(size_t)r * K + k];
        mean /= K;
        for (int k = 0; k < K; k++) {
            double x = d[(size_t)r * K + k];
            var += (x - mean) * (x - mean), sq += x * x;
        }
    }
    return sq > 0 ? var / sq : 0;
}

/* fwd: L = A / Q, A = sum (d_rk - dbar_r)^2, Q = sum d_rk^2  ->  dL/dd_rk = 2 ((d_rk - dbar_r) - L d_rk) / Q
 *   (dbar_r's own derivative sums to zero over k);
 * fwd: d = |g' - g_r|   ->  d_g' = dL/dd (g' - g_r) / d,  d_g_r -= the same  (a zero step passes nothing);
 * fwd: g' = NormReLU(z') -> d_z' = normrelu_backward(d_g');
 * fwd: z' = W(u_k) g_r  ->  d_g_r += W(u_k)^T d_z' (sequential over i), d_W(u_k) += d_z' (x) g_r.
 * Pass 1, each state a task, headings in order k = 0..K-1; pass 2, each heading a task, states in
 * order r = 0..S-1: every sum has one order, whatever the number of threads. */
static void direction_backward_task(void *ctx, int r) {
    const DirCtx *c = ctx;
    int K = c->K, N = c->N;
    const real *g_r = c->g + (size_t)r * N;
    real *d_g_r = c->d_g + (size_t)r * N, *d_gp = xcalloc((size_t)N, sizeof(real));
    double mean = 0;
    for (int k = 0; k < K; k++) mean += c->d[(size_t)r * K + k];
    mean /= K;
    for (int k = 0; k < K; k++) {
        size_t rk = (size_t)r * K + k;
        const real *gp = c->gp + rk * N, *W = c->Wp + (size_t)k * N * N;
        real *dz = c->dz + rk * N;
        double d = c->d[rk], slope = c->coef * 2.0 * ((d - mean) - c->L * d) / c->Q;
        for (int i = 0; i < N; i++) d_gp[i] = d > 0 ? (real)(slope * ((double)gp[i] - g_r[i]) / d) : 0;
        for (int i = 0; i < N; i++) d_g_r[i] -= d_gp[i];
        normrelu_backward(dz, d_gp, gp, c->z + rk * N, c->norm[rk], N);
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) d_g_r[j] += W[(size_t)i * N + j] * dz[i];
    }
    free(d_gp);
}

static void direction_dW_task(void *ctx, int k) {
    const DirCtx *c = ctx;
    int K = c->K, N = c->N;
    real *dW = c->d_Wp + (size_t)k * N * N;
    for (int r = 0; r < c->S; r++) {
        const real *g_r = c->g + (size_t)r * N, *dz = c->dz + ((size_t)r * K + k) * N;
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) dW[(size_t)i * N + j] += dz[i] * g_r[j];
    }
}

/* Backward of direction_forward with weight c (L: its value), into d_g (M, N) and d_Wp (K, N*N). */
static void direction_backward(real *d_g, real *d_Wp, real *dz, const real *z, const real *gp, const real *norm,
                               const double *d, const real *g, const real *Wp, int S, int K, int N, double L, double c,
                               int threads) {
    double Q = 0;
    for (size_t rk = 0; rk < (size_t)S * K; rk++) Q += d[rk] * d[rk];
    if (Q == 0) return;
    DirCtx ctx = {g, Wp, (real *)z, (real *)gp, (real *)norm, dz, (double *)d, d_g, d_Wp, c, L, Q, K, N, S};
    parallel_for(threads, S, direction_backward_task, &ctx);
    parallel_for(threads, K, direction_dW_task, &ctx);
}

/* ==============================================================================================
 * 5. THE SUPERVISED BASELINES: Cueva & Wei (ICLR 2018) and Sorscher, Mel, Ganguli & Ocko (NeurIPS 2019)
 * SIC answers two networks that are told where they are. gridssl trains them with the same
 * optimiser, analysis, determinism and gradient check. Both are plain RNNs over B trajectories of
 * T steps (row r = b*T + t-1, as for SIC), with an input I_r per step and a start state h_{b,0}:
 *     drive_r = W_in I_r (+ b_rec)       all rows at once (linear_forward_fast)
 *     pre_r   = W_rec h_{r-1} + drive_r  per trajectory, in time order
 * Cueva & Wei (model = cw): a continuous-time RNN integrated by Euler steps of dt = tau/10, with
 * noise xi ~ N(0, cw_noise^2) in every unit at every step (drawn with the batch):
 *     x_r = 0.9 x_{r-1} + 0.1 (pre_r + xi_r),   u_r = h_r = tanh(x_r),   x_{b,0} = 0 (so u_{b,0} = 0)
 *     y_r = W_out u_r                     two linear readouts, no bias: the estimated position
 *     L   = E + cw_alpha R_L2 + cw_beta R_FR
 *     E    = mean_{r, axis} (y_r - x_r)^2            x_r: the true position, arena centre = origin
 *     R_L2 = mean(W_in^2) + mean(W_out^2)            (W_rec is not penalised)
 *     R_FR = mean_{r, k} u_rk^2                      the metabolic cost
 *   The input is the step's speed and direction; the paper does not say how an angle is fed, so
 *   gridssl feeds I = (speed, cos heading, sin heading), which has no jump at 360 degrees. The paper
 *   trains with Hessian-free optimisation; gridssl uses Adam (section 6). Its initialisation:
 *   W_in ~ N(0, 1/3), W_rec ~ N(0, 1.5^2/N), b_rec = 0, W_out = 0. Its weights alpha and beta and the
 *   noise are not given (cw_* keys: gridssl's values, untuned; ref_outputs/baselines/README.md shows what they grow).
 * Sorscher et al. (model = sorscher): a ReLU RNN that predicts a place-cell code:
 *     h_{b,0} = W_enc p(x_{b,0}),   h_r = ReLU(pre_r)   (sorscher_relu = 0: h_r = pre_r, the ablation)
 *     yhat_r  = softmax(W_out h_r)        N_p outputs, no biases anywhere
 *     L = -mean_r sum_j p_j(x_r) log yhat_rj + sorscher_wd |W_rec|^2
 *     p(x): softmax_j(-|x - c_j|^2 / (2 s^2)) - softmax_j(-|x - c_j|^2 / (2 k s^2))  (s = place_sigma,
 *           k = place_surround: a difference of Gaussians), minus its smallest entry, over its sum
 *   The input is the step's displacement (x, y); the centres c_j are uniform in the arena, from the
 *   seed's own stream; the initialisation is PyTorch's default (the authors' code uses nn.Linear and
 *   nn.RNN), Uniform(+-1/sqrt(fan_in)).
 * The trajectories are each paper's (cw_walk, sorscher_walk). Progress lines also report err_m, the
 * mean distance of the decoded position from the true one (cw: y itself; sorscher: the mean centre of
 * the three most active outputs, as the authors decode).
 * ============================================================================================== */

#define CW_DT 0.1   /* Euler step dt / tau: x = (1 - CW_DT) x + CW_DT (drive + noise) */
#define SORSCHER_DT 0.02             /* seconds per step of Sorscher et al.'s generator */
#define SORSCHER_SPEED_SCALE 0.8168140899333463 /* Rayleigh scale of the forward speed: 0.13 * 2 pi m/s */
#define SORSCHER_TURN_SD 11.52       /* turning speed ~ N(0, 11.52^2) rad/s */
#define SORSCHER_BORDER 0.03         /* metres: closer to a wall and heading into it, the animal turns */

static double gs_tanh(double x) {
    double e = gs_exp(-2.0 * fabs(x)), t = (1.0 - e) / (1.0 + e); /* e in (0, 1]: no overflow, no cancellation of sign */
    return x < 0 ? -t : t;
}

static double wrap_angle(double a) { /* into (-pi, pi] */
    while (a > PI) a -= 2 * PI;
    while (a <= -PI) a += 2 * PI;
    return a;
}

/* The arena's corners, counter-clockwise, centred on the origin and `size` wide: a square of side
 * size; a regular hexagon with corners at (+-size/2, 0); an equilateral triangle of side size whose
 * bounding box is centred on the origin. Returns the number of corners. */
static int arena_polygon(double *vx, double *vy, int arena, double size) {
    double h = size / 2, r3 = sqrt(3.0) / 2;
    if (arena == ARENA_HEXAGON) {
        double px[6] = {h, h / 2, -h / 2, -h, -h / 2, h / 2}, py[6] = {0, h * r3, h * r3, 0, -h * r3, -h * r3};
        memcpy(vx, px, sizeof px), memcpy(vy, py, sizeof py);
        return 6;
    }
    if (arena == ARENA_TRIANGLE) {
        double t = size * r3 / 2, px[3] = {-h, h, 0}, py[3] = {-t, -t, t};
        memcpy(vx, px, sizeof px), memcpy(vy, py, sizeof py);
        return 3;
    }
    double px[4] = {h, -h, -h, h}, py[4] = {h, h, -h, -h};
    memcpy(vx, px, sizeof px), memcpy(vy, py, sizeof py);
    return 4;
}

/* 1 if (x, y) is in the arena (on no edge's outer side). The origin is inside every shape. */
static int arena_contains(int arena, double size, double x, double y) {
    double vx[6], vy[6];
    int n = arena_polygon(vx, vy, arena, size);
    for (int i = 0; i < n; i++) {
        int j = (i + 1) % n;
        if ((vx[j] - vx[i]) * (y - vy[i]) - (vy[j] - vy[i]) * (x - vx[i]) < 0) return 0;
    }
    return 1;
}

/* Cueva & Wei's trajectory of S steps from the arena's centre: a step stands still with probability
 * cw_still (the paper's animal rests on most steps); otherwise the heading turns by N(0, cw_turn_sd^2),
 * a random walk that keeps runs straight, and the speed is Uniform(0, cw_speed); a step that would
 * leave the arena draws new headings, uniform, until one stays inside (after 100 tries it stands
 * still). Writes input (S, 3) = (speed, cos heading, sin heading), vel (S, 2) and pos (S, 2), the
 * position after each step. The PRNG is drawn in that order, step by step. */
static void cw_walk(real *input, real *vel, real *pos, Rng *rng, const Config *c, int arena, double size, int S) {
    double x = 0, y = 0, heading = (2 * rng_uniform(rng) - 1) * PI;
    for (int t = 0; t < S; t++) {
        double speed = 0;
        if (rng_uniform(rng) >= c->cw_still) {
            heading = wrap_angle(heading + c->cw_turn_sd * rng_normal(rng));
            speed = c->cw_speed * rng_uniform(rng);
            for (int tries = 0; !arena_contains(arena, size, x + speed * gs_cos(heading), y + speed * gs_sin(heading)); tries++) {
                if (tries == 100) {
                    speed = 0;
                    break;
                }
                heading = (2 * rng_uniform(rng) - 1) * PI;
            }
        }
        double dx = speed * gs_cos(heading), dy = speed * gs_sin(heading);
        x += dx, y += dy;
        input[3 * t] = (real)speed, input[3 * t + 1] = (real)gs_cos(heading), input[3 * t + 2] = (real)gs_sin(heading);
        vel[2 * t] = (real)dx, vel[2 * t + 1] = (real)dy;
        pos[2 * t] = (real)x, pos[2 * t + 1] = (real)y;
    }
}

/* Sorscher et al.'s generator (their code's): a start uniform in the square [-start_half, start_half]^2
 * (the arena, in training) with a uniform heading; each step of SORSCHER_DT seconds a forward speed
 * ~ Rayleigh(SORSCHER_SPEED_SCALE) m/s and a turn ~ N(0, SORSCHER_TURN_SD^2) rad/s. Within
 * SORSCHER_BORDER of a wall of the square box `size` wide and heading into it (less than 90 degrees
 * from its normal), the speed is quartered and the next heading turned parallel to the wall. Writes
 * start (2), vel (S, 2) (the displacement, also the input) and pos (S, 2). */
static void sorscher_walk(real *start, real *vel, real *pos, Rng *rng, double size, double start_half, int S) {
    double x = (2 * rng_uniform(rng) - 1) * start_half, y = (2 * rng_uniform(rng) - 1) * start_half;
    double heading = 2 * PI * rng_uniform(rng), half = size / 2;
    start[0] = (real)x, start[1] = (real)y;
    for (int t = 0; t < S; t++) {
        double speed = SORSCHER_SPEED_SCALE * sqrt(-2.0 * gs_log(1.0 - rng_uniform(rng)));
        double turn = SORSCHER_DT * SORSCHER_TURN_SD * rng_normal(rng);
        double wall_dist[4] = {half - x, half - y, half + x, half + y}; /* walls at 0, 90, 180, 270 degrees */
        int w = 0;
        for (int k = 1; k < 4; k++)
            if (wall_dist[k] < wall_dist[w]) w = k;
        double to_wall = wrap_angle(heading - w * PI / 2);
        if (wall_dist[w] < SORSCHER_BORDER && fabs(to_wall) < PI / 2) {
            turn += (to_wall > 0 ? 1 : -1) * (PI / 2 - fabs(to_wall));
            speed *= 0.25;
        }
        double dx = speed * SORSCHER_DT * gs_cos(heading), dy = speed * SORSCHER_DT * gs_sin(heading);
        x += dx, y += dy;
        heading = wrap_angle(heading + turn);
        vel[2 * t] = (real)dx, vel[2 * t + 1] = (real)dy;
        pos[2 * t] = (real)x, pos[2 * t + 1] = (real)y;
    }
}

/* The N_p place-cell centres c_j (P, 2), uniform in the arena, from the seed's STREAM_PLACE. */
static void place_centres(real *centres, const Config *c) {
    Rng rng = rng_seed((uint64_t)c->seed, STREAM_PLACE);
    for (int j = 0; j < 2 * c->place_cells; j++) centres[j] = (real)((rng_uniform(&rng) - 0.5) * c->arena_size);
}

/* p(x) (P) at one position (the banner's difference of Gaussians), in double, rounded once to real.
 * scratch: (2 P) doubles. Sums sequential over j. */
static void place_code(real *p, double x, double y, const real *centres, const Config *c, double *scratch) {
    int P = c->place_cells;
    double *centre = scratch, *surround = scratch + P;
    double a = 1.0 / (2 * c->place_sigma * c->place_sigma), b = a / c->place_surround, top_a = -1e300, top_b = -1e300;
    for (int j = 0; j < P; j++) {
        double dx = x - centres[2 * j], dy = y - centres[2 * j + 1], d2 = dx * dx + dy * dy;
        centre[j] = -d2 * a, surround[j] = -d2 * b;
        top_a = centre[j] > top_a ? centre[j] : top_a, top_b = surround[j] > top_b ? surround[j] : top_b;
    }
    double sum_a = 0, sum_b = 0, lowest = 1e300, total = 0;
    for (int j = 0; j < P; j++) {
        centre[j] = gs_exp(centre[j] - top_a), surround[j] = gs_exp(surround[j] - top_b);
        sum_a += centre[j], sum_b += surround[j];
    }
    for (int j = 0; j < P; j++) {
        centre[j] = centre[j] / sum_a - surround[j] / sum_b;
        lowest = centre[j] < lowest ? centre[j] : lowest;
    }
    for (int j = 0; j < P; j++) total += centre[j] - lowest;
    for (int j = 0; j < P; j++) p[j] = (real)(total > 0 ? (centre[j] - lowest) / total : 1.0 / P);
}

/* A baseline's batch: trajectory b's walk (cw_walk from the centre, or sorscher_walk from a start
 * uniform in the arena), then, for cw, its noise xi (T, N) ~ N(0, cw_noise^2); trajectory by trajectory. */
static void baseline_batch_draw(Batch *bt, Rng *rng, const Config *c) {
    int T = bt->T, N = c->N;
    for (int b = 0; b < bt->B; b++) {
        size_t r0 = (size_t)b * T;
        if (c->model == MODEL_CW) {
            bt->start[2 * b] = bt->start[2 * b + 1] = 0;
            cw_walk(bt->input + r0 * CW_INPUTS, bt->vel + 2 * r0, bt->pos + 2 * r0, rng, c, c->arena, c->arena_size, T);
            for (size_t e = 0; e < (size_t)T * N; e++) bt->noise[r0 * N + e] = (real)(c->cw_noise * rng_normal(rng));
        } else {
            sorscher_walk(bt->start + 2 * b, bt->vel + 2 * r0, bt->pos + 2 * r0, rng, c->arena_size, c->arena_size / 2, T);
            memcpy(bt->input + 2 * r0, bt->vel + 2 * r0, (size_t)T * 2 * sizeof(real));
        }
    }
}

/* One step of a baseline for one trajectory: pre = W_rec h_prev + drive (drive: W_in I (+ b_rec));
 *     cw:       x = 0.9 x_prev + 0.1 (pre + noise),  h = tanh(x)
 *     sorscher: x = pre,  h = ReLU(pre) (relu) or pre
 * x, h (N); each row of W_rec a dot8. */
static void baseline_step(real *x, real *h, const real *x_prev, const real *h_prev, const real *drive, const real *noise,
                          const real *W_rec, int N, int model, int relu) {
    for (int i = 0; i < N; i++) {
        real pre = dot8(W_rec + (size_t)i * N, h_prev, N) + drive[i];
        if (model == MODEL_CW) {
            x[i] = (real)(1 - CW_DT) * x_prev[i] + (real)CW_DT * (pre + (noise ? noise[i] : 0));
            h[i] = (real)gs_tanh((double)x[i]);
        } else {
            x[i] = pre;
            h[i] = relu && !(pre > 0) ? 0 : pre;
        }
    }
}

typedef struct {
    real *x, *h, *d_pre, *d_h, *d_h0;
    const real *h0, *drive, *noise, *W_rec, *zeros;
    int T, N, model, relu;
} BaselineRnnCtx;

/* Trajectory b forward: rows b*T .. b*T+T-1 in time order, from h0[b] (and x_0 = 0). */
static void baseline_rnn_task(void *ctx, int b) {
    const BaselineRnnCtx *c = ctx;
    size_t N = (size_t)c->N;
    for (int t = 0; t < c->T; t++) {
        size_t r = (size_t)b * c->T + t;
        const real *h_prev = t ? c->h + (r - 1) * N : c->h0 + b * N, *x_prev = t ? c->x + (r - 1) * N : c->zeros;
        baseline_step(c->x + r * N, c->h + r * N, x_prev, h_prev, c->drive + r * N, c->noise ? c->noise + r * N : NULL,
                      c->W_rec, c->N, c->model, c->relu);
    }
}

/* Trajectory b backward, t = T..1. With dh_r = dL/dh_r from the readout and the rate cost plus the
 * carry W_rec^T d_pre_{r+1} from the next step:
 *     cw:       dx_r = dh_r (1 - h_r^2) + 0.9 dx_{r+1},   d_pre_r = 0.1 dx_r
 *     sorscher: d_pre_r = dh_r [pre_r > 0] (relu) or dh_r
 * d_pre (row r, N) is written; the carry into h_{b,0} goes to d_h0[b]. Sums sequential over i. */
static void baseline_bptt_task(void *ctx, int b) {
    const BaselineRnnCtx *c = ctx;
    size_t N = (size_t)c->N;
    real *carry = xcalloc(N, sizeof(real)), *dx_next = xcalloc(N, sizeof(real));
    for (int t = c->T - 1; t >= 0; t--) {
        size_t r = (size_t)b * c->T + t;
        real *d_pre = c->d_pre + r * N;
        for (size_t i = 0; i < N; i++) {
            real dh = c->d_h[r * N + i] + carry[i];
            if (c->model == MODEL_CW) {
                real hi = c->h[r * N + i], dx = dh * (1 - hi * hi) + (real)(1 - CW_DT) * dx_next[i];
                dx_next[i] = dx;
                d_pre[i] = (real)CW_DT * dx;
            } else d_pre[i] = c->relu && !(c->x[r * N + i] > 0) ? 0 : dh;
        }
        for (size_t j = 0; j < N; j++) carry[j] = 0;
        for (size_t i = 0; i < N; i++) /* carry = W_rec^T d_pre */
            for (size_t j = 0; j < N; j++) carry[j] += c->W_rec[i * N + j] * d_pre[i];
    }
    if (c->d_h0) memcpy(c->d_h0 + b * N, carry, N * sizeof(real));
    free(carry), free(dx_next);
}

/* Position decoded from one row of Sorscher's outputs: the mean centre of the three largest (the
 * first of equal ones). */
static void sorscher_decode(double *x, double *y, const real *logits, const real *centres, int P) {
    int top[3] = {-1, -1, -1}, k_max = P < 3 ? P : 3;
    for (int k = 0; k < k_max; k++)
        for (int j = 0; j < P; j++) {
            int taken = 0;
            for (int q = 0; q < k; q++) taken |= top[q] == j;
            if (!taken && (top[k] < 0 || logits[j] > logits[top[k]])) top[k] = j;
        }
    *x = *y = 0;
    for (int k = 0; k < k_max; k++) *x += centres[2 * top[k]] / k_max, *y += centres[2 * top[k] + 1] / k_max;
}

/* sum of W^2 over n elements, in double, sequential. */
static double sum_sq(const real *W, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)W[i] * W[i];
    return s;
}

/* Forward of a baseline over one batch: the recurrence, the readout and the loss (banner). Keeps in
 * a what baseline_backward needs; returns the terms: task (E or the cross-entropy), weights (R_L2 or
 * |W_rec|^2), rate (R_FR), total, err_m. */
static LossTerms baseline_forward(Model *m, Acts *a, const Batch *bt, const Config *c, double grad_scale, int threads) {
    int B = bt->B, T = bt->T, N = m->N, M = B * T, D = bt->D, cw = c->model == MODEL_CW;
    int O = cw ? 2 : c->place_cells;
    LossTerms L;
    memset(&L, 0, sizeof L);
    a->grad_scale = grad_scale;
    linear_forward_fast(a->drive, bt->input, m->p.W_in, cw ? m->p.b_rec : a->zeros, M, D, N, threads); /* W_in I (+ b) */
    if (cw) memset(a->h0, 0, (size_t)B * N * sizeof(real));
    else {
        for (int b = 0; b < B; b++)
            place_code(a->p0 + (size_t)b * O, bt->start[2 * b], bt->start[2 * b + 1], a->centres, c, a->place_scratch);
        linear_forward_fast(a->h0, a->p0, m->p.W_enc, a->zeros, B, O, N, threads); /* h0 = W_enc p(x0) */
    }
    BaselineRnnCtx rc = {a->z, a->g, NULL, NULL, NULL, a->h0, a->drive, cw ? bt->noise : NULL, m->p.W_rec, a->zeros,
                         T, N, c->model, c->sorscher_relu};
    parallel_for(threads, B, baseline_rnn_task, &rc);
    linear_forward_fast(a->out, a->g, m->p.W_out, a->zeros, M, N, O, threads); /* y = W_out h */
    double task = 0, err = 0;
    if (cw) {
        for (int r = 0; r < M; r++) {
            double ex = (double)a->out[2 * r] - bt->pos[2 * r], ey = (double)a->out[2 * r + 1] - bt->pos[2 * r + 1];
            task += ex * ex + ey * ey;
            err += sqrt(ex * ex + ey * ey);
        }
        L.task = task / (2.0 * M);
        L.weights = sum_sq(m->p.W_in, (size_t)N * D) / ((double)N * D) + sum_sq(m->p.W_out, (size_t)2 * N) / (2.0 * N);
        L.rate = sum_sq(a->g, (size_t)M * N) / ((double)M * N);
        L.total = L.task + c->cw_alpha * L.weights + c->cw_beta * L.rate;
    } else {
        for (int r = 0; r < M; r++) { /* -sum_j p_j log yhat_j = -sum_j p_j (l_j - lse), lse = log sum_j e^{l_j} */
            const real *l = a->out + (size_t)r * O, *p = a->target + (size_t)r * O;
            place_code(a->target + (size_t)r * O, bt->pos[2 * r], bt->pos[2 * r + 1], a->centres, c, a->place_scratch);
            double top = l[0], sum = 0, cross = 0;
            for (int j = 1; j < O; j++) top = l[j] > top ? l[j] : top;
            for (int j = 0; j < O; j++) sum += gs_exp(l[j] - top);
            a->row_lse[r] = top + gs_log(sum);
            for (int j = 0; j < O; j++) cross -= p[j] * (l[j] - a->row_lse[r]);
            task += cross;
            double dx, dy;
            sorscher_decode(&dx, &dy, l, a->centres, O);
            dx -= bt->pos[2 * r], dy -= bt->pos[2 * r + 1];
            err += sqrt(dx * dx + dy * dy);
        }
        L.task = task / M;
        L.weights = sum_sq(m->p.W_rec, (size_t)N * N);
        L.total = L.task + c->sorscher_wd * L.weights;
    }
    L.err_m = err / M;
    return L;
}

/* Backward of baseline_forward, adding grad_scale * dL/dparams into m->grads:
 *     readout:  d_out = (y - x) / M (cw: d of E's mean over 2M), or (yhat - p) / M (cross-entropy)
 *               dh = W_out^T d_out (+ cw_beta 2 u / (M N), the rate cost),  d_W_out += d_out (x) h
 *     BPTT:     baseline_bptt_task per trajectory -> d_pre (M, N), d_h0 (B, N)
 *     weights:  d_W_rec += d_pre (x) h_prev,  d_W_in += d_pre (x) I,  d_b_rec += d_pre,  d_W_enc += d_h0 (x) p(x0)
 *     costs:    cw: d_W_in += cw_alpha 2 W_in / (3 N), d_W_out += cw_alpha 2 W_out / (2 N);
 *               sorscher: d_W_rec += sorscher_wd 2 W_rec
 * The products are linear_backward_fast's (sequential over rows). */
static void baseline_backward(Model *m, Acts *a, const Batch *bt, const Config *c, int threads) {
    int B = bt->B, T = bt->T, N = m->N, M = B * T, D = bt->D, cw = c->model == MODEL_CW;
    int O = cw ? 2 : c->place_cells;
    double scale = a->grad_scale;
    for (int r = 0; r < M; r++)
        for (int j = 0; j < O; j++) {
            size_t e = (size_t)r * O + j;
            double d = cw ? (double)a->out[e] - bt->pos[e] : gs_exp(a->out[e] - a->row_lse[r]) - a->target[e];
            a->d_out[e] = (real)(scale * d / M);
        }
    memset(a->d_g, 0, (size_t)M * N * sizeof(real));
    linear_backward_fast(a->d_g, m->g.W_out, a->d_bias, a->d_out, a->g, m->p.W_out, M, N, O, threads);
    if (cw)
        for (size_t e = 0; e < (size_t)M * N; e++) a->d_g[e] += (real)(scale * c->cw_beta * 2.0 * a->g[e] / ((double)M * N));
    BaselineRnnCtx rc = {a->z, a->g, a->d_z, a->d_g, cw ? NULL : a->d_h0, a->h0, a->drive, NULL, m->p.W_rec, a->zeros,
                         T, N, c->model, c->sorscher_relu};
    parallel_for(threads, B, baseline_bptt_task, &rc);
    for (int r = 0; r < M; r++) /* h_{r-1}: the previous row, or h_{b,0} */
        memcpy(a->h_prev + (size_t)r * N, r % T ? a->g + (size_t)(r - 1) * N : a->h0 + (size_t)(r / T) * N, (size_t)N * sizeof(real));
    linear_backward_fast(NULL, m->g.W_rec, a->d_bias, a->d_z, a->h_prev, m->p.W_rec, M, N, N, threads);
    linear_backward_fast(NULL, m->g.W_in, cw ? m->g.b_rec : a->d_bias, a->d_z, bt->input, m->p.W_in, M, D, N, threads);
    if (cw) {
        for (size_t e = 0; e < (size_t)N * D; e++) m->g.W_in[e] += (real)(scale * c->cw_alpha * 2.0 * m->p.W_in[e] / ((double)N * D));
        for (size_t e = 0; e < (size_t)2 * N; e++) m->g.W_out[e] += (real)(scale * c->cw_alpha * 2.0 * m->p.W_out[e] / (2.0 * N));
    } else {
        linear_backward_fast(NULL, m->g.W_enc, a->d_bias, a->d_h0, a->p0, m->p.W_enc, B, O, N, threads);
        for (size_t e = 0; e < (size_t)N * N; e++) m->g.W_rec[e] += (real)(scale * c->sorscher_wd * 2.0 * m->p.W_rec[e]);
    }
}

/* ==============================================================================================
 * 6. TRAINING STEP AND OPTIMISER (the paper's optimiser settings; METHOD NOTES for the scheduler)
 * ============================================================================================== */

typedef struct { double sep, inv, cap, iso, dist, sparse, dir; } LossWeights;

/* lambda_iso (and lambda_dist, lambda_dir) ramp linearly from 0 at iso_start to their full values
 * iso_ramp_steps later. */
static LossWeights config_weights(const Config *c, int64_t step) {
    double ramp = step < c->iso_start ? 0.0
                  : c->iso_ramp_steps == 0 ? 1.0
                  : (double)(step - c->iso_start) / c->iso_ramp_steps;
    ramp = ramp < 1.0 ? ramp : 1.0;
    LossWeights w = {c->lambda_sep, c->lambda_inv, c->lambda_cap, c->lambda_iso * ramp, c->lambda_dist * ramp,
                     c->lambda_sparse, c->lambda_dir * ramp};
    return w;
}

/* Forward: one batch through the model and the four losses (and the additions that are on);
 * L = sum of weight * term. Keeps in a (Acts) what sic_backward needs, for a backward that adds
 * grad_scale * dL/dparams: the pair slopes are formed here, beside the exponentials they need. The
 * pair sums and slopes come from the fast twins of pair_losses_forward/backward (appendix C; equal
 * bit for bit: tests/unit.c, "pair_losses_forward_fast == pair_losses_forward"). */
static LossTerms sic_forward(Model *m, Acts *a, const Batch *bt, const Config *c, LossWeights w, double grad_scale,
                             int threads) {
    int B = bt->B, T = bt->T, V = bt->V, K = bt->n_dir, N = m->N, H = m->H, M = B * T, S = dir_states(c);
    double c_sep, c_inv, c_ker, c_dist;
    LossTerms L;
    memset(&L, 0, sizeof L);
    L.w_sep = w.sep, L.w_inv = w.inv, L.w_cap = w.cap, L.w_iso = w.iso, L.w_dist = w.dist, L.w_sparse = w.sparse;
    L.w_dir = w.dir;
    a->phase_mark = now_seconds();
    mlp_forward(a->h1, a->h2, a->Wv, bt->vel, &m->p, V + K, H, N, threads);      /* W(v) = MLP(v), and W(u_k) */
    phase_end(a, PHASE_MLP);
    a->norm0 = normrelu_forward(a->g0, m->p.theta0, N);                          /* g0 = NormReLU(theta0) */
    L.dead_states = rnn_forward(a->z, a->g, a->norm, a->g0, a->Wv, bt->index, B, T, N, threads); /* g_t */
    phase_end(a, PHASE_RNN);
    pair_ctx_free(&a->pairs);
    a->pairs = pair_ctx(a->g, bt->pos, a->pair_q, M, N, c->sigma_x, c->sigma_g, c->sep_rmax, c->dist_scale,
                        c->lambda_dist > 0 ? c->dist_rmax : 0, threads);
    L.n_near = a->pairs.n_near, L.n_far = a->pairs.n_far, L.n_dist = a->pairs.n_dist;
    pair_slopes(&c_sep, &c_inv, &c_ker, &c_dist, &L, M, c, grad_scale);          /* the backward's, kept as Q_ij */
    pair_terms(&L, pair_losses_forward_fast(a->pairs, c_sep, c_inv, c_ker, c_dist, threads), M, c); /* L_sep, L_inv (, L_cap), L_dist */
    a->grad_scale = grad_scale;
    if (c->capacity == CAPACITY_MEANNORM) L.cap = meannorm_forward(a->g_mean, a->g, M, N);
    L.iso = isometry_forward(a->iso_s, &L.n_iso, a->g, a->g0, bt->vel, bt->index, B, T, N, c->iso_vmin, c->iso_vmax);
    if (c->lambda_sparse > 0) L.sparse = sparse_forward(a->g, M, N);
    if (K) L.dir = direction_forward(a->dir_z, a->dir_g, a->dir_norm, a->dir_d, a->g, a->Wv + (size_t)V * N * N, S, K, N, threads);
    L.total = w.sep * L.sep + w.inv * L.inv + w.cap * L.cap + w.iso * L.iso;
    /* the additions, when off, add nothing (not even + 0), so the bytes stay as they were without them */
    if (c->lambda_dist > 0) L.total += w.dist * L.dist;
    if (c->lambda_sparse > 0) L.total += w.sparse * L.sparse;
    if (K) L.total += w.dir * L.dir;
    phase_end(a, PHASE_PAIRS);
    return L;
}

/* Backward of sic_forward, in reverse order, adding grad_scale * dL/dparams into m->grads (the
 * grad_scale sic_forward was given). L is what sic_forward returned for this batch (its weights). */
static void sic_backward(Model *m, Acts *a, const Batch *bt, const Config *c, const LossTerms *L, int threads) {
    int B = bt->B, T = bt->T, V = bt->V, K = bt->n_dir, N = m->N, H = m->H, M = B * T;
    double grad_scale = a->grad_scale;
    a->phase_mark = now_seconds();
    memset(a->d_g, 0, (size_t)M * N * sizeof(real));
    memset(a->d_g0, 0, (size_t)N * sizeof(real));
    pair_losses_backward_fast(a->d_g, a->pairs, threads);                        /* fwd: pair sums, Q_ij */
    if (c->capacity == CAPACITY_MEANNORM) meannorm_backward(a->d_g, a->g_mean, M, N, grad_scale * L->w_cap);
    isometry_backward(a->d_g, a->d_g0, a->iso_s, L->n_iso, a->g, a->g0, bt->vel, bt->index, B, T, N, c->iso_vmin, c->iso_vmax,
                      grad_scale * L->w_iso);
    if (c->lambda_sparse > 0) sparse_backward(a->d_g, M, N, grad_scale * L->w_sparse);
    memset(a->d_Wv, 0, (size_t)(V + K) * N * N * sizeof(real));
    if (K) direction_backward(a->d_g, a->d_Wv + (size_t)V * N * N, a->dir_dz, a->dir_z, a->dir_g, a->dir_norm, a->dir_d, a->g,
                              a->Wv + (size_t)V * N * N, dir_states(c), K, N, L->dir, grad_scale * L->w_dir, threads);
    phase_end(a, PHASE_LOSS_BACKWARD);
    /* fwd: g_t = NormReLU(W(v_t) g_{t-1}) */
    rnn_backward(a->d_z, a->d_Wv, a->d_g, a->d_g0, a->z, a->g, a->norm, a->g0, a->Wv, bt->index, B, T, N, threads);
    real *d_theta0 = xcalloc((size_t)N, sizeof(real));                         /* fwd: g0 = NormReLU(theta0) */
    normrelu_backward(d_theta0, a->d_g0, a->g0, m->p.theta0, a->norm0, N);
    for (int k = 0; k < N; k++) m->g.theta0[k] += d_theta0[k];
    free(d_theta0);
    phase_end(a, PHASE_BPTT);
    mlp_backward(a->d_h1, a->d_h2, a->d_Wv, bt->vel, a->h1, a->h2, &m->p, &m->g, V + K, H, N, threads); /* fwd: W(v) = MLP(v) */
    phase_end(a, PHASE_MLP_BACKWARD);
}

/* Optimiser and scheduler state: everything besides the parameters that a bit-exact resume needs. */
typedef struct {
    int64_t step;               /* optimiser steps taken */
    Rng data_rng;               /* the batches' stream */
    double lr;                  /* current learning rate (the scheduler lowers it) */
    double loss_ema;            /* smoothed total loss the scheduler watches */
    double best;                /* best loss_ema so far */
    int64_t bad_steps;          /* steps since best improved */
    int64_t ema_steps;          /* steps folded into loss_ema */
    double beta1_pow, beta2_pow; /* beta^step for Adam's bias correction (no pow() needed) */
} TrainState;

/* The optimiser runs over the flat parameter buffer in blocks of ADAM_BLOCK elements, the tasks of
 * parallel_for: each block is one pass over contiguous memory, and any sum over blocks is taken in
 * block order afterwards, so no result depends on the thread count. */
#define ADAM_BLOCK 16384
typedef struct { const real *grads; size_t n; double *block_sq; } GradSqCtx;
typedef struct { Model *m; const Config *c; double lr, clip_scale, bc1, bc2; } AdamCtx;

static int adam_blocks(size_t n) {
    return (int)((n + ADAM_BLOCK - 1) / ADAM_BLOCK);
}

/* sum of grad^2 over one block: eight lanes (lane = i mod 8) in double, folded pairwise. */
static void grad_sq_task(void *ctx, int task) {
    const GradSqCtx *a = ctx;
    const real *grads = a->grads;
    size_t i0 = (size_t)task * ADAM_BLOCK, end = i0 + ADAM_BLOCK < a->n ? i0 + ADAM_BLOCK : a->n;
    double lane[8] = {0};
    size_t i = i0;
    for (; i + 8 <= end; i += 8)
        for (int l = 0; l < 8; l++) lane[l] += (double)grads[i + l] * grads[i + l];
    for (int l = 0; i < end; i++, l++) lane[l] += (double)grads[i] * grads[i];
    a->block_sq[task] = fold8(lane);
}

/* Global L2 norm of the gradient buffer: the blocks' sums of squares added in block order. */
static double grad_norm(const Model *m, int threads) {
    int blocks = adam_blocks(m->num_params);
    GradSqCtx a = {m->grads, m->num_params, xcalloc((size_t)blocks, sizeof(double))};
    parallel_for(threads, blocks, grad_sq_task, &a);
    double sq = 0;
    for (int b = 0; b < blocks; b++) sq += a.block_sq[b];
    free(a.block_sq);
    return sqrt(sq);
}

/* AdamW (Loshchilov & Hutter; as torch.optim.AdamW writes it): with g = grad * clip_scale,
 *     m = b1 m + (1-b1) g,  v = b2 v + (1-b2) g^2,
 *     p = p - lr wd p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps),
 * each element computed in double (1 / sqrt(1 - b2^t) taken once per step) and rounded once to real;
 * elements are independent, one read-modify-write of p, m and v per block. */
static void adamw_task(void *ctx, int task) {
    const AdamCtx *a = ctx;
    real *p = a->m->params, *m = a->m->adam_m, *v = a->m->adam_v;
    const real *grads = a->m->grads;
    size_t i0 = (size_t)task * ADAM_BLOCK, end = i0 + ADAM_BLOCK < a->m->num_params ? i0 + ADAM_BLOCK : a->m->num_params;
    double b1 = a->c->beta1, b2 = a->c->beta2, eps = a->c->adam_eps, clip_scale = a->clip_scale;
    double lr_wd = a->lr * a->c->weight_decay, step_size = a->lr / a->bc1, inv_sqrt_bc2 = 1.0 / sqrt(a->bc2);
    for (size_t i = i0; i < end; i++) {
        double g = (double)grads[i] * clip_scale;
        double mi = b1 * m[i] + (1.0 - b1) * g;
        double vi = b2 * v[i] + (1.0 - b2) * g * g;
        double p_i = p[i];
        p_i -= lr_wd * p_i;
        p_i -= step_size * (mi / (sqrt(vi) * inv_sqrt_bc2 + eps));
        m[i] = (real)mi, v[i] = (real)vi, p[i] = (real)p_i;
    }
}

static void adamw_update(Model *m, TrainState *s, const Config *c, double clip_scale, int threads) {
    s->beta1_pow *= c->beta1;
    s->beta2_pow *= c->beta2;
    AdamCtx a = {m, c, s->lr, clip_scale, 1.0 - s->beta1_pow, 1.0 - s->beta2_pow};
    parallel_for(threads, adam_blocks(m->num_params), adamw_task, &a);
}

/* ReduceLROnPlateau on the smoothed loss. Improvement means ema < best - threshold * |best| (a relative
 * threshold that also works for the negative losses capacity produces; PyTorch's best * (1 - threshold)
 * would not). After more than patience steps without one, lr = max(lr * factor, min_lr). */
static void plateau_update(TrainState *s, const Config *c, double loss) {
    s->ema_steps++;
    s->loss_ema = s->ema_steps == 1 ? loss : c->plateau_ema * s->loss_ema + (1.0 - c->plateau_ema) * loss;
    if (s->ema_steps == 1 || s->loss_ema < s->best - c->plateau_threshold * fabs(s->best)) {
        s->best = s->loss_ema;
        s->bad_steps = 0;
    } else if (++s->bad_steps > c->plateau_patience) {
        s->lr = s->lr * c->plateau_factor > c->min_lr ? s->lr * c->plateau_factor : c->min_lr;
        s->bad_steps = 0;
    }
}

/* One optimiser step: accum batches (their gradients averaged), clip, AdamW, scheduler. avg gets the
 * loss terms averaged over the batches (dead states summed). A loss or gradient norm that is not
 * finite means training has diverged: the step is refused before it touches the parameters. */
static int train_step(Model *m, TrainState *s, Acts *a, Batch *bt, const Config *c, int threads, LossTerms *out, Err *err) {
    memset(m->grads, 0, m->num_params * sizeof(real));
    LossWeights w = config_weights(c, s->step);
    LossTerms avg;
    memset(&avg, 0, sizeof avg);
    for (int k = 0; k < c->accum; k++) {
        double t0 = now_seconds();
        LossTerms L;
        if (c->model == MODEL_SIC) {
            batch_draw(bt, &s->data_rng, c);
            a->phase_seconds[PHASE_BATCH] += now_seconds() - t0;
            L = sic_forward(m, a, bt, c, w, 1.0 / c->accum, threads);
            sic_backward(m, a, bt, c, &L, threads);
        } else {
            baseline_batch_draw(bt, &s->data_rng, c);
            a->phase_seconds[PHASE_BATCH] += now_seconds() - t0;
            L = baseline_forward(m, a, bt, c, 1.0 / c->accum, threads);
            baseline_backward(m, a, bt, c, threads);
            avg.task += L.task / c->accum, avg.weights += L.weights / c->accum, avg.rate += L.rate / c->accum;
            avg.err_m += L.err_m / c->accum;
        }
        avg.sep += L.sep / c->accum, avg.inv += L.inv / c->accum, avg.cap += L.cap / c->accum;
        avg.iso += L.iso / c->accum, avg.dist += L.dist / c->accum, avg.sparse += L.sparse / c->accum;
        avg.dir += L.dir / c->accum;
        avg.total += L.total / c->accum;
        avg.n_near += L.n_near, avg.n_far += L.n_far, avg.n_iso += L.n_iso, avg.n_dist += L.n_dist;
        avg.dead_states += L.dead_states;
        avg.w_sep = L.w_sep, avg.w_inv = L.w_inv, avg.w_cap = L.w_cap, avg.w_iso = L.w_iso, avg.w_dist = L.w_dist;
        avg.w_sparse = L.w_sparse, avg.w_dir = L.w_dir;
    }
    double t0 = now_seconds(), norm = grad_norm(m, threads);
    if (!(avg.total - avg.total == 0) || !(norm - norm == 0))
        return fail(err, "training diverged at step %lld: loss %g, gradient norm %g", (long long)s->step + 1, one_nan(avg.total),
                    one_nan(norm));
    adamw_update(m, s, c, c->clip > 0 && norm > c->clip ? c->clip / norm : 1.0, threads);
    plateau_update(s, c, avg.total);
    a->phase_seconds[PHASE_OPTIMISER] += now_seconds() - t0;
    s->step++;
    /* the annealing step (gridssl's addition): a smaller rate for the last steps lets the lattice
     * settle, so path integration stops drifting over walks longer than T (data/recipes.md, "Drift") */
    if (s->step == c->lr_drop_step) s->lr *= c->lr_drop_factor;
    *out = avg;
    return 0;
}

/* ==============================================================================================
 * 7. FILES: reading, all-or-nothing outputs, .npy, .pgm, checkpoint
 * ============================================================================================== */

/* The largest file a reader accepts: bytes, capped at half the address space (32-bit hosts). */
static size_t file_limit(double bytes) {
    return bytes < (double)(SIZE_MAX / 2) ? (size_t)bytes : SIZE_MAX / 2;
}

/* Reads a whole file into out; one longer than max_bytes is refused (a config that is /dev/zero, a
 * checkpoint far larger than any model). */
static int read_file(const char *path, Buf *out, size_t max_bytes, Err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return fail(err, "cannot open %s: %s", path, strerror(errno));
    uint8_t chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && out->len <= max_bytes) buf_put(out, chunk, n);
    int bad = ferror(f), too_long = out->len > max_bytes;
    fclose(f);
    if (bad) return fail(err, "cannot read %s", path);
    if (too_long) return fail(err, "%s is longer than %zu bytes", path, max_bytes);
    return 0;
}

/* ---- outputs: all or nothing ---------------------------------------------------------------------
 * A command writes each file under "<path>.tmp" and lists it, with every directory it creates;
 * outputs_commit then renames the files into place, in the order written, and outputs_discard
 * removes them and the new directories instead. So a command that fails leaves nothing behind and
 * keeps whatever an earlier run wrote there, and a reader never sees half a file. The renames need
 * no disk space: a full disk stops a command before its commit. The SHA-256 lines of the files
 * marked for it go to stdout at the commit, so a failed command prints none. */
typedef struct {
    char **paths; /* final paths, in the order written */
    int *is_dir;  /* 1: a directory this command created (removed by outputs_discard) */
    int count, cap;
    Buf hashes;   /* "<sha256>  <path>\n" lines (sha256sum's format) for stdout at the commit */
} Outputs;

static void outputs_add(Outputs *o, const char *path, int is_dir) {
    if (o->count == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 64;
        char **paths = realloc(o->paths, (size_t)o->cap * sizeof *paths);
        int *is_dir_grown = realloc(o->is_dir, (size_t)o->cap * sizeof *is_dir_grown);
        if (!paths || !is_dir_grown) {
            fprintf(stderr, "gridssl: error: out of memory listing output files\n");
            exit(1);
        }
        o->paths = paths, o->is_dir = is_dir_grown;
    }
    o->paths[o->count] = xcalloc(strlen(path) + 1, 1);
    memcpy(o->paths[o->count], path, strlen(path));
    o->is_dir[o->count++] = is_dir;
}

/* Forgets the list (after a commit or a discard). */
static void outputs_clear(Outputs *o) {
    for (int i = 0; i < o->count; i++) free(o->paths[i]);
    o->count = 0;
    o->hashes.len = 0;
}

static void outputs_free(Outputs *o) {
    outputs_clear(o);
    free(o->paths), free(o->is_dir), buf_free(&o->hashes);
    memset(o, 0, sizeof *o);
}

static void tmp_name(char *tmp, size_t size, const char *path) {
    snprintf(tmp, size, "%s.tmp", path);
}

/* Creates dir unless it exists (one level), listing it if created. */
static int out_dir(Outputs *o, const char *dir, Err *err) {
    struct stat st;
    if (strlen(dir) > 4000) return fail(err, "output directory path is longer than 4000 characters");
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return 0;
        return fail(err, "output directory %s exists and is not a directory", dir);
    }
#ifdef _WIN32
    int rc = _mkdir(dir);
#else
    int rc = mkdir(dir, 0777);
#endif
    if (rc != 0) return fail(err, "cannot create output directory %s: %s", dir, strerror(errno));
    outputs_add(o, dir, 1);
    return 0;
}

/* Writes b to path + ".tmp" and lists path; print_hash: its SHA-256 goes to stdout at the commit.
 * A path written twice before a commit is listed once (the second write replaces the first). */
static int out_file(Outputs *o, const char *path, const Buf *b, int print_hash, Err *err) {
    char tmp[4200];
    if (strlen(path) > 4000) return fail(err, "path too long: %s", path);
    tmp_name(tmp, sizeof tmp, path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return fail(err, "cannot write %s: %s", path, strerror(errno));
    int ok = fwrite(b->data, 1, b->len, f) == b->len, e = errno;
    if (fclose(f) != 0 && ok) ok = 0, e = errno;
    if (!ok) {
        remove(tmp);
        return fail(err, "cannot write %s: %s", path, strerror(e));
    }
    int listed = 0;
    for (int i = 0; i < o->count && !listed; i++) listed = !o->is_dir[i] && strcmp(o->paths[i], path) == 0;
    if (!listed) outputs_add(o, path, 0);
    if (print_hash) {
        char hex[65];
        sha256_hex(b->data, b->len, hex);
        buf_printf(&o->hashes, "%s  %s\n", hex, path);
    }
    return 0;
}

/* Removes every listed file's .tmp and every listed directory, newest first. */
static void outputs_discard(Outputs *o) {
    for (int i = o->count - 1; i >= 0; i--) {
        char tmp[4200];
        tmp_name(tmp, sizeof tmp, o->paths[i]);
#ifdef _WIN32
        if (o->is_dir[i]) _rmdir(o->paths[i]);
#else
        if (o->is_dir[i]) rmdir(o->paths[i]);
#endif
        else remove(tmp);
    }
    outputs_clear(o);
}

/* Prints the hash lines, then (stdout written) renames every listed file into place. On failure
 * everything not yet renamed is discarded. */
static int outputs_commit(Outputs *o, Err *err) {
    fwrite(o->hashes.data ? (const char *)o->hashes.data : "", 1, o->hashes.len, stdout);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        int e = errno;
        outputs_discard(o);
        return fail(err, "cannot write to standard output: %s", strerror(e));
    }
    for (int i = 0; i < o->count; i++) {
        if (o->is_dir[i]) continue;
        char tmp[4200];
        tmp_name(tmp, sizeof tmp, o->paths[i]);
#ifdef _WIN32
        remove(o->paths[i]); /* Windows' rename does not replace an existing file */
#endif
        if (rename(tmp, o->paths[i]) != 0) {
            fail(err, "cannot rename %s into place: %s", tmp, strerror(errno));
            for (int j = i; j < o->count; j++) /* the rest is discarded; the directories stay (hold renamed files) */
                if (!o->is_dir[j]) tmp_name(tmp, sizeof tmp, o->paths[j]), remove(tmp);
            outputs_clear(o);
            return -1;
        }
    }
    outputs_clear(o);
    return 0;
}

/* dir/name into out. out_dir has already refused directories longer than 4000 characters, so the
 * longest name gridssl uses always fits; a truncated path would be caught by the write failing. */
static void path_join(char *out, size_t size, const char *dir, const char *name) {
    if (snprintf(out, size, "%s/%s", dir, name) >= (int)size) out[size - 1] = 0;
}

/* NumPy .npy format 1.0: magic "\x93NUMPY", version 1.0, u16 header length, a Python dict literal
 * padded with spaces to a multiple of 64 bytes ending in '\n', then the data in C order. */
static void npy_header(Buf *b, const char *descr, const int64_t *shape, int ndim) {
    char dict[256], dims[160] = "";
    for (int i = 0; i < ndim; i++) {
        size_t n = strlen(dims);
        snprintf(dims + n, sizeof dims - n, "%lld%s", (long long)shape[i], ndim == 1 ? "," : i + 1 < ndim ? ", " : "");
    }
    snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, dims);
    size_t total = 10 + strlen(dict) + 1, pad = (64 - total % 64) % 64;
    buf_put(b, "\x93NUMPY\x01\x00", 8);
    uint16_t hlen = (uint16_t)(strlen(dict) + pad + 1);
    uint8_t le[2] = {(uint8_t)hlen, (uint8_t)(hlen >> 8)};
    buf_put(b, le, 2);
    buf_put(b, dict, strlen(dict));
    for (size_t i = 0; i < pad; i++) buf_put(b, " ", 1);
    buf_put(b, "\n", 1);
}

/* Saves reals (float: '<f4', double build: '<f8') with the given shape. */
static int npy_save_real(Outputs *o, const char *path, const real *x, const int64_t *shape, int ndim, Err *err) {
    Buf b = {0};
    npy_header(&b, sizeof(real) == 4 ? "<f4" : "<f8", shape, ndim);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    for (size_t i = 0; i < n; i++) buf_real(&b, x[i]);
    int rc = out_file(o, path, &b, 0, err);
    buf_free(&b);
    return rc;
}

static int npy_save_i32(Outputs *o, const char *path, const int32_t *x, const int64_t *shape, int ndim, Err *err) {
    Buf b = {0};
    npy_header(&b, "<i4", shape, ndim);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    for (size_t i = 0; i < n; i++) buf_u32(&b, (uint32_t)x[i]);
    int rc = out_file(o, path, &b, 0, err);
    buf_free(&b);
    return rc;
}

/* The grid analysis of N maps of n x n bins: the autocorrelograms cost n^4 operations per unit and
 * take N (2n-1)^2 doubles, so n is at most MAX_MAP_BINS and that buffer at most 2^28 elements. */
#define MAX_MAP_BINS 256

static int analysis_size_check(double N, double n, const char *what, Err *err) {
    if (!(n >= 2 && n <= MAX_MAP_BINS))
        return fail(err, "%s: %.0f bins per side; the analysis takes 2 to %d", what, n, MAX_MAP_BINS);
    if (!(N >= 1 && N * (2 * n - 1) * (2 * n - 1) <= MAX_BUFFER_ELEMENTS))
        return fail(err, "%s: %.0f units of %.0f x %.0f bins need %.0f autocorrelogram values, more than 2^28", what, N, n, n,
                    N * (2 * n - 1) * (2 * n - 1));
    return 0;
}

/* 1 if a value of the header's dict ends at p: spaces, then ',' or '}'. */
static int npy_value_ends(const char *p) {
    while (*p == ' ') p++;
    return *p == ',' || *p == '}';
}

/* The dimensions of a .npy shape "(a, b, c)" (a trailing comma allowed, nothing else, and the dict's
 * next entry or end after it): the rank, or -1 if the text is not such a tuple of at most 8 whole
 * numbers. */
static int npy_shape(const char *p, double *dims) {
    int rank = 0;
    while (*p == ' ') p++;
    if (*p++ != '(') return -1;
    for (;;) {
        while (*p == ' ') p++;
        if (*p == ')') return npy_value_ends(p + 1) ? rank : -1;
        int digits = 0;
        double v = 0;
        for (; *p >= '0' && *p <= '9' && digits < 16; p++, digits++) v = 10 * v + (*p - '0');
        if (!digits || rank == 8) return -1;
        dims[rank++] = v;
        while (*p == ' ') p++;
        if (*p == ',') p++;
        else if (*p != ')') return -1;
    }
}

/* Reads ratemaps (units, n, n) from a .npy of '<f4' or '<f8' in C order: finite values, NaN for an
 * unvisited bin (infinities, and '<f8' values beyond float's range, are refused). Format versions
 * 1.0 (u16 header length) and 2.0/3.0 (u32); every deviation is a one-line error. */
static int npy_read_maps(const char *path, real **maps, int *N, int *n, Err *err) {
    Buf file = {0};
    *maps = NULL;
    if (read_file(path, &file, file_limit(8 * MAX_BUFFER_ELEMENTS + 1048576.0), err)) return -1;
    int rc = -1;
    const uint8_t *d = file.data;
    size_t len = file.len;
    if (len < 10 || memcmp(d, "\x93NUMPY", 6) != 0) {
        fail(err, "%s is not a .npy file (bad magic)", path);
        goto done;
    }
    size_t header_len = d[6] == 1 ? (size_t)d[8] | (size_t)d[9] << 8
                                  : len >= 12 ? (size_t)d[8] | (size_t)d[9] << 8 | (size_t)d[10] << 16 | (size_t)d[11] << 24 : 0;
    size_t data_at = (d[6] == 1 ? 10 : 12) + header_len;
    if (d[6] < 1 || d[6] > 3 || d[7] != 0 || header_len == 0 || header_len > 65536 || data_at > len) {
        fail(err, "%s: unsupported or truncated .npy header", path);
        goto done;
    }
    char header[65600];
    memcpy(header, d + data_at - header_len, header_len);
    header[header_len] = 0;
    const char *descr = strstr(header, "'descr':"), *order = strstr(header, "'fortran_order':"), *shape = strstr(header, "'shape':");
    if (strlen(header) != header_len || !descr || !order || !shape) {
        fail(err, "%s: .npy header lacks descr, fortran_order or shape", path);
        goto done;
    }
    descr = strchr(descr + 8, '\'');
    int item = descr && strncmp(descr, "'<f4'", 5) == 0 ? 4 : descr && strncmp(descr, "'<f8'", 5) == 0 ? 8 : 0;
    if (item && !npy_value_ends(descr + 5)) item = 0; /* "'<f4'x" is no dtype */
    if (!item) {
        const char *close = descr ? strchr(descr + 1, '\'') : NULL;
        int shown = close && close - descr < 40 ? (int)(close - descr + 1) : 1;
        fail(err, "%s: dtype %.*s is not supported (need '<f4' or '<f8')", path, shown, descr ? descr : "?");
        goto done;
    }
    order += 16;
    while (*order == ' ') order++;
    if (strncmp(order, "False", 5) != 0 || !npy_value_ends(order + 5)) {
        fail(err, "%s: Fortran-ordered arrays are not supported (save with C order)", path);
        goto done;
    }
    double dims[8];
    int rank = npy_shape(shape + 8, dims);
    if (rank != 3 || dims[1] != dims[2]) {
        fail(err, "%s: shape must be (units, n, n)%s", path, rank < 0 ? ", a tuple of whole numbers" : "");
        goto done;
    }
    if (analysis_size_check(dims[0], dims[1], path, err)) goto done;
    double count = dims[0] * dims[1] * dims[2], have = (double)(len - data_at);
    if (have != count * item) {
        fail(err, "%s: %s: %.0f bytes of data, the shape needs %.0f", path, have < count * item ? "truncated" : "trailing bytes",
             have, count * item);
        goto done;
    }
    *N = (int)dims[0], *n = (int)dims[1];
    *maps = xcalloc((size_t)count, sizeof(real));
    Rd r = {d + data_at, len - data_at, 0, 0};
    for (size_t i = 0; i < (size_t)count; i++) {
        double x;
        if (item == 8) x = rd_f64(&r);
        else {
            uint32_t u = rd_u32(&r);
            float f;
            memcpy(&f, &u, 4);
            x = f;
        }
        if (x == x && !(x >= -FLT_MAX && x <= FLT_MAX)) {
            fail(err, "%s: value %zu is %g; ratemaps hold finite values within float's range (NaN: unvisited)", path, i, x);
            free(*maps);
            *maps = NULL;
            goto done;
        }
        (*maps)[i] = (real)x;
    }
    rc = 0;
done:
    buf_free(&file);
    return rc;
}

/* 8-bit binary PGM (P5), rows top to bottom. */
static void pgm_encode(Buf *b, const uint8_t *pixels, int width, int height) {
    buf_printf(b, "P5\n%d %d\n255\n", width, height);
    buf_put(b, pixels, (size_t)width * height);
}

/* ---- checkpoint ---------------------------------------------------------------------------------
 * Layout in the manual at the top of this file. Everything a bit-exact resume needs: parameters,
 * Adam moments, the data PRNG, the step, the scheduler and the resolved config. */
static const uint8_t CHECKPOINT_MAGIC[8] = {'G', 'R', 'I', 'D', 'S', 'S', 'L', 0x1a};
#define CHECKPOINT_VERSION 1u

static void checkpoint_encode(Buf *b, const Model *m, const TrainState *s, const Config *c) {
    Buf text = {0};
    config_print(&text, c);
    buf_put(b, CHECKPOINT_MAGIC, 8);
    buf_u32(b, CHECKPOINT_VERSION);
    buf_u32(b, (uint32_t)sizeof(real));
    buf_u32(b, (uint32_t)text.len);
    buf_put(b, text.data, text.len);
    buf_free(&text);
    buf_u64(b, (uint64_t)s->step);
    buf_u64(b, s->data_rng.state);
    buf_u64(b, s->data_rng.inc);
    buf_f64(b, s->lr);
    buf_f64(b, s->loss_ema);
    buf_f64(b, s->best);
    buf_u64(b, (uint64_t)s->bad_steps);
    buf_u64(b, (uint64_t)s->ema_steps);
    buf_f64(b, s->beta1_pow);
    buf_f64(b, s->beta2_pow);
    buf_u64(b, (uint64_t)m->num_params);
    const real *arrays[3] = {m->params, m->adam_m, m->adam_v};
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < m->num_params; i++) buf_real(b, arrays[k][i]);
    buf_u32(b, crc32_update(0, b->data, b->len));
}

/* 1 if all n values are finite (and, with nonnegative, >= 0); else 0 and the first bad index. */
static int all_finite(const real *x, size_t n, int nonnegative, size_t *bad) {
    for (size_t i = 0; i < n; i++)
        if (!(x[i] - x[i] == 0) || (nonnegative && x[i] < 0)) { /* x - x is NaN for NaN and +-inf */
            *bad = i;
            return 0;
        }
    return 1;
}

/* The first parameter or Adam moment that is not finite (or a negative second moment), as one
 * line, or NULL. */
static const char *model_problem(const Model *m, char *why, size_t size) {
    const real *arrays[3] = {m->params, m->adam_m, m->adam_v};
    const char *names[3] = {"parameter", "Adam first moment", "Adam second moment"};
    size_t bad;
    for (int k = 0; k < 3; k++)
        if (!all_finite(arrays[k], m->num_params, k == 2, &bad)) {
            snprintf(why, size, "%s %zu is %g", names[k], bad, one_nan(arrays[k][bad]));
            return why;
        }
    return NULL;
}

/* The optimiser state a checkpoint may hold, given its config (whose steps bound the step): the
 * first field that no run of gridssl could have written, as one line, or NULL. */
static const char *train_state_problem(const TrainState *s, const Config *c, char *why, size_t size) {
    double lr_max = config_find("lr")->max;
    if (s->step < 0 || s->step > c->steps) snprintf(why, size, "step %lld is outside [0, steps = %d]", (long long)s->step, c->steps);
    else if (!(s->data_rng.inc & 1)) snprintf(why, size, "the PCG32 increment is even");
    else if (!(s->lr >= 0 && s->lr <= lr_max)) snprintf(why, size, "learning rate %g is outside [0, %g]", one_nan(s->lr), lr_max);
    else if (!(s->loss_ema - s->loss_ema == 0) || !(s->best - s->best == 0)) snprintf(why, size, "the smoothed loss is not finite");
    else if (s->ema_steps != s->step) snprintf(why, size, "%lld smoothed steps, not the step %lld", (long long)s->ema_steps, (long long)s->step);
    else if (s->bad_steps < 0 || s->bad_steps > s->step) snprintf(why, size, "%lld steps without improvement at step %lld", (long long)s->bad_steps, (long long)s->step);
    else if (s->step == 0 ? s->beta1_pow != 1 || s->beta2_pow != 1 : !(s->beta1_pow >= 0 && s->beta1_pow < 1 && s->beta2_pow >= 0 && s->beta2_pow < 1))
        snprintf(why, size, "beta1^t = %g, beta2^t = %g at step %lld (1 at step 0, then in [0, 1))", one_nan(s->beta1_pow),
                 one_nan(s->beta2_pow), (long long)s->step);
    else return NULL;
    return why;
}

/* Loads a checkpoint written by checkpoint_encode: its config is parsed into c (then the caller's
 * overrides may be applied), the model is built and filled. The CRC only proves the bytes are the
 * ones written; every field is also checked for what gridssl could have written (a config listing
 * every key, a state train_state_problem accepts, the parameter count of the config, finite
 * parameters and moments), and the model is allocated only once the file's size matches. */
static int checkpoint_load(const char *path, Model *m, TrainState *s, Config *c, Err *err) {
    Buf file = {0};
    memset(m, 0, sizeof *m);
    if (read_file(path, &file, file_limit(3 * MAX_BUFFER_ELEMENTS * sizeof(real) + 1048576.0), err)) return -1;
    int rc = -1;
    Rd r = {file.data, file.len, 0, 0};
    if (file.len < 8 + 12 + 4 || memcmp(file.data, CHECKPOINT_MAGIC, 8) != 0) {
        fail(err, "%s is not a gridssl checkpoint (bad magic or too short)", path);
        goto done;
    }
    uint32_t stored_crc = (uint32_t)file.data[file.len - 4] | (uint32_t)file.data[file.len - 3] << 8 |
                          (uint32_t)file.data[file.len - 2] << 16 | (uint32_t)file.data[file.len - 1] << 24;
    if (crc32_update(0, file.data, file.len - 4) != stored_crc) {
        fail(err, "%s is corrupt or truncated (CRC-32 mismatch)", path);
        goto done;
    }
    r.len = file.len - 4;
    rd_bytes(&r, 8);
    uint32_t version = rd_u32(&r), real_bytes = rd_u32(&r), text_len = rd_u32(&r);
    if (version != CHECKPOINT_VERSION) {
        fail(err, "%s has checkpoint format version %u; this gridssl reads version %u", path, version, CHECKPOINT_VERSION);
        goto done;
    }
    if (real_bytes != sizeof(real)) {
        fail(err, "%s holds %u-byte reals; this build uses %u-byte reals", path, real_bytes, (unsigned)sizeof(real));
        goto done;
    }
    const uint8_t *text = rd_bytes(&r, text_len);
    if (!text) {
        fail(err, "%s is truncated (config text)", path);
        goto done;
    }
    config_defaults(c);
    char source[4200];
    snprintf(source, sizeof source, "%s (config)", path);
    if (config_parse_text(c, (const char *)text, text_len, 1, source, err) || config_validate(c, err)) goto done;
    s->step = rd_i64(&r);
    s->data_rng.state = rd_u64(&r);
    s->data_rng.inc = rd_u64(&r);
    s->lr = rd_f64(&r);
    s->loss_ema = rd_f64(&r);
    s->best = rd_f64(&r);
    s->bad_steps = rd_i64(&r);
    s->ema_steps = rd_i64(&r);
    s->beta1_pow = rd_f64(&r);
    s->beta2_pow = rd_f64(&r);
    uint64_t num_params = rd_u64(&r);
    char why[200];
    if (r.short_read) {
        fail(err, "%s is truncated (training state)", path);
        goto done;
    }
    if (train_state_problem(s, c, why, sizeof why)) {
        fail(err, "%s: %s", path, why);
        goto done;
    }
    if ((double)num_params != param_count(c)) {
        fail(err, "%s has %llu parameters but its config (N=%d, hidden=%d) needs %.0f", path,
             (unsigned long long)num_params, c->N, c->hidden, param_count(c));
        goto done;
    }
    if ((double)(r.len - r.pos) != 3.0 * (double)num_params * sizeof(real)) {
        fail(err, "%s has the wrong size for its config", path);
        goto done;
    }
    model_build(m, c);
    real *arrays[3] = {m->params, m->adam_m, m->adam_v};
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < m->num_params; i++) arrays[k][i] = rd_real(&r);
    if (model_problem(m, why, sizeof why)) {
        fail(err, "%s: %s", path, why);
        model_free(m);
        goto done;
    }
    rc = 0;
done:
    buf_free(&file);
    return rc;
}

/* ==============================================================================================
 * 8. EVALUATION: ratemaps from smooth bounded walks (the paper's Figs. 4-5; METHOD NOTES, eval_*)
 * SIC walks as eval_ratemaps says; a supervised baseline (section 5) walks as it was trained: Cueva &
 * Wei's walks from the centre of an arena of their shape, Sorscher et al.'s from a start uniform where
 * the place cells are (the training arena, within the box), without noise. For them the box is the
 * arena's width, and the walks scale with box / arena_size instead of box / 2.
 * ============================================================================================== */


/* Ratemaps of every unit in one box, and the four partial maps behind the stability measures. */
typedef struct {
    int N, n;            /* units; bins per side */
    double box, bin_m;   /* side of the box and of a bin, metres */
    int walks, steps;    /* K walks of S steps */
    real *map;           /* (N, n, n) mean state per bin, NaN where unvisited */
    real *part[4];       /* (N, n, n) each: walks of the first half, of the second half; steps of the
                            first half (early), of the second half (late) of every walk */
    int visited_bins;
    double coverage;     /* fraction of bins visited */
} Ratemaps;

static real real_nan(void) {
    return (real)gs_nan();
}

static void ratemaps_free(Ratemaps *rm) {
    free(rm->map);
    for (int k = 0; k < 4; k++) free(rm->part[k]);
    memset(rm, 0, sizeof *rm);
}

/* Walks the network through a square box of side `box` centred on the start and bins its
 * states. Bins are eval_bin_m wide, n = round(box / eval_bin_m). Boxes larger than the 2 m reference
 * get proportionally more and longer walks (scale = box / 2: K = eval_walks * scale walks of
 * S = eval_walk_mult * T * scale steps), so visits per bin stay about the same and the walks reach
 * the walls (gridssl's choice; the paper leaves it open). Each walk starts at the centre with state g0 and
 * a uniform heading:
 *     heading += N(0, eval_heading_sd^2);  speed ~ Rayleigh(mean eval_speed_mean), clipped at eval_speed_max
 *     v = speed (cos heading, sin heading); a component that would cross a wall is reversed (and the
 *     heading mirrored), so the network is always told the displacement actually made;
 *     g = NormReLU(W(v) g); the bin of the new position accumulates g.
 * Map row iy = 0 is y = -box/2, column ix = 0 is x = -box/2. The walks have their own PRNG stream,
 * the same for every box. Walks are drawn in order, run through the network EVAL_CHUNK at a time in
 * parallel, and binned in order, so the maps do not depend on the number of threads. */
#define EVAL_CHUNK 64 /* walks simulated side by side (in parallel), then binned in walk order */

typedef struct {
    const Model *m;
    int S;
    const real *g0;    /* (N) */
    const real *vel;   /* (EVAL_CHUNK, S, 2) the displacements of each walk */
    real *states;      /* (EVAL_CHUNK, S, N) the network's state after each step */
    /* a baseline's walks (section 5) */
    const Config *c;
    const real *input; /* (EVAL_CHUNK, S, D) */
    const real *start; /* (EVAL_CHUNK, 2) */
    const real *centres; /* (N_p, 2) Sorscher's place cells */
} WalkCtx;

/* One walk through the network: g = NormReLU(W(v_t) g) from g0, for the walk's S displacements. */
static void walk_task(void *ctx, int w) {
    const WalkCtx *c = ctx;
    int N = c->m->N, H = c->m->H;
    real *h1 = xcalloc((size_t)H, sizeof(real)), *h2 = xcalloc((size_t)H, sizeof(real));
    real *Wv = xcalloc((size_t)N * N, sizeof(real)), *z = xcalloc((size_t)N, sizeof(real));
    const real *g = c->g0;
    for (int t = 0; t < c->S; t++) {
        const real *v = c->vel + 2 * ((size_t)w * c->S + t);
        real *next = c->states + ((size_t)w * c->S + t) * N;
        mlp_forward(h1, h2, Wv, v, &c->m->p, 1, H, N, 1);
        for (int i = 0; i < N; i++) z[i] = dot8(Wv + (size_t)i * N, g, N);
        normrelu_forward(next, z, N);
        g = next;
    }
    free(h1), free(h2), free(Wv), free(z);
}

/* One walk through a baseline (section 5) without noise: h_0 (zero for Cueva & Wei; W_enc p(x_0) for
 * Sorscher et al.), then baseline_step for the walk's S inputs. */
static void baseline_walk_task(void *ctx, int w) {
    const WalkCtx *c = ctx;
    const Config *cf = c->c;
    int N = c->m->N, S = c->S, D = cf->model == MODEL_CW ? CW_INPUTS : 2, P = cf->model == MODEL_SORSCHER ? cf->place_cells : 0;
    size_t wide = (size_t)(N > P ? N : P);
    real *drive = xcalloc((size_t)S * N, sizeof(real)), *x = xcalloc((size_t)S * N, sizeof(real));
    real *h0 = xcalloc((size_t)N, sizeof(real)), *p0 = xcalloc((size_t)P, sizeof(real)), *zeros = xcalloc(wide, sizeof(real));
    double *scratch = xcalloc(2 * (size_t)P, sizeof(double));
    const ParamTensors *p = &c->m->p;
    linear_forward_fast(drive, c->input + (size_t)w * S * D, p->W_in, cf->model == MODEL_CW ? p->b_rec : zeros, S, D, N, 1);
    if (P) {
        place_code(p0, c->start[2 * w], c->start[2 * w + 1], c->centres, cf, scratch);
        linear_forward_fast(h0, p0, p->W_enc, zeros, 1, P, N, 1);
    }
    real *states = c->states + (size_t)w * S * N;
    for (int t = 0; t < S; t++)
        baseline_step(x + (size_t)t * N, states + (size_t)t * N, t ? x + (size_t)(t - 1) * N : zeros,
                      t ? states + (size_t)(t - 1) * N : h0, drive + (size_t)t * N, NULL, p->W_rec, N, cf->model, cf->sorscher_relu);
    free(drive), free(x), free(h0), free(p0), free(zeros), free(scratch);
}

/* The sizes of one box's evaluation: n bins per side, K walks of S steps, as described above. They
 * are computed in double and refused (one line) if a count would not fit an int or a buffer would
 * exceed 2^28 elements, before anything is allocated or written. */
typedef struct { double box; int n, walks, steps; } EvalPlan;

static int eval_plan(EvalPlan *p, const Config *c, int N, double box, Err *err) {
    double scale = box / (c->model == MODEL_SIC ? 2.0 : c->arena_size), n = floor(box / c->eval_bin_m + 0.5);
    double K = floor(c->eval_walks * scale + 0.5), S = floor((double)c->eval_walk_mult * c->T * scale + 0.5);
    n = n < 2 ? 2 : n, K = K < 2 ? 2 : K, S = S < 2 ? 2 : S;
    char what[64];
    snprintf(what, sizeof what, "the %g m box (eval_bin_m = %g)", box, c->eval_bin_m);
    if (analysis_size_check(N, n, what, err)) return -1;
    if (K > INT32_MAX || (double)EVAL_CHUNK * S * (N > CW_INPUTS ? N : CW_INPUTS) > MAX_BUFFER_ELEMENTS)
        return fail(err, "the %g m box: %.0f walks of %.0f steps (eval_walks = %d, eval_walk_mult = %d, T = %d) are more than "
                    "gridssl evaluates", box, K, S, c->eval_walks, c->eval_walk_mult, c->T);
    if (5.0 * n * n * N > MAX_BUFFER_ELEMENTS)
        return fail(err, "the %g m box: %.0f units of %.0f x %.0f bins, more than 2^28 values", box, (double)N, n, n);
    p->box = box, p->n = (int)n, p->walks = (int)K, p->steps = (int)S;
    return 0;
}

/* The ratemap bin (row iy * n + column ix) of a position in the box of side `box` centred on the origin,
 * n bins a side; positions past a wall fall in its edge bins. */
static size_t bin_index(double x, double y, double box, int n) {
    double half = box / 2;
    int ix = (int)((x + half) / box * n), iy = (int)((y + half) / box * n);
    ix = ix < 0 ? 0 : ix >= n ? n - 1 : ix;
    iy = iy < 0 ? 0 : iy >= n ? n - 1 : iy;
    return (size_t)iy * n + ix;
}

static void eval_ratemaps(Ratemaps *rm, const Model *m, const Config *c, EvalPlan plan, int threads) {
    int N = m->N, n = plan.n, K = plan.walks, S = plan.steps;
    double box = plan.box;
    size_t bins = (size_t)n * n;
    memset(rm, 0, sizeof *rm);
    rm->N = N, rm->n = n, rm->box = box, rm->bin_m = box / n, rm->walks = K, rm->steps = S;
    double *acc = xcalloc(5 * bins * N, sizeof(double)); /* [all, half 1, half 2, early, late] */
    int64_t *visits = xcalloc(5 * bins, sizeof(int64_t));
    real *g0 = xcalloc((size_t)N, sizeof(real)), *vel = xcalloc((size_t)EVAL_CHUNK * S * 2, sizeof(real));
    real *states = xcalloc((size_t)EVAL_CHUNK * S * N, sizeof(real));
    size_t *bin_of = xcalloc((size_t)EVAL_CHUNK * S, sizeof(size_t));
    int sic = c->model == MODEL_SIC, P = c->model == MODEL_SORSCHER ? c->place_cells : 0;
    real *input = sic ? NULL : xcalloc((size_t)EVAL_CHUNK * S * CW_INPUTS, sizeof(real));
    real *start = sic ? NULL : xcalloc((size_t)EVAL_CHUNK * 2, sizeof(real)), *pos = sic ? NULL : xcalloc((size_t)S * 2, sizeof(real));
    real *centres = xcalloc((size_t)2 * P, sizeof(real));
    if (P) place_centres(centres, c);
    if (sic) normrelu_forward(g0, m->p.theta0, N);
    Rng rng = rng_seed((uint64_t)c->seed, STREAM_EVAL);
    double half = box / 2, rayleigh_scale = c->eval_speed_mean / sqrt(PI / 2);
    WalkCtx wc = {m, S, g0, vel, states, c, input, start, centres};
    for (int w0 = 0; w0 < K; w0 += EVAL_CHUNK) {
        int count = K - w0 < EVAL_CHUNK ? K - w0 : EVAL_CHUNK;
        for (int w = 0; w < count && !sic; w++) { /* a baseline walks as it was trained (section 5), in the box */
            real *v = vel + 2 * (size_t)w * S;
            if (c->model == MODEL_CW) cw_walk(input + (size_t)w * S * CW_INPUTS, v, pos, &rng, c, c->arena, box, S);
            else { /* Sorscher: starts where the place cells are (the arena), walks in the box */
                sorscher_walk(start + 2 * w, v, pos, &rng, box, (box < c->arena_size ? box : c->arena_size) / 2, S);
                memcpy(input + (size_t)w * S * 2, v, (size_t)S * 2 * sizeof(real));
            }
            for (int t = 0; t < S; t++) bin_of[(size_t)w * S + t] = bin_index(pos[2 * t], pos[2 * t + 1], box, n);
        }
        for (int w = 0; w < count && sic; w++) { /* the walks' paths: the PRNG in walk order */
            double x = 0, y = 0, heading = (2 * rng_uniform(&rng) - 1) * PI;
            for (int t = 0; t < S; t++) {
                heading += c->eval_heading_sd * rng_normal(&rng);
                while (heading > PI) heading -= 2 * PI;
                while (heading <= -PI) heading += 2 * PI;
                double speed = rayleigh_scale * sqrt(-2.0 * gs_log(1.0 - rng_uniform(&rng)));
                if (speed > c->eval_speed_max) speed = c->eval_speed_max;
                real *v = vel + 2 * ((size_t)w * S + t);
                v[0] = (real)(speed * gs_cos(heading)), v[1] = (real)(speed * gs_sin(heading));
                if (x + v[0] > half || x + v[0] < -half) {
                    v[0] = -v[0];
                    heading = heading > 0 ? PI - heading : -PI - heading;
                }
                if (y + v[1] > half || y + v[1] < -half) {
                    v[1] = -v[1];
                    heading = -heading;
                }
                x += v[0];
                y += v[1];
                bin_of[(size_t)w * S + t] = bin_index(x, y, box, n);
            }
        }
        parallel_for(threads, count, sic ? walk_task : baseline_walk_task, &wc); /* the network along each path */
        for (int w = 0; w < count; w++) /* binned in walk order, step order */
            for (int t = 0; t < S; t++) {
                size_t bin = bin_of[(size_t)w * S + t];
                const real *g = states + ((size_t)w * S + t) * N;
                int sets[3] = {0, w0 + w < K / 2 ? 1 : 2, t < S / 2 ? 3 : 4};
                for (int s = 0; s < 3; s++) {
                    visits[sets[s] * bins + bin]++;
                    double *a = acc + (sets[s] * bins + bin) * N;
                    for (int k = 0; k < N; k++) a[k] += g[k];
                }
            }
    }
    real *maps[5];
    for (int s = 0; s < 5; s++) {
        maps[s] = xcalloc((size_t)N * bins, sizeof(real));
        for (int k = 0; k < N; k++)
            for (size_t b = 0; b < bins; b++) {
                int64_t count = visits[s * bins + b];
                maps[s][(size_t)k * bins + b] = count ? (real)(acc[(s * bins + b) * N + k] / (double)count) : real_nan();
            }
    }
    rm->map = maps[0];
    for (int k = 0; k < 4; k++) rm->part[k] = maps[k + 1];
    for (size_t b = 0; b < bins; b++) rm->visited_bins += visits[b] > 0;
    rm->coverage = (double)rm->visited_bins / (double)bins;
    free(acc), free(visits), free(g0), free(vel), free(states), free(bin_of), free(input), free(start), free(pos), free(centres);
}

/* ==============================================================================================
 * 9. GRID ANALYSIS (Sargolini et al. 2006; Banino et al. 2018's gridness as the paper's Fig. 4 uses it)
 * Autocorrelograms, gridness, period, orientation, the Fourier spectrum, place fields, modules and
 * their state spaces; images of all of it.
 * ============================================================================================== */

/* Pearson correlation of a and b (n) over the entries where both are finite; NaN if fewer than
 * min_count such entries or no variance. Sums in double, in index order. */
static double pearson(const real *a, const real *b, size_t n, size_t min_count) {
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(a[i] == a[i]) || !(b[i] == b[i])) continue;
        double x = a[i], y = b[i];
        sa += x, sb += y, saa += x * x, sbb += y * y, sab += x * y, count++;
    }
    if (count < min_count || count < 2) return gs_nan();
    double cov = count * sab - sa * sb, va = count * saa - sa * sa, vb = count * sbb - sb * sb;
    return va > 0 && vb > 0 ? cov / sqrt(va * vb) : gs_nan();
}

#define SAC_MIN_OVERLAP 20 /* a lag needs >= 20 bins visited in both copies */

/* Spatial autocorrelogram (Sargolini et al. 2006): sac ((2n-1) x (2n-1)), entry (n-1+ty, n-1+tx) =
 * Pearson correlation of R(x, y) with R(x + tx, y + ty) over the bins where both are visited; NaN
 * with fewer than SAC_MIN_OVERLAP such bins. R is (n, n), NaN = unvisited. */
static void autocorrelogram(double *sac, const real *R, int n) {
    int size = 2 * n - 1;
    for (int ty = -(n - 1); ty <= n - 1; ty++)
        for (int tx = -(n - 1); tx <= n - 1; tx++) {
            double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
            int count = 0;
            for (int y = ty < 0 ? -ty : 0; y < (ty > 0 ? n - ty : n); y++)
                for (int x = tx < 0 ? -tx : 0; x < (tx > 0 ? n - tx : n); x++) {
                    real a = R[y * n + x], b = R[(y + ty) * n + x + tx];
                    if (!(a == a) || !(b == b)) continue;
                    sa += a, sb += b, saa += (double)a * a, sbb += (double)b * b, sab += (double)a * b, count++;
                }
            double cov = count * sab - sa * sb, va = count * saa - sa * sa, vb = count * sbb - sb * sb;
            double r = count >= SAC_MIN_OVERLAP && va > 0 && vb > 0 ? cov / sqrt(va * vb) : gs_nan();
            sac[(size_t)(ty + n - 1) * size + tx + n - 1] = r;
        }
}

/* out = sac rotated by angle_deg about its centre, same size, bilinear; points that fall outside
 * the array are 0 (as scipy's rotate with cval = 0 in Banino et al.'s scores.py); an interpolation
 * that touches a NaN is NaN. */
static void sac_rotate(double *out, const double *sac, int size, double angle_deg) {
    double c = (size - 1) / 2.0, th = angle_deg * PI / 180.0, co = gs_cos(th), si = gs_sin(th);
    for (int i = 0; i < size; i++)
        for (int j = 0; j < size; j++) {
            double x = j - c, y = i - c;
            double xs = co * x + si * y + c, ys = -si * x + co * y + c; /* inverse rotation */
            double v = 0;
            if (xs >= 0 && ys >= 0 && xs <= size - 1 && ys <= size - 1) {
                int x0 = (int)xs, y0 = (int)ys;
                int x1 = x0 + 1 < size ? x0 + 1 : x0, y1 = y0 + 1 < size ? y0 + 1 : y0;
                double fx = xs - x0, fy = ys - y0;
                v = (1 - fy) * ((1 - fx) * sac[y0 * size + x0] + fx * sac[y0 * size + x1]) +
                    fy * ((1 - fx) * sac[y1 * size + x0] + fx * sac[y1 * size + x1]);
            }
            out[i * size + j] = v;
        }
}

typedef struct { double score60, score60_minmax, score90; } Gridness;

/* Gridness (Banino et al. 2018, DeepMind scores.py): for each annulus r_in < r <= r_out
 * (in bins from the SAC centre; r_in = 0.2 n, r_out = 0.4 n ... 1.0 n in 10 even steps) take the
 * mean m and variance s2 of the SAC over the annulus (s2 + 1e-5, as scores.py), and for each angle
 *     c_a = mean over the annulus of (SAC - m)(rot_a(SAC) - m) / s2,
 * then score60 = (c60 + c120)/2 - (c30 + c90 + c150)/3, score60_minmax = min(c60, c120) -
 * max(c30, c90, c150), score90 = c90 - (c45 + c135)/2, each maximised over the 10 annuli.
 * One difference from scores.py: NaN entries of the SAC (lags with too little overlap)
 * and of its rotations are left out of the means instead of counting as zeros. */
static Gridness gridness(const double *sac, int n) {
    static const double angles[7] = {30, 45, 60, 90, 120, 135, 150};
    int size = 2 * n - 1;
    size_t cells = (size_t)size * size;
    double *rot = xcalloc(7 * cells, sizeof(double));
    for (int a = 0; a < 7; a++) sac_rotate(rot + a * cells, sac, size, angles[a]);
    Gridness best = {-HUGE_VAL, -HUGE_VAL, -HUGE_VAL};
    double centre = n - 1;
    for (int ring = 0; ring < 10; ring++) {
        double r_in = 0.2 * n, r_out = (0.4 + 0.6 * ring / 9.0) * n;
        double sum = 0, sum2 = 0;
        int count = 0;
        for (int i = 0; i < size; i++)
            for (int j = 0; j < size; j++) {
                double r = sqrt((i - centre) * (i - centre) + (j - centre) * (j - centre)), v = sac[i * size + j];
                if (r <= r_in || r > r_out || !(v == v)) continue;
                sum += v, count++;
            }
        if (count < 2) continue;
        double mean = sum / count;
        for (int i = 0; i < size; i++)
            for (int j = 0; j < size; j++) {
                double r = sqrt((i - centre) * (i - centre) + (j - centre) * (j - centre)), v = sac[i * size + j];
                if (r <= r_in || r > r_out || !(v == v)) continue;
                sum2 += (v - mean) * (v - mean);
            }
        double var = sum2 / count + 1e-5, corr[7];
        for (int a = 0; a < 7; a++) {
            double cross = 0;
            int both = 0;
            for (int i = 0; i < size; i++)
                for (int j = 0; j < size; j++) {
                    double r = sqrt((i - centre) * (i - centre) + (j - centre) * (j - centre));
                    double v = sac[i * size + j], w = rot[a * cells + (size_t)i * size + j];
                    if (r <= r_in || r > r_out || !(v == v) || !(w == w)) continue;
                    cross += (v - mean) * (w - mean), both++;
                }
            corr[a] = both ? cross / both / var : 0;
        }
        /* corr index: 0:30 1:45 2:60 3:90 4:120 5:135 6:150 */
        double s60 = (corr[2] + corr[4]) / 2 - (corr[0] + corr[3] + corr[6]) / 3;
        double lo60 = corr[2] < corr[4] ? corr[2] : corr[4];
        double hi_off = corr[0] > corr[3] ? corr[0] : corr[3];
        hi_off = hi_off > corr[6] ? hi_off : corr[6];
        double s90 = corr[3] - (corr[1] + corr[5]) / 2;
        if (s60 > best.score60) best.score60 = s60;
        if (lo60 - hi_off > best.score60_minmax) best.score60_minmax = lo60 - hi_off;
        if (s90 > best.score90) best.score90 = s90;
    }
    free(rot);
    if (best.score60 == -HUGE_VAL) best.score60 = best.score60_minmax = best.score90 = gs_nan();
    return best;
}

/* Period (in bins) and orientation (degrees in [0, 60)) from the SAC's peaks.
 * A peak is a positive SAC value that is the largest in its 5 x 5 neighbourhood (so ripples of a
 * noisy map do not count) and lies at least 2 bins from the centre; its position is refined to a
 * fraction of a bin by a parabola through it and its neighbours along each axis. The six peaks
 * nearest the centre give period = the median of their distances and orientation = (1/6) arg of
 * sum exp(6 i angle) (the lattice's angle modulo 60 degrees, robust to any one peak). Fewer than
 * three peaks: NaN. */
static void sac_period(double *period_bins, double *orientation_deg, const double *sac, int n) {
    int size = 2 * n - 1, max_peaks = 6;
    double c = n - 1, dist[6], px[6], py[6];
    int found = 0;
    for (int i = 2; i < size - 2; i++)
        for (int j = 2; j < size - 2; j++) {
            double v = sac[i * size + j];
            if (!(v > 0)) continue;
            int is_max = 1;
            for (int di = -2; di <= 2 && is_max; di++)
                for (int dj = -2; dj <= 2; dj++) {
                    double w = sac[(i + di) * size + j + dj];
                    if ((di || dj) && w == w && (w > v || (w == v && (di < 0 || (di == 0 && dj < 0))))) {
                        is_max = 0; /* ties go to the first in scan order */
                        break;
                    }
                }
            double x = j - c, y = i - c, d = sqrt(x * x + y * y);
            if (!is_max || d < 2) continue;
            double l = sac[i * size + j - 1], r = sac[i * size + j + 1], u = sac[(i - 1) * size + j], o = sac[(i + 1) * size + j];
            double cx = l - 2 * v + r, cy = u - 2 * v + o;
            if (cx < 0 && l == l && r == r) x += 0.5 * (l - r) / cx;
            if (cy < 0 && u == u && o == o) y += 0.5 * (u - o) / cy;
            d = sqrt(x * x + y * y);
            /* insert into the list of the nearest max_peaks, kept sorted by distance */
            int pos = found < max_peaks ? found++ : max_peaks;
            while (pos > 0 && dist[pos - 1] > d) {
                if (pos < max_peaks) dist[pos] = dist[pos - 1], px[pos] = px[pos - 1], py[pos] = py[pos - 1];
                pos--;
            }
            if (pos < max_peaks) dist[pos] = d, px[pos] = x, py[pos] = y;
        }
    if (found < 3) {
        *period_bins = *orientation_deg = gs_nan();
        return;
    }
    *period_bins = found % 2 ? dist[found / 2] : (dist[found / 2 - 1] + dist[found / 2]) / 2;
    double sx = 0, sy = 0;
    for (int k = 0; k < found; k++) {
        double a = 6 * gs_atan2(py[k], px[k]);
        sx += gs_cos(a), sy += gs_sin(a);
    }
    double o = gs_atan2(sy, sx) / 6 * 180 / PI;
    *orientation_deg = o < 0 ? o + 60 : o;
}

/* In-place radix-2 FFT of x (2 * len doubles, interleaved re/im), len a power of two.
 * X_k = sum_j x_j exp(-2 pi i jk / len); twiddles from gs_cos/gs_sin. */
static void fft(double *x, int len) {
    for (int i = 1, j = 0; i < len; i++) { /* bit-reversal permutation */
        int bit = len >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) {
            double tr = x[2 * i], ti = x[2 * i + 1];
            x[2 * i] = x[2 * j], x[2 * i + 1] = x[2 * j + 1];
            x[2 * j] = tr, x[2 * j + 1] = ti;
        }
    }
    for (int span = 2; span <= len; span <<= 1)
        for (int k = 0; k < span / 2; k++) {
            double a = -2 * PI * k / span, wr = gs_cos(a), wi = gs_sin(a);
            for (int s = 0; s < len; s += span) {
                double *p = x + 2 * (s + k), *q = x + 2 * (s + k + span / 2);
                double tr = wr * q[0] - wi * q[1], ti = wr * q[1] + wi * q[0];
                q[0] = p[0] - tr, q[1] = p[1] - ti;
                p[0] += tr, p[1] += ti;
            }
        }
}

/* The 2-D Fourier power of a ratemap (n, n) minus its mean over visited bins (unvisited bins 0),
 * zero-padded to P x P, P the power of two >= 4n, so frequencies are sampled every 1/(P bin) cycles
 * per metre. Returns |X|^2 (P x P, power[ky][kx]) and sets *P. */
static double *map_power(const real *R, int n, int *P_out) {
    int P = 1;
    while (P < 4 * n) P <<= 1;
    double *grid = xcalloc((size_t)2 * P * P, sizeof(double)), *row = xcalloc((size_t)2 * P, sizeof(double));
    double mean = 0;
    int count = 0;
    for (int b = 0; b < n * n; b++)
        if (R[b] == R[b]) mean += R[b], count++;
    mean = count ? mean / count : 0;
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) grid[2 * ((size_t)y * P + x)] = R[y * n + x] == R[y * n + x] ? R[y * n + x] - mean : 0;
    for (int y = 0; y < P; y++) fft(grid + 2 * (size_t)y * P, P); /* rows */
    for (int x = 0; x < P; x++) {                                  /* columns */
        for (int y = 0; y < P; y++) row[2 * y] = grid[2 * ((size_t)y * P + x)], row[2 * y + 1] = grid[2 * ((size_t)y * P + x) + 1];
        fft(row, P);
        for (int y = 0; y < P; y++) grid[2 * ((size_t)y * P + x)] = row[2 * y], grid[2 * ((size_t)y * P + x) + 1] = row[2 * y + 1];
    }
    free(row);
    for (size_t i = 0; i < (size_t)P * P; i++) grid[i] = grid[2 * i] * grid[2 * i] + grid[2 * i + 1] * grid[2 * i + 1];
    *P_out = P;
    return grid; /* the first P * P entries now hold the power */
}

/* The power at frequency (kx, ky) of a P x P power spectrum, indices taken modulo P. */
static double power_at(const double *power, int P, int kx, int ky) {
    return power[(size_t)((ky + P) % P) * P + (kx + P) % P];
}

/* The strongest frequency (kx, ky) of a P x P power (index units, signed) whose |k| lies in
 * [k_lo, k_hi) and whose direction is at least min_angle_deg (modulo 180) from each of the
 * n_avoid directions in avoid_kx/ky; ties go to the first in scan order. Returns its power, -1 if none. */
static double spectrum_peak(const double *power, int P, double k_lo, double k_hi, const int *avoid_kx, const int *avoid_ky,
                            int n_avoid, double min_angle_deg, int *kx_out, int *ky_out) {
    double best = -1, cos_max = gs_cos(min_angle_deg * PI / 180);
    for (int y = 0; y < P; y++)
        for (int x = 0; x < P; x++) {
            int ky = y < P / 2 ? y : y - P, kx = x < P / 2 ? x : x - P;
            double k = sqrt((double)kx * kx + (double)ky * ky);
            if (k < k_lo || k >= k_hi || power[(size_t)y * P + x] <= best) continue;
            int near = 0; /* |cos| of the angle to an avoided direction above cos(min_angle): too close */
            for (int a = 0; a < n_avoid && !near; a++) {
                double ka = sqrt((double)avoid_kx[a] * avoid_kx[a] + (double)avoid_ky[a] * avoid_ky[a]);
                near = fabs((double)kx * avoid_kx[a] + (double)ky * avoid_ky[a]) > cos_max * k * ka;
            }
            if (near) continue;
            best = power[(size_t)y * P + x], *kx_out = kx, *ky_out = ky;
        }
    return best;
}

/* Fourier measures of one unit (the 2-D spectrum of a ratemap as Krupic et al., Science 2012, read it):
 *   period_m    the strongest frequency, periods longer than the box excluded (|k| >= 1/box), refined
 *               by a parabola along each axis. A hexagonal lattice of field spacing L is three plane
 *               waves of wavelength L sqrt(3)/2, so it is reported as the spacing 2 / (sqrt(3) |k|)
 *               (for a square lattice or a band: 2/sqrt(3) times the wavelength).
 *   a2, a4, a6  the symmetry of the ring of frequencies within 15 % of that peak's |k|:
 *               a_m = |sum P(k) exp(i m theta_k)| / sum P(k) over the ring. A hexagonal lattice puts
 *               its power in six peaks 60 degrees apart: a6 ~ 1, a4 ~ a2 ~ 0; a square lattice four
 *               peaks 90 degrees apart: a4 ~ 1, a6 ~ a2 ~ 0; a band two opposite peaks: a2 ~ 1 (a4, a6
 *               high too). The finite box blurs each peak over ~1/box cycles per metre, along the ring
 *               too, so the values fall with the period: a6 0.91 for a hexagonal lattice of 0.3 m in a
 *               2 m box, 0.70 for one of 0.8 m (tests/unit.c).
 *               exp(i m theta) is ((kx + i ky)/|k|)^m, by repeated multiplication. */
typedef struct { double period_m, a2, a4, a6; } FourierScores;

#define FOURIER_TILE 101    /* the picture of a unit's spectrum: 101 x 101 pixels, */
#define FOURIER_MAX_K 4.0   /* frequencies -4 .. 4 cycles per metre on each axis (periods down to ~0.3 m) */

/* Also draws the spectrum into tile (FOURIER_TILE^2, row 0 = ky most negative): sqrt of the power at
 * the nearest sampled frequency, so that weaker peaks stay visible. */
static FourierScores fourier_scores(const real *R, int n, double bin_m, double *tile) {
    int P;
    double *power = map_power(R, n, &P);
    double per_pixel = 2 * FOURIER_MAX_K / (FOURIER_TILE - 1) * P * bin_m; /* index units per pixel */
    for (int i = 0; i < FOURIER_TILE; i++)
        for (int j = 0; j < FOURIER_TILE; j++) {
            int ky = (int)floor((i - FOURIER_TILE / 2) * per_pixel + 0.5), kx = (int)floor((j - FOURIER_TILE / 2) * per_pixel + 0.5);
            tile[i * FOURIER_TILE + j] = sqrt(power_at(power, P, kx, ky));
        }
    FourierScores f = {gs_nan(), gs_nan(), gs_nan(), gs_nan()};
    int kx = 0, ky = 0;
    double k_min = (double)P / n; /* |k| in index units below which the period exceeds the box */
    double best = spectrum_peak(power, P, k_min, HUGE_VAL, NULL, NULL, 0, 0, &kx, &ky);
    if (best > 0) {
        double fx = kx, fy = ky;
        double l = power_at(power, P, kx - 1, ky), r = power_at(power, P, kx + 1, ky);
        double d = power_at(power, P, kx, ky - 1), u = power_at(power, P, kx, ky + 1);
        if (l - 2 * best + r < 0) fx += 0.5 * (l - r) / (l - 2 * best + r);
        if (d - 2 * best + u < 0) fy += 0.5 * (d - u) / (d - 2 * best + u);
        double k = sqrt(fx * fx + fy * fy) / (P * bin_m); /* cycles per metre */
        if (k > 0) f.period_m = 2.0 / (sqrt(3.0) * k);
        double k_peak = sqrt((double)kx * kx + (double)ky * ky), total = 0, re[3] = {0}, im[3] = {0};
        for (int y = 0; y < P; y++)
            for (int x = 0; x < P; x++) {
                int qy = y < P / 2 ? y : y - P, qx = x < P / 2 ? x : x - P;
                double q = sqrt((double)qx * qx + (double)qy * qy), p = power[(size_t)y * P + x];
                if (q < 0.85 * k_peak || q > 1.15 * k_peak) continue;
                double c1 = qx / q, s1 = qy / q, c = 1, s = 0; /* exp(i theta), and its powers */
                total += p;
                for (int m = 1; m <= 6; m++) {
                    double t = c * c1 - s * s1;
                    s = c * s1 + s * c1, c = t;
                    if (m % 2 == 0) re[m / 2 - 1] += p * c, im[m / 2 - 1] += p * s;
                }
            }
        f.a2 = sqrt(re[0] * re[0] + im[0] * im[0]) / total;
        f.a4 = sqrt(re[1] * re[1] + im[1] * im[1]) / total;
        f.a6 = sqrt(re[2] * re[2] + im[2] * im[2]) / total;
    }
    free(power);
    return f;
}

/* The 4-connected components of the bins of R (n, n) above threshold (unvisited bins are never
 * above it): label[b] = 1.. for the component of bin b, 0 below; sizes[c - 1] = bins of component c.
 * Components are numbered in scan order, each filled from its first bin with an explicit stack.
 * Returns their number; label, sizes and stack have room for n * n. */
static int label_components(int *label, int *sizes, int *stack, const real *R, int n, double threshold) {
    int components = 0;
    memset(label, 0, (size_t)n * n * sizeof(int));
    for (int b = 0; b < n * n; b++) {
        if (label[b] || !(R[b] > threshold)) continue;
        int top = 0, size = 0;
        label[b] = ++components, stack[top++] = b;
        while (top) {
            int c = stack[--top], cx = c % n, cy = c / n;
            size++;
            int next[4] = {cx > 0 ? c - 1 : -1, cx < n - 1 ? c + 1 : -1, cy > 0 ? c - n : -1, cy < n - 1 ? c + n : -1};
            for (int i = 0; i < 4; i++)
                if (next[i] >= 0 && !label[next[i]] && R[next[i]] > threshold) label[next[i]] = components, stack[top++] = next[i];
        }
        sizes[components - 1] = size;
    }
    return components;
}

/* Place fields (the paper's Fig. 7, small sigma_g: "place-cell-like"; the usual definition, e.g.
 * Langston et al. 2010): bins above half the map's range (min + (max - min) / 2 over visited bins),
 * grouped into 4-connected components; a component of at least FIELD_MIN_M2 is a field. Returns the
 * number of fields and their mean diameter sqrt(4 area / pi) in metres (NaN without a field). */
#define FIELD_MIN_M2 0.01 /* a 10 x 10 cm patch: smaller islands are noise, not fields */
typedef struct { int count; double diameter_m; } Fields;

static Fields place_fields(const real *R, int n, double bin_m) {
    double lo = HUGE_VAL, hi = -HUGE_VAL;
    for (int b = 0; b < n * n; b++)
        if (R[b] == R[b]) lo = R[b] < lo ? R[b] : lo, hi = R[b] > hi ? R[b] : hi;
    Fields f = {0, gs_nan()};
    if (!(hi > lo)) return f;
    int *label = xcalloc((size_t)n * n, sizeof(int)), *sizes = xcalloc((size_t)n * n, sizeof(int)), *stack = xcalloc((size_t)n * n, sizeof(int));
    int components = label_components(label, sizes, stack, R, n, lo + (hi - lo) / 2);
    int min_bins = (int)(FIELD_MIN_M2 / (bin_m * bin_m) + 0.999);
    double area_sum = 0;
    for (int c = 0; c < components; c++)
        if (sizes[c] >= min_bins) f.count++, area_sum += sizes[c] * bin_m * bin_m;
    free(label), free(sizes), free(stack);
    if (f.count) f.diameter_m = sqrt(4 * area_sum / f.count / PI);
    return f;
}

/* Border score (Solstad, Boccara, Kropff, Moser & Moser, Science 2008), for a square box:
 *     b = (c_M - d_m) / (c_M + d_m),  in [-1, 1]
 * Fields: 4-connected bins above 0.3 times the map's peak rate, of at least BORDER_FIELD_M2
 * (200 cm^2; both their values). c_M: the largest fraction of one wall's visited bins (the outermost
 * row or column on that side) that lie in one field, over fields and the four walls. d_m: the mean
 * distance to the nearest wall of the bins in fields, weighted by rate, divided by half the box's
 * side (0 on a wall, 1 at the centre). A field along one wall gives b near 1; fields away from the
 * walls give b near -1 (none touching a wall: c_M = 0, b = -1). NaN when the peak rate is not
 * positive or no field is large enough. Rates are used as they are (the units' are non-negative). */
#define BORDER_FIELD_M2 0.02
#define BORDER_THRESHOLD 0.3

static double border_score(const real *R, int n, double bin_m) {
    double peak = -HUGE_VAL;
    for (int b = 0; b < n * n; b++)
        if (R[b] == R[b] && R[b] > peak) peak = R[b];
    if (!(peak > 0)) return gs_nan();
    int *label = xcalloc((size_t)n * n, sizeof(int)), *sizes = xcalloc((size_t)n * n, sizeof(int)), *stack = xcalloc((size_t)n * n, sizeof(int));
    int components = label_components(label, sizes, stack, R, n, BORDER_THRESHOLD * peak);
    int min_bins = (int)(BORDER_FIELD_M2 / (bin_m * bin_m) + 0.999), any = 0;
    double c_max = 0, weighted = 0, weight = 0;
    for (int c = 1; c <= components; c++) {
        if (sizes[c - 1] < min_bins) continue;
        any = 1;
        for (int wall = 0; wall < 4; wall++) { /* west, east, south, north */
            int visited = 0, covered = 0;
            for (int i = 0; i < n; i++) {
                int b = wall == 0 ? i * n : wall == 1 ? i * n + n - 1 : wall == 2 ? i : (n - 1) * n + i;
                if (!(R[b] == R[b])) continue;
                visited++, covered += label[b] == c;
            }
            if (visited && (double)covered / visited > c_max) c_max = (double)covered / visited;
        }
        for (int b = 0; b < n * n; b++) {
            if (label[b] != c) continue;
            double x = b % n + 0.5, y = b / n + 0.5, d = x < n - x ? x : n - x;
            d = y < d ? y : d, d = n - y < d ? n - y : d;
            weighted += R[b] * (d / (n / 2.0)), weight += R[b];
        }
    }
    free(label), free(sizes), free(stack);
    if (!any) return gs_nan();
    double d_m = weighted / weight;
    return (c_max - d_m) / (c_max + d_m);
}

/* Everything gridssl measures about one unit in one box. */
typedef struct {
    double score60, score60_minmax, score90, period_m, orientation_deg, fourier_period_m, mean_rate;
    double split_half_r, early_late_r; /* NaN when not measured (gridssl score) */
    int module;                        /* 1.. by increasing period; 0 = not grid-like */
    double fourier_a2, fourier_a4, fourier_a6; /* the symmetry of the spectrum's dominant ring */
    int fields;                                /* place fields, and their mean diameter */
    double field_diameter_m;
    double border_score;                       /* Solstad et al. 2008 */
    double phase[2]; /* in the module's lattice cell, cycles along its first two waves; NaN outside one */
} UnitScores;

typedef struct { int units; double period_m, orientation_deg, orientation_spread_deg; } Module;

#define GRID_THRESHOLD 0.3 /* "grid-like" means score60 > 0.3, the usual threshold */
#define MODULE_GAP 1.2     /* sorted periods more than 20 % apart start a new module */

/* SAC, gridness, period, orientation, Fourier measures and fields of each of N maps (n, n); sacs receives
 * the autocorrelograms (N, 2n-1, 2n-1). */
typedef struct { UnitScores *u; double *sacs, *spectra; const real *maps; int n; double bin_m; } AnalyseCtx;

/* One unit: its SAC, gridness, period, orientation, Fourier measures, place fields and mean rate. */
static void analyse_task(void *ctx, int k) {
    const AnalyseCtx *c = ctx;
    int n = c->n;
    size_t bins = (size_t)n * n, cells = (size_t)(2 * n - 1) * (2 * n - 1);
    const real *R = c->maps + k * bins;
    double *sac = c->sacs + k * cells, period_bins, sum = 0;
    UnitScores *u = &c->u[k];
    autocorrelogram(sac, R, n);
    Gridness gs = gridness(sac, n);
    u->score60 = gs.score60, u->score60_minmax = gs.score60_minmax, u->score90 = gs.score90;
    sac_period(&period_bins, &u->orientation_deg, sac, n);
    u->period_m = period_bins * c->bin_m;
    FourierScores f = fourier_scores(R, n, c->bin_m, c->spectra + (size_t)k * FOURIER_TILE * FOURIER_TILE);
    u->fourier_period_m = f.period_m, u->fourier_a2 = f.a2, u->fourier_a4 = f.a4, u->fourier_a6 = f.a6;
    Fields fields = place_fields(R, n, c->bin_m);
    u->fields = fields.count, u->field_diameter_m = fields.diameter_m;
    u->border_score = border_score(R, n, c->bin_m);
    u->phase[0] = u->phase[1] = gs_nan();
    int count = 0;
    for (size_t b = 0; b < bins; b++)
        if (R[b] == R[b]) sum += R[b], count++;
    u->mean_rate = count ? sum / count : gs_nan();
    u->split_half_r = u->early_late_r = gs_nan();
    u->module = 0;
}

static void analyse_maps(UnitScores *u, double *sacs, double *spectra, const real *maps, int N, int n, double bin_m, int threads) {
    AnalyseCtx c = {u, sacs, spectra, maps, n, bin_m};
    parallel_for(threads, N, analyse_task, &c);
}

/* Modules: the periods of the grid-like units (score60 > GRID_THRESHOLD, finite period),
 * sorted; a new module starts wherever one period exceeds the previous by more than MODULE_GAP
 * (single linkage on log-period: deterministic, no k to choose). Modules are numbered 1.. by
 * increasing period; each gets its median period and the circular mean and spread of its units'
 * orientations (on the 60-degree circle). Returns the number of modules; modules has room for N. */
static int assign_modules(UnitScores *u, Module *modules, int N) {
    int *order = xcalloc((size_t)N, sizeof(int)), count = 0;
    for (int k = 0; k < N; k++)
        if (u[k].score60 > GRID_THRESHOLD && u[k].period_m == u[k].period_m) order[count++] = k;
    for (int i = 1; i < count; i++) /* insertion sort by period, ties by unit */
        for (int j = i; j > 0 && u[order[j - 1]].period_m > u[order[j]].period_m; j--) {
            int t = order[j];
            order[j] = order[j - 1], order[j - 1] = t;
        }
    int n_modules = 0, start = 0;
    for (int i = 0; i <= count; i++) {
        if (i < count && (i == 0 || u[order[i]].period_m <= MODULE_GAP * u[order[i - 1]].period_m)) continue;
        if (i == start) continue;
        Module *md = &modules[n_modules++];
        int size = i - start;
        md->units = size;
        md->period_m = size % 2 ? u[order[start + size / 2]].period_m
                                : (u[order[start + size / 2 - 1]].period_m + u[order[start + size / 2]].period_m) / 2;
        double sx = 0, sy = 0;
        for (int j = start; j < i; j++) {
            u[order[j]].module = n_modules;
            double a = u[order[j]].orientation_deg * 6 * PI / 180;
            if (a == a) sx += gs_cos(a), sy += gs_sin(a);
        }
        double resultant = sqrt(sx * sx + sy * sy) / size;
        double o = gs_atan2(sy, sx) / 6 * 180 / PI;
        md->orientation_deg = o < 0 ? o + 60 : o;
        /* circular standard deviation on the 60-degree circle; + 0.0 turns sqrt(-0) into 0 */
        md->orientation_spread_deg = resultant > 0 ? sqrt(-2 * gs_log(resultant < 1 ? resultant : 1)) / 6 * 180 / PI + 0.0 : gs_nan();
        start = i;
    }
    free(order);
    return n_modules;
}

/* ---- the state space of a module (the paper's Fig. 6; Gardner et al., Nature 2022) ----------------
 * A module's units, read together, give one population vector per place: z(b) (units) at each bin b
 * visited by all of them, each unit standardised (mean 0, variance 1 over those bins) so that no loud
 * unit dominates. Over the box these vectors trace the module's state space. If the units are one
 * module of a lattice, z depends on position only through the phase of x in the lattice cell, so the
 * points lie on a torus (the cell with opposite sides glued), which recorded grid modules show
 * (Gardner et al. 2022) and the paper's Fig. 6 shows for its trained modules.
 *   PCA: the covariance C = Z Z^T / bins of the standardised units, its eigenvalues by cyclic
 *       Jacobi rotations; variance[i] = lambda_i / trace, and the bins' scores on PCs 1-6 (pcs).
 *   Rings: a lattice module is a sum of plane waves exp(2 pi i k_d . x), d = 1..3 for a hexagonal
 *       lattice (2 for a square one), so the six leading PCs pair into rings, one per wave, along
 *       which the state's angle advances with k_d . x. The waves are the peaks of the units' summed
 *       Fourier power: k_1 the strongest with at least RING_MIN_CYCLES periods across the box (a
 *       ring has to wrap, else a smooth sheet of place fields would pass), k_2 and k_3 the strongest
 *       within 15 % of |k_1| at least 30 degrees (modulo 180) from those before. For each wave the
 *       6-PC scores y(b) give c_d = mean_b y(b) exp(-2 pi i k_d . x_b) (a complex 6-vector); the
 *       wave carries the fraction 2 |c_d|^2 / mean_b |y(b)|^2 of the 6-PC variance, and the angle of
 *       y(b) in the plane of c_d, arg(y(b) . conj(c_d)), advances with k_d . x_b to the extent
 *       coherence = |mean_b exp(i (arg(y(b) . conj(c_d)) - 2 pi k_d . x_b))| (1: a circle traversed
 *       in step with position; ~0.64 for a line traversed back and forth, a standing wave).
 *   Shape: a ring counts when its fraction >= RING_MIN_FRACTION and coherence >= RING_MIN_COHERENCE;
 *       two counted rings (in independent directions, by construction) = "torus", one = "ring" (a
 *       population of bands), none = "none" (e.g. place fields: a sheet or a blob).
 *   Phases: unit j's phase along wave d is arg of its map's Fourier coefficient at k_d, in cycles
 *       (0..1, from the box's south-west corner); the pair (phase_1, phase_2) places it in the
 *       lattice cell. In a module whose units tile the cell, each phase is spread over the circle:
 *       phase_resultant = max_d |mean_j exp(2 pi i phase_jd)| is ~0 (a clump of equal phases: ~1). */
#define STATE_PCS 10          /* the variance of PCs 1..10 is reported */
#define STATE_PLOT_PCS 6      /* PCs 1..6 are drawn pairwise and searched for rings */
#define RING_MIN_CYCLES 2.0   /* a ring's wave has at least two periods across the box */
#define RING_MIN_FRACTION 0.1 /* of the 6-PC variance */
#define RING_MIN_COHERENCE 0.8

typedef struct {
    int units, bins, n_pcs, rings; /* rings: how many count (see the shape above) */
    double variance[STATE_PCS];    /* fraction of the total variance on PC 1..n_pcs */
    double ring_k[3][2];           /* each wave's (kx, ky), cycles per metre; NaN if not found */
    double ring_fraction[3], ring_coherence[3];
    double phase_resultant;
    double *pcs;         /* (n * n, STATE_PLOT_PCS): each bin's scores; NaN where not every unit was visited */
    double *ring_points; /* (n * n, 3, 2): each bin's point y(b) . conj(c_d) in wave d's plane; NaN likewise */
} StateSpace;

static void state_space_free(StateSpace *s) {
    free(s->pcs), free(s->ring_points);
    s->pcs = s->ring_points = NULL;
}

static const char *state_shape(const StateSpace *s) { return s->rings >= 2 ? "torus" : s->rings == 1 ? "ring" : "none"; }

/* Eigen-decomposition of the symmetric m x m matrix A by cyclic Jacobi rotations: each rotation in the
 * (p, q) plane zeroes A_pq; sweeps over p < q in order until the off-diagonal mass is below 1e-24 of
 * the diagonal's (or 60 sweeps). On return A's diagonal holds the eigenvalues and V (m x m) the
 * eigenvectors in its columns. Fixed order, + - * / sqrt only: the same bits everywhere. */
static void jacobi_eigen(double *A, double *V, int m) {
    for (int i = 0; i < m * m; i++) V[i] = i % (m + 1) == 0;
    for (int sweep = 0; sweep < 60; sweep++) {
        double off = 0, diag = 0;
        for (int p = 0; p < m; p++) {
            diag += A[p * m + p] * A[p * m + p];
            for (int q = p + 1; q < m; q++) off += A[p * m + q] * A[p * m + q];
        }
        if (!(off > 1e-24 * diag)) break;
        for (int p = 0; p < m; p++)
            for (int q = p + 1; q < m; q++) {
                double apq = A[p * m + q];
                if (apq == 0) continue;
                /* the angle with tan(2 phi) = 2 A_pq / (A_qq - A_pp); t = tan(phi), the smaller root */
                double theta = (A[q * m + q] - A[p * m + p]) / (2 * apq);
                double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < m; k++) { /* A <- A R (columns p, q) */
                    double akp = A[k * m + p], akq = A[k * m + q];
                    A[k * m + p] = c * akp - s * akq, A[k * m + q] = s * akp + c * akq;
                }
                for (int k = 0; k < m; k++) { /* A <- R^T A (rows p, q) */
                    double apk = A[p * m + k], aqk = A[q * m + k];
                    A[p * m + k] = c * apk - s * aqk, A[q * m + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < m; k++) { /* V <- V R */
                    double vkp = V[k * m + p], vkq = V[k * m + q];
                    V[k * m + p] = c * vkp - s * vkq, V[k * m + q] = s * vkp + c * vkq;
                }
            }
    }
}

/* The state space of the count units listed in units (indices into maps (N, n, n)) in a box of side box;
 * phases (count, 2) receives each unit's phase in the cell. s->pcs and s->ring_points are allocated
 * (state_space_free). */
static void state_space(StateSpace *s, double *phases, const real *maps, const int *units, int count, int n, double box) {
    size_t nn = (size_t)n * n;
    memset(s, 0, sizeof *s);
    s->units = count;
    s->phase_resultant = gs_nan();
    for (int d = 0; d < 3; d++) s->ring_k[d][0] = s->ring_k[d][1] = s->ring_fraction[d] = s->ring_coherence[d] = gs_nan();
    for (int i = 0; i < 2 * count; i++) phases[i] = gs_nan();
    s->pcs = xcalloc(nn * STATE_PLOT_PCS, sizeof(double));
    for (size_t i = 0; i < nn * STATE_PLOT_PCS; i++) s->pcs[i] = gs_nan();
    s->ring_points = xcalloc(nn * 6, sizeof(double));
    for (size_t i = 0; i < nn * 6; i++) s->ring_points[i] = gs_nan();
    /* Z (count, n*n): standardised units; a bin counts when every unit visited it */
    double *Z = xcalloc((size_t)count * nn, sizeof(double));
    uint8_t *used = xcalloc(nn, 1);
    for (size_t b = 0; b < nn; b++) {
        used[b] = 1;
        for (int j = 0; j < count && used[b]; j++) used[b] = maps[units[j] * nn + b] == maps[units[j] * nn + b];
        s->bins += used[b];
    }
    if (count < 2 || s->bins < 2) goto done;
    for (int j = 0; j < count; j++) {
        const real *R = maps + units[j] * nn;
        double mean = 0, var = 0;
        for (size_t b = 0; b < nn; b++)
            if (used[b]) mean += R[b];
        mean /= s->bins;
        for (size_t b = 0; b < nn; b++)
            if (used[b]) var += (R[b] - mean) * (R[b] - mean);
        double scale = var > 0 ? 1 / sqrt(var / s->bins) : 0;
        for (size_t b = 0; b < nn; b++) Z[j * nn + b] = used[b] ? (R[b] - mean) * scale : 0;
    }
    /* PCA: C = Z Z^T / bins (count x count) */
    double *C = xcalloc((size_t)count * count, sizeof(double)), *V = xcalloc((size_t)count * count, sizeof(double));
    for (int i = 0; i < count; i++)
        for (int j = 0; j <= i; j++) {
            double sum = 0;
            for (size_t b = 0; b < nn; b++) sum += Z[i * nn + b] * Z[j * nn + b];
            C[i * count + j] = C[j * count + i] = sum / s->bins;
        }
    jacobi_eigen(C, V, count);
    int *order = xcalloc((size_t)count, sizeof(int));
    double trace = 0;
    for (int i = 0; i < count; i++) order[i] = i, trace += C[i * count + i];
    for (int i = 1; i < count; i++) /* eigenvalues falling; ties by index */
        for (int j = i; j > 0 && C[order[j - 1] * (count + 1)] < C[order[j] * (count + 1)]; j--) {
            int t = order[j];
            order[j] = order[j - 1], order[j - 1] = t;
        }
    s->n_pcs = count < STATE_PCS ? count : STATE_PCS;
    for (int i = 0; i < s->n_pcs; i++) s->variance[i] = trace > 0 ? C[order[i] * (count + 1)] / trace : gs_nan();
    int q = count < STATE_PLOT_PCS ? count : STATE_PLOT_PCS;
    for (int i = 0; i < q; i++) {
        int col = order[i], big = 0; /* sign: the eigenvector's largest entry positive */
        for (int j = 1; j < count; j++) big = fabs(V[j * count + col]) > fabs(V[big * count + col]) ? j : big;
        double sign = V[big * count + col] < 0 ? -1 : 1;
        for (size_t b = 0; b < nn; b++) {
            if (!used[b]) continue;
            double y = 0;
            for (int j = 0; j < count; j++) y += sign * V[j * count + col] * Z[j * nn + b];
            s->pcs[b * STATE_PLOT_PCS + i] = y;
        }
    }
    free(C), free(V), free(order);
    /* the waves: peaks of the summed power of the standardised maps */
    int P = 0;
    double *power = NULL;
    real *map = xcalloc(nn, sizeof(real));
    for (int j = 0; j < count; j++) {
        for (size_t b = 0; b < nn; b++) map[b] = used[b] ? (real)Z[j * nn + b] : real_nan();
        double *unit_power = map_power(map, n, &P);
        if (!power) power = xcalloc((size_t)P * P, sizeof(double));
        for (size_t i = 0; i < (size_t)P * P; i++) power[i] += unit_power[i];
        free(unit_power);
    }
    free(map);
    int kx[3] = {0}, ky[3] = {0}, found = 0;
    double k_lo = RING_MIN_CYCLES * P / n; /* index units: P / n per cycle across the box */
    if (spectrum_peak(power, P, k_lo, HUGE_VAL, NULL, NULL, 0, 0, &kx[0], &ky[0]) > 0) {
        double k1 = sqrt((double)kx[0] * kx[0] + (double)ky[0] * ky[0]);
        found = 1;
        while (found < 3 && spectrum_peak(power, P, 0.85 * k1, 1.15 * k1, kx, ky, found, 30, &kx[found], &ky[found]) > 0) found++;
    }
    free(power);
    /* each wave: the 6-PC scores' Fourier coefficient c_d, its fraction, its coherence; the units' phases */
    double total = 0, bin_m = box / n;
    for (size_t b = 0; b < nn; b++)
        for (int i = 0; i < q && used[b]; i++) total += s->pcs[b * STATE_PLOT_PCS + i] * s->pcs[b * STATE_PLOT_PCS + i];
    total /= s->bins;
    double *wave_re = xcalloc(nn, sizeof(double)), *wave_im = xcalloc(nn, sizeof(double)), sum_re[2] = {0}, sum_im[2] = {0};
    for (int d = 0; d < found; d++) {
        s->ring_k[d][0] = kx[d] / (P * bin_m), s->ring_k[d][1] = ky[d] / (P * bin_m);
        double c_re[STATE_PLOT_PCS] = {0}, c_im[STATE_PLOT_PCS] = {0}, norm = 0;
        for (size_t b = 0; b < nn; b++) { /* exp(-2 pi i k . x_b), x_b in bins from the corner */
            double angle = -2 * PI * ((double)kx[d] * (double)(b % n) + (double)ky[d] * (double)(b / n)) / P;
            wave_re[b] = gs_cos(angle), wave_im[b] = gs_sin(angle);
            for (int i = 0; i < q && used[b]; i++) c_re[i] += s->pcs[b * STATE_PLOT_PCS + i] * wave_re[b], c_im[i] += s->pcs[b * STATE_PLOT_PCS + i] * wave_im[b];
        }
        for (int i = 0; i < q; i++) c_re[i] /= s->bins, c_im[i] /= s->bins, norm += c_re[i] * c_re[i] + c_im[i] * c_im[i];
        s->ring_fraction[d] = total > 0 ? 2 * norm / total : gs_nan();
        double coh_re = 0, coh_im = 0;
        for (size_t b = 0; b < nn; b++) {
            if (!used[b]) continue;
            double z_re = 0, z_im = 0; /* y(b) . conj(c_d) */
            for (int i = 0; i < q; i++) z_re += s->pcs[b * STATE_PLOT_PCS + i] * c_re[i], z_im -= s->pcs[b * STATE_PLOT_PCS + i] * c_im[i];
            s->ring_points[(b * 3 + d) * 2] = z_re, s->ring_points[(b * 3 + d) * 2 + 1] = z_im;
            double r = sqrt(z_re * z_re + z_im * z_im);
            if (r > 0) /* exp(i arg z) exp(-2 pi i k . x) */
                coh_re += (z_re * wave_re[b] - z_im * wave_im[b]) / r, coh_im += (z_re * wave_im[b] + z_im * wave_re[b]) / r;
        }
        s->ring_coherence[d] = sqrt(coh_re * coh_re + coh_im * coh_im) / s->bins;
        s->rings += s->ring_fraction[d] >= RING_MIN_FRACTION && s->ring_coherence[d] >= RING_MIN_COHERENCE;
        for (int j = 0; j < count && d < 2; j++) {
            double f_re = 0, f_im = 0;
            for (size_t b = 0; b < nn; b++) f_re += Z[j * nn + b] * wave_re[b], f_im += Z[j * nn + b] * wave_im[b];
            double r = sqrt(f_re * f_re + f_im * f_im), cycles = gs_atan2(f_im, f_re) / (2 * PI);
            phases[2 * j + d] = cycles < 0 ? cycles + 1 : cycles;
            if (r > 0) sum_re[d] += f_re / r, sum_im[d] += f_im / r;
        }
    }
    free(wave_re), free(wave_im);
    if (found >= 2) {
        double r0 = sqrt(sum_re[0] * sum_re[0] + sum_im[0] * sum_im[0]) / count, r1 = sqrt(sum_re[1] * sum_re[1] + sum_im[1] * sum_im[1]) / count;
        s->phase_resultant = r0 > r1 ? r0 : r1;
    }
done:
    free(Z), free(used);
}

/* ---- one box's analysis, and its files -------------------------------------------------------- */
/* (the images themselves are drawn by appendix D) */
static Image period_histogram(const UnitScores *u, int N, double max_m);
static Image state_space_image(const StateSpace *s, int n);
static Image phases_image(const UnitScores *u, int N, int module);

typedef struct {
    int N, n;
    double box, bin_m, coverage;
    int walks, steps;   /* of the evaluation walks; 0 when the maps came from elsewhere (gridssl score) */
    UnitScores *units;  /* (N) */
    double *sacs;       /* (N, 2n-1, 2n-1) */
    double *spectra;    /* (N, FOURIER_TILE, FOURIER_TILE) pictures of the Fourier power */
    Module *modules;    /* (N) room; n_modules used */
    int n_modules;
    StateSpace *spaces; /* (n_modules): each module's state space; units = 0 for modules of < 6 units */
} Analysis;

static void analysis_run(Analysis *an, const real *maps, int N, int n, double box, int threads) {
    memset(an, 0, sizeof *an);
    an->N = N, an->n = n, an->box = box, an->bin_m = box / n;
    an->units = xcalloc((size_t)N, sizeof(UnitScores));
    an->sacs = xcalloc((size_t)N * (2 * n - 1) * (2 * n - 1), sizeof(double));
    an->modules = xcalloc((size_t)N, sizeof(Module));
    an->spectra = xcalloc((size_t)N * FOURIER_TILE * FOURIER_TILE, sizeof(double));
    analyse_maps(an->units, an->sacs, an->spectra, maps, N, n, an->bin_m, threads);
    an->n_modules = assign_modules(an->units, an->modules, N);
    an->spaces = xcalloc((size_t)(an->n_modules ? an->n_modules : 1), sizeof(StateSpace));
    int *members = xcalloc((size_t)N, sizeof(int));
    double *phases = xcalloc((size_t)2 * N, sizeof(double));
    for (int md = 0; md < an->n_modules; md++) {
        int count = 0;
        for (int k = 0; k < N; k++)
            if (an->units[k].module == md + 1) members[count++] = k;
        if (count < STATE_PLOT_PCS) continue; /* three rings need six components */
        state_space(&an->spaces[md], phases, maps, members, count, n, box);
        for (int j = 0; j < count; j++) an->units[members[j]].phase[0] = phases[2 * j], an->units[members[j]].phase[1] = phases[2 * j + 1];
    }
    free(members), free(phases);
    int visited = 0;
    for (int b = 0; b < n * n; b++) {
        int any = 0;
        for (int k = 0; k < N && !any; k++) any = maps[(size_t)k * n * n + b] == maps[(size_t)k * n * n + b];
        visited += any;
    }
    an->coverage = (double)visited / ((double)n * n);
}

static void analysis_free(Analysis *an) {
    for (int md = 0; md < an->n_modules; md++) state_space_free(&an->spaces[md]);
    free(an->units), free(an->sacs), free(an->spectra), free(an->modules), free(an->spaces);
    memset(an, 0, sizeof *an);
}

/* A number for CSV/JSON: %.9g (deterministic: printf rounds correctly on every supported libc), and
 * one spelling for NaN whatever its sign bit: "nan" in CSV, null in JSON. */
static void put_number(Buf *b, double x, int json) {
    if (x == x) buf_printf(b, "%.9g", x);
    else buf_printf(b, json ? "null" : "nan");
}

/* Units ordered by module (1, 2, ..., then the non-grid units) and, within a module whose state space
 * was measured, by phase along its first wave (neighbouring tiles then have neighbouring fields);
 * otherwise by falling score60. */
static void montage_order(int *order, const UnitScores *u, int N) {
    for (int k = 0; k < N; k++) order[k] = k;
    for (int i = 1; i < N; i++)
        for (int j = i; j > 0; j--) {
            const UnitScores *a = &u[order[j - 1]], *b = &u[order[j]];
            int ma = a->module ? a->module : N + 1, mb = b->module ? b->module : N + 1;
            double sa = a->score60 == a->score60 ? a->score60 : -HUGE_VAL, sb = b->score60 == b->score60 ? b->score60 : -HUGE_VAL;
            if (a->phase[0] == a->phase[0] && b->phase[0] == b->phase[0]) sa = -a->phase[0], sb = -b->phase[0];
            if (ma < mb || (ma == mb && sa >= sb)) break;
            int t = order[j];
            order[j] = order[j - 1], order[j - 1] = t;
        }
}

/* Writes scores.csv, summary.json, sac_NNN.pgm, autocorrelograms.pgm, montage.ppm, montage.png and
 * period_histogram.png into dir; prints the SHA-256 of the tables and montages. */
static int analysis_write(Outputs *o, const char *dir, const Analysis *an, const real *maps, Err *err) {
    int N = an->N, n = an->n, size = 2 * n - 1, rc = -1;
    char path[4200], name[64];
    Buf b = {0};
    /* scores.csv */
    buf_printf(&b, "unit,score60,score90,period_m,orientation_deg,fourier_period_m,module,coverage,mean_rate,"
                   "score60_minmax,split_half_r,early_late_r,fourier_a2,fourier_a4,fourier_a6,fields,field_diameter_m,"
                   "phase_1,phase_2,border_score\n");
    for (int k = 0; k < N; k++) {
        const UnitScores *u = &an->units[k];
        double row[19] = {u->score60,    u->score90,    u->period_m,       u->orientation_deg,   u->fourier_period_m,
                          u->module,     an->coverage,  u->mean_rate,      u->score60_minmax,    u->split_half_r,
                          u->early_late_r, u->fourier_a2, u->fourier_a4,   u->fourier_a6,        u->fields,
                          u->field_diameter_m, u->phase[0], u->phase[1],   u->border_score};
        buf_printf(&b, "%d", k);
        for (int i = 0; i < 19; i++) buf_put(&b, ",", 1), put_number(&b, row[i], 0);
        buf_put(&b, "\n", 1);
    }
    path_join(path, sizeof path, dir, "scores.csv");
    if (out_file(o, path, &b, 1, err)) goto done;
    /* summary.json */
    int grid_like = 0, hexagonal = 0, stable = 0;
    for (int k = 0; k < N; k++) {
        const UnitScores *u = &an->units[k];
        if (!(u->score60 > GRID_THRESHOLD)) continue;
        grid_like++;
        hexagonal += u->score60 > u->score90;
        stable += u->early_late_r >= 0.8;
    }
    b.len = 0;
    buf_printf(&b, "{\n  \"box_m\": "), put_number(&b, an->box, 1);
    buf_printf(&b, ",\n  \"bins\": %d,\n  \"bin_m\": ", n), put_number(&b, an->bin_m, 1);
    buf_printf(&b, ",\n  \"walks\": %d,\n  \"steps_per_walk\": %d,\n  \"coverage\": ", an->walks, an->steps);
    put_number(&b, an->coverage, 1);
    buf_printf(&b, ",\n  \"units\": %d,\n  \"grid_like\": %d,\n  \"grid_threshold\": ", N, grid_like);
    put_number(&b, GRID_THRESHOLD, 1);
    buf_printf(&b, ",\n  \"fraction_grid_like\": "), put_number(&b, (double)grid_like / N, 1);
    buf_printf(&b, ",\n  \"grid_like_hexagonal\": %d,\n  \"grid_like_early_late_r_at_least_0.8\": %d", hexagonal, stable);
    buf_printf(&b, ",\n  \"n_modules\": %d,\n  \"modules\": [", an->n_modules);
    for (int i = 0; i < an->n_modules; i++) {
        const Module *md = &an->modules[i];
        buf_printf(&b, "%s\n    {\"module\": %d, \"units\": %d, \"period_m\": ", i ? "," : "", i + 1, md->units);
        put_number(&b, md->period_m, 1);
        buf_printf(&b, ", \"orientation_deg\": "), put_number(&b, md->orientation_deg, 1);
        buf_printf(&b, ", \"orientation_spread_deg\": "), put_number(&b, md->orientation_spread_deg, 1);
        const StateSpace *s = &an->spaces[i];
        if (s->units) {
            buf_printf(&b, ",\n     \"state_space\": {\"units\": %d, \"bins\": %d, \"shape\": \"%s\", \"rings\": %d, \"pca_variance\": [",
                       s->units, s->bins, state_shape(s), s->rings);
            for (int c = 0; c < s->n_pcs; c++) buf_printf(&b, "%s", c ? ", " : ""), put_number(&b, s->variance[c], 1);
            buf_printf(&b, "],\n       \"waves\": [");
            for (int d = 0; d < 3; d++) {
                buf_printf(&b, "%s{\"k_per_m\": [", d ? ", " : "");
                put_number(&b, s->ring_k[d][0], 1), buf_printf(&b, ", "), put_number(&b, s->ring_k[d][1], 1);
                buf_printf(&b, "], \"fraction\": "), put_number(&b, s->ring_fraction[d], 1);
                buf_printf(&b, ", \"coherence\": "), put_number(&b, s->ring_coherence[d], 1), buf_printf(&b, "}");
            }
            buf_printf(&b, "],\n       \"phase_resultant\": "), put_number(&b, s->phase_resultant, 1), buf_printf(&b, "}");
        }
        buf_printf(&b, "}");
    }
    buf_printf(&b, "%s],\n  \"period_ratios\": [", an->n_modules ? "\n  " : "");
    for (int i = 1; i < an->n_modules; i++) {
        if (i > 1) buf_printf(&b, ", ");
        put_number(&b, an->modules[i].period_m / an->modules[i - 1].period_m, 1);
    }
    buf_printf(&b, "]\n}\n");
    path_join(path, sizeof path, dir, "summary.json");
    if (out_file(o, path, &b, 1, err)) goto done;
    /* autocorrelograms: one grey PGM per unit (-1 -> 1, +1 -> 255, NaN black) and a montage */
    uint8_t *pix = xcalloc((size_t)size * size, 1);
    for (int k = 0; k < N; k++) {
        const double *sac = an->sacs + (size_t)k * size * size;
        for (int i = 0; i < size; i++)
            for (int j = 0; j < size; j++) {
                double v = sac[(size_t)(size - 1 - i) * size + j];
                pix[(size_t)i * size + j] = v == v ? (uint8_t)(128 + (int)(127 * (v < -1 ? -1 : v > 1 ? 1 : v) + (v < 0 ? -0.5 : 0.5))) : 0;
            }
        b.len = 0;
        pgm_encode(&b, pix, size, size);
        snprintf(name, sizeof name, "sac_%03d.pgm", k);
        path_join(path, sizeof path, dir, name);
        if (out_file(o, path, &b, 0, err)) {
            free(pix);
            goto done;
        }
    }
    free(pix);
    int *order = xcalloc((size_t)N, sizeof(int));
    montage_order(order, an->units, N);
    Image sac_montage = tile_montage(an->sacs, size, order, N, 0, 1, NULL);
    b.len = 0;
    pgm_encode(&b, sac_montage.grey, sac_montage.width, sac_montage.height);
    image_free(&sac_montage);
    path_join(path, sizeof path, dir, "autocorrelograms.pgm");
    if (out_file(o, path, &b, 0, err)) {
        free(order);
        goto done;
    }
    /* colour montage of the ratemaps, sorted by module then phase or score; under each tile its
     * legend "unit score60 M<module>" (score60 to two decimals, "-" if NaN; no module: no "M") */
    double *tiles = xcalloc((size_t)N * n * n, sizeof(double));
    for (size_t i = 0; i < (size_t)N * n * n; i++) tiles[i] = maps[i];
    char *labels = xcalloc((size_t)N, MONTAGE_LABEL);
    for (int k = 0; k < N; k++) {
        const UnitScores *u = &an->units[k];
        char score[16] = "-", module[16] = "";
        if (u->score60 == u->score60) snprintf(score, sizeof score, "%.2f", u->score60);
        if (u->module) snprintf(module, sizeof module, " M%d", u->module);
        snprintf(labels + (size_t)k * MONTAGE_LABEL, MONTAGE_LABEL, "%d %s%s", k, score, module);
    }
    Image montage = tile_montage(tiles, n, order, N, 1, n < 40 ? 120 / n : 3, labels); /* tiles of ~120 px */
    free(tiles);
    b.len = 0;
    ppm_encode(&b, &montage);
    path_join(path, sizeof path, dir, "montage.ppm");
    int bad = out_file(o, path, &b, 0, err);
    b.len = 0;
    png_encode(&b, &montage);
    image_free(&montage);
    path_join(path, sizeof path, dir, "montage.png");
    bad = bad || out_file(o, path, &b, 1, err);
    /* the units' Fourier power in the same order, each labelled "unit a6" */
    for (int k = 0; k < N; k++) {
        double a6 = an->units[k].fourier_a6;
        if (a6 == a6) snprintf(labels + (size_t)k * MONTAGE_LABEL, MONTAGE_LABEL, "%d %.2f", k, a6);
        else snprintf(labels + (size_t)k * MONTAGE_LABEL, MONTAGE_LABEL, "%d -", k);
    }
    Image spectra = tile_montage(an->spectra, FOURIER_TILE, order, N, 1, 1, labels);
    free(order), free(labels);
    b.len = 0;
    png_encode(&b, &spectra);
    image_free(&spectra);
    path_join(path, sizeof path, dir, "fourier.png");
    if (bad || out_file(o, path, &b, 0, err)) goto done;
    Image hist = period_histogram(an->units, N, an->box > 2 ? an->box : 2);
    b.len = 0;
    png_encode(&b, &hist);
    image_free(&hist);
    path_join(path, sizeof path, dir, "period_histogram.png");
    if (out_file(o, path, &b, 0, err)) goto done;
    /* each measured module's state space (PCs 1-6 pairwise) and its units' phases in the cell */
    for (int md = 0; md < an->n_modules; md++) {
        if (!an->spaces[md].units) continue;
        for (int which = 0; which < 2; which++) {
            Image im = which ? phases_image(an->units, N, md + 1) : state_space_image(&an->spaces[md], n);
            b.len = 0;
            png_encode(&b, &im);
            image_free(&im);
            snprintf(name, sizeof name, which ? "phases_module_%d.png" : "state_space_module_%d.png", md + 1);
            path_join(path, sizeof path, dir, name);
            if (out_file(o, path, &b, 0, err)) goto done;
        }
    }
    rc = 0;
done:
    buf_free(&b);
    return rc;
}

/* The ratemaps themselves: ratemaps.npy, unit_NNN.pgm and montage.pgm (units in order, grey). */
static int ratemaps_write(Outputs *o, const char *dir, const real *maps, int N, int n, Err *err) {
    size_t bins = (size_t)n * n;
    char path[4200], name[32];
    Buf b = {0};
    int64_t shape[3] = {N, n, n};
    npy_header(&b, "<f4", shape, 3);
    for (size_t i = 0; i < (size_t)N * bins; i++) buf_f32(&b, (float)maps[i]);
    path_join(path, sizeof path, dir, "ratemaps.npy");
    int rc = out_file(o, path, &b, 1, err);
    double *tiles = xcalloc((size_t)N * bins, sizeof(double));
    int *order = xcalloc((size_t)N, sizeof(int));
    uint8_t *pix = xcalloc(bins, 1);
    for (size_t i = 0; i < (size_t)N * bins; i++) tiles[i] = maps[i];
    for (int k = 0; k < N && rc == 0; k++) {
        order[k] = k;
        map_pixels(pix, tiles + (size_t)k * bins, n, 0);
        b.len = 0;
        pgm_encode(&b, pix, n, n);
        snprintf(name, sizeof name, "unit_%03d.pgm", k);
        path_join(path, sizeof path, dir, name);
        rc = out_file(o, path, &b, 0, err);
    }
    free(pix);
    if (rc == 0) {
        Image montage = tile_montage(tiles, n, order, N, 0, 1, NULL);
        b.len = 0;
        pgm_encode(&b, montage.grey, montage.width, montage.height);
        image_free(&montage);
        path_join(path, sizeof path, dir, "montage.pgm");
        rc = out_file(o, path, &b, 1, err);
    }
    free(tiles), free(order);
    buf_free(&b);
    return rc;
}

/* ==============================================================================================
 * 10. GRADIENT CHECK (of the hand-written backward passes of sections 4 and 5)
 * Central differences (L(p + h) - L(p - h)) / 2h for every parameter, against the hand-written
 * backward pass, on a small model (N = 6, H = 5, B = 3, T = 4), with the SIC batch and with the
 * permute = 0 ablation, and on small baselines (gradcheck_baselines). Per parameter block, the relative
 * error |a - f| / max(|a|, |f|) (vector 2-norms) must be below tol; a block whose gradient is
 * trivially zero fails, so the check cannot pass by having nothing to compare.
 * ============================================================================================== */

typedef struct { const char *term; int capacity, reduction, permute; LossWeights w; double sep_rmax; } GradCase;

/* The loss of one gradient-check case on its fixed batch; with backward, its gradient replaces
 * m->grads. SIC's cases weigh the terms by w; a baseline's weights come from its config c. */
static double check_loss(Model *m, Acts *a, const Batch *bt, const Config *c, LossWeights w, int backward) {
    if (backward) memset(m->grads, 0, m->num_params * sizeof(real));
    if (c->model != MODEL_SIC) {
        LossTerms L = baseline_forward(m, a, bt, c, 1.0, 1);
        if (backward) baseline_backward(m, a, bt, c, 1);
        return L.total;
    }
    LossTerms L = sic_forward(m, a, bt, c, w, 1.0, 1);
    if (backward) sic_backward(m, a, bt, c, &L, 1);
    return L.total;
}

/* Central differences against check_loss's gradient for every parameter block of m, one line per
 * block labelled `label`; returns the failures (relative error >= tol, or a trivially zero block). */
static int check_blocks(FILE *out, const char *label, Model *m, Acts *a, const Batch *bt, const Config *c, LossWeights w,
                        double h, double tol, double *max_rel) {
    real *analytic = xcalloc(m->num_params, sizeof(real));
    check_loss(m, a, bt, c, w, 1);
    memcpy(analytic, m->grads, m->num_params * sizeof(real));
    size_t offset = 0;
    int failures = 0;
    for (int blk = 0; blk < m->num_tensors; blk++) {
        double diff2 = 0, a2 = 0, f2 = 0;
        for (size_t i = offset; i < offset + m->sizes[blk]; i++) {
            real keep = m->params[i];
            m->params[i] = keep + (real)h;
            double up = check_loss(m, a, bt, c, w, 0);
            m->params[i] = keep - (real)h;
            double down = check_loss(m, a, bt, c, w, 0);
            m->params[i] = keep;
            double f = (up - down) / (2 * h), an = analytic[i];
            diff2 += (an - f) * (an - f), a2 += an * an, f2 += f * f;
        }
        offset += m->sizes[blk];
        double scale = sqrt(a2 > f2 ? a2 : f2), rel = scale > 0 ? sqrt(diff2) / scale : 0;
        int ok = rel < tol && sqrt(a2) > 1e-10;
        failures += !ok;
        *max_rel = rel > *max_rel ? rel : *max_rel;
        fprintf(out, "%s gradcheck %s %-6s rel %.3e  |grad| %.3e%s\n", ok ? "ok  " : "FAIL", label, m->names[blk], rel,
                sqrt(a2), sqrt(a2) > 1e-10 ? "" : "  (trivially zero)");
    }
    free(analytic);
    return failures;
}

/* The baselines (section 5) on small configs (N = 6, B = 3, T = 5, 7 place cells): Cueva & Wei in a
 * hexagonal arena, Sorscher et al. with ReLU and linear. Each batch must move, and have
 * pre-activations on both sides of 0 (ReLU kinks and tanh's curve both exercised). */
static int gradcheck_baselines(FILE *out, double h, double tol, double *max_rel) {
    int failures = 0;
    for (int model = MODEL_CW; model <= MODEL_SORSCHER; model++) {
        Config c;
        config_defaults(&c);
        c.model = model, c.N = 6, c.B = 3, c.T = 5, c.place_cells = 7, c.arena_size = 1.0;
        c.arena = model == MODEL_CW ? ARENA_HEXAGON : ARENA_SQUARE, c.cw_still = 0.3, c.cw_speed = 0.3, c.cw_noise = 0.3;
        c.place_sigma = 0.3, c.sorscher_wd = 0.01;
        Model m;
        model_build(&m, &c);
        Rng rng = rng_seed(7, STREAM_CHECK);
        model_init(&m, &c, &rng);
        if (model == MODEL_CW) /* W_out starts at 0, where the position error passes nothing back */
            for (size_t e = 0; e < m.sizes[m.num_tensors - 1]; e++) m.p.W_out[e] = (real)(0.5 * rng_normal(&rng));
        Batch bt;
        Acts a;
        batch_alloc(&bt, &c);
        acts_alloc(&a, &c);
        baseline_batch_draw(&bt, &rng, &c);
        LossTerms probe = baseline_forward(&m, &a, &bt, &c, 1.0, 1);
        int64_t moving = 0, positive = 0;
        for (int r = 0; r < c.B * c.T; r++) moving += bt.vel[2 * r] != 0 || bt.vel[2 * r + 1] != 0;
        for (int e = 0; e < c.B * c.T * c.N; e++) positive += a.z[e] > 0;
        fprintf(out, "gradcheck: model=%s N=%d B=%d T=%d: %lld moving steps, %lld of %d pre-activations > 0, "
                "loss %.6f; h=%g, tol %g\n", model == MODEL_CW ? "cw" : "sorscher", c.N, c.B, c.T, (long long)moving,
                (long long)positive, c.B * c.T * c.N, probe.total, h, tol);
        if (moving < 2 || positive == 0 || positive == c.B * c.T * c.N) {
            fprintf(out, "FAIL gradcheck baseline batch does not exercise every path\n");
            failures++;
        }
        LossWeights none = {0, 0, 0, 0, 0, 0, 0};
        /* the task's error alone, then with each cost at a weight that makes it count, then all */
        struct { int model; const char *label; double alpha, beta, wd; int relu; } cases[] = {
            {MODEL_CW, "model=cw       error      ", 0, 0, 0, 1}, {MODEL_CW, "model=cw       error+L2   ", 1, 0, 0, 1},
            {MODEL_CW, "model=cw       error+rate ", 0, 1, 0, 1}, {MODEL_CW, "model=cw       total      ", 0.3, 0.2, 0, 1},
            {MODEL_SORSCHER, "model=sorscher xent       ", 0, 0, 0, 1}, {MODEL_SORSCHER, "model=sorscher xent+wd    ", 0, 0, 1, 1},
            {MODEL_SORSCHER, "model=sorscher total      ", 0, 0, 0.01, 1}, {MODEL_SORSCHER, "model=sorscher linear    ", 0, 0, 0.01, 0},
        };
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            if (cases[k].model != model) continue;
            Config ck = c;
            ck.cw_alpha = cases[k].alpha, ck.cw_beta = cases[k].beta, ck.sorscher_wd = cases[k].wd, ck.sorscher_relu = cases[k].relu;
            failures += check_blocks(out, cases[k].label, &m, &a, &bt, &ck, none, h, tol, max_rel);
        }
        acts_free(&a), batch_free(&bt), model_free(&m);
    }
    return failures;
}

/* Returns the number of failed blocks; prints one line per block and the largest error to out.
 * Sets *max_rel to the largest relative error seen. */
static int gradcheck_run(FILE *out, double h, double tol, double *max_rel) {
    Config c;
    config_defaults(&c);
    c.N = 6, c.hidden = 5, c.B = 3, c.T = 4, c.iso_vmin = 0.06, c.iso_vmax = 0.13; /* some steps in, some out */
    c.lambda_dist = 1, c.dist_scale = 3, c.dist_rmax = 0.2; /* L_dist on, some far pairs in, some out */
    c.sep_rmax = 0; /* L_sep over every far pair, except in the cases that set sep_rmax */
    c.lambda_dir = 1, c.dir_speed = 0.1, c.dir_headings = 5, c.dir_states = 7; /* L_dir on, some states probed */
    Model m;
    model_build(&m, &c);
    Rng rng = rng_seed(7, STREAM_CHECK);
    model_init(&m, &c, &rng);
    /* two batches: the SIC permutations, and the permute = 0 ablation (B*T distinct velocities) */
    Batch batches[2];
    Acts acts[2];
    for (int permute = 1; permute >= 0; permute--) {
        c.permute = permute;
        batch_alloc(&batches[permute], &c);
        acts_alloc(&acts[permute], &c);
        batch_draw(&batches[permute], &rng, &c);
    }
    c.lambda_sparse = 1; /* L_sparse on */
    const LossWeights all = {1.0, 0.1, 0.5, 0.3, 0.2, 0.05, 2.0};
    const GradCase cases[] = {
        {"sep", CAPACITY_MEANNORM, REDUCTION_MEAN, 1, {1, 0, 0, 0, 0, 0, 0}, 0}, {"sep", CAPACITY_MEANNORM, REDUCTION_SUM, 1, {1, 0, 0, 0, 0, 0, 0}, 0},
        {"inv", CAPACITY_MEANNORM, REDUCTION_MEAN, 1, {0, 1, 0, 0, 0, 0, 0}, 0}, {"inv", CAPACITY_MEANNORM, REDUCTION_SUM, 1, {0, 1, 0, 0, 0, 0, 0}, 0},
        {"cap", CAPACITY_MEANNORM, REDUCTION_MEAN, 1, {0, 0, 1, 0, 0, 0, 0}, 0}, {"cap", CAPACITY_KERNEL, REDUCTION_MEAN, 1, {0, 0, 1, 0, 0, 0, 0}, 0},
        {"iso", CAPACITY_MEANNORM, REDUCTION_MEAN, 1, {0, 0, 0, 1, 0, 0, 0}, 0},
        {"dist", CAPACITY_MEANNORM, REDUCTION_MEAN, 1, {0, 0, 0, 0, 1, 0, 0}, 0}, {"dist", CAPACITY_MEANNORM, REDUCTION_SUM, 1, {0, 0, 0, 0, 1, 0, 0}, 0},
        {"sparse", CAPACITY_MEANNORM, REDUCTION_MEAN, 1, {0, 0, 0, 0, 0, 1, 0}, 0},
        {"dir", CAPACITY_MEANNORM, REDUCTION_MEAN, 1, {0, 0, 0, 0, 0, 0, 1}, 0}, {"dir", CAPACITY_MEANNORM, REDUCTION_MEAN, 0, {0, 0, 0, 0, 0, 0, 1}, 0},
        {"total", CAPACITY_MEANNORM, REDUCTION_MEAN, 1, all, 0}, {"total", CAPACITY_MEANNORM, REDUCTION_SUM, 1, all, 0},
        {"total", CAPACITY_KERNEL, REDUCTION_MEAN, 1, all, 0},   {"total", CAPACITY_KERNEL, REDUCTION_SUM, 1, all, 0},
        {"total", CAPACITY_MEANNORM, REDUCTION_MEAN, 0, all, 0},
        /* L_sep over the far pairs within sep_rmax only (some in, some out: checked below) */
        {"sep", CAPACITY_MEANNORM, REDUCTION_MEAN, 1, {1, 0, 0, 0, 0, 0, 0}, 0.25}, {"sep", CAPACITY_MEANNORM, REDUCTION_SUM, 0, {1, 0, 0, 0, 0, 0, 0}, 0.25},
        {"total", CAPACITY_KERNEL, REDUCTION_MEAN, 1, all, 0.25},
    };
    const char *cap_names[2] = {"meannorm", "kernel"}, *red_names[2] = {"mean", "sum"};
    int failures = 0;
    *max_rel = 0;
    for (int permute = 1; permute >= 0; permute--) {
        c.permute = permute;
        LossTerms probe = sic_forward(&m, &acts[permute], &batches[permute], &c, all, 1.0, 1);
        fprintf(out, "gradcheck: N=%d H=%d B=%d T=%d permute=%d: %lld near / %lld far pairs (%lld in L_dist), "
                "%lld isometry steps, %lld dead, L_dir %.4f (%d of %d states, %d headings); h=%g, tol %g\n", c.N, c.hidden, c.B,
                c.T, permute, (long long)probe.n_near, (long long)probe.n_far, (long long)probe.n_dist, (long long)probe.n_iso,
                (long long)probe.dead_states, probe.dir, dir_states(&c), c.B * c.T, batches[permute].n_dir, h, tol);
        c.sep_rmax = 0.25;
        LossTerms window = sic_forward(&m, &acts[permute], &batches[permute], &c, all, 1.0, 1);
        c.sep_rmax = 0;
        fprintf(out, "gradcheck: permute=%d, sep_rmax=0.25: %lld of the %lld far pairs in L_sep\n", permute,
                (long long)window.n_far, (long long)probe.n_far);
        if (probe.n_near == 0 || probe.n_far == 0 || probe.n_dist == 0 || probe.n_dist == probe.n_far || probe.n_iso < 2 ||
            probe.dead_states || !(probe.dir > 0) || window.n_far == 0 || window.n_far == probe.n_far) {
            fprintf(out, "FAIL gradcheck batch (permute=%d) does not exercise every term\n", permute);
            failures++;
        }
    }
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const GradCase *gc = &cases[ci];
        c.capacity = gc->capacity, c.reduction = gc->reduction, c.permute = gc->permute, c.sep_rmax = gc->sep_rmax;
        char label[100];
        int n = snprintf(label, sizeof label, "%-6s capacity=%-8s reduction=%-4s permute=%d", gc->term,
                         cap_names[gc->capacity], red_names[gc->reduction], gc->permute);
        n = n < 0 ? 0 : n >= (int)sizeof label ? (int)sizeof label - 1 : n; /* the suffix goes where the text ends */
        if (gc->sep_rmax > 0) snprintf(label + n, sizeof label - n, " sep_rmax=%g", gc->sep_rmax);
        failures += check_blocks(out, label, &m, &acts[gc->permute], &batches[gc->permute], &c, gc->w, h, tol, max_rel);
    }
    for (int k = 0; k < 2; k++) acts_free(&acts[k]), batch_free(&batches[k]);
    model_free(&m);
    failures += gradcheck_baselines(out, h, tol, max_rel);
    fprintf(out, "gradcheck: largest relative error %.3e (tol %g)\n", *max_rel, tol);
    return failures;
}

/* ==============================================================================================
 * 11. COMMAND LINE (left out when tests/unit.c includes this file with GRIDSSL_TESTING)
 * ============================================================================================== */
#ifndef GRIDSSL_TESTING

static void print_usage(FILE *f) {
    fprintf(f,
            "gridssl %s - self-supervised grid cells (Schaeffer et al. 2023), bit-reproducible\n\n"
            "usage:\n"
            "  gridssl train [--config FILE] [key=value ...] [--out DIR] [--resume FILE]\n"
            "  gridssl eval CHECKPOINT [--box 2,3,4] [--out DIR] [eval_key=value ...]\n"
            "  gridssl score RATEMAPS.npy --box METRES [--out DIR]\n"
            "  gridssl dump CHECKPOINT DIR\n"
            "  gridssl gradcheck\n"
            "  gridssl bench [--config FILE] [key=value ...] [--steps K]   (seconds per step, per phase)\n"
            "  every command takes --threads N (default: all cores; results never depend on it)\n"
            "  gridssl --help | --version\n\n"
            "config keys (key = value lines in FILE, '#' comments; key=value arguments override):\n",
            GRIDSSL_VERSION);
    for (int i = 0; i < NUM_CONFIG_KEYS; i++) {
        const ConfigKey *k = &config_keys[i];
        char def[64];
        if (k->type == KEY_ENUM) enum_choice(k, (int)k->def, def);
        else snprintf(def, sizeof def, "%.10g", k->def);
        char range[96];
        if (k->type == KEY_ENUM) snprintf(range, sizeof range, "%s", k->choices);
        else snprintf(range, sizeof range, "[%.10g, %.10g]", k->min, k->max);
        fprintf(f, "  %-18s default %-10s %-24s paper: %s\n      %s\n", k->name, def, range, k->paper, k->doc);
    }
}

/* Applies key=value arguments in order. allow_prefix limits which keys may be set (NULL: any). */
static int apply_overrides(Config *c, int argc, char **argv, const char *allow_prefix, Err *err) {
    for (int i = 0; i < argc; i++) {
        char key[128];
        const char *eq = strchr(argv[i], '=');
        if (!eq || eq == argv[i] || (size_t)(eq - argv[i]) >= sizeof key)
            return fail(err, "unexpected argument '%s' (expected key=value)", argv[i]);
        memcpy(key, argv[i], (size_t)(eq - argv[i]));
        key[eq - argv[i]] = 0;
        if (allow_prefix && config_find(key) && strncmp(key, allow_prefix, strlen(allow_prefix)) != 0)
            return fail(err, "key '%s' cannot be changed here (only %s* keys)", key, allow_prefix);
        if (config_set(c, key, eq + 1, err)) return -1;
    }
    return 0;
}

/* Splits argv into --options (with a value each) and the rest (key=value). */
typedef struct { const char *config, *out, *resume, *box; char **rest; int n_rest, threads, steps; } Args;

/* The default for --threads: every core the system reports. Results never depend on it. */
static int default_threads(void) {
#ifdef _WIN32
    const char *env = getenv("NUMBER_OF_PROCESSORS");
    long k = env ? strtol(env, NULL, 10) : 1;
#else
    long k = sysconf(_SC_NPROCESSORS_ONLN);
#endif
    return k < 1 ? 1 : k > MAX_THREADS ? MAX_THREADS : (int)k;
}

static int parse_args(Args *a, int argc, char **argv, const char *allowed, Err *err) {
    memset(a, 0, sizeof *a);
    a->rest = xcalloc((size_t)argc + 1, sizeof(char *));
    a->threads = default_threads();
    a->steps = 5;
    for (int i = 0; i < argc; i++) {
        const char *opt = argv[i];
        if (strncmp(opt, "--", 2) != 0) {
            a->rest[a->n_rest++] = argv[i];
            continue;
        }
        if (strcmp(opt, "--threads") == 0) {
            char *end = NULL;
            long k = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 >= argc || end == argv[i + 1] || *end || k < 1 || k > MAX_THREADS)
                return fail(err, "--threads needs a whole number in [1, %d]", MAX_THREADS);
            a->threads = (int)k;
            i++;
            continue;
        }
        if (strcmp(opt, "--steps") == 0 && strstr(allowed, "--steps")) {
            char *end = NULL;
            long k = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 >= argc || end == argv[i + 1] || *end || k < 1 || k > 100000)
                return fail(err, "--steps needs a whole number in [1, 100000]");
            a->steps = (int)k;
            i++;
            continue;
        }
        const char **slot = strcmp(opt, "--config") == 0 ? &a->config : strcmp(opt, "--out") == 0 ? &a->out
                          : strcmp(opt, "--resume") == 0 ? &a->resume : strcmp(opt, "--box") == 0 ? &a->box : NULL;
        if (!slot || !strstr(allowed, opt)) return fail(err, "unknown option '%s'", opt);
        if (i + 1 >= argc) return fail(err, "option %s needs a value", opt);
        *slot = argv[++i];
    }
    return 0;
}

static void format_duration(char *out, size_t size, double seconds) {
    long s = seconds > 0 && seconds < 1e9 ? (long)(seconds + 0.5) : 0;
    if (s >= 3600) snprintf(out, size, "%ldh%02ldm", s / 3600, s / 60 % 60);
    else snprintf(out, size, "%ldm%02lds", s / 60, s % 60);
}

/* The rows of an earlier log.tsv up to and including step (kept when resuming into the same dir). */
static void keep_log_rows(Buf *log, const char *path, int64_t step) {
    Buf old = {0};
    Err ignored;
    if (read_file(path, &old, file_limit(1e15), &ignored)) return;
    buf_put(&old, "", 1);
    char *line = (char *)old.data;
    while (line && *line) {
        char *next = strchr(line, '\n');
        if (next) *next++ = 0;
        if (line[0] != 's' && strtoll(line, NULL, 10) <= step) buf_printf(log, "%s\n", line);
        line = next;
    }
    buf_free(&old);
}

/* The config and starting state of a training run: a checkpoint's (--resume) or a fresh model from
 * the defaults or --config, then the key=value overrides. Nothing is written here. */
static int train_setup(const Args *args, Config *c, Model *m, TrainState *s, Err *err) {
    if (args->resume && args->config)
        return fail(err, "--config and --resume cannot be combined (a checkpoint carries its config; override keys instead)");
    if (args->resume) {
        if (checkpoint_load(args->resume, m, s, c, err)) return -1;
    } else {
        config_defaults(c);
        if (args->config) {
            Buf text = {0};
            if (read_file(args->config, &text, 1048576, err)) return -1;
            int bad = config_parse_text(c, (const char *)text.data, text.len, 0, args->config, err);
            buf_free(&text);
            if (bad) return -1;
        }
    }
    Config c0 = *c;
    int lr_given = 0;
    for (int i = 0; i < args->n_rest; i++) lr_given |= strncmp(args->rest[i], "lr=", 3) == 0;
    if (apply_overrides(c, args->n_rest, args->rest, NULL, err) || config_validate(c, err)) return -1;
    if (args->resume && (c->N != c0.N || c->hidden != c0.hidden || c->model != c0.model))
        return fail(err, "model, N and hidden cannot change when resuming (checkpoint has N=%d, hidden=%d)", c0.N, c0.hidden);
    if (args->resume && c->model == MODEL_SORSCHER &&
        (c->place_cells != c0.place_cells || c->seed != c0.seed || c->arena_size != c0.arena_size))
        return fail(err, "place_cells, seed and arena_size cannot change when resuming model=sorscher (they set the place cells)");
    if (args->resume && c->steps < s->step)
        return fail(err, "steps=%d is before the checkpoint's step %lld", c->steps, (long long)s->step);
    if (args->resume && lr_given) s->lr = c->lr; /* lr= restarts the scheduler's rate there */
    if (!args->resume) {
        model_build(m, c);
        Rng init_rng = rng_seed((uint64_t)c->seed, STREAM_INIT);
        model_init(m, c, &init_rng);
        s->data_rng = rng_seed((uint64_t)c->seed, STREAM_DATA);
        s->lr = c->lr; /* on resume the scheduler's current rate continues, unless lr= is given */
        s->beta1_pow = s->beta2_pow = 1.0;
    }
    return 0;
}

/* Stages log.tsv, then checkpoint.bin, and commits them with whatever else is staged (config.txt,
 * before the first). The log goes first: a kill between the two renames leaves a log ahead of the
 * checkpoint (a resume keeps its rows up to the checkpoint's step and writes the rest again), never
 * one that has lost rows. A model that is no longer finite has diverged and is never saved. */
static int train_save(Outputs *o, const char *out, const Buf *log, const Model *m, const TrainState *s, const Config *c,
                      int print_hash, Err *err) {
    char log_path[4200], ckpt_path[4200], why[200];
    if (model_problem(m, why, sizeof why)) return fail(err, "training diverged at step %lld: %s", (long long)s->step, why);
    path_join(log_path, sizeof log_path, out, "log.tsv");
    path_join(ckpt_path, sizeof ckpt_path, out, "checkpoint.bin");
    Buf ckpt = {0};
    checkpoint_encode(&ckpt, m, s, c);
    int rc = out_file(o, log_path, log, 0, err) || out_file(o, ckpt_path, &ckpt, print_hash, err) || outputs_commit(o, err) ? -1 : 0;
    buf_free(&ckpt);
    return rc;
}

/* Trains from s->step to c->steps into out: config.txt, log.tsv and checkpoint.bin appear together
 * at the first checkpoint (save_every) and are replaced together at every later one; a run that
 * fails leaves the last checkpoint it committed, or nothing. */
static int train_run(const char *out, int resumed, int threads, Model *m, TrainState *s, const Config *c, Err *err) {
    char config_path[4200], log_path[4200];
    Outputs o = {0};
    Buf text = {0}, log = {0};
    config_print(&text, c);
    int rc = out_dir(&o, out, err);
    if (rc == 0 && (fwrite(text.data, 1, text.len, stdout) != text.len || fflush(stdout) != 0))
        rc = fail(err, "cannot write to standard output: %s", strerror(errno));
    path_join(config_path, sizeof config_path, out, "config.txt");
    path_join(log_path, sizeof log_path, out, "log.tsv");
    if (rc == 0) rc = out_file(&o, config_path, &text, 0, err);
    buf_free(&text);
    if (rc) {
        outputs_discard(&o), outputs_free(&o);
        return -1;
    }
    /* the additions' columns only when they are on: logs of other runs stay as they were */
    int dist_on = c->lambda_dist > 0, sparse_on = c->lambda_sparse > 0, dir_on = dir_probes(c) > 0, sic = c->model == MODEL_SIC;
    if (sic)
        buf_printf(&log, "step\tlr\tsep\tinv\tcap\tiso\ttotal\tw_iso\tdead_states%s%s%s\n", dist_on ? "\tdist\tw_dist" : "",
                   sparse_on ? "\tsparse" : "", dir_on ? "\tdir\tw_dir" : "");
    else buf_printf(&log, "step\tlr\t%s\tweights\trate\ttotal\terr_m\n", c->model == MODEL_CW ? "position_mse" : "cross_entropy");
    if (resumed) keep_log_rows(&log, log_path, s->step);
    fprintf(stderr, "gridssl: training %s for steps %lld..%d (N=%d, H=%d, B=%d, T=%d, %zu parameters, %d thread%s) -> %s\n",
            resumed ? "from checkpoint" : "from scratch", (long long)s->step, c->steps, c->N, c->hidden, c->B, c->T,
            m->num_params, threads, threads > 1 ? "s" : "", out);
    Batch bt;
    Acts a;
    batch_alloc(&bt, c);
    acts_alloc(&a, c);
    double t_start = now_seconds();
    int64_t step_start = s->step, saved = -1; /* saved: the step of this run's last checkpoint */
    while (s->step < c->steps) {
        LossTerms L;
        if ((rc = train_step(m, s, &a, &bt, c, threads, &L, err))) break;
        if (s->step % c->log_every == 0 || s->step == c->steps) {
            double elapsed = now_seconds() - t_start;
            double rate = (double)(s->step - step_start) / (elapsed > 0 ? elapsed : 1e-9);
            char eta[32];
            format_duration(eta, sizeof eta, (double)(c->steps - s->step) / rate);
            if (!sic) { /* a baseline (section 5) */
                buf_printf(&log, "%lld\t%.17g\t%.17g\t%.17g\t%.17g\t%.17g\t%.17g\n", (long long)s->step, s->lr, L.task,
                           L.weights, L.rate, L.total, L.err_m);
                fprintf(stderr, "step %lld/%d | %s %.5f weights %.4g rate %.4f | total %.5f | error %.3f m | lr %.2e | "
                        "%.2f steps/s | ETA %s\n", (long long)s->step, c->steps, c->model == MODEL_CW ? "mse" : "xent", L.task,
                        L.weights, L.rate, L.total, L.err_m, s->lr, rate, eta);
            } else {
                buf_printf(&log, "%lld\t%.17g\t%.17g\t%.17g\t%.17g\t%.17g\t%.17g\t%.17g\t%lld", (long long)s->step, s->lr,
                           L.sep, L.inv, L.cap, L.iso, L.total, L.w_iso, (long long)L.dead_states);
                if (dist_on) buf_printf(&log, "\t%.17g\t%.17g", L.dist, L.w_dist);
                if (sparse_on) buf_printf(&log, "\t%.17g", L.sparse);
                if (dir_on) buf_printf(&log, "\t%.17g\t%.17g", L.dir, L.w_dir);
                buf_printf(&log, "\n");
                char dist[48] = "", sparse[32] = "", dir[48] = "";
                if (dist_on) snprintf(dist, sizeof dist, " dist %.4f (w %.3g)", L.dist, L.w_dist);
                if (sparse_on) snprintf(sparse, sizeof sparse, " sparse %.3f", L.sparse);
                if (dir_on) snprintf(dir, sizeof dir, " dir %.5f (w %.3g)", L.dir, L.w_dir);
                fprintf(stderr, "step %lld/%d | sep %.4f inv %.4f cap %.4f iso %.4f (w %.3g)%s%s%s | total %.5f | dead %lld | "
                        "lr %.2e | %.2f steps/s | ETA %s\n", (long long)s->step, c->steps, L.sep, L.inv, L.cap, L.iso,
                        L.w_iso, dist, sparse, dir, L.total, (long long)L.dead_states, s->lr, rate, eta);
            }
        }
        if (s->step % c->save_every == 0 && s->step != c->steps) { /* the last one is saved below */
            if ((rc = train_save(&o, out, &log, m, s, c, 0, err))) break;
            saved = s->step;
        }
    }
    acts_free(&a);
    batch_free(&bt);
    if (rc == 0) rc = train_save(&o, out, &log, m, s, c, 1, err);
    if (rc == 0) {
        char took[32];
        format_duration(took, sizeof took, now_seconds() - t_start);
        fprintf(stderr, "gridssl: done in %s; checkpoint %s/checkpoint.bin\n", took, out);
    } else {
        outputs_discard(&o);
        Err cause = *err;
        if (saved >= 0) fail(err, "%s (%s/checkpoint.bin keeps step %lld)", cause.msg, out, (long long)saved);
    }
    outputs_free(&o);
    buf_free(&log);
    return rc ? -1 : 0;
}

static int cmd_train(int argc, char **argv, Err *err) {
    Args args;
    Config c;
    Model m = {0};
    TrainState s = {0};
    int rc = parse_args(&args, argc, argv, "--config --out --resume", err);
    const char *out = args.out ? args.out : "out";
    if (rc == 0) rc = train_setup(&args, &c, &m, &s, err);
    if (rc == 0) rc = train_run(out, args.resume != NULL, args.threads, &m, &s, &c, err);
    model_free(&m);
    free(args.rest);
    return rc;
}

/* The directory part of path ("." if none). */
static void dir_of(char *out, size_t size, const char *path) {
    const char *slash = strrchr(path, '/');
#ifdef _WIN32
    const char *bslash = strrchr(path, '\\');
    if (bslash > slash) slash = bslash;
#endif
    if (!slash) snprintf(out, size, ".");
    else snprintf(out, size, "%.*s", (int)(slash - path), path);
}

/* "2,3,4" -> boxes (at most 16), each a side in metres within [0.1, 1000]. */
static int parse_boxes(double *boxes, int *count, const char *text, Err *err) {
    *count = 0;
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        double box = strtod(p, &end);
        if (end == p || (*end && *end != ',') || errno || !(box >= 0.1 && box <= 1000))
            return fail(err, "--box '%s': expected box sides in metres within [0.1, 1000], separated by commas", text);
        if (*count == 16) return fail(err, "--box '%s': at most 16 boxes", text);
        boxes[(*count)++] = box;
        p = *end ? end + 1 : end;
    }
    if (*count == 0) return fail(err, "--box needs at least one box side in metres");
    return 0;
}

/* Evaluates and analyses one box into out/box_<side>m (staged in o); its units' scores are copied to
 * units. */
static int eval_one_box(Outputs *o, const char *out, const Model *m, const Config *c, EvalPlan plan, UnitScores *units,
                        int threads, Err *err) {
    char dir[4200], name[64];
    double box = plan.box;
    snprintf(name, sizeof name, "box_%gm", box);
    path_join(dir, sizeof dir, out, name);
    if (out_dir(o, dir, err)) return -1;
    double t0 = now_seconds();
    Ratemaps rm;
    eval_ratemaps(&rm, m, c, plan, threads);
    Analysis an;
    analysis_run(&an, rm.map, rm.N, rm.n, box, threads);
    an.walks = rm.walks, an.steps = rm.steps, an.coverage = rm.coverage;
    size_t bins = (size_t)rm.n * rm.n;
    for (int k = 0; k < rm.N; k++) { /* stability (section 8): halves of the walks, early vs late steps */
        an.units[k].split_half_r = pearson(rm.part[0] + k * bins, rm.part[1] + k * bins, bins, SAC_MIN_OVERLAP);
        an.units[k].early_late_r = pearson(rm.part[2] + k * bins, rm.part[3] + k * bins, bins, SAC_MIN_OVERLAP);
    }
    int rc = ratemaps_write(o, dir, rm.map, rm.N, rm.n, err) || analysis_write(o, dir, &an, rm.map, err) ? -1 : 0;
    if (rc == 0) {
        int grid_like = 0;
        for (int k = 0; k < rm.N; k++) grid_like += an.units[k].score60 > GRID_THRESHOLD;
        fprintf(stderr, "gridssl: %g m box: %d walks x %d steps, %dx%d bins, coverage %.1f%%, %d of %d units grid-like, "
                "%d module(s)", box, rm.walks, rm.steps, rm.n, rm.n, 100 * rm.coverage, grid_like, rm.N, an.n_modules);
        for (int i = 0; i < an.n_modules; i++) fprintf(stderr, "%s%.3g m", i ? ", " : ": ", an.modules[i].period_m);
        fprintf(stderr, " (%.1f s) -> %s\n", now_seconds() - t0, dir);
        memcpy(units, an.units, (size_t)rm.N * sizeof *units);
    }
    analysis_free(&an);
    ratemaps_free(&rm);
    return rc;
}

/* generalisation.csv: each unit's score60 and period in every box. */
static void generalisation_csv(Buf *b, const UnitScores *units, const EvalPlan *plans, int n_boxes, int N) {
    buf_printf(b, "unit");
    for (int i = 0; i < n_boxes; i++) buf_printf(b, ",score60_%gm,period_m_%gm", plans[i].box, plans[i].box);
    buf_printf(b, "\n");
    for (int k = 0; k < N; k++) {
        buf_printf(b, "%d", k);
        for (int i = 0; i < n_boxes; i++) {
            const UnitScores *u = &units[(size_t)i * N + k];
            buf_put(b, ",", 1), put_number(b, u->score60, 0);
            buf_put(b, ",", 1), put_number(b, u->period_m, 0);
        }
        buf_printf(b, "\n");
    }
}

/* The default output directory of a command reading `input`: "<input's dir>/<name>". */
static void default_out(char *out, size_t size, const char *input, const char *name) {
    char dir[4100];
    dir_of(dir, sizeof dir, input);
    snprintf(out, size, "%s/%s", dir, name);
}

static int cmd_eval(int argc, char **argv, Err *err) {
    Args args;
    Config c;
    Model m;
    TrainState s;
    Outputs o = {0};
    memset(&m, 0, sizeof m);
    int rc = parse_args(&args, argc, argv, "--out --box", err), n_boxes = 0;
    double boxes[16];
    EvalPlan plans[16];
    const char *ckpt = args.n_rest > 0 ? args.rest[0] : NULL;
    if (rc == 0 && !ckpt) rc = fail(err, "eval needs a checkpoint: gridssl eval CHECKPOINT [--box 2,3,4] [--out DIR]");
    char default_boxes[64] = "2,3,4"; /* a baseline: its arena's width, 1.5 and 2 times it */
    if (rc == 0) rc = checkpoint_load(ckpt, &m, &s, &c, err);
    if (rc == 0 && c.model != MODEL_SIC)
        snprintf(default_boxes, sizeof default_boxes, "%g,%g,%g", c.arena_size, 1.5 * c.arena_size, 2 * c.arena_size);
    if (rc == 0) rc = parse_boxes(boxes, &n_boxes, args.box ? args.box : default_boxes, err);
    if (rc == 0) rc = apply_overrides(&c, args.n_rest - 1, args.rest + 1, "eval_", err);
    for (int i = 0; i < n_boxes && rc == 0; i++) rc = eval_plan(&plans[i], &c, m.N, boxes[i], err); /* all, before any work */
    char out[4200];
    if (rc == 0) {
        if (args.out) snprintf(out, sizeof out, "%s", args.out);
        else default_out(out, sizeof out, ckpt, "eval");
        rc = out_dir(&o, out, err);
    }
    UnitScores *units = rc == 0 ? xcalloc((size_t)n_boxes * m.N, sizeof(UnitScores)) : NULL;
    for (int i = 0; i < n_boxes && rc == 0; i++) rc = eval_one_box(&o, out, &m, &c, plans[i], units + (size_t)i * m.N, args.threads, err);
    if (rc == 0) {
        Buf b = {0};
        char path[4200];
        generalisation_csv(&b, units, plans, n_boxes, m.N);
        path_join(path, sizeof path, out, "generalisation.csv");
        rc = out_file(&o, path, &b, 1, err) || outputs_commit(&o, err) ? -1 : 0;
        buf_free(&b);
    }
    if (rc) outputs_discard(&o);
    outputs_free(&o);
    free(units);
    model_free(&m);
    free(args.rest);
    return rc;
}

/* gridssl score RATEMAPS.npy --box METRES [--out DIR]: the analysis of any ratemaps. */
static int cmd_score(int argc, char **argv, Err *err) {
    Args args;
    Outputs o = {0};
    int rc = parse_args(&args, argc, argv, "--out --box", err), N = 0, n = 0, n_boxes = 0;
    double box = 0;
    real *maps = NULL;
    if (rc == 0 && args.n_rest != 1) rc = fail(err, "usage: gridssl score RATEMAPS.npy --box METRES [--out DIR]");
    if (rc == 0 && !args.box) rc = fail(err, "score needs --box METRES (the side of the box the ratemaps cover)");
    if (rc == 0) rc = parse_boxes(&box, &n_boxes, args.box, err);
    if (rc == 0 && n_boxes != 1) rc = fail(err, "score takes one box side, not %d", n_boxes);
    if (rc == 0) rc = npy_read_maps(args.rest[0], &maps, &N, &n, err);
    char out[4200];
    if (rc == 0) {
        if (args.out) snprintf(out, sizeof out, "%s", args.out);
        else default_out(out, sizeof out, args.rest[0], "score");
        rc = out_dir(&o, out, err);
    }
    if (rc == 0) {
        Analysis an;
        analysis_run(&an, maps, N, n, box, args.threads);
        rc = analysis_write(&o, out, &an, maps, err) || outputs_commit(&o, err) ? -1 : 0;
        int grid_like = 0;
        for (int k = 0; k < N; k++) grid_like += an.units[k].score60 > GRID_THRESHOLD;
        if (rc == 0) fprintf(stderr, "gridssl: %d maps of %dx%d bins in a %g m box: %d grid-like, %d module(s) -> %s\n",
                             N, n, n, box, grid_like, an.n_modules, out);
        analysis_free(&an);
    }
    if (rc) outputs_discard(&o);
    outputs_free(&o);
    free(maps);
    free(args.rest);
    return rc;
}

/* gridssl dump for a baseline (section 5): the next batch's inputs, positions, starts, noise (cw) or
 * place-cell centres, codes and start codes (sorscher), the states x and h, the readout, every
 * parameter and its gradient, the loss terms and the config; tests/basecheck.py recomputes them. */
static int dump_baseline(Outputs *o, const char *dir, Model *m, Acts *a, Batch *bt, TrainState *s, const Config *c,
                         int threads, Err *err) {
    baseline_batch_draw(bt, &s->data_rng, c); /* the batch training would draw next */
    memset(m->grads, 0, m->num_params * sizeof(real));
    LossTerms L = baseline_forward(m, a, bt, c, 1.0, threads);
    baseline_backward(m, a, bt, c, threads);
    int64_t B = c->B, T = c->T, N = c->N, D = bt->D, P = c->place_cells, O = c->model == MODEL_CW ? 2 : P;
    char path[4200], name[64];
    struct { const char *name; const real *x; int64_t shape[3]; int ndim, only; } arrays[] = { /* only: a model, or 0 */
        {"input", bt->input, {B, T, D}, 3, 0}, {"positions", bt->pos, {B, T, 2}, 3, 0}, {"start", bt->start, {B, 2}, 2, 0},
        {"h0", a->h0, {B, N}, 2, 0}, {"x", a->z, {B, T, N}, 3, 0}, {"h", a->g, {B, T, N}, 3, 0}, {"out", a->out, {B, T, O}, 3, 0},
        {"noise", bt->noise, {B, T, N}, 3, MODEL_CW}, {"centres", a->centres, {P, 2}, 2, MODEL_SORSCHER},
        {"targets", a->target, {B, T, P}, 3, MODEL_SORSCHER}, {"p0", a->p0, {B, P}, 2, MODEL_SORSCHER},
    };
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        if (arrays[i].only && arrays[i].only != c->model) continue;
        snprintf(name, sizeof name, "%s.npy", arrays[i].name);
        path_join(path, sizeof path, dir, name);
        if (npy_save_real(o, path, arrays[i].x, arrays[i].shape, arrays[i].ndim, err)) return -1;
    }
    size_t offset = 0;
    for (int k = 0; k < m->num_tensors; k++) { /* each tensor and its gradient, flat */
        int64_t shape[1] = {(int64_t)m->sizes[k]};
        for (int grad = 0; grad < 2; grad++) {
            snprintf(name, sizeof name, "%s%s.npy", grad ? "grad_" : "", m->names[k]);
            path_join(path, sizeof path, dir, name);
            if (npy_save_real(o, path, (grad ? m->grads : m->params) + offset, shape, 1, err)) return -1;
        }
        offset += m->sizes[k];
    }
    Buf b = {0};
    buf_printf(&b, "task = %.17g\nweights = %.17g\nrate = %.17g\ntotal = %.17g\nerr_m = %.17g\n", L.task, L.weights, L.rate,
               L.total, L.err_m);
    path_join(path, sizeof path, dir, "losses.txt");
    int bad = out_file(o, path, &b, 0, err);
    b.len = 0;
    config_print(&b, c);
    path_join(path, sizeof path, dir, "config.txt");
    bad = bad || out_file(o, path, &b, 0, err);
    buf_free(&b);
    if (bad) return -1;
    printf("task = %.17g\nweights = %.17g\nrate = %.17g\ntotal = %.17g\n", L.task, L.weights, L.rate, L.total);
    return 0;
}

static int cmd_dump(int argc, char **argv, Err *err) {
    Args args;
    int rc = parse_args(&args, argc, argv, "", err), threads = args.threads;
    if (rc == 0 && args.n_rest != 2) rc = fail(err, "usage: gridssl dump CHECKPOINT DIR [--threads N]");
    const char *ckpt = rc ? NULL : args.rest[0], *dir = rc ? NULL : args.rest[1]; /* argv's strings */
    free(args.rest);
    if (rc) return -1;
    Config c;
    Model m;
    TrainState s;
    Outputs o = {0};
    memset(&m, 0, sizeof m);
    if (checkpoint_load(ckpt, &m, &s, &c, err)) return -1;
    rc = -1;
    Batch bt;
    Acts a;
    batch_alloc(&bt, &c);
    acts_alloc(&a, &c);
    if (out_dir(&o, dir, err)) goto done;
    if (c.model != MODEL_SIC) {
        rc = dump_baseline(&o, dir, &m, &a, &bt, &s, &c, threads, err) || outputs_commit(&o, err) ? -1 : 0;
        goto done;
    }
    batch_draw(&bt, &s.data_rng, &c); /* the batch training would draw next */
    memset(m.grads, 0, m.num_params * sizeof(real));
    LossTerms L = sic_forward(&m, &a, &bt, &c, config_weights(&c, s.step), 1.0, threads);
    sic_backward(&m, &a, &bt, &c, &L, threads);
    int64_t B = c.B, T = c.T, N = c.N, H = c.hidden;
    char path[4200];
    struct { const char *name; const real *x; int64_t shape[3]; int ndim; } arrays[] = {
        {"velocities", bt.vel, {bt.V, 2}, 2}, {"positions", bt.pos, {B, T, 2}, 3}, {"g0", a.g0, {N}, 1},
        {"g", a.g, {B, T, N}, 3}, {"W1", m.p.W1, {H, 2}, 2}, {"b1", m.p.b1, {H}, 1}, {"W2", m.p.W2, {H, H}, 2},
        {"b2", m.p.b2, {H}, 1}, {"W3", m.p.W3, {N * N, H}, 2}, {"b3", m.p.b3, {N * N}, 1}, {"theta0", m.p.theta0, {N}, 1},
        {"grad_W1", m.g.W1, {H, 2}, 2}, {"grad_b1", m.g.b1, {H}, 1}, {"grad_W2", m.g.W2, {H, H}, 2},
        {"grad_b2", m.g.b2, {H}, 1}, {"grad_W3", m.g.W3, {N * N, H}, 2}, {"grad_b3", m.g.b3, {N * N}, 1},
        {"grad_theta0", m.g.theta0, {N}, 1},
    };
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.npy", arrays[i].name);
        path_join(path, sizeof path, dir, name);
        if (npy_save_real(&o, path, arrays[i].x, arrays[i].shape, arrays[i].ndim, err)) goto done;
    }
    int64_t index_shape[2] = {B, T};
    path_join(path, sizeof path, dir, "index.npy");
    if (npy_save_i32(&o, path, bt.index, index_shape, 2, err)) goto done;
    int64_t probe_shape[2] = {bt.n_dir, 2};
    path_join(path, sizeof path, dir, "dir_velocities.npy"); /* L_dir's probes u_k (section 4) */
    if (bt.n_dir && npy_save_real(&o, path, bt.vel + 2 * (size_t)bt.V, probe_shape, 2, err)) goto done;
    Buf b = {0};
    double terms[8] = {L.sep, L.inv, L.cap, L.iso, L.dist, L.sparse, L.dir, L.total};
    int64_t terms_shape[1] = {8};
    npy_header(&b, "<f8", terms_shape, 1);
    for (int i = 0; i < 8; i++) buf_f64(&b, terms[i]);
    path_join(path, sizeof path, dir, "losses.npy");
    int bad = out_file(&o, path, &b, 0, err);
    b.len = 0;
    buf_printf(&b, "sep = %.17g\ninv = %.17g\ncap = %.17g\niso = %.17g\ndist = %.17g\nsparse = %.17g\ndir = %.17g\n"
               "total = %.17g\n", L.sep, L.inv, L.cap, L.iso, L.dist, L.sparse, L.dir, L.total);
    buf_printf(&b, "lambda_sep = %.17g\nlambda_inv = %.17g\nlambda_cap = %.17g\nlambda_iso_eff = %.17g\n"
               "lambda_dist_eff = %.17g\nlambda_sparse = %.17g\nlambda_dir_eff = %.17g\n", L.w_sep, L.w_inv, L.w_cap, L.w_iso,
               L.w_dist, L.w_sparse, L.w_dir);
    buf_printf(&b, "n_near = %lld\nn_far = %lld\nn_iso = %lld\nn_dist = %lld\ndead_states = %lld\n", (long long)L.n_near,
               (long long)L.n_far, (long long)L.n_iso, (long long)L.n_dist, (long long)L.dead_states);
    path_join(path, sizeof path, dir, "losses.txt");
    bad = bad || out_file(&o, path, &b, 0, err);
    b.len = 0;
    config_print(&b, &c);
    path_join(path, sizeof path, dir, "config.txt");
    bad = bad || out_file(&o, path, &b, 0, err);
    buf_free(&b);
    if (bad) goto done;
    printf("sep = %.17g\ninv = %.17g\ncap = %.17g\niso = %.17g\ntotal = %.17g\n", L.sep, L.inv, L.cap, L.iso, L.total);
    rc = outputs_commit(&o, err);
done:
    if (rc) outputs_discard(&o);
    outputs_free(&o);
    acts_free(&a);
    batch_free(&bt);
    model_free(&m);
    return rc;
}

/* The machine's peak for gridssl's own arithmetic: multiplies and adds issued separately (contraction
 * into FMA is off), eight independent chains of sixteen float lanes per thread (one 512-bit register
 * or two 256-bit ones a chain, whichever the build uses). */
typedef struct { int iters; float *sums; } PeakCtx;

static void peak_task(void *ctx, int task) {
    const PeakCtx *c = ctx;
    float acc[8][16];
    for (int k = 0; k < 128; k++) acc[k / 16][k % 16] = 1.0f + k * 1e-3f;
    for (int it = 0; it < c->iters; it++)
        for (int k = 0; k < 8; k++)
            for (int l = 0; l < 16; l++) acc[k][l] = acc[k][l] * 0.99999f + 1e-5f;
    float s = 0;
    for (int k = 0; k < 128; k++) s += acc[k / 16][k % 16];
    c->sums[task] = s; /* keeps the loop alive */
}

/* GFLOP/s of peak_task on `threads` threads. */
static double peak_gflops(int threads) {
    float sums[MAX_THREADS];
    PeakCtx c = {10000000, sums};
    double t0 = now_seconds();
    parallel_for(threads, threads, peak_task, &c);
    return 2.0 * 128 * c.iters * threads / (now_seconds() - t0) / 1e9;
}

/* gridssl bench: times `steps` training steps (after one warm-up step) and prints, tab-separated on
 * stdout, the median seconds per step, each phase's share of the time, its GFLOP/s (operation counts
 * in the comments below) and their share of the measured peak (peak_task, on as many threads). The
 * counts are of the float multiplies and adds that dominate a phase; work that is not one (exp, the
 * optimiser's double sqrt and division) counts as time only. Nothing is written to disk. */
static int cmd_bench(int argc, char **argv, Err *err) {
    Args args;
    Config c;
    Model m = {0};
    TrainState s = {0};
    int rc = parse_args(&args, argc, argv, "--config --steps", err);
    if (rc == 0) rc = train_setup(&args, &c, &m, &s, err);
    if (rc) {
        model_free(&m), free(args.rest);
        return rc;
    }
    Batch bt;
    Acts a;
    batch_alloc(&bt, &c);
    acts_alloc(&a, &c);
    int steps = args.steps, T = c.T, B = c.B, N = c.N, H = c.hidden, V = bt.V;
    double M = (double)B * T, *times = xcalloc((size_t)steps, sizeof(double));
    LossTerms L;
    rc = train_step(&m, &s, &a, &bt, &c, args.threads, &L, err); /* warm-up: first touch of every buffer */
    memset(a.phase_seconds, 0, sizeof a.phase_seconds);
    for (int k = 0; k < steps && rc == 0; k++) {
        double t0 = now_seconds();
        rc = train_step(&m, &s, &a, &bt, &c, args.threads, &L, err);
        times[k] = now_seconds() - t0;
    }
    if (rc) {
        free(times);
        acts_free(&a), batch_free(&bt), model_free(&m), free(args.rest);
        return rc;
    }
    for (int i = 1; i < steps; i++) /* insertion sort for the median */
        for (int j = i; j > 0 && times[j - 1] > times[j]; j--) {
            double t = times[j];
            times[j] = times[j - 1], times[j - 1] = t;
        }
    double median = steps % 2 ? times[steps / 2] : (times[steps / 2 - 1] + times[steps / 2]) / 2, total = 0;
    double mlp = 2.0 * V * (2.0 * H + (double)H * H + (double)H * N * N); /* multiply + add per weight */
    double flops[8] = {
        0,                                        /* batch */
        mlp,                                      /* W(v) for the V distinct velocities */
        2.0 * M * N * N,                          /* z = W g */
        3.0 * N * M * (M - 1) / 2,                /* D = sum (g_i - g_j)^2: subtract, multiply, add */
        2.0 * N * M * M,                          /* A = Q G: multiply + add per pair and unit */
        4.0 * M * N * N,                          /* W^T dz and dz (x) g */
        2.0 * mlp,                                /* d_W and d_in */
        12.0 * (double)m.num_params};             /* clip + AdamW */
    for (int p = 0; p < 8; p++) total += a.phase_seconds[p];
    Buf text = {0}; /* the resolved config, one "cfg<TAB>key = value" line per key */
    config_print(&text, &c);
    buf_put(&text, "", 1);
    for (char *line = (char *)text.data, *end; *line; line = end + 1) {
        end = strchr(line, '\n');
        *end = 0;
        printf("cfg\t%s\n", line);
    }
    buf_free(&text);
    printf("config\tN=%d\thidden=%d\tB=%d\tT=%d\taccum=%d\tthreads=%d\tsteps=%d\tparams=%zu\n", N, H, B, T, c.accum,
           args.threads, steps, m.num_params);
    printf("step_seconds_median\t%.6f\n", median);
    printf("step_seconds_min_max\t%.6f\t%.6f\n", times[0], times[steps - 1]);
    double peak1 = peak_gflops(1), peak = args.threads > 1 ? peak_gflops(args.threads) : peak1;
    for (int p = 0; p < 8 && c.model == MODEL_SIC; p++) { /* name, seconds, share of the step, GFLOP/s, share of the peak */
        double secs = a.phase_seconds[p] / steps, gf = secs > 0 ? flops[p] * c.accum / secs / 1e9 : 0;
        printf("phase\t%s\t%.6f\t%.1f%%\t%.2f\t%.1f%%\n", phase_names[p], secs, 100 * a.phase_seconds[p] / total, gf,
               100 * gf / peak);
    }
    /* peak resident memory of this process (Linux: VmHWM; getrusage would count a parent's pages
     * inherited through fork) */
    FILE *status = fopen("/proc/self/status", "r");
    char line[256];
    while (status && fgets(line, sizeof line, status))
        if (strncmp(line, "VmHWM:", 6) == 0) printf("peak_rss_mib\t%.1f\n", strtod(line + 6, NULL) / 1024);
    if (status) fclose(status);
    printf("peak_gflops\t1\t%.2f\n", peak1);
    if (args.threads > 1) printf("peak_gflops\t%d\t%.2f\n", args.threads, peak);
    free(times);
    acts_free(&a), batch_free(&bt), model_free(&m), free(args.rest);
    return 0;
}

/* Central differences resolve gradients to ~1e-9 in double; in float, rounding noise in the loss
 * swamps small gradients at any step size, so the check lives in the double build only. */
static int cmd_gradcheck(int argc, char **argv, Err *err) {
    Args args; /* --threads is accepted like everywhere; the gradient check itself runs on one */
    int rc = parse_args(&args, argc, argv, "", err), n_rest = args.n_rest;
    free(args.rest);
    if (rc) return -1;
    if (n_rest) return fail(err, "usage: gridssl gradcheck [--threads N]");
    if (sizeof(real) != 8)
        return fail(err, "gradcheck needs double precision: run ./gridssl_f64 gradcheck (make builds it)");
    double h = 1e-5, tol = 1e-6, max_rel;
    int failures = gradcheck_run(stdout, h, tol, &max_rel);
    if (failures) return fail(err, "gradcheck: %d block(s) above tolerance %g", failures, tol);
    return 0;
}

int main(int argc, char **argv) {
    Err err = {{0}};
    int rc;
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("gridssl %s (%s reals)\n", GRIDSSL_VERSION, sizeof(real) == 4 ? "float" : "double");
        return 0;
    }
    if (strcmp(argv[1], "train") == 0) rc = cmd_train(argc - 2, argv + 2, &err);
    else if (strcmp(argv[1], "eval") == 0) rc = cmd_eval(argc - 2, argv + 2, &err);
    else if (strcmp(argv[1], "score") == 0) rc = cmd_score(argc - 2, argv + 2, &err);
    else if (strcmp(argv[1], "dump") == 0) rc = cmd_dump(argc - 2, argv + 2, &err);
    else if (strcmp(argv[1], "gradcheck") == 0) rc = cmd_gradcheck(argc - 2, argv + 2, &err);
    else if (strcmp(argv[1], "bench") == 0) rc = cmd_bench(argc - 2, argv + 2, &err);
    else rc = fail(&err, "unknown command '%s' (gridssl --help lists them)", argv[1]);
    if (rc) {
        fflush(stdout);
        fprintf(stderr, "gridssl: error: %s\n", err.msg);
        return 1;
    }
    return 0;
}
#endif

/* ==============================================================================================
 * APPENDIX A. PORTABLE MATH AND THE PRNG
 * ============================================================================================== */

/* ---- exp, log, sin, cos, atan2 from + - * / -------------------------------------------------------------
 * libm's transcendental functions may differ in the last bit between libraries (glibc, musl, mingw,
 * macOS), so gridssl carries its own. Each result is a fixed sequence of IEEE-754 binary64
 * operations, exact integer operations and bit copies, so with FLT_EVAL_METHOD == 0 and no FMA
 * contraction (both enforced above and in the Makefile) the compiler has no freedom in the result.
 * Every NaN produced is one canonical quiet NaN built from bits.
 *
 * Accuracy against glibc 2.36's libm (ulp = distance in representable doubles to glibc's result;
 * "real" = error against a long-double reference): gs_exp, gs_log, gs_sin, gs_cos, gs_atan2: max 1 ulp
 * each, real error <= 0.78 / 0.83 / 0.78 / 0.76 / 0.84 ulp, measured over 5e6-9.6e6 points per function in the
 * ranges named above each function; tests/unit.c re-measures 1e6+ points per function and range on
 * every run (max 1 ulp).
 *
 * The polynomial kernels and Cody-Waite split constants are those of Sun's fdlibm (via FreeBSD msun
 * and musl), which carry this notice:
 *     Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved.
 *     Developed at SunSoft, a Sun Microsystems, Inc. business.
 *     Permission to use, copy, modify, and distribute this
 *     software is freely granted, provided that this notice
 *     is preserved.
 * Constants are C99 hexadecimal literals, so no decimal-to-binary conversion is involved. gridssl's
 * versions add compensated (TwoSum) additions that bring exp's worst case from 0.89 to 0.67 ulp for
 * normal results, and make the special cases branch-free clamps so a loop of gs_exp can vectorise.
 */

/* ------------------------------------------------------------------ */
/* Bit access                                                          */
/* ------------------------------------------------------------------ */

static inline uint64_t gs_bits(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static inline double gs_from_bits(uint64_t u)
{
    double x;
    memcpy(&x, &u, sizeof x);
    return x;
}

#define GS_ABS_MASK   UINT64_C(0x7fffffffffffffff)
#define GS_INF_BITS   UINT64_C(0x7ff0000000000000)
#define GS_QNAN_BITS  UINT64_C(0x7ff8000000000000)

static inline double gs_nan(void) { return gs_from_bits(GS_QNAN_BITS); }
static inline double gs_inf(void) { return gs_from_bits(GS_INF_BITS); }
/* x, with every NaN the one quiet NaN (printf would show a NaN's sign bit: "-nan" on x86) */
static double one_nan(double x) { return x == x ? x : gs_nan(); }

/* 2^k for -1022 <= k <= 1023, exact, built from the exponent field. */
static inline double gs_pow2(int32_t k)
{
    return gs_from_bits((uint64_t)(k + 1023) << 52);
}

/* Adding then subtracting 1.5*2^52 rounds |t| < 2^51 to the nearest integer
 * (ties to even) in the current rounding mode -- a branch-free, vectorisable
 * rint() that depends only on IEEE addition. */
#define GS_SHIFT 0x1.8p52

/* Knuth's TwoSum: returns s = fl(a+b) and sets *e so that s + *e == a + b
 * exactly, whatever the relative magnitudes of a and b. */
static inline double gs_two_sum(double a, double b, double *e)
{
    double s = a + b;
    double bb = s - a;
    *e = (a - (s - bb)) + (b - bb);
    return s;
}

/* ------------------------------------------------------------------ */
/* exp                                                                 */
/* ------------------------------------------------------------------ */

/*
 * gs_exp(x) = e^x.
 *
 * Method (fdlibm e_exp.c, restructured to be branch-free):
 *   x = k*ln2 + r, |r| <= ln2/2, k = rint(x/ln2).  ln2 = LN2_HI + LN2_LO
 *   (Cody-Waite); LN2_HI has 32 significant bits so k*LN2_HI is exact for
 *   |k| < 2^21 and hi = x - k*LN2_HI is exact, r = hi - lo with lo = k*LN2_LO.
 *   With z = r^2, R(z) = r*(e^r+1)/(e^r-1) = 2 + z/6 - z^2/360 + ... is
 *   approximated by 2 + P1*z + ... + P5*z^5 (degree 5 in z, i.e. degree 10
 *   in r; minimax on |r| <= 0.3466, |error| <= 2^-58.8, R ~ 2).
 *   Then  e^r = 1 + r + r*c/(2-c),  c = r - (P1*z + ... + P5*z^5),
 *   evaluated as 1 + hi + (r*c/(2-c) - lo) with compensated additions.
 *   Finally e^x = e^r * 2^k1 * 2^k2 with k1 = k/2, k2 = k - k1.  Both factors
 *   are normal powers of two built from bits, the first product is exact
 *   and the second rounds only if the result is subnormal or overflows:
 *   overflow to +inf and gradual underflow to subnormals/0 therefore come
 *   out of IEEE arithmetic itself, with no branch on the exponent.
 *
 * Special cases: NaN -> NaN, +inf -> +inf, -inf -> +0,
 *   x > 709.782712893383973096 (largest x with finite e^x) -> +inf,
 *   x < -745.2 -> +0 (e^x < 2^-1075 there), exp(0) == 1 exactly.
 *   Special cases are handled by clamping x before the core and two
 *   selects after it, so an inlined loop of gs_exp calls can vectorise.
 *
 * Accuracy (5.0e6 points): max 1 ulp vs glibc exp in every range; real
 *   error <= 0.78 ulp.  Ranges: uniform [-745.2, 709.79] (2e6 pts, real
 *   0.77, reached at a subnormal result), [-1, 1] (1e6, 0.66),
 *   +-[2^-60, 2^-1] (1e6, 0.62), [700, 709.79] (0.5e6, 0.67) and
 *   subnormal results [-745.2, -708.4] (0.5e6, 0.78 -- the final scaling
 *   rounds a second time there).  1.7% of uniform points differ from glibc.
 */
static inline double gs_exp(double x) /* inline: a loop of gs_exp calls vectorises */
{
    static const double
        INVLN2 = 0x1.71547652b82fep+0,     /* 1/ln2 */
        LN2_HI = 0x1.62e42fee00000p-1,     /* ln2, 32 bits, 21 trailing zeros */
        LN2_LO = 0x1.a39ef35793c76p-33,    /* ln2 - LN2_HI */
        P1 = 0x1.555555555553ep-3,
        P2 = -0x1.6c16c16bebd93p-9,
        P3 = 0x1.1566aaf25de2cp-14,
        P4 = -0x1.bbd41c5d26bf1p-20,
        P5 = 0x1.6376972bea4d0p-25,
        OVF_X = 0x1.62e42fefa39efp+9,      /* 709.782712893383973096 */
        CLAMP_HI = 709.8,                  /* -> k = 1024: e^x overflows anyway */
        CLAMP_LO = -745.2;                 /* -> k = -1075: e^x rounds to 0 */

    /* Clamp so that k stays in [-1075, 1024] (both 2^k1 and 2^k2 then stay
     * normal) and the double->int conversion below is always defined.
     * Written so that NaN also lands on CLAMP_HI (comparisons with NaN are
     * false); it is replaced by NaN at the end. */
    double xc = (x < CLAMP_HI) ? x : CLAMP_HI;
    xc = (xc > CLAMP_LO) ? xc : CLAMP_LO;

    double kd = (xc * INVLN2 + GS_SHIFT) - GS_SHIFT;
    int32_t k = (int32_t)kd;

    double hi = xc - kd * LN2_HI;          /* exact */
    double lo = kd * LN2_LO;
    double r = hi - lo;
    double z = r * r;
    double c = r - z * (P1 + z * (P2 + z * (P3 + z * (P4 + z * P5))));
    /* e^r = 1 + hi + (r*c/(2-c) - lo).  Only the last addition may cost
     * a full half ulp, so the two leading additions are made error-free
     * (TwoSum, then Fast2Sum since |hi+b| < 1) and their errors folded
     * into the final rounding. */
    double b = (r * c) / (2.0 - c) - lo;
    double e1, e2;
    double s = gs_two_sum(hi, b, &e1);
    double y = 1.0 + s;
    e2 = (1.0 - y) + s;
    y = y + (e2 + e1);                     /* e^r, in [0.7, 1.42] */

    int32_t k1 = k / 2;                    /* C truncates: |k1| <= 538 */
    int32_t k2 = k - k1;
    y = (y * gs_pow2(k1)) * gs_pow2(k2);   /* exact, then one rounding */

    y = (x > OVF_X) ? gs_inf() : y;
    y = (x != x) ? gs_nan() : y;
    return y;
}

/* ------------------------------------------------------------------ */
/* log                                                                 */
/* ------------------------------------------------------------------ */

/*
 * gs_log(x) = natural logarithm.
 *
 * Domain: x > 0 (normal or subnormal).  x <= 0 (including +-0 and -inf)
 *   and NaN return the canonical NaN (deliberately NOT -inf for zero);
 *   +inf -> +inf.  gs_log(1) == +0 exactly.
 *
 * Method (fdlibm e_log.c / musl, no branch in the core):
 *   Subnormals are first scaled by 2^54 (exact).  Then x = 2^k * m with
 *   m in [sqrt(1/2), sqrt(2)), obtained by integer arithmetic on the bit
 *   pattern; f = m - 1 is exact.  With s = f/(2+f),
 *     log(1+f) = log(1+s) - log(1-s) = 2s + 2/3 s^3 + 2/5 s^5 + ...
 *              = 2s + s*R,   R ~ Lg1*s^2 + ... + Lg7*s^14
 *   (degree 7 in z = s^2, i.e. 14 in s; minimax on |s| <= 0.1716,
 *   |error| <= 2^-58.45).  Using 2s = f - hfsq + s*hfsq, hfsq = f^2/2:
 *     log(x) = (k*LN2_HI + f) + (s*(hfsq + R) + k*LN2_LO - hfsq),
 *   where k*LN2_HI is exact for |k| < 2^21 and the first sum is formed
 *   without error (TwoSum), leaving one significant final rounding.
 *
 * Accuracy (5.0e6 points): max 1 ulp vs glibc log in every range;
 *   real error <= 0.83 ulp.  Ranges: subnormal inputs (1e6 pts, real
 *   <= 0.50), uniform [0.5, 2] (2e6, 0.83), 1 +- [2^-60, 2^-1] (1e6,
 *   0.79), log-uniform over all positive normal doubles (1e6, 0.62).
 *   The worst case is m near sqrt(2), where rounding of f*f/2 and of the
 *   low-order sum are largest relative to the result.
 */
static double gs_log(double x)
{
    static const double
        LN2_HI = 0x1.62e42fee00000p-1,
        LN2_LO = 0x1.a39ef35793c76p-33,
        TWO54 = 0x1p54,
        Lg1 = 0x1.5555555555593p-1,
        Lg2 = 0x1.999999997fa04p-2,
        Lg3 = 0x1.2492494229359p-2,
        Lg4 = 0x1.c71c51d8e78afp-3,
        Lg5 = 0x1.7466496cb03dep-3,
        Lg6 = 0x1.39a09d078c69fp-3,
        Lg7 = 0x1.2f112df3e5244p-3;
    /* Bit pattern of sqrt(1/2) rounded: the lower end of the m interval. */
    const uint64_t SQRTH_BITS = UINT64_C(0x3fe6a09e667f3bcd);
    const uint64_t ONE_BITS = UINT64_C(0x3ff0000000000000);
    const uint64_t MANT_MASK = UINT64_C(0x000fffffffffffff);

    if (!(x > 0.0))                        /* x <= 0, -0 or NaN */
        return gs_nan();
    uint64_t ix = gs_bits(x);
    if (ix >= GS_INF_BITS)                 /* +inf */
        return x;

    int32_t k = 0;
    if (ix < (UINT64_C(1) << 52)) {        /* subnormal: make it normal */
        x *= TWO54;
        ix = gs_bits(x);
        k = -54;
    }

    /* Adding ONE - SQRTH to the bits carries into the exponent exactly when
     * the significand is >= that of sqrt(2)/2's.  Afterwards the exponent
     * field holds k + 1023 and re-basing the significand on SQRTH gives
     * m in [sqrt(1/2), sqrt(2)). */
    ix += ONE_BITS - SQRTH_BITS;
    k += (int32_t)(ix >> 52) - 1023;
    ix = (ix & MANT_MASK) + SQRTH_BITS;
    double m = gs_from_bits(ix);

    double f = m - 1.0;                    /* exact (Sterbenz) */
    double hfsq = 0.5 * f * f;
    double s = f / (2.0 + f);
    double z = s * s;
    double w = z * z;
    double t1 = w * (Lg2 + w * (Lg4 + w * Lg6));
    double t2 = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)));
    double R = t2 + t1;
    double dk = (double)k;
    /* k*LN2_HI and f are exact; add them without error (TwoSum) so that
     * the only large rounding is the final one. */
    double e;
    double hi = gs_two_sum(dk * LN2_HI, f, &e);
    double lo = (s * (hfsq + R) + dk * LN2_LO) - hfsq;
    return hi + (lo + e);
}

/* ------------------------------------------------------------------ */
/* sin, cos                                                            */
/* ------------------------------------------------------------------ */

/*
 * Kernels on |x| <~ pi/4 for an argument given as x + y (y = tail of the
 * reduced argument, |y| <= ulp(x)/2).
 *
 * sin: sin(x)/x ~ 1 + S1*x^2 + ... + S6*x^12 (degree 13 odd polynomial,
 *   minimax on [0, pi/4], |error| <= 2^-58.0); the tail enters through
 *   sin(x+y) ~ sin(x) + (1 - x^2/2)*y.
 * cos: cos(x) ~ 1 - x^2/2 + C1*x^4 + ... + C6*x^14 (degree 14 even,
 *   |error| <= 2^-59.8); cos(x+y) ~ cos(x) - x*y.  w = 1 - x^2/2 is formed
 *   separately and its rounding error ((1-w)-hz) added back, which is what
 *   keeps the result below 1 ulp near the ends of the interval.
 */
static inline double gs_ksin(double x, double y)
{
    static const double
        S1 = -0x1.5555555555549p-3,
        S2 = 0x1.111111110f8a6p-7,
        S3 = -0x1.a01a019c161d5p-13,
        S4 = 0x1.71de357b1fe7dp-19,
        S5 = -0x1.ae5e68a2b9cebp-26,
        S6 = 0x1.5d93a5acfd57cp-33;
    double z = x * x;
    double w = z * z;
    double r = S2 + z * (S3 + z * S4) + z * w * (S5 + z * S6);
    double v = z * x;
    /* Written so that x = -0, y = 0 returns -0. */
    return x - ((z * (0.5 * y - v * r) - y) - v * S1);
}

static inline double gs_kcos(double x, double y)
{
    static const double
        C1 = 0x1.555555555554cp-5,
        C2 = -0x1.6c16c16c15177p-10,
        C3 = 0x1.a01a019cb1590p-16,
        C4 = -0x1.27e4f809c52adp-22,
        C5 = 0x1.1ee9ebdb4b1c4p-29,
        C6 = -0x1.8fae9be8838d4p-37;
    double z = x * x;
    double w = z * z;
    double r = z * (C1 + z * (C2 + z * C3)) + w * w * (C4 + z * (C5 + z * C6));
    double hz = 0.5 * z;
    w = 1.0 - hz;
    return w + (((1.0 - w) - hz) + (z * r - x * y));
}

/* |x| below this (2^20*pi/2 rounded down, as in fdlibm's "medium" case)
 * keeps n = rint(x*2/pi) <= 2^20, which is what the split below needs. */
#define GS_TRIG_MAX_BITS UINT64_C(0x413921fb00000000)   /* 1647099.0 */
#define GS_PIO4_BITS     UINT64_C(0x3fe921fb54442d18)   /* pi/4 rounded */

/*
 * Cody-Waite reduction: returns n and y0 + y1 = x - n*pi/2 (|y0| <~ pi/4),
 * for |x| < 1647099.  pi/2 = PIO2_1 + PIO2_2 + PIO2_3 + PIO2_3T with the
 * first three having at most 33 significant bits, so n*PIO2_i is exact
 * for |n| <= 2^20; the four pieces carry pi/2 to 2^-159.9.
 *   r = x - n*PIO2_1 is exact (Sterbenz: x/(n*PIO2_1) is in [1/2, 3/2]);
 *   the next two exact products are removed with TwoSum so that no bit is
 *   lost however much cancellation occurs; only the last, tiny term
 *   n*PIO2_3T and the accumulation of the correction c are rounded.  This
 *   is fdlibm's three-round "medium" reduction done unconditionally.
 */
static inline int32_t gs_rem_pio2(double x, double *y0, double *y1)
{
    static const double
        INVPIO2 = 0x1.45f306dc9c883p-1,    /* 2/pi */
        PIO2_1 = 0x1.921fb54400000p+0,
        PIO2_2 = 0x1.0b4611a600000p-34,
        PIO2_3 = 0x1.3198a2e000000p-69,
        PIO2_3T = 0x1.b839a252049c1p-104;
    double fn = (x * INVPIO2 + GS_SHIFT) - GS_SHIFT;
    int32_t n = (int32_t)fn;
    double e, c;
    double r = x - fn * PIO2_1;            /* exact */
    r = gs_two_sum(r, -(fn * PIO2_2), &e);
    c = e;
    r = gs_two_sum(r, -(fn * PIO2_3), &e);
    c += e;
    c -= fn * PIO2_3T;
    *y0 = r + c;
    *y1 = (r - *y0) + c;
    return n;
}

/*
 * gs_sin(x), gs_cos(x).
 *
 * Domain: |x| < 1647099.0 (= 0x1.921fbp+20, just under 2^20*pi/2) with the
 *   accuracy below; |x| >= 1647099.0, +-inf and NaN return the canonical
 *   NaN (a full Payne-Hanek reduction would be needed beyond that and is
 *   deliberately left out).  sin(+-0) = +-0, cos(0) = 1.
 *
 * Method: |x| <= pi/4 goes straight to the kernels; otherwise
 *   x = n*pi/2 + (y0 + y1) (gs_rem_pio2) and the quadrant n mod 4 selects
 *   +-sin/+-cos of the reduced argument.
 *
 * Accuracy (9.6e6 points each): max 1 ulp vs glibc, real error <= 0.78
 *   ulp (sin) / 0.76 ulp (cos).  Ranges: uniform [-1e5, 1e5] (2e6 pts),
 *   uniform [-2pi, 2pi] (2e6), tiny +-[2^-1074, 2^-20] (0.5e6, exact
 *   match), the doubles within 4 ulps of +-n*pi/2 for n <= 63661 (1.1e6,
 *   real <= 0.5 ulp, 0 ulp from glibc except 2 points where glibc's cos is
 *   1 ulp off), uniform 1e5 <= |x| < 1647099 (1e6) and the doubles within
 *   1 ulp of n*pi/2 for 63661 < n < 2^20 (3e6, real <= 0.5 ulp).
 */
static double gs_sin(double x)
{
    uint64_t ax = gs_bits(x) & GS_ABS_MASK;
    double y0, y1;
    if (ax <= GS_PIO4_BITS)
        return gs_ksin(x, 0.0);
    if (ax >= GS_TRIG_MAX_BITS)            /* out of domain, inf, NaN */
        return gs_nan();
    switch ((uint32_t)gs_rem_pio2(x, &y0, &y1) & 3u) {
    case 0:  return  gs_ksin(y0, y1);
    case 1:  return  gs_kcos(y0, y1);
    case 2:  return -gs_ksin(y0, y1);
    default: return -gs_kcos(y0, y1);
    }
}

static double gs_cos(double x)
{
    uint64_t ax = gs_bits(x) & GS_ABS_MASK;
    double y0, y1;
    if (ax <= GS_PIO4_BITS)
        return gs_kcos(x, 0.0);
    if (ax >= GS_TRIG_MAX_BITS)
        return gs_nan();
    switch ((uint32_t)gs_rem_pio2(x, &y0, &y1) & 3u) {
    case 0:  return  gs_kcos(y0, y1);
    case 1:  return -gs_ksin(y0, y1);
    case 2:  return -gs_kcos(y0, y1);
    default: return  gs_ksin(y0, y1);
    }
}


/* ------------------------------------------------------------------ */
/* atan2                                                               */
/* ------------------------------------------------------------------ */

/* Veltkamp split: a = hi + lo exactly, hi and lo have <= 26 significant
 * bits each, so products of halves are exact (|a| < 2^995). */
static inline void gs_split(double a, double *hi, double *lo)
{
    double c = 0x1.0000002p27 * a;         /* (2^27 + 1) * a */
    double h = c - (c - a);
    *hi = h;
    *lo = a - h;
}

/*
 * Kernel of atan2: for t >= 0 (t may be +inf) and a small correction dt
 * (the part of the exact ratio that t could not hold) returns
 *     atan(t + dt)        if flip == 0,
 *     pi - atan(t + dt)   if flip == 1,
 * as (constant hi part) + (everything else), i.e. one significant rounding.
 *
 * Reduction (fdlibm s_atan.c): atan(t) = atan(c) + atan(u),
 *   u = (t - c)/(1 + t*c), c in {0, 1/2, 1, 3/2, inf} chosen so |u| <= 7/16.
 *   The constants atan(c) and pi - atan(c) are stored as hi + lo.
 * Polynomial: atan(u) = u - u*(aT0*u^2 + ... + aT10*u^22), odd, degree 23,
 *   minimax on |u| <= 7/16, relative truncation error <= 2^-57.7.
 * The correction enters linearly: atan(t + dt) = atan(t) + dt/(1 + t^2).
 */
static inline double gs_atan_k(double t, double dt, int flip)
{
    static const double ATAN_HI[5] = {        /* atan(c) */
        0.0,
        0x1.dac670561bb4fp-2,              /* atan(1/2) */
        0x1.921fb54442d18p-1,              /* atan(1) = pi/4 */
        0x1.f730bd281f69bp-1,              /* atan(3/2) */
        0x1.921fb54442d18p+0,              /* atan(inf) = pi/2 */
    };
    static const double ATAN_LO[5] = {
        0.0, 0x1.a2b7f222f65e2p-56, 0x1.1a62633145c07p-55,
        0x1.007887af0cbbdp-56, 0x1.1a62633145c07p-54,
    };
    static const double PIM_HI[5] = {         /* pi - atan(c) */
        0x1.921fb54442d18p+1,              /* pi */
        0x1.56c6e7397f5aep+1,              /* pi - atan(1/2) */
        0x1.2d97c7f3321d2p+1,              /* 3pi/4 */
        0x1.145385fa3af71p+1,              /* pi - atan(3/2) */
        0x1.921fb54442d18p+0,              /* pi/2 */
    };
    static const double PIM_LO[5] = {
        0x1.1a62633145c07p-53, 0x1.660b64ece6f4bp-53, 0x1.a79394c9e8a0ap-54,
        0x1.fa53523b6428fp-53, 0x1.1a62633145c07p-54,
    };
    static const double aT[11] = {
        0x1.555555555550dp-2,  -0x1.999999998ebc4p-3,
        0x1.24924920083ffp-3,  -0x1.c71c6fe231671p-4,
        0x1.745cdc54c206ep-4,  -0x1.3b0f2af749a6dp-4,
        0x1.10d66a0d03d51p-4,  -0x1.dde2d52defd9ap-5,
        0x1.97b4b24760debp-5,  -0x1.2b4442c6a6c2fp-5,
        0x1.0ad3ae322da11p-6,
    };
    double corr = dt / (1.0 + t * t);      /* 0 when t = inf */
    double u;
    int id;
    if (t < 0.4375) {
        id = 0;
        u = t;
    } else if (t < 0.6875) {
        id = 1;
        u = (2.0 * t - 1.0) / (2.0 + t);
    } else if (t < 1.1875) {
        id = 2;
        u = (t - 1.0) / (t + 1.0);
    } else if (t < 2.4375) {
        id = 3;
        u = (t - 1.5) / (1.0 + 1.5 * t);
    } else {
        id = 4;
        u = -1.0 / t;
    }
    double z = u * u;
    double w = z * z;
    /* Odd and even halves, to shorten the dependency chain. */
    double s1 = z * (aT[0] + w * (aT[2] + w * (aT[4] + w * (aT[6] + w * (aT[8] + w * aT[10])))));
    double s2 = w * (aT[1] + w * (aT[3] + w * (aT[5] + w * (aT[7] + w * aT[9]))));
    double p = u * (s1 + s2) - corr;       /* atan(t + dt) = atan(c) + u - p */
    if (flip)
        return PIM_HI[id] + ((p + PIM_LO[id]) - u);
    if (id == 0)
        return u - p;
    return ATAN_HI[id] - ((p - ATAN_LO[id]) - u);
}

/*
 * gs_atan2(y, x): angle of the point (x, y), full quadrant.
 *
 * Result range: [-pi_d, pi_d] where pi_d = 0x1.921fb54442d18p+1 is the
 *   double nearest pi (pi_d < pi, so this lies inside the open (-pi, pi)).
 *   Signed zeros follow C99 Annex F (and glibc): atan2(+-0, +0 or x>0) =
 *   +-0, atan2(+-0, -0 or x<0) = +-pi_d, atan2(y!=0, +-0) = +-pi/2,
 *   atan2(+-y, +inf) = +-0, atan2(+-y, -inf) = +-pi_d,
 *   atan2(+-inf, +inf) = +-pi/4, atan2(+-inf, -inf) = +-3pi/4,
 *   atan2(+-inf, finite) = +-pi/2; any NaN -> canonical NaN.
 *
 * Method: result = +-atan(|y/x|) for x > 0, +-(pi - atan(|y/x|)) for x < 0.
 *   The rounding error of q = y/x would by itself cost up to 1 ulp of the
 *   result, so it is recovered: q*x is formed exactly (Dekker product on
 *   Veltkamp halves, no FMA needed), dq = (y - q*x)/x, and dq is passed to
 *   the kernel as a first-order correction.  To keep that exact product
 *   away from overflow and underflow, x and y are first scaled by the same
 *   power of two when |x| is outside [2^-600, 2^600] (exact: on that path
 *   the exponent fields differ by at most 60, so both scaled values stay
 *   normal and far from overflow).  When the exponents differ by
 *   more than 60 the limit values are used instead (pi/2, or the plain
 *   quotient, which then equals atan(|y/x|) to double precision).
 *
 * Accuracy (5.1e6 points + 121 special pairs): max 1 ulp vs glibc atan2
 *   in every range, real error <= 0.84 ulp.  Ranges: (y, x) uniform in
 *   [-1,1]^2 (1e6 pts, real 0.84); log-uniform over all finite doubles,
 *   all signs (1e6, 0.67); |y/x| in 2^[-70, 70] (1e6, 0.77); |y/x| near 1
 *   (1e6, 0.80); x < 0 with tiny y, result near +-pi (0.5e6, 0.57);
 *   subnormal y and/or x (0.5e6, 0.74); on the axes/infinities (0.1e6,
 *   exact).  Without the quotient correction the real error was 1.48 ulp.
 */
static double gs_atan2(double y, double x)
{
    static const double
        PI_RN = 0x1.921fb54442d18p+1,
        PIO2 = 0x1.921fb54442d18p+0,
        PIO2_LO = 0x1.1a62633145c07p-54,
        PIO4 = 0x1.921fb54442d18p-1,
        PI3O4 = 0x1.2d97c7f3321d2p+1;      /* 3pi/4 rounded */
    uint64_t ux = gs_bits(x), uy = gs_bits(y);
    uint64_t ax = ux & GS_ABS_MASK, ay = uy & GS_ABS_MASK;
    int xneg = (int)(ux >> 63), yneg = (int)(uy >> 63);
    double z;

    if (ax > GS_INF_BITS || ay > GS_INF_BITS)
        return gs_nan();
    if (ay == 0)                           /* y = +-0 */
        return xneg ? (yneg ? -PI_RN : PI_RN) : y;
    if (ax == 0 || ay == GS_INF_BITS) {    /* x = +-0 or y = +-inf */
        if (ax == GS_INF_BITS)             /* both infinite */
            z = xneg ? PI3O4 : PIO4;
        else
            z = PIO2;
        return yneg ? -z : z;
    }
    if (ax == GS_INF_BITS) {               /* y finite, x = +-inf */
        z = xneg ? PI_RN : 0.0;
        return yneg ? -z : z;
    }

    /* Both finite and non-zero.  Difference of the biased exponent fields
     * (subnormals count as field 0; the thresholds have ample margin). */
    int32_t k = (int32_t)(ay >> 52) - (int32_t)(ax >> 52);
    if (k > 60) {                          /* |y/x| > 2^60: +-pi/2 */
        z = PIO2 + PIO2_LO;
        return yneg ? -z : z;
    }
    double t, dt = 0.0;
    if (k < -60) {                         /* |y/x| < 2^-59: no correction needed */
        t = gs_from_bits(gs_bits(y / x) & GS_ABS_MASK);
    } else {
        if (ax > UINT64_C(0x6570000000000000)) {           /* |x| > 2^600 */
            x *= 0x1p-600;
            y *= 0x1p-600;
        } else if (ax < UINT64_C(0x1a70000000000000)) {    /* |x| < 2^-600 */
            x *= 0x1p600;
            y *= 0x1p600;
        }
        double q = y / x;
        double qh, ql, xh, xl;
        gs_split(q, &qh, &ql);
        gs_split(x, &xh, &xl);
        double ph = q * x;                 /* q*x == ph + pl exactly */
        double pl = ((qh * xh - ph) + qh * xl + ql * xh) + ql * xl;
        double dq = ((y - ph) - pl) / x;   /* y - ph is exact (Sterbenz) */
        t = gs_from_bits(gs_bits(q) & GS_ABS_MASK);
        dt = (q < 0.0) ? -dq : dq;
    }
    z = gs_atan_k(t, dt, xneg);
    return yneg ? -z : z;
}

/* ---- PCG32 -------------------------------------------------------------------------------------
 * PCG-XSH-RR with 64-bit state and 32-bit output (M. E. O'Neill, "PCG: A Family of Simple Fast
 * Space-Efficient Statistically Good Algorithms for Random Number Generation", 2014; the functions
 * pcg32_srandom_r / pcg32_random_r / pcg32_boundedrand_r of pcg-c-basic). Seeding is exactly
 * pcg32_srandom_r(initstate, initseq): the test suite checks the reference demo's output for
 * (42, 54). gridssl seeds one stream per purpose: rng_seed(seed, STREAM_...).
 */

static uint32_t rng_u32(Rng *rng) {
    uint64_t old = rng->state;
    rng->state = old * 6364136223846793005ULL + rng->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
    uint32_t rot = (uint32_t)(old >> 59);
    return (xorshifted >> rot) | (xorshifted << ((32u - rot) & 31u));
}

static Rng rng_seed(uint64_t initstate, uint64_t initseq) {
    Rng rng = {0u, (initseq << 1) | 1u};
    rng_u32(&rng);
    rng.state += initstate;
    rng_u32(&rng);
    return rng;
}

/* Uniform integer in [0, bound) without modulo bias: reject the few values below 2^32 mod bound. */
static uint32_t rng_below(Rng *rng, uint32_t bound) {
    uint32_t threshold = (0u - bound) % bound;
    for (;;) {
        uint32_t r = rng_u32(rng);
        if (r >= threshold) return r % bound;
    }
}

/* Uniform double in [0, 1) with 53 random bits (27 + 26, as genrand_res53 of MT19937). */
static double rng_uniform(Rng *rng) {
    uint32_t a = rng_u32(rng) >> 5, b = rng_u32(rng) >> 6;
    return ((double)a * 67108864.0 + (double)b) * (1.0 / 9007199254740992.0);
}

/* Standard normal by Box-Muller (one of the pair; the other is discarded so the draw has no hidden
 * state). u1 in (0, 1] keeps the log finite. */
static double rng_normal(Rng *rng) {
    double u1 = 1.0 - rng_uniform(rng), u2 = rng_uniform(rng);
    return sqrt(-2.0 * gs_log(u1)) * gs_cos(6.283185307179586 * u2);
}

/* Fisher-Yates shuffle of a[0..n-1], from the last index down (as pcg32-demo deals its cards). */
static void rng_shuffle(Rng *rng, int32_t *a, int n) {
    for (int i = n; i > 1; i--) {
        uint32_t chosen = rng_below(rng, (uint32_t)i);
        int32_t t = a[chosen];
        a[chosen] = a[i - 1];
        a[i - 1] = t;
    }
}

/* ==============================================================================================
 * APPENDIX B. CHECKSUMS
 * ============================================================================================== */

/* ---- CRC-32 (IEEE 802.3 polynomial, reflected, as zlib's crc32) ---------------------------------
 * Bitwise rather than table-driven: it runs once per checkpoint, and eight lines are easier to
 * check than a 256-entry table. crc32("123456789") = 0xCBF43926 (tested). */
static uint32_t crc32_update(uint32_t crc, const uint8_t *data, size_t len) {
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* ---- SHA-256 (FIPS 180-4) ----------------------------------------------------------------------
 * gridssl prints the SHA-256 of every artefact it writes, so that two machines can compare runs by
 * eye. Tested against the FIPS examples and against sha256sum. */
typedef struct { uint32_t h[8]; } Sha256;

static const uint32_t SHA256_K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t rotr32(uint32_t x, int r) { return (x >> r) | (x << (32 - r)); }

static void sha256_block(Sha256 *s, const uint8_t *p) {
    uint32_t w[64], v[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr32(w[i - 15], 7) ^ rotr32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr32(w[i - 2], 17) ^ rotr32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(v, s->h, sizeof v);
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = rotr32(v[4], 6) ^ rotr32(v[4], 11) ^ rotr32(v[4], 25);
        uint32_t ch = (v[4] & v[5]) ^ (~v[4] & v[6]);
        uint32_t t1 = v[7] + S1 + ch + SHA256_K[i] + w[i];
        uint32_t S0 = rotr32(v[0], 2) ^ rotr32(v[0], 13) ^ rotr32(v[0], 22);
        uint32_t maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
        memmove(v + 1, v, 7 * sizeof v[0]);
        v[4] += t1;
        v[0] = t1 + S0 + maj;
    }
    for (int i = 0; i < 8; i++) s->h[i] += v[i];
}

/* hex must hold 65 chars. */
static void sha256_hex(const uint8_t *data, size_t len, char *hex) {
    Sha256 s = {{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}};
    size_t i = 0;
    for (; i + 64 <= len; i += 64) sha256_block(&s, data + i);
    uint8_t tail[128] = {0};
    size_t rest = len - i, tail_len = rest < 56 ? 64 : 128;
    memcpy(tail, data + i, rest);
    tail[rest] = 0x80;
    uint64_t bits = (uint64_t)len * 8u;
    for (int k = 0; k < 8; k++) tail[tail_len - 1 - k] = (uint8_t)(bits >> (8 * k));
    for (size_t k = 0; k < tail_len; k += 64) sha256_block(&s, tail + k);
    for (int k = 0; k < 8; k++) sprintf(hex + 8 * k, "%08x", (unsigned)s.h[k]);
}

/* ==============================================================================================
 * APPENDIX C. THREADS AND THE FAST KERNELS
 * The fast twins compute the sums of the plain loops in sections 3 and 4 in the same order, bit for
 * bit (tests/unit.c compares them on odd sizes and 1, 2, 3 threads); they only block, transpose and
 * vectorise.
 * ============================================================================================== */

/* ---- threads -------------------------------------------------------------------------------------
 * parallel_for(threads, n_tasks, fn, ctx) runs fn(ctx, task) for task = 0..n_tasks-1 on up to
 * `threads` threads; thread w takes tasks w, w + threads, w + 2 threads, ... (interleaved, so
 * triangular work such as the pair loops stays balanced). Every task writes only its own outputs and
 * computes them in the fixed order stated beside the kernel, so no result depends on which thread
 * ran which task, or on how many threads there are: the tests compare 1, 2 and 3 threads byte for
 * byte. If a thread cannot be created its tasks run on the calling thread. */
typedef struct { TaskFn fn; void *ctx; int n_tasks, stride, first; } Worker;

static void *worker_main(void *arg) {
    const Worker *w = arg;
    for (int task = w->first; task < w->n_tasks; task += w->stride) w->fn(w->ctx, task);
    return NULL;
}

static void parallel_for(int threads, int n_tasks, TaskFn fn, void *ctx) {
    if (n_tasks <= 0) return;
    threads = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
    threads = threads > n_tasks ? n_tasks : threads;
    pthread_t ids[MAX_THREADS];
    Worker workers[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int w = 0; w < threads; w++) {
        workers[w] = (Worker){fn, ctx, n_tasks, threads, w};
        if (w > 0) started[w] = pthread_create(&ids[w], NULL, worker_main, &workers[w]) == 0;
    }
    worker_main(&workers[0]);
    for (int w = 1; w < threads; w++) {
        if (started[w]) pthread_join(ids[w], NULL);
        else worker_main(&workers[w]);
    }
}

/* The micro-kernels below hold their accumulators in registers only when compiled on their own: inlined
 * into a larger loop, compilers spill them to the stack (measured with gcc 12: the pair backward took
 * 15 % longer with its micro-kernel inlined). */
#if defined(__GNUC__) || defined(__clang__)
#define KERNEL static __attribute__((noinline))
#else
#define KERNEL static
#endif

/* ---- fast versions of the two linear kernels: the same sums in the same order, bit for bit ------
 * (tests/unit.c compares them with the plain loops above on odd sizes and 1, 2, 3 threads).
 * linear_forward_fast runs four input rows against each weight row at once (four independent dot8
 * accumulators share every load of W[o], so W streams through the cache once, not once per row)
 * and splits the outputs over threads in blocks of LINEAR_BLOCK. */
#define LINEAR_BLOCK 64

/* result[r] = dot8(w, x + r * stride, n) for r < R (R <= 4), with exactly dot8's order. */
static inline void dot8_rows(real *result, const real *w, const real *x, size_t stride, int R, int n) {
    real lane[4][8];
    memset(lane, 0, sizeof lane);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int r = 0; r < R; r++)
            for (int l = 0; l < 8; l++) lane[r][l] += w[i + l] * x[r * stride + i + l];
    for (int l = 0; i < n; i++, l++)
        for (int r = 0; r < R; r++) lane[r][l] += w[i] * x[r * stride + i];
    for (int r = 0; r < R; r++)
        result[r] = fold8_real(lane[r]);
}

/* res[q][r] = dot8(w + q * w_stride, x + r * x_stride, n) for q < 2, r < 4, with exactly dot8's order:
 * eight sums of eight lanes side by side, so each w loaded serves four rows and each x two outputs. */
KERNEL void dot8_2x4(real res[2][4], const real *w, size_t w_stride, const real *x, size_t x_stride, int n) {
    real a00[8] = {0}, a01[8] = {0}, a02[8] = {0}, a03[8] = {0}, a10[8] = {0}, a11[8] = {0}, a12[8] = {0}, a13[8] = {0};
    const real *w0 = w, *w1 = w + w_stride, *x0 = x, *x1 = x + x_stride, *x2 = x + 2 * x_stride, *x3 = x + 3 * x_stride;
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) {
            a00[l] += w0[i + l] * x0[i + l], a01[l] += w0[i + l] * x1[i + l];
            a02[l] += w0[i + l] * x2[i + l], a03[l] += w0[i + l] * x3[i + l];
            a10[l] += w1[i + l] * x0[i + l], a11[l] += w1[i + l] * x1[i + l];
            a12[l] += w1[i + l] * x2[i + l], a13[l] += w1[i + l] * x3[i + l];
        }
    for (int l = 0; i < n; i++, l++) {
        a00[l] += w0[i] * x0[i], a01[l] += w0[i] * x1[i], a02[l] += w0[i] * x2[i], a03[l] += w0[i] * x3[i];
        a10[l] += w1[i] * x0[i], a11[l] += w1[i] * x1[i], a12[l] += w1[i] * x2[i], a13[l] += w1[i] * x3[i];
    }
    res[0][0] = fold8_real(a00), res[0][1] = fold8_real(a01), res[0][2] = fold8_real(a02), res[0][3] = fold8_real(a03);
    res[1][0] = fold8_real(a10), res[1][1] = fold8_real(a11), res[1][2] = fold8_real(a12), res[1][3] = fold8_real(a13);
}

/* result[q] = dot8(w + q * stride, x, n) for q < 4: four weight rows against one input, so that a
 * single input row (evaluation walks) still runs four independent accumulators. */
static inline void dot8_weights4(real *result, const real *w, size_t stride, const real *x, int n) {
    real lane[4][8];
    memset(lane, 0, sizeof lane);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int q = 0; q < 4; q++)
            for (int l = 0; l < 8; l++) lane[q][l] += w[q * stride + i + l] * x[i + l];
    for (int l = 0; i < n; i++, l++)
        for (int q = 0; q < 4; q++) lane[q][l] += w[q * stride + i] * x[i];
    for (int q = 0; q < 4; q++)
        result[q] = fold8_real(lane[q]);
}

typedef struct {
    real *out, *d_in, *d_W, *d_b;
    const real *in, *W, *b, *d_out;
    int rows, in_dim, out_dim;
    const double *d_out64;
} LinearCtx;

static void linear_forward_task(void *ctx, int task) {
    const LinearCtx *c = ctx;
    int o_end = (task + 1) * LINEAR_BLOCK < c->out_dim ? (task + 1) * LINEAR_BLOCK : c->out_dim;
    real res[4];
    int o = task * LINEAR_BLOCK;
    if (c->rows < 4) /* few rows: four outputs at a time instead */
        for (; o + 4 <= o_end; o += 4)
            for (int r = 0; r < c->rows; r++) {
                dot8_weights4(res, c->W + (size_t)o * c->in_dim, (size_t)c->in_dim, c->in + (size_t)r * c->in_dim, c->in_dim);
                for (int q = 0; q < 4; q++) c->out[(size_t)r * c->out_dim + o + q] = res[q] + c->b[o + q];
            }
    for (; o + 2 <= o_end && c->rows >= 4; o += 2) { /* two outputs by four rows */
        real res2[2][4];
        int r = 0;
        for (; r + 4 <= c->rows; r += 4) {
            dot8_2x4(res2, c->W + (size_t)o * c->in_dim, (size_t)c->in_dim, c->in + (size_t)r * c->in_dim, (size_t)c->in_dim, c->in_dim);
            for (int q = 0; q < 2; q++)
                for (int k = 0; k < 4; k++) c->out[(size_t)(r + k) * c->out_dim + o + q] = res2[q][k] + c->b[o + q];
        }
        for (; r < c->rows; r++)
            for (int q = 0; q < 2; q++) {
                dot8_rows(res, c->W + (size_t)(o + q) * c->in_dim, c->in + (size_t)r * c->in_dim, 0, 1, c->in_dim);
                c->out[(size_t)r * c->out_dim + o + q] = res[0] + c->b[o + q];
            }
    }
    for (; o < o_end; o++) {
        const real *W_o = c->W + (size_t)o * c->in_dim;
        int r = 0;
        for (; r + 4 <= c->rows; r += 4) {
            dot8_rows(res, W_o, c->in + (size_t)r * c->in_dim, (size_t)c->in_dim, 4, c->in_dim);
            for (int q = 0; q < 4; q++) c->out[(size_t)(r + q) * c->out_dim + o] = res[q] + c->b[o];
        }
        for (; r < c->rows; r++) {
            dot8_rows(res, W_o, c->in + (size_t)r * c->in_dim, 0, 1, c->in_dim);
            c->out[(size_t)r * c->out_dim + o] = res[0] + c->b[o];
        }
    }
}

static void linear_forward_fast(real *out, const real *in, const real *W, const real *b, int rows, int in_dim, int out_dim,
                                int threads) {
    LinearCtx c = {out, NULL, NULL, NULL, in, W, b, NULL, rows, in_dim, out_dim, NULL};
    parallel_for(threads, (out_dim + LINEAR_BLOCK - 1) / LINEAR_BLOCK, linear_forward_task, &c);
}

/* y[i] += d[r * d_stride] x[r * x_stride + i] for i < 64, in sequence over r = 0..rows-1: one row of d_W
 * held in registers while every input row adds to it (instead of a load and a store per row). */
KERNEL void axpy_rows64(real *y, const real *d, size_t d_stride, const real *x, size_t x_stride, int rows) {
    real acc[64];
    memcpy(acc, y, sizeof acc);
    for (int r = 0; r < rows; r++) {
        real d_r = d[(size_t)r * d_stride];
        const real *x_r = x + (size_t)r * x_stride;
        for (int i = 0; i < 64; i++) acc[i] += d_r * x_r[i];
    }
    memcpy(y, acc, sizeof acc);
}

/* out[r][i] = sum_o d[r * d_stride + o] w[o * w_stride + i] for r < 4, i < 16: in double, in sequence over
 * o, as linear_backward's d_in; four rows at once, so each w converted serves all four (d comes
 * converted: d_out in double). */
KERNEL void din_4x16(double out[4][16], const double *d, size_t d_stride, const real *w, size_t w_stride, int count) {
    double a0[16] = {0}, a1[16] = {0}, a2[16] = {0}, a3[16] = {0};
    for (int o = 0; o < count; o++) {
        const real *w_o = w + (size_t)o * w_stride;
        double d0 = d[o], d1 = d[d_stride + o], d2 = d[2 * d_stride + o], d3 = d[3 * d_stride + o];
        for (int i = 0; i < 16; i++) {
            double w_i = w_o[i];
            a0[i] += d0 * w_i, a1[i] += d1 * w_i, a2[i] += d2 * w_i, a3[i] += d3 * w_i;
        }
    }
    memcpy(out[0], a0, sizeof a0), memcpy(out[1], a1, sizeof a1), memcpy(out[2], a2, sizeof a2), memcpy(out[3], a3, sizeof a3);
}

/* Tasks 0..n_out-1: d_W and d_b for a block of outputs (each element sequential over rows, as in
 * linear_backward; axpy_rows64). Tasks n_out..: d_in for a block of 32 inputs, each element over all
 * outputs in order (din_4x16, four rows by sixteen inputs at a time). */
static void linear_backward_task(void *ctx, int task) {
    const LinearCtx *c = ctx;
    int n_out = (c->out_dim + LINEAR_BLOCK - 1) / LINEAR_BLOCK;
    if (task < n_out) {
        int o_end = (task + 1) * LINEAR_BLOCK < c->out_dim ? (task + 1) * LINEAR_BLOCK : c->out_dim;
        for (int o = task * LINEAR_BLOCK; o < o_end; o++) {
            real *d_W_o = c->d_W + (size_t)o * c->in_dim;
            const real *d_o = c->d_out + o;
            int i = 0;
            for (; i + 64 <= c->in_dim; i += 64) axpy_rows64(d_W_o + i, d_o, (size_t)c->out_dim, c->in + i, (size_t)c->in_dim, c->rows);
            for (int r = 0; r < c->rows; r++)
                for (int k = i; k < c->in_dim; k++) d_W_o[k] += d_o[(size_t)r * c->out_dim] * c->in[(size_t)r * c->in_dim + k];
            for (int r = 0; r < c->rows; r++) c->d_b[o] += d_o[(size_t)r * c->out_dim];
        }
        return;
    }
    int i0 = (task - n_out) * 32, i1 = i0 + 32 < c->in_dim ? i0 + 32 : c->in_dim;
    double part[4][16];
    for (int i = i0; i < i1; i += 16) {
        int width = i + 16 <= i1 ? 16 : i1 - i, r = 0;
        if (width == 16)
            for (; r + 4 <= c->rows; r += 4) {
                din_4x16(part, c->d_out64 + (size_t)r * c->out_dim, (size_t)c->out_dim, c->W + i, (size_t)c->in_dim, c->out_dim);
                for (int q = 0; q < 4; q++)
                    for (int k = 0; k < 16; k++) c->d_in[(size_t)(r + q) * c->in_dim + i + k] += (real)part[q][k];
            }
        for (; r < c->rows; r++) /* rows and columns left over */
            for (int k = i; k < i + width; k++) {
                double a = 0;
                for (int o = 0; o < c->out_dim; o++) a += (double)c->d_out[(size_t)r * c->out_dim + o] * c->W[(size_t)o * c->in_dim + k];
                c->d_in[(size_t)r * c->in_dim + k] += (real)a;
            }
    }
}

static void linear_backward_fast(real *d_in, real *d_W, real *d_b, const real *d_out, const real *in, const real *W,
                                 int rows, int in_dim, int out_dim, int threads) {
    double *d_out64 = NULL; /* d_out in double once, not once per sixteen inputs (exact: same sums) */
    if (d_in) {
        d_out64 = xcalloc((size_t)rows * out_dim, sizeof(double));
        for (size_t e = 0; e < (size_t)rows * out_dim; e++) d_out64[e] = d_out[e];
    }
    LinearCtx c = {NULL, d_in, d_W, d_b, in, W, NULL, d_out, rows, in_dim, out_dim, d_out64};
    int tasks = (out_dim + LINEAR_BLOCK - 1) / LINEAR_BLOCK + (d_in ? (in_dim + 31) / 32 : 0);
    parallel_for(threads, tasks, linear_backward_task, &c);
    free(d_out64);
}

/* ---- fast pair kernels: the same sums in the same order as the two functions above, bit for bit --
 * What makes them fast without touching a single rounding: (1) the states are also kept transposed,
 * gT (N, Mp) with zero padding after column M-1, so that four rows' distances to PAIR_CHUNK columns are
 * computed side by side, each still summed over k in order (vectorised across pairs, not within one);
 * (2) exp and the masks are branch-free over a chunk, and the eight lanes of a sum take eight
 * consecutive pairs at a time, so they vectorise too; (3) row blocks are independent tasks for
 * parallel_for, and the forward pass stores each row's folded lane sums so that the rows are added in
 * order 0..M-1 afterwards, whatever thread computed them; (4) the forward pass keeps each pair's slope
 * Q_ij, formed from the distance and the exponential it computes anyway, in the M x M matrix pq, so
 * the backward recomputes neither: it multiplies Q by g like a matrix product (memory: M^2 reals,
 * 243 MB at paper.cfg's M = 7800). */
/* D[r][l] = |g_{i+r} - g_{j0+l}|^2 for r < 4, l < PAIR_CHUNK: sq_dist's operations, side by side. Rows
 * past the last (rows < 4) repeat it and are not used. */
KERNEL void sq_dist_4rows(real D[4][PAIR_CHUNK], const real *g_i, int rows, const real *gT, int Mp, int j0, int N) {
    real a0[PAIR_CHUNK] = {0}, a1[PAIR_CHUNK] = {0}, a2[PAIR_CHUNK] = {0}, a3[PAIR_CHUNK] = {0};
    const real *x0 = g_i, *x1 = g_i + (size_t)(rows > 1) * N, *x2 = g_i + (size_t)(rows > 2 ? 2 : rows - 1) * N,
               *x3 = g_i + (size_t)(rows > 3 ? 3 : rows - 1) * N;
    for (int k = 0; k < N; k++) {
        const real *col = gT + (size_t)k * Mp + j0;
        for (int l = 0; l < PAIR_CHUNK; l++) {
            real d0 = x0[k] - col[l], d1 = x1[k] - col[l], d2 = x2[k] - col[l], d3 = x3[k] - col[l];
            a0[l] += d0 * d0, a1[l] += d1 * d1, a2[l] += d2 * d2, a3[l] += d3 * d3;
        }
    }
    memcpy(D[0], a0, sizeof a0), memcpy(D[1], a1, sizeof a1), memcpy(D[2], a2, sizeof a2), memcpy(D[3], a3, sizeof a3);
}

/* Rows are processed PAIR_ROWS at a time against each chunk of columns, so the chunk's columns of gT
 * and rows of g are loaded once for all of them (without this the pair loops stream all of g from
 * memory for every row). Each row still runs over its own pairs in ascending j. */
#define PAIR_ROWS 16

static void pair_forward_task(void *ctx, int block) {
    const PairCtx *c = ctx;
    int M = c->M, i0 = block * PAIR_ROWS, i1 = i0 + PAIR_ROWS < M ? i0 + PAIR_ROWS : M;
    double sep[PAIR_ROWS][8], inv[PAIR_ROWS][8], ker[PAIR_ROWS][8], dist[PAIR_ROWS][8];
    double D[PAIR_CHUNK], dx2[PAIR_CHUNK], t_sep[PAIR_CHUNK], t_inv[PAIR_CHUNK], t_ker[PAIR_CHUNK];
    double e[PAIR_CHUNK], q[PAIR_CHUNK];
    real D4[4][PAIR_CHUNK];
    int far[PAIR_CHUNK], sep_pair[PAIR_CHUNK], valid[PAIR_CHUNK];
    memset(sep, 0, sizeof sep), memset(inv, 0, sizeof inv), memset(ker, 0, sizeof ker), memset(dist, 0, sizeof dist);
    for (int j0 = (i0 + 1) / 8 * 8; j0 < M; j0 += PAIR_CHUNK)
        for (int i4 = i0; i4 < i1; i4 += 4) {
            int rows = i4 + 4 <= i1 ? 4 : i1 - i4;
            if (j0 + PAIR_CHUNK <= i4 + 1) continue; /* no j > i in this chunk for any of the rows */
            sq_dist_4rows(D4, c->g + (size_t)i4 * c->N, rows, c->gT, c->Mp, j0, c->N);
            for (int i = i4; i < i4 + rows; i++) {
                int r = i - i0;
                double xi = c->px[i], yi = c->py[i];
                real *Q_row = c->pq + (size_t)i * M; /* kept for the backward: Q_ij, j > i */
                /* each pair's part of each sum; adding +0.0 for the pairs not in a sum changes none of
                 * them: they start at +0 and never go below it. And its slope Q_ij, from the same e. */
                for (int l = 0; l < PAIR_CHUNK; l++) {
                    int j = j0 + l;
                    D[l] = D4[i - i4][l];
                    e[l] = gs_exp(-D[l] * c->inv_2sg2);
                    double dx = xi - c->px[j], dy = yi - c->py[j]; /* pair_dx2's operations */
                    dx2[l] = dx * dx + dy * dy;
                    far[l] = dx2[l] > c->sigma_x2;
                    sep_pair[l] = far[l] && in_sep(dx2[l], c->sep_r2);
                    valid[l] = j > i && j < M;
                    t_sep[l] = valid[l] && sep_pair[l] ? e[l] : 0.0;
                    t_inv[l] = valid[l] && !far[l] ? D[l] : 0.0;
                    t_ker[l] = valid[l] ? e[l] : 0.0;
                }
                for (int l = 0; l < PAIR_CHUNK; l++)
                    q[l] = pair_slope(e[l], far[l], sep_pair[l], c->c_sep, c->c_inv, c->c_ker, c->inv_2sg2);
                if (c->dist_r2 > 0)
                    for (int l = 0; l < PAIR_CHUNK; l++)
                        if (far[l] && dx2[l] <= c->dist_r2) q[l] += c->c_dist * dist_slope(D[l], dx2[l], c->dist_scale);
                for (int l = 0; l < PAIR_CHUNK; l++)
                    if (valid[l]) Q_row[j0 + l] = (real)q[l];
                /* lane l takes pairs l, l + 8, l + 16, ...: j & 7 as in the plain loop */
                for (int l0 = 0; l0 < PAIR_CHUNK; l0 += 8)
                    for (int l = 0; l < 8; l++) {
                        sep[r][l] += t_sep[l0 + l];
                        inv[r][l] += t_inv[l0 + l];
                        ker[r][l] += t_ker[l0 + l];
                    }
                if (c->dist_r2 > 0) { /* L_dist on (no pair takes part otherwise, so skipping changes nothing) */
                    double res2[PAIR_CHUNK];
                    for (int l = 0; l < PAIR_CHUNK; l++) {
                        double res = dist_residual(D[l], dx2[l], c->dist_scale);
                        res2[l] = valid[l] && far[l] && dx2[l] <= c->dist_r2 ? res * res : 0.0;
                    }
                    for (int l0 = 0; l0 < PAIR_CHUNK; l0 += 8)
                        for (int l = 0; l < 8; l++) dist[r][l] += res2[l0 + l];
                }
            }
        }
    for (int i = i0; i < i1; i++) {
        double *out = c->row_sums + 4 * (size_t)i;
        out[0] = fold8(sep[i - i0]), out[1] = fold8(inv[i - i0]), out[2] = fold8(ker[i - i0]), out[3] = fold8(dist[i - i0]);
    }
}

/* The backward: A = Q G and s = Q 1, a block of PAIR_BLOCK rows a task, over blocks of PAIR_BLOCK j's.
 * Q_ij is stored for i < j only. Blocks above the diagonal read it in place, row i's slopes along a
 * row; blocks below it read Q_ij = Q_ji down a column, four rows' slopes side by side (no copy); the
 * block on the diagonal is copied into a tile, mirrored, with Q_ii = 0. Within a block each A_ik is
 * one sequence of real additions over j, as in the plain loop; four rows by sixteen columns are held
 * at once (64 accumulators, eight 256-bit registers), so each g_j loaded serves four rows and each
 * Q_ij sixteen columns. Rows and columns left over take the general loop. Row r's slope for pair j
 * of a block is at q[r row_step + j col_step]: (M, 1) in place, (1, M) below the diagonal. */
KERNEL void q_times_g_4x16(real out[4][16], const real *q, size_t row_step, size_t col_step, const real *g, int N,
                           int count) {
    real a0[16] = {0}, a1[16] = {0}, a2[16] = {0}, a3[16] = {0}; /* one array per row: compilers keep them in registers */
    for (int j = 0; j < count; j++) {
        const real *g_j = g + (size_t)j * N, *q_j = q + (size_t)j * col_step;
        real q0 = q_j[0], q1 = q_j[row_step], q2 = q_j[2 * row_step], q3 = q_j[3 * row_step];
        for (int k = 0; k < 16; k++) {
            a0[k] += q0 * g_j[k];
            a1[k] += q1 * g_j[k];
            a2[k] += q2 * g_j[k];
            a3[k] += q3 * g_j[k];
        }
    }
    memcpy(out[0], a0, sizeof a0), memcpy(out[1], a1, sizeof a1), memcpy(out[2], a2, sizeof a2), memcpy(out[3], a3, sizeof a3);
}

/* The same for any rows and columns. */
static void q_times_g(real out[4][16], const real *q, size_t row_step, size_t col_step, const real *g, int N, int count,
                      int rows, int cols) {
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < cols; k++) out[r][k] = 0;
    for (int j = 0; j < count; j++)
        for (int r = 0; r < rows; r++)
            for (int k = 0; k < cols; k++) out[r][k] += q[r * row_step + j * col_step] * g[(size_t)j * N + k];
}

static void pair_gemm_task(void *ctx, int block) {
    const PairCtx *c = ctx;
    int M = c->M, N = c->N, i0 = block * PAIR_BLOCK, i1 = i0 + PAIR_BLOCK < M ? i0 + PAIR_BLOCK : M, rows_in = i1 - i0;
    double *acc = xcalloc((size_t)PAIR_BLOCK * N, sizeof(double)), s[PAIR_BLOCK] = {0};
    real part[4][16], tile[PAIR_BLOCK][PAIR_BLOCK];
    for (int j0 = 0; j0 < M; j0 += PAIR_BLOCK) {
        int count = j0 + PAIR_BLOCK < M ? PAIR_BLOCK : M - j0;
        /* row r of the block, pair j0 + j: q[r row_step + j col_step] */
        const real *q = c->pq + (size_t)i0 * M + j0;
        size_t row_step = (size_t)M, col_step = 1;
        if (j0 < i0) { /* below the diagonal: down the columns of rows j0.. */
            q = c->pq + (size_t)j0 * M + i0, row_step = 1, col_step = (size_t)M;
        } else if (j0 == i0) { /* on it: above in place, below mirrored, Q_ii = 0 */
            for (int i = i0; i < i1; i++)
                for (int j = j0; j < j0 + count; j++)
                    tile[i - i0][j - j0] = j > i ? c->pq[(size_t)i * M + j] : j < i ? c->pq[(size_t)j * M + i] : 0;
            q = &tile[0][0], row_step = PAIR_BLOCK;
        }
        if (row_step == 1) /* the rows' sums side by side, each in ascending j */
            for (int j = 0; j < count; j++)
                for (int r = 0; r < rows_in; r++) s[r] += q[j * col_step + r];
        else
            for (int j = 0; j < count; j++)
                for (int r = 0; r < rows_in; r++) s[r] += q[r * row_step + j];
        const real *g_block = c->g + (size_t)j0 * N;
        for (int k0 = 0; k0 < N; k0 += 16) /* a column slice of g_block (count x 16) stays in L1 for all rows */
            for (int i = i0; i < i1; i += 4) {
                int rows = i + 4 <= i1 ? 4 : i1 - i, cols = k0 + 16 <= N ? 16 : N - k0;
                const real *q_i = q + (size_t)(i - i0) * row_step;
                if (rows == 4 && cols == 16) q_times_g_4x16(part, q_i, row_step, col_step, g_block + k0, N, count);
                else q_times_g(part, q_i, row_step, col_step, g_block + k0, N, count, rows, cols);
                for (int r = 0; r < rows; r++)
                    for (int k = 0; k < cols; k++) acc[(size_t)(i - i0 + r) * N + k0 + k] += part[r][k];
            }
    }
    for (int i = i0; i < i1; i++) {
        const real *gi = c->g + (size_t)i * N;
        const double *acc_i = acc + (size_t)(i - i0) * N;
        real *d_gi = c->d_g + (size_t)i * N;
        for (int k = 0; k < N; k++) d_gi[k] += (real)(2.0 * (s[i - i0] * gi[k] - acc_i[k]));
    }
    free(acc);
}

/* The far pairs and L_dist's pairs of each row i (j > i), from the positions alone. */
static void pair_count_task(void *ctx, int block) {
    const PairCtx *c = ctx;
    int M = c->M, i1 = (block + 1) * PAIR_ROWS < M ? (block + 1) * PAIR_ROWS : M;
    const double *px = c->px, *py = c->py, sigma_x2 = c->sigma_x2, sep_r2 = c->sep_r2, dist_r2 = c->dist_r2;
    for (int i = block * PAIR_ROWS; i < i1; i++) {
        int far = 0, sep = 0, dist = 0; /* a row has fewer than 2^28 pairs (the size check) */
        for (int j = i + 1; j < M; j++) {
            double dx = px[i] - px[j], dy = py[i] - py[j]; /* pair_dx2's operations */
            double dx2 = dx * dx + dy * dy;
            far += dx2 > sigma_x2;
            sep += (dx2 > sigma_x2) & in_sep(dx2, sep_r2);
            dist += (dx2 > sigma_x2) & (dx2 <= dist_r2);
        }
        c->row_far[i] = far, c->row_sep[i] = sep, c->row_dist[i] = dist;
    }
}

/* Fills ctx's padded transposed copies of g and the positions, and counts the pairs of each kind
 * (which the slopes of mean-reduced terms need before the forward pass); free with pair_ctx_free. */
static PairCtx pair_ctx(const real *g, const real *pos, real *pq, int M, int N, double sigma_x, double sigma_g,
                        double sep_rmax, double dist_scale, double dist_rmax, int threads) {
    PairCtx c;
    memset(&c, 0, sizeof c);
    /* The forward pass starts a row block's chunks at a multiple of 8 (so lane l stays j & 7). The last
     * chunk starts at most at M rounded up to 8, minus 8, and reads PAIR_CHUNK columns from there: Mp
     * covers that, so no read leaves gT, px, py. */
    c.g = g, c.pq = pq, c.M = M, c.N = N, c.Mp = (M + 7) / 8 * 8 + PAIR_CHUNK - 8;
    c.sigma_x2 = sigma_x * sigma_x, c.sep_r2 = sep_rmax * sep_rmax, c.inv_2sg2 = 1.0 / (2.0 * sigma_g * sigma_g);
    c.dist_scale = dist_scale, c.dist_r2 = dist_rmax * dist_rmax;
    real *gT = xcalloc((size_t)N * c.Mp, sizeof(real));
    double *px = xcalloc((size_t)c.Mp, sizeof(double)), *py = xcalloc((size_t)c.Mp, sizeof(double));
    for (int j = 0; j < M; j++) {
        for (int k = 0; k < N; k++) gT[(size_t)k * c.Mp + j] = g[(size_t)j * N + k];
        px[j] = pos[2 * (size_t)j], py[j] = pos[2 * (size_t)j + 1];
    }
    c.gT = gT, c.px = px, c.py = py;
    c.row_far = xcalloc((size_t)M, sizeof(int64_t)), c.row_sep = xcalloc((size_t)M, sizeof(int64_t));
    c.row_dist = xcalloc((size_t)M, sizeof(int64_t));
    parallel_for(threads, (M + PAIR_ROWS - 1) / PAIR_ROWS, pair_count_task, &c);
    for (int i = 0; i < M; i++) {
        c.n_far += c.row_sep[i], c.n_dist += c.row_dist[i];
        c.n_near += (M - 1 - i) - c.row_far[i];
    }
    free(c.row_far), free(c.row_sep), free(c.row_dist);
    c.row_far = c.row_sep = c.row_dist = NULL;
    return c;
}

static void pair_ctx_free(PairCtx *c) {
    free((void *)c->gT), free((void *)c->px), free((void *)c->py);
}

/* The pair sums of ctx's states (built once per batch by pair_ctx, shared with the backward pass),
 * and each pair's slope Q_ij into ctx's matrix, for the weights c_sep .. c_dist the backward will
 * apply (pair_slopes): the slope needs the pair's e = exp(-D / (2 sigma_g^2)), which the sums
 * compute anyway, so each pair's exponential is taken once per step. */
static PairSums pair_losses_forward_fast(PairCtx c, double c_sep, double c_inv, double c_ker, double c_dist, int threads) {
    int M = c.M;
    c.c_sep = c_sep, c.c_inv = c_inv, c.c_ker = c_ker, c.c_dist = c_dist;
    c.row_sums = xcalloc(4 * (size_t)M, sizeof(double));
    parallel_for(threads, (M + PAIR_ROWS - 1) / PAIR_ROWS, pair_forward_task, &c);
    PairSums s = {0, 0, 0, 0, c.n_near, c.n_far, c.n_dist};
    for (int i = 0; i < M; i++) {
        const double *row = c.row_sums + 4 * (size_t)i;
        s.sep_sum += row[0], s.inv_sum += row[1], s.ker_sum += row[2], s.dist_sum += row[3];
    }
    free(c.row_sums);
    return s;
}

/* d_g += dL/dg from the slopes the forward pass left in ctx's matrix. */
static void pair_losses_backward_fast(real *d_g, PairCtx c, int threads) {
    c.d_g = d_g;
    parallel_for(threads, (c.M + PAIR_BLOCK - 1) / PAIR_BLOCK, pair_gemm_task, &c);
}

/* ==============================================================================================
 * APPENDIX D. IMAGES
 * ============================================================================================== */

/* ---- images ------------------------------------------------------------------------------------ */

/* A viridis-like colour map: 9 stops of matplotlib's viridis, linear in between. t in [0, 1]. */
static void colormap(uint8_t *rgb, double t) {
    static const uint8_t stops[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},  {44, 113, 142}, {33, 144, 141},
                                        {39, 173, 129}, {92, 200, 99},  {170, 220, 50}, {253, 231, 37}};
    t = t > 0 ? (t < 1 ? t : 1) : 0; /* and NaN -> 0: the index below must stay in the table */
    int i = (int)(t * 8);
    i = i > 7 ? 7 : i;
    double f = t * 8 - i;
    for (int c = 0; c < 3; c++) rgb[c] = (uint8_t)(stops[i][c] + f * (stops[i + 1][c] - stops[i][c]) + 0.5);
}

/* One n x n map (row 0 = south) as pixels with north up, min-max scaled over its finite values:
 * grey (1 byte each: 1..255, a flat map 128) or colour (3 bytes each); NaN is black. */
static void map_pixels(uint8_t *out, const double *v, int n, int colour) {
    double lo = HUGE_VAL, hi = -HUGE_VAL;
    for (int b = 0; b < n * n; b++)
        if (v[b] == v[b]) lo = v[b] < lo ? v[b] : lo, hi = v[b] > hi ? v[b] : hi;
    for (int iy = 0; iy < n; iy++)
        for (int ix = 0; ix < n; ix++) {
            double value = v[iy * n + ix], s = hi > lo ? (value - lo) / (hi - lo) : 0.5;
            size_t p = (size_t)(n - 1 - iy) * n + ix;
            if (!colour) out[p] = value == value ? (uint8_t)(1 + (int)(254.0 * s + 0.5)) : 0;
            else if (value == value) colormap(out + 3 * p, s);
            else out[3 * p] = out[3 * p + 1] = out[3 * p + 2] = 0;
        }
}

/* The tiles listed in order (count of them, each n x n, drawn scale x scale pixels per value) in a
 * grid of ceil(sqrt(count)) columns with 2-pixel gaps: grey (grey background) or colour (white).
 * labels (colour only; NULL for none): MONTAGE_LABEL bytes of text per tile, indexed like the tiles,
 * written under each tile in the pixel font. */
static void draw_text(Image *im, int x, int y, const char *text, int scale, const uint8_t *rgb);

static Image tile_montage(const double *tiles, int n, const int *order, int count, int colour, int scale, const char *labels) {
    int cols = 1, gap = 2, depth = colour ? 3 : 1, side = n * scale, strip = labels ? 14 : 0;
    while (cols * cols < count) cols++;
    int rows = (count + cols - 1) / cols;
    Image im = {cols * (side + gap) + gap, rows * (side + strip + gap) + gap, NULL, NULL};
    size_t bytes = (size_t)depth * im.width * im.height;
    uint8_t *canvas = xcalloc(bytes, 1), *tile = xcalloc((size_t)depth * n * n, 1);
    memset(canvas, colour ? 255 : 96, bytes);
    if (colour) im.rgb = canvas;
    else im.grey = canvas;
    const uint8_t black[3] = {0, 0, 0};
    for (int t = 0; t < count; t++) {
        map_pixels(tile, tiles + (size_t)order[t] * n * n, n, colour);
        int x0 = gap + (t % cols) * (side + gap), y0 = gap + (t / cols) * (side + strip + gap);
        for (int r = 0; r < side; r++)
            for (int c = 0; c < side; c++)
                memcpy(canvas + (size_t)depth * ((size_t)(y0 + r) * im.width + x0 + c), tile + (size_t)depth * ((r / scale) * n + c / scale), (size_t)depth);
        if (labels && colour) draw_text(&im, x0 + 1, y0 + side + 2, labels + (size_t)order[t] * MONTAGE_LABEL, 2, black);
    }
    free(tile);
    return im;
}

static void image_free(Image *im) {
    free(im->grey), free(im->rgb);
    memset(im, 0, sizeof *im);
}

static void ppm_encode(Buf *b, const Image *im) {
    buf_printf(b, "P6\n%d %d\n255\n", im->width, im->height);
    buf_put(b, im->rgb, (size_t)3 * im->width * im->height);
}

static void buf_u32_be(Buf *b, uint32_t x) {
    uint8_t be[4] = {(uint8_t)(x >> 24), (uint8_t)(x >> 16), (uint8_t)(x >> 8), (uint8_t)x};
    buf_put(b, be, 4);
}

/* PNG (RGB, 8 bits): the zlib stream of IDAT uses "stored" deflate blocks (no compression, at most
 * 65535 bytes each), so no compressor is needed; every chunk carries its CRC-32 and the zlib stream
 * its Adler-32, both big-endian as PNG requires. */
static void png_encode(Buf *b, const Image *im) {
    size_t row = 1 + (size_t)3 * im->width, raw_len = row * im->height;
    uint8_t *raw = xcalloc(raw_len, 1);
    for (int y = 0; y < im->height; y++) memcpy(raw + y * row + 1, im->rgb + (size_t)3 * y * im->width, row - 1);
    uint32_t a = 1, s = 0; /* Adler-32 of the uncompressed data */
    for (size_t i = 0; i < raw_len; i++) a = (a + raw[i]) % 65521u, s = (s + a) % 65521u;
    buf_put(b, "\x89PNG\r\n\x1a\n", 8);
    Buf chunk = {0};
    /* IHDR */
    buf_put(&chunk, "IHDR", 4);
    buf_u32_be(&chunk, (uint32_t)im->width);
    buf_u32_be(&chunk, (uint32_t)im->height);
    buf_put(&chunk, "\x08\x02\x00\x00\x00", 5); /* 8 bits, RGB, deflate, no filter method, no interlace */
    buf_u32_be(b, (uint32_t)chunk.len - 4), buf_put(b, chunk.data, chunk.len), buf_u32_be(b, crc32_update(0, chunk.data, chunk.len));
    /* IDAT: zlib header (deflate, 32 K window, no preset dictionary, check bits), stored blocks, Adler-32 */
    chunk.len = 0;
    buf_put(&chunk, "IDAT\x78\x01", 6);
    for (size_t off = 0; off < raw_len || off == 0; off += 65535) {
        size_t len = raw_len - off < 65535 ? raw_len - off : 65535;
        uint8_t head[5] = {(uint8_t)(off + len == raw_len), (uint8_t)len, (uint8_t)(len >> 8), (uint8_t)~len, (uint8_t)(~len >> 8)};
        buf_put(&chunk, head, 5);
        buf_put(&chunk, raw + off, len);
        if (off + len == raw_len) break;
    }
    buf_u32_be(&chunk, s << 16 | a);
    buf_u32_be(b, (uint32_t)chunk.len - 4), buf_put(b, chunk.data, chunk.len), buf_u32_be(b, crc32_update(0, chunk.data, chunk.len));
    buf_u32_be(b, 0), buf_put(b, "IEND", 4), buf_u32_be(b, crc32_update(0, (const uint8_t *)"IEND", 4));
    buf_free(&chunk);
    free(raw);
}

/* A 3 x 5 pixel font for labels: digits, '.', '-' and 'M'. Each glyph is five rows of three bits. */
static void draw_text(Image *im, int x, int y, const char *text, int scale, const uint8_t *rgb) {
    static const char *glyphs = "0123456789.-M";
    static const uint8_t rows[13][5] = {{7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1},
                                        {7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7},
                                        {0, 0, 0, 0, 2}, {0, 0, 7, 0, 0}, {5, 7, 7, 5, 5}};
    for (; *text; text++, x += 4 * scale) {
        const char *g = strchr(glyphs, *text);
        if (!g) continue; /* anything else is a space */
        for (int r = 0; r < 5; r++)
            for (int col = 0; col < 3; col++)
                if (rows[g - glyphs][r] & (4 >> col))
                    for (int dy = 0; dy < scale; dy++)
                        for (int dx = 0; dx < scale; dx++) {
                            int px = x + col * scale + dx, py = y + r * scale + dy;
                            if (px >= 0 && py >= 0 && px < im->width && py < im->height) memcpy(im->rgb + 3 * ((size_t)py * im->width + px), rgb, 3);
                        }
    }
}

static void fill_rect(Image *im, int x0, int y0, int x1, int y1, const uint8_t *rgb) {
    for (int y = y0 < 0 ? 0 : y0; y < y1 && y < im->height; y++)
        for (int x = x0 < 0 ? 0 : x0; x < x1 && x < im->width; x++) memcpy(im->rgb + 3 * ((size_t)y * im->width + x), rgb, 3);
}

/* Histogram of unit periods in 5 cm bins from 0 to max_m: grid-like units (score60 > 0.3) in colour,
 * stacked on the others in grey; x ticks every 0.5 m labelled in metres; the tallest bar's count is
 * written at the top left, beside a mark at its height. */
static Image period_histogram(const UnitScores *u, int N, double max_m) {
    int nb = (int)(max_m / 0.05 + 0.5), bar = 8, left = 16, bottom = 30, top = 24, plot_h = 160;
    Image im = {left + nb * bar + 16, top + plot_h + bottom, NULL, NULL};
    im.rgb = xcalloc((size_t)3 * im.width * im.height, 1);
    memset(im.rgb, 255, (size_t)3 * im.width * im.height);
    int *grid_count = xcalloc((size_t)nb, sizeof(int)), *other = xcalloc((size_t)nb, sizeof(int)), tallest = 1;
    for (int k = 0; k < N; k++) {
        double p = u[k].period_m;
        if (!(p == p) || p < 0 || p >= max_m) continue;
        int b = (int)(p / 0.05);
        if (u[k].score60 > GRID_THRESHOLD) grid_count[b]++;
        else other[b]++;
    }
    for (int b = 0; b < nb; b++) tallest = grid_count[b] + other[b] > tallest ? grid_count[b] + other[b] : tallest;
    const uint8_t black[3] = {0, 0, 0}, grey[3] = {170, 170, 170}, teal[3] = {33, 144, 141};
    int y_axis = top + plot_h;
    for (int b = 0; b < nb; b++) {
        int h_other = other[b] * plot_h / tallest, h_grid = grid_count[b] * plot_h / tallest;
        int x0 = left + b * bar;
        fill_rect(&im, x0 + 1, y_axis - h_other, x0 + bar, y_axis, grey);
        fill_rect(&im, x0 + 1, y_axis - h_other - h_grid, x0 + bar, y_axis - h_other, teal);
    }
    fill_rect(&im, left, y_axis, left + nb * bar, y_axis + 1, black);
    for (int tick = 0; tick * 10 <= nb; tick++) { /* every 0.5 m = 10 bins */
        int x = left + tick * 10 * bar;
        fill_rect(&im, x, y_axis, x + 1, y_axis + 5, black);
        char label[16];
        snprintf(label, sizeof label, tick % 2 ? "%d.5" : "%d", tick / 2);
        draw_text(&im, x - 2, y_axis + 8, label, 2, black);
    }
    char count[16];
    snprintf(count, sizeof count, "%d", tallest);
    draw_text(&im, 2, 4, count, 2, black);
    fill_rect(&im, left, top, left + 4, top + 1, black); /* the level of that count */
    free(grid_count), free(other);
    return im;
}

/* One scatter panel at (x0, y0): the points (u[b * stride], v[b * stride]) of the n * n bins, scaled to
 * their range, each a 2 x 2 dot coloured by the bin's x (by_y = 0: west dark, east yellow) or y. */
static void scatter_panel(Image *im, int x0, int y0, int panel, const double *u, const double *v, int stride, int n, int by_y) {
    double ulo = HUGE_VAL, uhi = -HUGE_VAL, vlo = HUGE_VAL, vhi = -HUGE_VAL;
    for (int b = 0; b < n * n; b++) {
        double x = u[(size_t)b * stride], y = v[(size_t)b * stride];
        if (!(x == x) || !(y == y)) continue;
        ulo = x < ulo ? x : ulo, uhi = x > uhi ? x : uhi, vlo = y < vlo ? y : vlo, vhi = y > vhi ? y : vhi;
    }
    fill_rect(im, x0 - 1, y0 - 1, x0 + panel + 1, y0 + panel + 1, (const uint8_t[3]){200, 200, 200});
    fill_rect(im, x0, y0, x0 + panel, y0 + panel, (const uint8_t[3]){255, 255, 255});
    if (!(uhi > ulo) || !(vhi > vlo)) return;
    for (int b = 0; b < n * n; b++) {
        double x = u[(size_t)b * stride], y = v[(size_t)b * stride];
        if (!(x == x) || !(y == y)) continue;
        int px = x0 + 1 + (int)((panel - 3) * (x - ulo) / (uhi - ulo)), py = y0 + panel - 2 - (int)((panel - 3) * (y - vlo) / (vhi - vlo));
        uint8_t rgb[3];
        colormap(rgb, by_y ? (b / n + 0.5) / n : (b % n + 0.5) / n);
        fill_rect(im, px, py, px + 2, py + 2, rgb);
    }
}

/* A module's state space (section 9), each bin a dot. Rows 1-6: PCs 1-6 pairwise; above the diagonal
 * panel (row i, column j) plots PC j (across) against PC i (up), coloured by the bin's x position (west
 * dark, east yellow); below it the same pair coloured by y (south dark, north yellow); the diagonal
 * names the PC. Row 7: the bins in the plane of each lattice wave (the rings; see state_space), waves
 * 1-3 coloured by x, then again coloured by y: a ring whose colour cycles along it, as many times as
 * the wave has periods across the box. Each panel is scaled to its points' range. */
static Image state_space_image(const StateSpace *s, int n) {
    const int panel = 96, gap = 4, q = STATE_PLOT_PCS;
    Image im = {q * (panel + gap) + gap, (q + 1) * (panel + gap) + gap, NULL, NULL};
    im.rgb = xcalloc((size_t)3 * im.width * im.height, 1);
    memset(im.rgb, 255, (size_t)3 * im.width * im.height);
    const uint8_t black[3] = {0, 0, 0};
    for (int row = 0; row < q; row++)
        for (int col = 0; col < q; col++) {
            int x0 = gap + col * (panel + gap), y0 = gap + row * (panel + gap);
            if (row != col) {
                scatter_panel(&im, x0, y0, panel, s->pcs + col, s->pcs + row, q, n, row > col);
                continue;
            }
            char label[4];
            snprintf(label, sizeof label, "%d", row + 1);
            fill_rect(&im, x0 - 1, y0 - 1, x0 + panel + 1, y0 + panel + 1, (const uint8_t[3]){200, 200, 200});
            fill_rect(&im, x0, y0, x0 + panel, y0 + panel, (const uint8_t[3]){255, 255, 255});
            draw_text(&im, x0 + panel / 2 - 6, y0 + panel / 2 - 10, label, 4, black);
        }
    for (int k = 0; k < 6; k++) {
        int d = k % 3;
        scatter_panel(&im, gap + k * (panel + gap), gap + q * (panel + gap), panel, s->ring_points + 2 * d, s->ring_points + 2 * d + 1, 6, n, k >= 3);
    }
    return im;
}

/* The phases of a module's units in its lattice cell (section 9): phase_1 across, phase_2 up, both
 * 0..1 cycles, one dot per unit, on a square with a light grid at 0.25. */
static Image phases_image(const UnitScores *u, int N, int module) {
    const int side = 200, margin = 10;
    Image im = {side + 2 * margin, side + 2 * margin, NULL, NULL};
    im.rgb = xcalloc((size_t)3 * im.width * im.height, 1);
    memset(im.rgb, 255, (size_t)3 * im.width * im.height);
    const uint8_t black[3] = {0, 0, 0}, light[3] = {220, 220, 220}, teal[3] = {33, 144, 141};
    for (int i = 1; i < 4; i++) {
        int at = margin + i * side / 4;
        fill_rect(&im, at, margin, at + 1, margin + side, light);
        fill_rect(&im, margin, at, margin + side, at + 1, light);
    }
    fill_rect(&im, margin, margin, margin + side, margin + 1, black), fill_rect(&im, margin, margin + side, margin + side + 1, margin + side + 1, black);
    fill_rect(&im, margin, margin, margin + 1, margin + side, black), fill_rect(&im, margin + side, margin, margin + side + 1, margin + side, black);
    for (int k = 0; k < N; k++) {
        if (u[k].module != module || !(u[k].phase[0] == u[k].phase[0]) || !(u[k].phase[1] == u[k].phase[1])) continue;
        int px = margin + (int)(u[k].phase[0] * side), py = margin + side - (int)(u[k].phase[1] * side);
        fill_rect(&im, px - 2, py - 2, px + 3, py + 3, teal);
    }
    return im;
}


/*
 * LICENSE (MIT)
 * Copyright (c) 2026 the gridssl authors
 * Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
 * associated documentation files (the "Software"), to deal in the Software without restriction,
 * including without limitation the rights to use, copy, modify, merge, publish, distribute,
 * sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
 * furnished to do so, subject to the following conditions: The above copyright notice and this
 * permission notice shall be included in all copies or substantial portions of the Software.
 * THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
 * NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
 * NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES
 * OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
 * CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
 */
