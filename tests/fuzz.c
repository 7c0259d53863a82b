/* tests/fuzz.c - gridssl's promise about bad input, held to account on ten thousand mutants.
 *
 * Whatever gridssl is given - a config file, key=value arguments, a checkpoint, a .npy of ratemaps -
 * it does the job (exit status 0, its outputs written) or says why not in one line and leaves nothing
 * behind (exit status 1), as the README's "Bad input, full disks and crashes" promises. Each case is
 * one mutant of data/tiny.cfg, of a checkpoint trained on it or of that checkpoint's ratemaps.npy,
 * and one command of the real ./gridssl, run in a fresh directory tests/out/fuzz/case_NNNNN (output
 * directory: its out/). It passes when
 *   - gridssl ends by itself within --timeout seconds (a hang is killed), with status 0 or 1: never a
 *     signal (a crash), never another status;
 *   - on status 1 stderr's last line starts "gridssl: error: ", holds no control byte and is the only
 *     such line, and the lines before it are progress ("gridssl: ..." or "step ...");
 *   - on status 1 out/ does not exist, except that a failing train may leave what it committed at its
 *     last checkpoint: exactly config.txt, log.tsv and checkpoint.bin;
 *   - on status 0 the command's main output exists (train: exactly those three files);
 *   - whatever the status, the case directory holds nothing but the input and out/, and no *.tmp;
 *   - a mutant that is invalid for certain is refused: a NUL byte or an unknown key in a config, a
 *     malformed or out-of-range number, a checkpoint that fails its CRC-32 or holds a negative step, a
 *     non-finite learning rate or parameter, a .npy of another dtype or shape...; ratemaps that are
 *     valid for certain (NaN = unvisited, -0.0, subnormals, another consistent shape) are accepted.
 *     Everything else may go either way (training may diverge; a number may be spelled "+3" or ".5").
 * Case K is drawn from PCG32 seeded with (--seed, K): the same cases on every run whatever --jobs, and
 * the report in case order. A failing case keeps its directory (input, cmd.txt, stderr.txt) and prints
 * one line; ./tests/fuzz --case K runs it alone again. The report ends "N passed, N failed".
 *
 * usage, from the repository root (make fuzz builds ./gridssl and this, then runs it):
 *     ./tests/fuzz [--cases N] [--seed S] [--jobs J] [--timeout SECONDS] [--keep] [--case K] [--gridssl PATH]
 */
#define GRIDSSL_TESTING
#include "../gridssl.c"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define FUZZ_DIR "tests/out/fuzz"
static char *gridssl = "./gridssl";     /* --gridssl: another build, e.g. ./gridssl_asan */

typedef enum { CONFIG_FILE, ARGS, CKPT_RAW, CKPT_CRC, NPY, NUM_KINDS } Kind;
static const char *const kind_names[NUM_KINDS] = {"config file", "key=value args", "checkpoint, raw bytes",
                                                  "checkpoint, CRC-valid", "ratemaps .npy"};
typedef enum { TRAIN_CONFIG, TRAIN_ARGS, EVAL, DUMP, RESUME, SCORE } Command;
typedef enum { EITHER, MUST_REJECT, MUST_ACCEPT } Expect;

typedef struct {
    Kind kind;
    Command command;
    Expect expect;
    char what[600];      /* the mutation, printable */
    Buf input;           /* the mutated file (none for ARGS) */
    char pairs[3][2100]; /* ARGS: the key=value arguments */
    int n_pairs;
    char *steps;         /* train: the steps= that follows them */
} Mutant;

#define COUNT(a) ((uint32_t)(sizeof(a) / sizeof((a)[0])))
#define PICK(rng, a) ((a)[rng_below(rng, COUNT(a))])

static void describe(Mutant *m, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->what, sizeof m->what, fmt, ap);
    va_end(ap);
}

/* len bytes of text with every byte outside printable ASCII (and '\') as \xNN, cut to fit size */
static char *printable(const char *text, size_t len, char *out, size_t size) {
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < size; i++) {
        unsigned char c = (unsigned char)text[i];
        o += (size_t)snprintf(out + o, size - o, c >= 0x20 && c < 0x7f && c != '\\' ? "%c" : "\\x%02x", c);
    }
    out[o] = 0;
    return out;
}

/* ---- files ------------------------------------------------------------------------------------- */
/* The whole file (gridssl's own reader, without its size limit). */
static int slurp(const char *path, Buf *out) {
    Err err;
    return read_file(path, out, SIZE_MAX / 2, &err);
}

static void spit(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (f) fwrite(data, 1, len, f), fclose(f);
}

static void remove_tree(const char *path) {
    struct stat st;
    DIR *d = lstat(path, &st) == 0 && S_ISDIR(st.st_mode) ? opendir(path) : NULL;
    char sub[4200];
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) snprintf(sub, sizeof sub, "%s/%s", path, e->d_name), remove_tree(sub);
    if (d) closedir(d), rmdir(path);
    else unlink(path);
}

/* Every path under root, relative to it, one per line ("out", "out/log.tsv", ...). */
static void list_tree(const char *root, const char *rel, Buf *names) {
    char path[4200], sub[4200];
    snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        buf_printf(names, "%s\n", sub);
        list_tree(root, sub, names);
    }
    if (d) closedir(d);
}

/* ---- config text: lines, settings and the values a key may be given ------------------------------ */
static int line_at(const Buf *text, int index, size_t *start, size_t *len) {
    for (size_t p = 0; p < text->len; index--) {
        const uint8_t *nl = memchr(text->data + p, '\n', text->len - p);
        size_t n = nl ? (size_t)(nl - (text->data + p)) : text->len - p;
        if (index == 0) return *start = p, *len = n, 0;
        p += n + 1;
    }
    return -1;
}

static int count_lines(const Buf *text) {
    size_t s, l;
    int n = 0;
    while (line_at(text, n, &s, &l) == 0) n++;
    return n;
}

/* text with line `at` replaced by replacement (NULL: deleted), the original kept after it if keep */
static void edit_line(Buf *out, const Buf *text, int at, const char *replacement, int keep) {
    size_t s = 0, l = 0;
    for (int i = 0; line_at(text, i, &s, &l) == 0; i++) {
        if (i == at && replacement) buf_printf(out, "%s\n", replacement);
        if (i != at || keep) buf_put(out, text->data + s, l), buf_put(out, "\n", 1);
    }
}

