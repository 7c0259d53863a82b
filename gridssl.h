/* gridssl.h - the types gridssl.c shares with its tests and ports: the precision switch (real),
 * the configuration (Config), the PRNG state (Rng), the model's flat parameter buffer with its named
 * views (Model, ParamTensors), one batch (Batch) and the loss terms (LossTerms). It declares no
 * functions: gridssl is one file, and a program that calls into it includes gridssl.c (as
 * tests/unit.c does, with GRIDSSL_TESTING to leave out main). The manual is the comment at the top
 * of gridssl.c.
 */
#ifndef GRIDSSL_H
#define GRIDSSL_H

#include <stddef.h>
#include <stdint.h>

#define GRIDSSL_VERSION "0.1.0"

/* ------------------------------------------------------------------------------------------------
 * Precision. Training runs in float (binary32); the gradient checks build the same code with
 * -DGRIDSSL_DOUBLE so that central finite differences can be compared to 1e-6. Long reductions
 * (pair sums, norms, loss values) always accumulate in double, whatever `real` is.
 */
#ifdef GRIDSSL_DOUBLE
typedef double real;
#define REAL_MIN_NORMAL 2.2250738585072014e-308 /* DBL_MIN */
#else
typedef float real;
#define REAL_MIN_NORMAL 1.17549435e-38f /* FLT_MIN */
#endif

/* ------------------------------------------------------------------------------------------------
 * Configuration. Every key is listed once, in the table `config_keys` in gridssl.c, with its type,
 * range, default and documentation; the defaults there are data/default.cfg.
 */
enum { CAPACITY_MEANNORM = 0, CAPACITY_KERNEL = 1 };
enum { REDUCTION_MEAN = 0, REDUCTION_SUM = 1 };
enum { VEL_SQUARE = 0, VEL_DISC = 1, VEL_SPEED = 2 };
enum { MODEL_SIC = 0, MODEL_CW = 1, MODEL_SORSCHER = 2 };
enum { ARENA_SQUARE = 0, ARENA_HEXAGON = 1, ARENA_TRIANGLE = 2 };

typedef struct {
    int model;           /* MODEL_SIC (the default), or a supervised baseline: MODEL_CW, MODEL_SORSCHER (section 5) */
    /* data (gridssl.c section 2) */
    int seed;            /* PRNG seed for initialisation and data */
    int B;               /* trajectories per batch */
    int T;               /* steps per trajectory */
    int permute;         /* 1: trajectories are permutations of T shared velocities; 0: ablation */
    double vmax;         /* velocities ~ Uniform(-vmax, vmax)^2, metres per step */
    int vel_dist;        /* VEL_SQUARE (paper) or VEL_DISC (isotropic: uniform in the disc of radius vmax) */
    /* model (gridssl.c section 3) */
    int N;               /* recurrent units */
    int hidden;          /* MLP hidden width H */
    double init_last_scale; /* multiplies the initial weights and biases of the MLP's last layer */
    /* losses (gridssl.c section 4) */
    double sigma_x, sigma_g;
    double sep_rmax;     /* L_sep's pairs: sigma_x < |x_i - x_j| <= sep_rmax (gridssl's addition; 0 = every far pair) */
    double lambda_sep, lambda_inv, lambda_cap, lambda_iso;
    double iso_vmax;     /* isometry uses steps with 0 < |v| < iso_vmax; 0 = every step */
    double iso_vmin;     /* ... and |v| > iso_vmin (gridssl's addition; 0 = off) */
    int iso_start;       /* optimiser step at which the isometry ramp begins */
    int iso_ramp_steps;  /* steps over which lambda_iso ramps from 0 to its value; 0 = a jump */
    double lambda_dist;  /* weight of L_dist, isometry at a fixed scale over far pairs (gridssl's addition; 0 = off) */
    double dist_scale;   /* its scale s: |g_i - g_j| should be s |x_i - x_j| */
    double dist_rmax;    /* its pairs: sigma_x < |x_i - x_j| <= dist_rmax */
    double lambda_sparse; /* weight of L_sparse, the states' mean L1 norm (gridssl's addition; 0 = off) */
    double lambda_dir;   /* weight of L_dir, direction-independence of a step (gridssl's addition; 0 = off) */
    double dir_speed;    /* its probe steps' length, metres */
    int dir_headings;    /* its probe headings per state, evenly spaced */
    int dir_states;      /* it probes the first dir_states states of a batch */
    int capacity;        /* CAPACITY_MEANNORM or CAPACITY_KERNEL */
    int reduction;       /* REDUCTION_MEAN or REDUCTION_SUM, for L_sep, L_inv and L_dist */
    /* the supervised baselines (gridssl.c section 5); SIC ignores these keys */
    int arena;           /* ARENA_SQUARE, ARENA_HEXAGON or ARENA_TRIANGLE (Cueva & Wei; Sorscher: square only) */
    double arena_size;   /* width of the training arena, metres */
    double cw_alpha;     /* Cueva & Wei: weight of the L2 cost on the input and output weights */
    double cw_beta;      /* ... weight of the metabolic cost, the mean squared rate */
    double cw_noise;     /* ... standard deviation of the recurrent noise xi */
    double cw_still;     /* ... probability that the animal stands still for a step */
    double cw_speed;     /* ... speeds of moving steps ~ Uniform(0, cw_speed), metres per step */
    double cw_turn_sd;   /* ... heading random walk, rad per step */
    int place_cells;     /* Sorscher et al.: N_p place cells */
    double place_sigma;  /* ... place-cell width sigma, metres */
    double place_surround; /* ... surround-to-centre variance ratio of the difference of Gaussians */
    double sorscher_wd;  /* ... weight of |W_rec|^2 in the loss */
    int sorscher_relu;   /* ... 1: ReLU recurrence; 0: linear (the ablation) */
    /* optimiser (gridssl.c section 6) */
    double lr, beta1, beta2, adam_eps, weight_decay, clip;
    int accum;           /* batches per optimiser step (gradients averaged) */
    double plateau_factor;    /* ReduceLROnPlateau: lr *= factor ... */
    int plateau_patience;     /* ... after this many steps without improvement */
    double plateau_threshold; /* relative improvement that counts */
    double plateau_ema;       /* smoothing of the loss the scheduler watches */
    double min_lr;
    int lr_drop_step;         /* from this step on lr *= lr_drop_factor (gridssl's addition; 0: off) */
    double lr_drop_factor;
    int steps, log_every, save_every;
    /* evaluation (gridssl.c section 8) */
    int eval_walks;      /* K walks from the box centre (2 m box; scaled by box/2) */
    int eval_walk_mult;  /* walks have eval_walk_mult * T steps (2 m box; scaled by box/2) */
    double eval_bin_m;   /* side of a ratemap bin, metres */
    double eval_heading_sd, eval_speed_mean, eval_speed_max;
} Config;