/* A "key = value" line of text: the line of key if given, else a random one; its key and value. */
static int find_setting(const Buf *text, Rng *rng, const char *wanted, char *key, char *value) {
    for (int n = count_lines(text), i = 0;; i++) {
        int at = wanted ? i % n : (int)rng_below(rng, (uint32_t)n);
        size_t s = 0, l = 0;
        char line[1100];
        line_at(text, at, &s, &l);
        snprintf(line, sizeof line, "%.*s", (int)l, (const char *)text->data + s);
        if (line[0] != '#' && sscanf(line, "%63s = %1000[^\n]", key, value) == 2 && (!wanted || !strcmp(key, wanted))) return at;
    }
}

/* Plain decimals (refused only out of range or fractional for an integer key), malformed numbers
 * (always refused), and spellings a looser or stricter parser may read either way (LOOSE: a sign, no
 * digit on one side of the point, a leading space; UNSURE: hex, a subnormal, an underflow). */
typedef enum { DECIMAL, LOOSE, MALFORMED, UNSURE } Form;
typedef struct { const char *text; Form form; } Value;
static char long_number[2001]; /* 2000 digits: beyond every range, and a config line over 1024 bytes */
static const Value dictionary[] = {
    {"0", DECIMAL}, {"-1", DECIMAL}, {"1", DECIMAL}, {"3", DECIMAL}, {"0.5", DECIMAL}, {"1.5e1", DECIMAL},
    {"1e9", DECIMAL}, {"2147483648", DECIMAL}, {"1e300", DECIMAL}, {"-1e300", DECIMAL}, {long_number, DECIMAL},
    {"4.9e-324", UNSURE}, {"1e-400", UNSURE}, {"0x10", MALFORMED}, {" 5", LOOSE}, {"+3", LOOSE}, {".5", LOOSE},
    {"5.", LOOSE}, {"inf", MALFORMED}, {"-inf", MALFORMED}, {"nan", MALFORMED}, {"12abc", MALFORMED},
    {"", MALFORMED}, {"1e", MALFORMED}, {"1e5x", MALFORMED}, {"1,5", MALFORMED},
};
static const char *const unknown_keys[] = {"colour", "n", "Steps", "hidden_size", "lr_max", "eval", "N2", "b "};
static const char control_bytes[] = {1, 7, 8, 10, 11, 12, 13, 27, 127};

static Expect value_expect(const ConfigKey *k, const Value *v) {
    if (v->form == MALFORMED || k->type == KEY_ENUM) return MUST_REJECT; /* an enum takes names only */
    double x = strtod(v->text, NULL);
    int out_of_range = !(x >= k->min && x <= k->max) || (k->type == KEY_INT && x != floor(x));
    return v->form != UNSURE && out_of_range ? MUST_REJECT : EITHER; /* valid values may still diverge */
}

/* ---- config files (and the config text inside a checkpoint) -------------------------------------- */
static void mutate_text(Mutant *m, const Buf *text, Rng *rng) {
    Buf *out = &m->input;
    char key[64], value[1001], line[3200], shown[100];
    int at = find_setting(text, rng, NULL, key, value), any = (int)rng_below(rng, (uint32_t)count_lines(text));
    uint32_t op = rng_below(rng, 13);
    size_t pos = rng_below(rng, (uint32_t)text->len), s = 0, l = 0;
    m->expect = op == 1 || op == 8 || op == 9 || op == 10 ? MUST_REJECT : EITHER;
    if (op == 0) { /* bytes flipped or set */
        buf_put(out, text->data, text->len);
        int n = 1 + (int)rng_below(rng, 4), o = snprintf(m->what, sizeof m->what, "bytes changed:");
        for (int i = 0; i < n; i++, pos = rng_below(rng, (uint32_t)text->len)) {
            out->data[pos] = rng_below(rng, 2) ? out->data[pos] ^ (uint8_t)(1u << rng_below(rng, 8)) : (uint8_t)rng_u32(rng);
            o += snprintf(m->what + o, sizeof m->what - (size_t)o, " @%zu=0x%02x", pos, out->data[pos]);
        }
    } else if (op <= 2) { /* a NUL byte (not a text file), or a control byte */
        char c = op == 1 ? 0 : PICK(rng, control_bytes);
        buf_put(out, text->data, pos), buf_put(out, &c, 1), buf_put(out, text->data + pos, text->len - pos);
        describe(m, "byte 0x%02x inserted at offset %zu", c, pos);
    } else if (op == 3) { /* a line over 1024 bytes: a comment, a long valid number, or no '=' at all */
        int variant = (int)rng_below(rng, 3), n = 1025 + (int)rng_below(rng, 2000);
        int o = snprintf(line, sizeof line, "%s", variant == 0 ? "# " : variant == 1 ? "lr = 0.000" : "");
        while (o < n) line[o++] = variant == 1 ? '0' : 'x';
        snprintf(line + n, sizeof line - (size_t)n, "%s", variant == 1 ? "1" : "");
        edit_line(out, text, any, line, 1), m->expect = variant == 2 ? MUST_REJECT : EITHER;
        describe(m, "%d-byte line '%.12s...' before line %d", n + variant % 2, line, any + 1);
    } else if (op == 4) {
        edit_line(out, text, any, NULL, 0), describe(m, "line %d deleted", any + 1);
    } else if (op == 5) {
        line_at(text, any, &s, &l), snprintf(line, sizeof line, "%.*s", (int)l, (const char *)text->data + s);
        edit_line(out, text, any, line, 1), describe(m, "line %d duplicated", any + 1);
    } else if (op <= 7) { /* a value from the dictionary */
        const Value *v = &PICK(rng, dictionary);
        snprintf(line, sizeof line, "%s = %s", key, v->text), edit_line(out, text, at, line, 0);
        describe(m, "%s = '%s'", key, printable(v->text, strlen(v->text), shown, 60)), m->expect = value_expect(config_find(key), v);
    } else if (op == 8) { /* an unknown key, or none */
        const char *name = rng_below(rng, 4) ? PICK(rng, unknown_keys) : "";
        snprintf(line, sizeof line, "%s = %s", name, value), edit_line(out, text, at, line, 0);
        describe(m, "key '%s' renamed '%s'", key, name);
    } else if (op == 9) {
        snprintf(line, sizeof line, "%s  %s", key, value), edit_line(out, text, at, line, 0);
        describe(m, "'=' removed from '%s = %s'", key, value);
    } else if (op == 10) { /* a key set twice, even to the same value */
        snprintf(line, sizeof line, "%s = %s", key, rng_below(rng, 2) ? value : "3"), edit_line(out, text, any, line, 1);
        describe(m, "'%s' again before line %d", line, any + 1);
    } else {
        buf_put(out, text->data, pos), describe(m, "truncated to %zu of %zu bytes", pos, text->len);
    }
    if (memchr(out->data, 0, out->len)) m->expect = MUST_REJECT;
}

/* ---- key=value arguments ------------------------------------------------------------------------- */
static void mutate_args(Mutant *m, Rng *rng) {
    static const char *const diverging[4][2] = {{"lr=10", "weight_decay=1000"}, {"lr=1", "weight_decay=1000"},
                                                {"lr=10", "weight_decay=100"}, {"lr=3", "weight_decay=300"}};
    if (rng_below(rng, 8) == 0) { /* valid, but the weights blow up within a few steps: a train that */
        int k = (int)rng_below(rng, 4); /* fails after it has committed checkpoints */
        snprintf(m->pairs[0], sizeof m->pairs[0], "%s", diverging[k][0]), snprintf(m->pairs[1], sizeof m->pairs[1], "%s", diverging[k][1]);
        m->n_pairs = 2, m->steps = "steps=8", m->expect = EITHER;
        describe(m, "'%s' '%s' (diverging), steps=8", m->pairs[0], m->pairs[1]);
        return;
    }
    m->n_pairs = 1 + (int)rng_below(rng, 3), m->expect = EITHER;
    for (int i = 0, o = 0; i < m->n_pairs; i++) {
        const ConfigKey *k = &config_keys[rng_below(rng, (uint32_t)NUM_CONFIG_KEYS)];
        const Value *v = &PICK(rng, dictionary);
        char *pair = m->pairs[i], shown[100];
        size_t size = sizeof m->pairs[i];
        Expect e = MUST_REJECT;
        uint32_t op = rng_below(rng, 7);
        if (op == 0) snprintf(pair, size, "%s=1%c%s", k->name, PICK(rng, control_bytes), rng_below(rng, 2) ? "2" : "");
        else if (op == 1) snprintf(pair, size, "%s=%s", PICK(rng, unknown_keys), v->text);
        else if (op == 2) snprintf(pair, size, rng_below(rng, 2) ? "%s12" : "=12", k->name); /* no '=', no key */
        else snprintf(pair, size, "%s=%s", k->name, v->text), e = value_expect(k, v);
        if (e == MUST_REJECT) m->expect = MUST_REJECT;
        o += snprintf(m->what + o, sizeof m->what - (size_t)o, "%s'%s'", i ? " " : "", printable(pair, strlen(pair), shown, 60));
    }
}

/* ---- checkpoints --------------------------------------------------------------------------------- */
/* FILE FORMATS in gridssl.c: magic 0, version 8, bytes per real 12, text length n 16, text 20, then
 * the state from 20 + n: step +0, PCG state +8 and increment +16, lr +24, ema +32, best +40, bad steps
 * +48, ema steps +56, beta1^t +64, beta2^t +72, num_params +80; params from +88, Adam m, Adam v, CRC. */
typedef struct { size_t text_len, state_at, params_at, num_params; } Layout;

static Layout layout_of(const Buf *ckpt) {
    Rd r = {ckpt->data, ckpt->len, 16, 0};
    Layout l;
    l.text_len = rd_u32(&r), l.state_at = 20 + l.text_len, l.params_at = l.state_at + 88;
    r.pos = l.state_at + 80, l.num_params = (size_t)rd_u64(&r);
    return l;
}

static void put_le(Buf *b, size_t at, uint64_t x, int bytes) {
    for (int i = 0; i < bytes; i++) b->data[at + (size_t)i] = (uint8_t)(x >> (8 * i));
}

static void mutate_checkpoint_bytes(Mutant *m, const Buf *ckpt, Rng *rng) {
    Buf *out = &m->input;
    size_t at = rng_below(rng, (uint32_t)ckpt->len);
    uint32_t op = rng_below(rng, 3), n = 1 + rng_below(rng, op == 0 ? 4 : 64);
    buf_put(out, ckpt->data, op == 1 ? at : ckpt->len);
    for (uint32_t i = 0; i < n && op == 0; i++) out->data[rng_below(rng, (uint32_t)ckpt->len)] ^= (uint8_t)(1 + rng_below(rng, 255));
    if (op == 0 && memcmp(out->data, ckpt->data, ckpt->len) == 0) out->data[at] ^= 1; /* two flips undid each other */
    for (uint32_t i = 0; i < n && op == 2; i++) buf_put(out, (uint8_t[]){(uint8_t)rng_u32(rng)}, 1);
    if (op == 1) describe(m, "truncated to %zu of %zu bytes", at, ckpt->len);
    else describe(m, "%u byte(s) %s", n, op == 0 ? "flipped" : "appended");
    m->expect = MUST_REJECT; /* the CRC-32 no longer matches */
}

typedef enum { U32, U64, F64, XOR } FieldType;
typedef struct { const char *field; size_t at; FieldType type; uint64_t bits; double real; const char *shown; Expect expect; } Change;
#define STATE 1000000 /* at >= STATE: STATE + the offset in the state */
static const Change changes[] = {
    {"format version", 8, U32, 2, 0, "2", MUST_REJECT}, {"bytes per real", 12, U32, 8, 0, "8", MUST_REJECT},
    {"step", STATE, U64, UINT64_MAX, 0, "-1", MUST_REJECT}, {"step", STATE, U64, UINT64_C(1) << 63, 0, "INT64_MIN", MUST_REJECT},
    {"step", STATE, U64, 1000000000000, 0, "10^12", MUST_REJECT}, {"step", STATE, U64, 0, 0, "0", EITHER},
    {"PCG state", STATE + 8, XOR, 0x5555, 0, "xor 0x5555", EITHER}, {"PCG increment", STATE + 16, XOR, 1, 0, "even", MUST_REJECT},
    {"lr", STATE + 24, F64, 0, NAN, "nan", MUST_REJECT}, {"lr", STATE + 24, F64, 0, INFINITY, "inf", MUST_REJECT},
    {"lr", STATE + 24, F64, 0, -1, "-1", MUST_REJECT}, {"lr", STATE + 24, F64, 0, 1e300, "1e300", MUST_REJECT},
    {"lr", STATE + 24, F64, 0, 0, "0", EITHER}, {"ema", STATE + 32, F64, 0, NAN, "nan", MUST_REJECT},
    {"ema", STATE + 32, F64, 0, INFINITY, "inf", MUST_REJECT}, {"best", STATE + 40, F64, 0, NAN, "nan", MUST_REJECT},
    {"bad steps", STATE + 48, U64, UINT64_MAX, 0, "-1", MUST_REJECT}, {"bad steps", STATE + 48, U64, 1000000000000, 0, "10^12", MUST_REJECT},
    {"ema steps", STATE + 56, U64, UINT64_MAX, 0, "-1", MUST_REJECT}, {"ema steps", STATE + 56, U64, 1000000000000, 0, "10^12", MUST_REJECT},
    {"beta1^t", STATE + 64, F64, 0, 0, "0", EITHER}, {"beta1^t", STATE + 64, F64, 0, 1, "1", MUST_REJECT},
    {"beta1^t", STATE + 64, F64, 0, 2, "2", MUST_REJECT}, {"beta1^t", STATE + 64, F64, 0, NAN, "nan", MUST_REJECT},
    {"beta2^t", STATE + 72, F64, 0, -0.5, "-0.5", MUST_REJECT}, {"beta2^t", STATE + 72, F64, 0, 0, "0", EITHER},
    {"num_params", STATE + 80, XOR, 1, 0, "off by one", MUST_REJECT}, {"num_params", STATE + 80, U64, UINT64_MAX, 0, "2^64-1", MUST_REJECT},
    {"num_params", STATE + 80, U64, UINT64_C(1) << 40, 0, "2^40", MUST_REJECT},
};