/* ------------------------------------------------------------------------------------------------
 * PCG32 (O'Neill 2014, PCG-XSH-RR 64/32): the one source of randomness. State is explicit.
 */
typedef struct { uint64_t state, inc; } Rng;

/* ------------------------------------------------------------------------------------------------
 * Parameters: one flat buffer, named pointers into it (llm.c style). Layouts follow PyTorch's
 * nn.Linear (weight is (out, in), y = W x + b), so a port can load them as they are.
 */
#define MAX_PARAM_TENSORS 7
typedef struct {
    /* SIC (section 3) */
    real *W1;     /* (H, 2)     first MLP layer */
    real *b1;     /* (H)        */
    real *W2;     /* (H, H)     second MLP layer */
    real *b2;     /* (H)        */
    real *W3;     /* (N*N, H)   last MLP layer: its output is W(v), row-major N x N */
    real *b3;     /* (N*N)      */
    real *theta0; /* (N)        g0 = NormReLU(theta0) */
    /* the supervised baselines (section 5); D = 3 input channels (Cueva & Wei) or 2 (Sorscher) */
    real *W_enc;  /* (N, N_p)   Sorscher: h_0 = W_enc p(x_0) */
    real *W_in;   /* (N, D)     input weights */
    real *b_rec;  /* (N)        Cueva & Wei: bias of the recurrent drive */
    real *W_rec;  /* (N, N)     recurrent weights */
    real *W_out;  /* (2, N) Cueva & Wei's position readout; (N_p, N) Sorscher's place-cell readout */
} ParamTensors;

typedef struct {
    int model, N, H;
    int num_tensors;
    const char *names[MAX_PARAM_TENSORS];
    size_t sizes[MAX_PARAM_TENSORS];
    size_t num_params;
    real *params, *grads, *adam_m, *adam_v; /* each (num_params), one allocation each */
    ParamTensors p, g;                      /* named views into params and grads */
} Model;

/* One SIC batch (gridssl.c section 2). V distinct velocities (V = T with permutations, B*T without); step t of
 * trajectory b uses velocity index[b*T + t]. Positions are stored for t = 1..T.
 * A baseline's batch (section 5) has V = B*T velocities, one per step (index unused), and the fields below. */
typedef struct {
    int B, T, V;
    int n_dir;   /* L_dir's probe headings (0 when it is off): rows V .. V+n_dir-1 of vel */
    real *vel;   /* (V + n_dir, 2)  multiples of 2^-20 m, so every running sum is exact; then the probes */
    int32_t *index; /* (B, T) */
    real *pos;   /* (B*T, 2)  x_{b,t}, t = 1..T; x_{b,0} = 0 */
    /* baselines */
    int D;       /* input channels */
    real *input; /* (B*T, D)  the network's input at each step */
    real *start; /* (B, 2)    x_{b,0} */
    real *noise; /* (B*T, N)  Cueva & Wei: the recurrent noise xi, drawn with the batch */
} Batch;

/* The value of each loss term (unweighted), the weights applied, and the counts behind them. */
typedef struct {
    double sep, inv, cap, iso, dist, sparse, dir, total;
    double task, weights, rate; /* baselines: the supervised error, the weight cost, the metabolic cost */
    double err_m;               /* baselines: mean distance of the decoded position to the true one, metres */
    double w_sep, w_inv, w_cap, w_iso, w_dist, w_sparse, w_dir; /* weights used in total (w_iso, w_dist, w_dir after the ramp) */
    int64_t n_near, n_far, n_iso, n_dist, dead_states;
} LossTerms;

#endif /* GRIDSSL_H */