/* One field, one parameter or moment, or the config text changed; then a CRC-32 that matches again. */
static void mutate_checkpoint_fields(Mutant *m, const Buf *ckpt, Rng *rng) {
    Layout l = layout_of(ckpt);
    Buf *out = &m->input, text = {0}, edited = {0};
    uint32_t what = rng_below(rng, 10), text_len;
    if (what < 4) { /* a field */
        const Change *c = &PICK(rng, changes);
        size_t at = c->at >= STATE ? l.state_at + c->at - STATE : c->at;
        uint64_t bits;
        memcpy(&bits, &c->real, 8);
        buf_put(out, ckpt->data, ckpt->len - 4);
        if (c->type == XOR) for (int i = 0; i < 8; i++) out->data[at + (size_t)i] ^= (uint8_t)(c->bits >> (8 * i));
        else put_le(out, at, c->type == F64 ? bits : c->bits, c->type == U32 ? 4 : 8);
        describe(m, "%s = %s", c->field, c->shown), m->expect = c->expect;
    } else if (what < 6) { /* one element of the parameters, Adam m or Adam v */
        static const char *const arrays[3] = {"parameter", "Adam m", "Adam v"};
        static const float values[5] = {NAN, INFINITY, -INFINITY, -1e-3f, 1e30f};
        int array = (int)rng_below(rng, 3), v = (int)rng_below(rng, 5);
        size_t index = rng_below(rng, (uint32_t)l.num_params);
        uint32_t bits;
        memcpy(&bits, &values[v], 4);
        buf_put(out, ckpt->data, ckpt->len - 4), put_le(out, l.params_at + 4 * ((size_t)array * l.num_params + index), bits, 4);
        describe(m, "%s %zu = %g", arrays[array], index, (double)values[v]);
        m->expect = v < 3 || (v == 3 && array == 2) ? MUST_REJECT : EITHER; /* not finite, or a negative second moment */
    } else { /* the config text: as a config file, or a model size that no longer fits, or a wrong length */
        static const char *const misfits[][2] = {{"N", "N = 512"}, {"hidden", "hidden = 1000"}, {"steps", "steps = -1"}};
        char key[64], value[1001], was[600];
        uint32_t how = rng_below(rng, 4);
        buf_put(&text, ckpt->data + 20, l.text_len);
        if (how < 2) mutate_text(m, &text, rng), snprintf(was, sizeof was, "%s", m->what), describe(m, "config text: %s", was);
        else if (how == 2) {
            int k = (int)rng_below(rng, 3);
            edit_line(&m->input, &text, find_setting(&text, rng, misfits[k][0], key, value), misfits[k][1], 0);
            describe(m, "config text: %s", misfits[k][1]), m->expect = MUST_REJECT;
        } else buf_put(&m->input, text.data, text.len), m->expect = MUST_REJECT;
        edited = m->input, m->input = (Buf){0};
        uint32_t k = rng_below(rng, 5), n = (uint32_t)edited.len;
        text_len = how < 3 ? n : k == 0 ? n + 1 : k == 1 ? n - 1 : k == 2 ? n + 8 : k == 3 ? 0 : UINT32_MAX;
        if (how == 3) describe(m, "config text length %u instead of %u", text_len, n);
        buf_put(out, ckpt->data, 16), buf_u32(out, text_len), buf_put(out, edited.data, edited.len);
        buf_put(out, ckpt->data + l.state_at, ckpt->len - 4 - l.state_at);
        buf_free(&text), buf_free(&edited);
    }
    buf_u32(out, crc32_update(0, out->data, out->len));
}

/* ---- .npy ratemaps ------------------------------------------------------------------------------- */
typedef struct { double *values; int units, n; } Maps;

/* NumPy format 1.0: magic, version, u16 header length, the dict padded with spaces, '\n', the data. */
static void npy_file(Buf *out, const char *descr, const char *fortran, const char *shape, const double *values, size_t count, int item) {
    char dict[300];
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr, fortran, shape);
    int header = len + (64 - (10 + len + 1) % 64) % 64 + 1;
    buf_put(out, "\x93NUMPY\x01\x00", 8), buf_put(out, (uint8_t[]){(uint8_t)header, (uint8_t)(header >> 8)}, 2);
    buf_put(out, dict, (size_t)len);
    while (len++ < header - 1) buf_put(out, " ", 1);
    buf_put(out, "\n", 1);
    for (size_t i = 0; i < count; i++) item == 8 ? buf_f64(out, values[i]) : buf_f32(out, (float)values[i]);
}

static void mutate_npy(Mutant *m, const Maps *base, Rng *rng) {
    static const char *const wrong_descr[] = {">f4", "<i4", "|u1", "<f2", "<f16"};
    static const char *const wrong_shape[] = {"(3 16 16)", "(12, 16)", "(12, 16, 17)", "(0, 16, 16)", "(-1, 16, 16)",
                                              "(99999999999, 16, 16)", "12, 16, 16", "(12, 16, 16, 1)", "(12, 256)", "()",
                                              "(12, 16, 16", "(3072,)", "(12, 16, 16)x"};
    static const char *const right_shape[] = {"(12,16,16)", "(6, 16, 16)", "(1, 16, 16)", "(48, 8, 8)"};
    static const size_t right_count[] = {3072, 1536, 256, 3072};
    static const struct { const char *name; double x; Expect expect; } specials[] = {
        {"nan", NAN, MUST_ACCEPT}, {"-0.0", -0.0, MUST_ACCEPT}, {"a subnormal", 1.5e-45, MUST_ACCEPT}, {"inf", INFINITY, MUST_REJECT},
        {"-inf", -INFINITY, MUST_REJECT}, {"3.4e38", 3.4e38, EITHER}, {"-3.4e38", -3.4e38, EITHER}, {"1e300", 1e300, MUST_REJECT}};
    size_t count = (size_t)base->units * base->n * base->n, used = count, per_unit = (size_t)base->n * base->n;
    int item = rng_below(rng, 2) ? 8 : 4, k;
    char descr[8], shape[64];
    const char *fortran = "False";
    double *v = xcalloc(count, sizeof(double));
    memcpy(v, base->values, count * sizeof(double));
    snprintf(descr, sizeof descr, "<f%d", item), snprintf(shape, sizeof shape, "(%d, %d, %d)", base->units, base->n, base->n);
    uint32_t op = rng_below(rng, 10);
    m->expect = MUST_REJECT;
    if (op == 0) snprintf(descr, sizeof descr, "%s", rng_below(rng, 3) ? PICK(rng, wrong_descr) : item == 8 ? "<f4" : "<f8");
    else if (op == 1) fortran = "True";
    else if (op == 2) snprintf(shape, sizeof shape, "%s", PICK(rng, wrong_shape));
    else if (op == 3) /* another valid array: no spaces, fewer units, smaller maps */
        k = (int)rng_below(rng, 4), snprintf(shape, sizeof shape, "%s", right_shape[k]), used = right_count[k], m->expect = MUST_ACCEPT;
    if (op <= 3) describe(m, "descr '%s', fortran_order %s, shape %s", descr, fortran, shape);
    if (op == 4) { /* NaN is "unvisited"; -0.0 and subnormals are plain numbers; the rest either way */
        int s = (int)rng_below(rng, COUNT(specials)), scope = (int)rng_below(rng, 4), n = 1 + (int)rng_below(rng, 5);
        size_t unit = rng_below(rng, (uint32_t)base->units);
        for (size_t i = 0; i < count && scope >= 2; i++) v[i] = scope == 3 || i / per_unit == unit ? specials[s].x : v[i];
        for (int i = 0; i < n && scope < 2; i++) v[rng_below(rng, (uint32_t)count)] = specials[s].x;
        describe(m, "%s in %s", specials[s].name, scope < 2 ? "a few bins" : scope == 2 ? "every bin of one unit" : "every bin");
        m->expect = scope == 3 && specials[s].expect == MUST_ACCEPT ? EITHER : specials[s].expect; /* all NaN: no data */
    }
    Buf *out = &m->input;
    npy_file(out, descr, fortran, shape, v, used, item);
    free(v);
    int header = out->data[8] | out->data[9] << 8, wrong_header = PICK(rng, ((const int[]){1, -1, 64, -64, -header, 0xffff - header}));
    if (op == 5) out->data[6] = PICK(rng, ((const uint8_t[]){0, 2, 3, 4, 0xff})), describe(m, "format version %d", out->data[6]);
    if (op == 6) put_le(out, 8, (uint64_t)(header + wrong_header), 2), describe(m, "header length %d, not %d", header + wrong_header, header);
    if (op == 7) out->data[rng_below(rng, 6)] ^= 0x20, describe(m, "magic changed");
    if (op == 8) {
        size_t len = out->len;
        out->len = rng_below(rng, (uint32_t)len), describe(m, "truncated to %zu of %zu bytes", out->len, len);
    }
    for (uint32_t i = 0, n = 1 + rng_below(rng, 100); op == 9 && i < n; i++)
        buf_put(out, (uint8_t[]){(uint8_t)rng_u32(rng)}, 1), describe(m, "%u trailing byte(s)", n);
    snprintf(m->what + strlen(m->what), sizeof m->what - strlen(m->what), " (%s data)", item == 8 ? "<f8" : "<f4");
}

/* ---- a case: mutant, command, outcome, checks ---------------------------------------------------- */
typedef struct { Buf cfg, ckpt; Maps maps; } Bases;

static void make_mutant(Mutant *m, Rng *rng, const Bases *b) {
    uint32_t r = rng_below(rng, 100);
    memset(m, 0, sizeof *m);
    m->steps = "steps=2";
    m->kind = r < 35 ? CONFIG_FILE : r < 45 ? ARGS : r < 60 ? CKPT_RAW : r < 80 ? CKPT_CRC : NPY;
    m->command = m->kind == CONFIG_FILE ? TRAIN_CONFIG : m->kind == ARGS ? TRAIN_ARGS : m->kind == NPY ? SCORE
                                                       : PICK(rng, ((const Command[]){EVAL, DUMP, RESUME}));
    if (m->kind == CONFIG_FILE) mutate_text(m, &b->cfg, rng);
    else if (m->kind == ARGS) mutate_args(m, rng);
    else if (m->kind == CKPT_RAW) mutate_checkpoint_bytes(m, &b->ckpt, rng);
    else if (m->kind == CKPT_CRC) mutate_checkpoint_fields(m, &b->ckpt, rng);
    else mutate_npy(m, &b->maps, rng);
}

static const char *input_name(const Mutant *m) {
    return m->kind == CONFIG_FILE ? "input.cfg" : m->kind == NPY ? "ratemaps.npy" : m->kind == ARGS ? NULL : "checkpoint.bin";
}

/* The command (small models, short runs, small evaluations); input and out are in the case directory. */
static void command_argv(char **argv, Mutant *m, char *input, char *out) {
    char *train[] = {"train", "--config", input, "--out", out, m->steps, "save_every=1", "log_every=1", NULL},
         *eval[] = {"eval", input, "--box", "2", "--out", out, "eval_walks=20", NULL}, *dump[] = {"dump", input, out, NULL},
         *resume[] = {"train", "--resume", input, "--out", out, "steps=61", "save_every=1000", NULL},
         *score[] = {"score", input, "--box", "2", "--out", out, NULL};
    char **tail = m->command == EVAL ? eval : m->command == DUMP ? dump : m->command == RESUME ? resume : m->command == SCORE ? score : train;
    int n = 0;
    argv[n++] = gridssl;
    if (m->command == TRAIN_ARGS) { /* train --config data/tiny.cfg PAIRS --out out steps=... */
        argv[n++] = "train", argv[n++] = "--config", argv[n++] = "data/tiny.cfg";
        for (int i = 0; i < m->n_pairs; i++) argv[n++] = m->pairs[i];
        tail += 3;
    }
    while ((argv[n++] = *tail++)) {}
}

/* The command as bash reads it: $'...' around an argument that is not plain. */
static void shell_command(Buf *b, char **argv) {
    for (int i = 0; argv[i]; i++) {
        int plain = *argv[i] != 0;
        for (const char *p = argv[i]; *p; p++) plain &= strchr("_./=,:+-", *p) || (*p >= '0' && *p <= '9') || ((*p | 32) >= 'a' && (*p | 32) <= 'z');
        buf_printf(b, i ? " %s" : "%s", plain ? argv[i] : "$'");
        for (const char *p = argv[i]; !plain && *p; p++) buf_printf(b, *p >= 0x20 && *p < 0x7f && *p != '\'' && *p != '\\' ? "%c" : "\\x%02x", (unsigned char)*p);
        if (!plain) buf_printf(b, "'");
    }
}

typedef struct { int status, signal, hung; Buf err; } Outcome; /* status: the exit status, -1 if none */
static volatile sig_atomic_t timed_out;
static volatile pid_t running;

static void on_alarm(int sig) {
    (void)sig;
    timed_out = 1;
    if (running > 0) kill(running, SIGKILL);
}

/* Runs argv with stdout to /dev/null and stderr captured; kills it after timeout seconds. It stays in
 * our process group, so that ^C stops it too. */
static Outcome run_command(char **argv, int timeout) {
    Outcome o = {-1, 0, 0, {0}};
    int fd[2], st = 0;
    if (pipe(fd) != 0) perror("fuzz: pipe"), exit(2);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit no_core = {0, 0}; /* a crash is reported here; its core file would litter the disk */
        int null = open("/dev/null", O_RDWR);
        setrlimit(RLIMIT_CORE, &no_core);
        dup2(null, 0), dup2(null, 1), dup2(fd[1], 2), close(fd[0]), close(fd[1]), close(null);
        execv(argv[0], argv);
        _exit(127);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa), sa.sa_handler = on_alarm, sigaction(SIGALRM, &sa, NULL); /* no SA_RESTART */
    close(fd[1]);
    running = pid, timed_out = 0, alarm((unsigned)timeout);
    char chunk[4096];
    for (ssize_t n; (n = read(fd[0], chunk, sizeof chunk)) != 0;)
        if (n > 0) buf_put(&o.err, chunk, (size_t)n);
        else if (errno != EINTR) break;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    alarm(0), running = 0, close(fd[0]);
    o.hung = timed_out, o.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1, o.signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    return o;
}

typedef struct { char check[64], detail[1200]; } Failure;

static int failed(Failure *f, const char *check, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    snprintf(f->check, sizeof f->check, "%s", check), vsnprintf(f->detail, sizeof f->detail, fmt, ap);
    va_end(ap);
    return 1;
}

static int starts(const char *line, size_t len, const char *prefix) { return len >= strlen(prefix) && !memcmp(line, prefix, strlen(prefix)); }

/* Status 1: stderr ends in the one "gridssl: error: " line, of plain text; progress lines before it. */
static int check_error_line(const Buf *err, Failure *f) {
    const char *text = (const char *)err->data, *lines[4096];
    size_t lens[4096], n = 0, errors = 0, first_error = 0;
    char shown[300];
    for (size_t p = 0; p < err->len && n < 4096; p += lens[n++] + 1) {
        const char *nl = memchr(text + p, '\n', err->len - p);
        lines[n] = text + p, lens[n] = nl ? (size_t)(nl - (text + p)) : err->len - p;
        if (starts(lines[n], lens[n], "gridssl: error:") && errors++ == 0) first_error = n;
    }
    if (n == 0) return failed(f, "silent error", "status 1 and nothing on stderr");
    if (errors > 1) return failed(f, "several error lines", "%zu lines start 'gridssl: error:'", errors);
    if (errors == 1 && first_error != n - 1)
        return failed(f, "error spans lines", "%zu line(s) after the error line, the next '%s'", n - 1 - first_error,
                      printable(lines[first_error + 1], lens[first_error + 1], shown, 120));
    if (!starts(lines[n - 1], lens[n - 1], "gridssl: error: ")) return failed(f, "no error line", "status 1, but the last line is no 'gridssl: error: '");
    for (size_t i = 0; i + 1 < n; i++)
        if (!starts(lines[i], lens[i], "gridssl: ") && !starts(lines[i], lens[i], "step "))
            return failed(f, "stray stderr line", "line %zu is not progress: '%s'", i + 1, printable(lines[i], lens[i], shown, 120));
    for (size_t i = 0; i < lens[n - 1]; i++) {
        unsigned char c = (unsigned char)lines[n - 1][i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return failed(f, "control byte in error line", "byte 0x%02x at column %zu", c, i + 1);
    }
    return 0;
}

/* The case directory: the input and out/ only, no *.tmp; out/ as the command and its status demand. */
static int check_files(const Mutant *m, const char *dir, int status, Failure *f) {
    static const char *const main_output[][2] = {{"checkpoint.bin", NULL}, {"checkpoint.bin", NULL}, {"box_2m/scores.csv", "generalisation.csv"},
                                                 {"losses.txt", NULL}, {"checkpoint.bin", NULL}, {"scores.csv", NULL}};
    Buf names = {0};
    list_tree(dir, "", &names), buf_put(&names, "", 1);
    int out = 0, committed = 0, bad = 0, train = m->command == TRAIN_CONFIG || m->command == TRAIN_ARGS || m->command == RESUME;
    char other[300] = "", path[4300];
    struct stat st;
    for (char *name = (char *)names.data, *next; *name && !bad; name = next) {
        next = strchr(name, '\n'), *next++ = 0;
        if (strlen(name) > 4 && !strcmp(name + strlen(name) - 4, ".tmp")) bad = failed(f, "temporary file left", "%s/%s", dir, name);
        else if (!strcmp(name, "out")) out = 1;
        else if (!strcmp(name, "out/config.txt") || !strcmp(name, "out/log.tsv") || !strcmp(name, "out/checkpoint.bin")) committed++;
        else if (!strncmp(name, "out/", 4)) snprintf(other, sizeof other, "%s", name);
        else if (!input_name(m) || strcmp(name, input_name(m))) bad = failed(f, "stray file", "%s/%s", dir, name);
    }
    buf_free(&names);
    int only_committed = committed == 3 && !other[0];
    if (bad) return 1;
    if (status == 1 && out && !(train && only_committed))
        return failed(f, "output left after an error", "%s/out holds %d of config.txt, log.tsv, checkpoint.bin%s%s", dir, committed,
                      other[0] ? " and " : "", other);
    if (status == 0 && train && !only_committed)
        return failed(f, "train output wrong", "%s/out holds %d of config.txt, log.tsv, checkpoint.bin%s%s", dir, committed, other[0] ? " and " : "", other);
    for (int i = 0; i < 2 && status == 0 && main_output[m->command][i]; i++)
        if (snprintf(path, sizeof path, "%s/out/%s", dir, main_output[m->command][i]), stat(path, &st) != 0)
            return failed(f, "main output missing", "status 0 but no %s", path);
    return 0;
}

static int check_case(const Mutant *m, const Outcome *o, const char *dir, int timeout, Failure *f) {
    if (o->hung) return failed(f, "hang", "still running after %d s (killed)", timeout);
    if (o->signal) return failed(f, "crash", "killed by signal %d (%s)", o->signal, strsignal(o->signal));
    if (o->status != 0 && o->status != 1) return failed(f, "exit status", "exit status %d, not 0 or 1", o->status);
    if (o->status == 1 && check_error_line(&o->err, f)) return 1;
    for (size_t p = 0; o->status == 0 && p < o->err.len; p++)
        if ((p == 0 || o->err.data[p - 1] == '\n') && starts((const char *)o->err.data + p, o->err.len - p, "gridssl: error:"))
            return failed(f, "error line on success", "status 0, but stderr has a 'gridssl: error:' line");
    if (check_files(m, dir, o->status, f)) return 1;
    if (o->status == 0 && m->expect == MUST_REJECT) return failed(f, "invalid input accepted", "status 0");
    if (o->status == 1 && m->expect == MUST_ACCEPT) return failed(f, "valid input refused", "status 1");
    return 0;
}

/* ---- the run: cases in parallel processes, reported in case order -------------------------------- */
typedef struct { int cases, first, jobs, timeout, keep; uint64_t seed; } Options;
typedef struct { int32_t case_no, kind, status, failed; char check[64], report[3500]; } Result; /* < PIPE_BUF: written at once */

static int digit(char c) { return c >= '0' && c <= '9'; }

/* stderr's last line (the first, of a process killed at a random moment), printable, every duration or
 * rate ("0m01s", "(0.1 s)", "12.5 steps/s") as '#': they vary from run to run, the report must not. */
static void stderr_line(const Buf *err, int first, char *out, size_t size) {
    size_t end = err->len, start;
    while (end > 0 && err->data[end - 1] == '\n') end--;
    for (start = end; start > 0 && err->data[start - 1] != '\n'; start--) {}
    if (first)
        for (start = end = 0; end < err->len && err->data[end] != '\n'; end++) {}
    char line[1000], *o = out;
    printable(err->len ? (const char *)err->data + start : "", end - start, line, sizeof line);
    for (const char *p = line; *p && o + 2 < out + size; p++) {
        const char *e = p, *token_end = NULL;
        if (digit(*p) && (p == line || !(digit(p[-1]) || p[-1] == '.'))) {
            while (digit(*e) || *e == '.') e++;
            if (!strncmp(e, " s)", 3) || !strncmp(e, " steps/s", 8)) token_end = e;
            else if ((*e == 'm' || *e == 'h') && digit(e[1])) {
                for (e++; digit(*e); e++) {}
                if (*e == 's' || *e == 'm') token_end = e + 1;
            }
        }
        *o++ = token_end ? '#' : *p;
        if (token_end) p = token_end - 1;
    }
    *o = 0;
}

static Result run_case(int case_no, const Options *opt, const Bases *b) {
    Rng rng = rng_seed(opt->seed, (uint64_t)case_no);
    Mutant m;
    make_mutant(&m, &rng, b);
    char dir[256], input[300], out[300], *argv[24], last[400], path[400];
    snprintf(dir, sizeof dir, FUZZ_DIR "/case_%05d", case_no), snprintf(out, sizeof out, "%s/out", dir);
    snprintf(input, sizeof input, "%s/%s", dir, input_name(&m) ? input_name(&m) : "");
    remove_tree(dir), mkdir(dir, 0777);
    if (input_name(&m)) spit(input, m.input.data, m.input.len);
    command_argv(argv, &m, input, out);
    Outcome o = run_command(argv, opt->timeout);
    Failure f = {"", ""};
    Result r = {case_no, m.kind, o.hung || o.signal || o.status > 1 || o.status < 0 ? -1 : o.status, 0, "", ""};
    r.failed = check_case(&m, &o, dir, opt->timeout, &f);
    Buf cmd = {0}, script = {0};
    shell_command(&cmd, argv), buf_put(&cmd, "", 1);
    stderr_line(&o.err, o.hung, last, sizeof last);
    snprintf(r.check, sizeof r.check, "%s", f.check);
    snprintf(r.report, sizeof r.report, "%s case %d [%s: %s] %.300s%s | %s%s%s | stderr: %s", r.failed ? "FAIL" : "ok  ", case_no,
             kind_names[m.kind], m.what, (const char *)cmd.data, cmd.len > 301 ? "..." : "", r.failed ? f.check : "status ",
             r.failed ? ": " : o.status ? "1" : "0", f.detail, last);
    if (r.failed || opt->keep) {
        buf_printf(&script, "# case %d, %s: %s\nrm -rf %s\n%s\n", case_no, kind_names[m.kind], m.what, out, (const char *)cmd.data);
        snprintf(path, sizeof path, "%s/cmd.txt", dir), spit(path, script.data, script.len);
        snprintf(path, sizeof path, "%s/stderr.txt", dir), spit(path, o.err.data, o.err.len);
    } else
        remove_tree(dir);
    buf_free(&cmd), buf_free(&script), buf_free(&o.err), buf_free(&m.input);
    return r;
}

static void report(const Options *opt, const Result *results) {
    int total_failed = 0;
    printf("\n%-24s %7s %9s %9s %7s\n", "input kind", "cases", "accepted", "rejected", "failed");
    for (int k = 0; k < NUM_KINDS; k++) {
        int n = 0, accepted = 0, rejected = 0, bad = 0;
        for (const Result *r = results; r < results + opt->cases; r++)
            if (r->kind == k) n++, accepted += r->status == 0, rejected += r->status == 1, bad += r->failed;
        printf("%-24s %7d %9d %9d %7d\n", kind_names[k], n, accepted, rejected, bad);
        total_failed += bad;
    }
    if (total_failed) printf("\nfailed checks:\n");
    for (int i = 0; i < opt->cases; i++) { /* each failed check once: how often, and its first case */
        int count = 0, seen = 0;
        for (int j = 0; j < opt->cases && results[i].failed && !seen; j++)
            if (results[j].failed && !strcmp(results[j].check, results[i].check)) seen = j < i, count++;
        if (results[i].failed && !seen)
            printf("  %-28s %5d  (first: ./tests/fuzz --seed %llu --case %d%s%s)\n", results[i].check, count, (unsigned long long)opt->seed,
                   results[i].case_no, strcmp(gridssl, "./gridssl") ? " --gridssl " : "", strcmp(gridssl, "./gridssl") ? gridssl : "");
    }
    printf("%d passed, %d failed\n", opt->cases - total_failed, total_failed);
}

/* Forks up to --jobs case processes; each sends its Result through one pipe and exits. */
static int run_all(const Options *opt, const Bases *b) {
    Result *results = xcalloc((size_t)opt->cases, sizeof(Result)), r;
    char *done = xcalloc((size_t)opt->cases, 1);
    int fd[2], next = 0, printed = 0, active = 0, st, total_failed = 0;
    if (pipe(fd) != 0) perror("fuzz: pipe"), exit(2);
    while (printed < opt->cases) {
        for (; active < opt->jobs && next < opt->cases; next++, active++) {
            fflush(stdout);
            pid_t pid = fork();
            if (pid < 0) perror("fuzz: fork"), exit(2);
            if (pid == 0) {
                close(fd[0]), r = run_case(opt->first + next, opt, b);
                _exit(write(fd[1], &r, sizeof r) == (ssize_t)sizeof r ? 0 : 3);
            }
        }
        if (wait(&st) < 0) continue;
        active--;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fprintf(stderr, "fuzz: a case process died (status 0x%x)\n", st), exit(2);
        if (read(fd[0], &r, sizeof r) != (ssize_t)sizeof r) perror("fuzz: read"), exit(2);
        results[r.case_no - opt->first] = r, done[r.case_no - opt->first] = 1;
        for (; printed < opt->cases && done[printed]; printed++) {
            if (results[printed].failed || opt->cases == 1) printf("%s\n", results[printed].report);
            if ((printed + 1) % 1000 == 0) printf("fuzz: %d of %d cases run\n", printed + 1, opt->cases);
            total_failed += results[printed].failed;
        }
    }
    report(opt, results);
    free(results), free(done);
    return total_failed ? 1 : 0;
}

/* ---- the bases: tiny.cfg, a checkpoint of 60 steps on it, its ratemaps (and the same as '<f8') ---- */
static void make_base(char **argv, const char *what) {
    Outcome o = run_command(argv, 300);
    char last[400];
    if (o.status != 0)
        stderr_line(&o.err, 0, last, sizeof last), fprintf(stderr, "fuzz: cannot make %s (status %d): %s\n", what, o.status, last), exit(2);
    buf_free(&o.err);
}

static void load_bases(Bases *b) {
    Buf npy = {0};
    char header[1024] = "";
    remove_tree(FUZZ_DIR "/base");
    make_base((char *[]){gridssl, "train", "--config", "data/tiny.cfg", "--out", FUZZ_DIR "/base", NULL}, "the base checkpoint");
    make_base((char *[]){gridssl, "eval", FUZZ_DIR "/base/checkpoint.bin", "--box", "2", "--out", FUZZ_DIR "/base/eval", NULL}, "the base ratemaps");
    memset(b, 0, sizeof *b);
    if (slurp("data/tiny.cfg", &b->cfg) || slurp(FUZZ_DIR "/base/checkpoint.bin", &b->ckpt) || slurp(FUZZ_DIR "/base/eval/box_2m/ratemaps.npy", &npy))
        fprintf(stderr, "fuzz: cannot read the bases\n"), exit(2);
    size_t data_at = npy.len > 10 ? 10 + (size_t)(npy.data[8] | npy.data[9] << 8) : 0;
    if (data_at > 10 && data_at < sizeof header) memcpy(header, npy.data + 10, data_at - 10);
    const char *shape = strstr(header, "'shape': (");
    if (!shape || sscanf(shape, "'shape': (%d, %d, %d)", &b->maps.units, &b->maps.n, &b->maps.n) != 3 || b->maps.units * b->maps.n * b->maps.n != 3072 ||
        npy.len != data_at + 4 * 3072 || layout_of(&b->ckpt).params_at + 12 * layout_of(&b->ckpt).num_params + 4 != b->ckpt.len)
        fprintf(stderr, "fuzz: the bases are not a float checkpoint and '<f4' (12, 16, 16) ratemaps\n"), exit(2);
    b->maps.values = xcalloc(3072, sizeof(double));
    Rd r = {npy.data, npy.len, data_at, 0};
    for (size_t i = 0; i < 3072; i++) {
        uint32_t u = rd_u32(&r);
        float x;
        memcpy(&x, &u, 4), b->maps.values[i] = x;
    }
    buf_free(&npy);
}

int main(int argc, char **argv) {
    Options opt = {10000, 0, 2, 60, 0, 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--keep")) opt.keep = 1;
        else if (v && !strcmp(a, "--cases") && (opt.cases = atoi(v)) > 0) i++;
        else if (v && !strcmp(a, "--seed")) opt.seed = strtoull(v, NULL, 10), i++;
        else if (v && !strcmp(a, "--jobs") && (opt.jobs = atoi(v)) > 0) i++;
        else if (v && !strcmp(a, "--timeout") && (opt.timeout = atoi(v)) > 0) i++;
        else if (v && !strcmp(a, "--gridssl")) gridssl = argv[++i];
        else if (v && !strcmp(a, "--case") && (opt.first = atoi(v)) >= 0) opt.cases = 1, opt.keep = 1, i++;
        else return fprintf(stderr, "usage: ./tests/fuzz [--cases N] [--seed S] [--jobs J] [--timeout SECONDS] [--keep] [--case K] [--gridssl PATH]\n"), 2;
    }
    if (access(gridssl, X_OK) != 0 || access("data/tiny.cfg", R_OK) != 0)
        return fprintf(stderr, "fuzz: run from the repository root, after make gridssl\n"), 2;
    memset(long_number, '7', 2000), long_number[0] = '1';
    mkdir("tests/out", 0777);
    if (opt.cases > 1) remove_tree(FUZZ_DIR); /* --case K leaves the other kept cases alone */
    mkdir(FUZZ_DIR, 0777);
    Bases b;
    load_bases(&b);
    printf("fuzz: %d case(s) from case %d, seed %llu, in " FUZZ_DIR "/case_NNNNN (kept if failing)\n", opt.cases, opt.first, (unsigned long long)opt.seed);
    int rc = run_all(&opt, &b);
    if (!opt.keep) remove_tree(FUZZ_DIR "/base");
    return rc;
}
