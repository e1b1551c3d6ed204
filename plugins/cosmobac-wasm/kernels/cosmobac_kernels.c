/*
 * cosmobac_kernels.c: the WebAssembly module shipped with the cosmobac-wasm plugin.
 *
 * One module, two uses:
 *
 *  1. Batch kernels for the `wasm` transform (ABI version 1, docs/wasm.md "ABI reference"):
 *     the module exports `memory`, `alloc`, `dealloc`, `abi_version`, `error_message` and kernels
 *     over pointers into its linear memory. Every kernel returns 0 on success, or a non-zero code
 *     with a message that `error_message()` returns.
 *
 *       map kernel:      int32 K(int32 n, const double *in..., double *out..., double p...)
 *       grouped kernel:  int32 K(int32 n, const int32 *group, int32 ngroups, double *state,
 *                                const double *in..., double *out..., double p...)
 *                        plus  int32 K__state(double p...) = doubles of state per group (< 0:
 *                        invalid parameters). A new group's state is all zeros.
 *
 *  2. A WASI command (`_start`): reads a CSV file, runs one kernel over some of its columns and
 *     writes a CSV file, so the same module runs as a Bacalhau WASM job and under
 *     `cosmobac wasm run` (see usage() below).
 *
 * Numbers follow IEEE 754 double precision exactly as numpy does for the same formula (no fused
 * multiply-add, no fast-math). Missing values are NaN; non-finite values count as missing in window
 * statistics, and nothing missing is ever turned into 0.0.
 *
 * Build: python plugins/cosmobac-wasm/build_kernels.py (zig cc from the `ziglang` package).
 */

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT(name) __attribute__((export_name(name)))

#define ABI_VERSION 1
#define MAX_WINDOW 100000

/* -- ABI plumbing --------------------------------------------------------------------------- */

static const char *last_error = "";

static int32_t fail(const char *message) {
    last_error = message;
    return 1;
}

EXPORT("abi_version") int32_t abi_version(void) { return ABI_VERSION; }

/* A 16-byte aligned block of `size` bytes, or 0 when memory is exhausted. */
EXPORT("alloc") void *cb_alloc(int32_t size) {
    if (size < 0) return NULL;
    size_t rounded = ((size_t)size + 15u) & ~(size_t)15u;
    return aligned_alloc(16, rounded ? rounded : 16);
}

EXPORT("dealloc") void cb_dealloc(void *block) { free(block); }

/* The NUL-terminated message of the last failure (valid until the next kernel call). */
EXPORT("error_message") const char *error_message(void) { return last_error; }

/* -- element-wise kernels -------------------------------------------------------------------
 *
 * MAP runs EXPR (of the input value `v`) over blocks of 32 rows: the inner loop has a constant trip
 * count, so it is unrolled and vectorised, and the runtime's interruption check (one per loop
 * iteration) is paid once per block instead of once per row.
 */
#define MAP_BLOCK 32
#define MAP(x, y, n, EXPR)                                                                        \
    do {                                                                                          \
        int32_t i_ = 0;                                                                           \
        for (; i_ + MAP_BLOCK <= (n); i_ += MAP_BLOCK) {                                          \
            const double *xb_ = (x) + i_;                                                         \
            double *yb_ = (y) + i_;                                                               \
            for (int32_t j_ = 0; j_ < MAP_BLOCK; j_++) {                                          \
                double v = xb_[j_];                                                               \
                yb_[j_] = (EXPR);                                                                 \
            }                                                                                     \
        }                                                                                         \
        for (; i_ < (n); i_++) {                                                                  \
            double v = (x)[i_];                                                                   \
            (y)[i_] = (EXPR);                                                                     \
        }                                                                                         \
    } while (0)

/* y = x * gain + offset (two roundings, as numpy computes it). */
EXPORT("calibrate")
int32_t calibrate(int32_t n, const double *x, double *y, double gain, double offset) {
    if (n < 0) return fail("n must not be negative");
    if (!isfinite(gain) || !isfinite(offset)) return fail("gain and offset must be finite numbers");
    MAP(x, y, n, v * gain + offset);
    return 0;
}

/* °C to °F: y = x * 1.8 + 32. */
EXPORT("celsius_to_fahrenheit")
int32_t celsius_to_fahrenheit(int32_t n, const double *x, double *y) {
    if (n < 0) return fail("n must not be negative");
    MAP(x, y, n, v * 1.8 + 32.0);
    return 0;
}

/* Pa to hPa: y = x / 100. */
EXPORT("pascal_to_hectopascal")
int32_t pascal_to_hectopascal(int32_t n, const double *x, double *y) {
    if (n < 0) return fail("n must not be negative");
    MAP(x, y, n, v / 100.0);
    return 0;
}

/* y = x when lo <= x <= hi, else NaN (missing): never 0.0. NaN stays NaN. */
EXPORT("valid_range")
int32_t valid_range(int32_t n, const double *x, double *y, double lo, double hi) {
    if (n < 0) return fail("n must not be negative");
    if (isnan(lo) || isnan(hi)) return fail("lo and hi must be numbers (not NaN)");
    if (lo > hi) return fail("lo must not be greater than hi");
    MAP(x, y, n, ((v >= lo) & (v <= hi)) ? v : NAN); /* `&`, not `&&`: no branch, vectorised */
    return 0;
}

/* -- fused chains of map kernels --------------------------------------------------------------
 *
 * int32 cosmobac_chain(int32 n, int32 *program) runs several of the map kernels above over the
 * same n rows, block by block: each block of CHAIN_BLOCK rows goes through every step before the
 * next block starts, so the values stay in the CPU's first-level cache between the kernels. A map
 * kernel's output row depends only on its input row, so the results are exactly those of running
 * each kernel over all n rows in turn.
 *
 * program (int32 values): [0] number of steps, [1] the step running (0-based; after a failure, or a
 * trap, the one that failed),
 * then per step: the kernel's name (pointer to a NUL-terminated string), inputs, outputs,
 * parameters (counts), a pointer to the parameters (doubles), then the input and output column
 * pointers. Returns 0, or non-zero with error_message() (also before any row, n = 0, for a kernel
 * it cannot run or wrong counts).
 */
#define CHAIN_BLOCK 512
#define CHAIN_STEPS 64

enum { K_CALIBRATE = 1, K_C2F, K_PA2HPA, K_VALID_RANGE };

typedef struct {
    int32_t kind;
    const double *p;
    const double *x;
    double *y;
} chain_step;

static int32_t chain_kind(const char *name, int32_t nin, int32_t nout, int32_t np) {
    if (nin != 1 || nout != 1) return 0;
    if (!strcmp(name, "calibrate") && np == 2) return K_CALIBRATE;
    if (!strcmp(name, "celsius_to_fahrenheit") && np == 0) return K_C2F;
    if (!strcmp(name, "pascal_to_hectopascal") && np == 0) return K_PA2HPA;
    if (!strcmp(name, "valid_range") && np == 2) return K_VALID_RANGE;
    return 0;
}

static int32_t chain_run(const chain_step *s, int32_t rows, int32_t at) {
    const double *x = s->x + at;
    double *y = s->y + at;
    switch (s->kind) {
    case K_CALIBRATE: return calibrate(rows, x, y, s->p[0], s->p[1]);
    case K_C2F: return celsius_to_fahrenheit(rows, x, y);
    case K_PA2HPA: return pascal_to_hectopascal(rows, x, y);
    case K_VALID_RANGE: return valid_range(rows, x, y, s->p[0], s->p[1]);
    }
    return fail("unknown step");
}

EXPORT("cosmobac_chain")
int32_t cosmobac_chain(int32_t n, int32_t *program) {
    static chain_step steps[CHAIN_STEPS];
    int32_t count = program[0];
    program[1] = 0;
    if (n < 0) return fail("n must not be negative");
    if (count < 1 || count > CHAIN_STEPS) return fail("a chain has 1 to 64 steps");
    const int32_t *p = program + 2;
    for (int32_t i = 0; i < count; i++) {
        int32_t kind = chain_kind((const char *)(uintptr_t)p[0], p[1], p[2], p[3]);
        program[1] = i;
        if (!kind) return fail("cosmobac_chain runs calibrate, celsius_to_fahrenheit, "
                               "pascal_to_hectopascal and valid_range (one input, one output)");
        steps[i].kind = kind;
        steps[i].p = (const double *)(uintptr_t)p[4];
        steps[i].x = (const double *)(uintptr_t)p[5];
        steps[i].y = (double *)(uintptr_t)p[6];
        p += 7;
    }
    for (int32_t at = 0; at < n; at += CHAIN_BLOCK) {
        int32_t rows = n - at < CHAIN_BLOCK ? n - at : CHAIN_BLOCK;
        for (int32_t i = 0; i < count; i++) {
            program[1] = i; /* the step running, for the host's message if it traps */
            if (chain_run(&steps[i], rows, at)) return 1;
        }
    }
    return 0;
}

/* -- windowed kernels, per group (sensor) ---------------------------------------------------
 *
 * A window holds the last `window` rows of a group, in row order: the current row included for
 * the moving average, excluded for the z-score (a reading is compared with its history).
 * Non-finite values (NaN, ±Inf) in a window are skipped: statistics use the finite ones. The
 * state carries over from one call to the next (the host saves it between batches), so splitting
 * the rows into calls anywhere gives the same results.
 *
 * Both keep, per group: [0] rows held (<= window), [1] next ring slot, [2] sum and [3] count of the
 * finite values held, then the ring of the last `window` rows. The sum is recomputed from the ring
 * each time the ring wraps, so rounding never drifts beyond one window.
 */
#define HEADER 4

static int32_t window_size(double window) {
    if (!(window >= 1.0 && window <= (double)MAX_WINDOW) || window != floor(window)) return -1;
    return (int32_t)window;
}

static int32_t check_groups(int32_t n, const int32_t *group, int32_t ngroups) {
    if (n < 0) return fail("n must not be negative");
    if (ngroups < 0) return fail("ngroups must not be negative");
    int32_t bad = 0;
    for (int32_t i = 0; i < n; i++) bad |= (group[i] < 0) | (group[i] >= ngroups);
    return bad ? fail("a group index is out of range") : 0;
}

typedef struct {
    double *ring;
    int32_t held, slot;
    double sum, count;
} window_state;

static int32_t window_load(window_state *w, double *s, int32_t size) {
    w->ring = s + HEADER;
    w->held = (int32_t)s[0];
    w->slot = (int32_t)s[1];
    w->sum = s[2];
    w->count = s[3];
    return (w->held < 0 || w->held > size || w->slot < 0 || w->slot >= size);
}

/* Adds v as the newest row (dropping the oldest when full). */
static void window_push(window_state *w, double *s, int32_t size, double v) {
    if (w->held == size) {
        double old = w->ring[w->slot];
        if (isfinite(old)) {
            w->sum -= old;
            w->count -= 1.0;
        }
    } else {
        w->held++;
    }
    w->ring[w->slot] = v;
    if (isfinite(v)) {
        w->sum += v;
        w->count += 1.0;
    }
    if (++w->slot == size) {
        w->slot = 0;
        double sum = 0.0, count = 0.0;
        for (int32_t j = 0; j < w->held; j++) {
            double r = w->ring[j];
            int finite = isfinite(r);
            sum += finite ? r : 0.0;
            count += finite ? 1.0 : 0.0;
        }
        w->sum = sum;
        w->count = count;
    }
    s[0] = (double)w->held;
    s[1] = (double)w->slot;
    s[2] = w->sum;
    s[3] = w->count;
}

static int32_t state_size(double window) {
    int32_t w = window_size(window);
    if (w < 0) {
        fail("window must be a whole number from 1 to 100000");
        return -1;
    }
    return HEADER + w;
}

EXPORT("moving_average__state") int32_t moving_average_state(double window) {
    return state_size(window);
}

/* y = mean of the finite values among the group's last `window` rows (this one included); NaN
 * when there are none. */
EXPORT("moving_average")
int32_t moving_average(int32_t n, const int32_t *group, int32_t ngroups, double *state,
                       const double *x, double *y, double window) {
    int32_t size = window_size(window);
    if (size < 0) return fail("window must be a whole number from 1 to 100000");
    if (check_groups(n, group, ngroups)) return 1;
    const size_t stride = (size_t)(HEADER + size);
    for (int32_t i = 0; i < n; i++) {
        double *s = state + (size_t)group[i] * stride;
        window_state w;
        if (window_load(&w, s, size)) return fail("corrupt window state");
        window_push(&w, s, size, x[i]);
        y[i] = w.count > 0.0 ? w.sum / w.count : NAN;
    }
    return 0;
}

EXPORT("zscore__state") int32_t zscore_state(double window) { return state_size(window); }

EXPORT("zscore_flag__state") int32_t zscore_flag_state(double window, double threshold) {
    if (!(threshold > 0.0) || !isfinite(threshold)) {
        fail("threshold must be a positive finite number");
        return -1;
    }
    return state_size(window);
}

/* z = (x - mean) / sd over the finite values among the group's previous `window` rows: mean from
 * the running sum, sample standard deviation (n - 1) from a second pass over the ring (four
 * partial sums, a fixed order). NaN when x is not finite or fewer than two finite values precede
 * it; a constant history gives ±Inf for a different x. */
static int32_t zscore_run(int32_t n, const int32_t *group, int32_t ngroups, double *state,
                          const double *x, double *z, double *flag, int32_t size,
                          double threshold) {
    if (check_groups(n, group, ngroups)) return 1;
    const size_t stride = (size_t)(HEADER + size);
    for (int32_t i = 0; i < n; i++) {
        double *s = state + (size_t)group[i] * stride;
        window_state w;
        if (window_load(&w, s, size)) return fail("corrupt window state");
        double v = x[i], score = NAN;
        if (w.count >= 2.0 && isfinite(v)) {
            double mean = w.sum / w.count;
            double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
            int32_t j = 0;
            for (; j + 4 <= w.held; j += 4) {
                double r0 = w.ring[j], r1 = w.ring[j + 1], r2 = w.ring[j + 2], r3 = w.ring[j + 3];
                double d0 = r0 - mean, d1 = r1 - mean, d2 = r2 - mean, d3 = r3 - mean;
                a0 += isfinite(r0) ? d0 * d0 : 0.0;
                a1 += isfinite(r1) ? d1 * d1 : 0.0;
                a2 += isfinite(r2) ? d2 * d2 : 0.0;
                a3 += isfinite(r3) ? d3 * d3 : 0.0;
            }
            for (; j < w.held; j++) {
                double d = w.ring[j] - mean;
                a0 += isfinite(w.ring[j]) ? d * d : 0.0;
            }
            double squares = (a0 + a1) + (a2 + a3);
            score = (v - mean) / sqrt(squares / (w.count - 1.0));
        }
        if (z) z[i] = score;
        if (flag) flag[i] = fabs(score) > threshold ? 1.0 : 0.0; /* NaN compares false: 0 */
        window_push(&w, s, size, v);
    }
    return 0;
}

EXPORT("zscore")
int32_t zscore(int32_t n, const int32_t *group, int32_t ngroups, double *state, const double *x,
               double *z, double window) {
    int32_t size = window_size(window);
    if (size < 0) return fail("window must be a whole number from 1 to 100000");
    return zscore_run(n, group, ngroups, state, x, z, NULL, size, 0.0);
}

/* flag = 1.0 when |z| > threshold, else 0.0 (also when z is NaN: no history, missing value). */
EXPORT("zscore_flag")
int32_t zscore_flag(int32_t n, const int32_t *group, int32_t ngroups, double *state,
                    const double *x, double *flag, double window, double threshold) {
    int32_t size = window_size(window);
    if (size < 0) return fail("window must be a whole number from 1 to 100000");
    if (!(threshold > 0.0) || !isfinite(threshold))
        return fail("threshold must be a positive finite number");
    return zscore_run(n, group, ngroups, state, x, NULL, flag, size, threshold);
}

/* -- the WASI command: CSV in, CSV out ------------------------------------------------------- */

enum {
    EXIT_OK = 0,
    EXIT_USAGE = 2,     /* bad arguments or environment */
    EXIT_INPUT = 3,     /* the input file cannot be read */
    EXIT_OUTPUT = 4,    /* the output file cannot be written */
    EXIT_DATA = 5,      /* the input is not a CSV the kernel can use */
    EXIT_MEMORY = 6,    /* out of memory */
    EXIT_KERNEL = 7,    /* the kernel refused its parameters */
};

typedef struct {
    const char *name;
    int32_t nparams;
    int32_t grouped;
    const char *params_help;
} kernel_info;

static const kernel_info KERNELS[] = {
    {"calibrate", 2, 0, "GAIN,OFFSET"},
    {"celsius_to_fahrenheit", 0, 0, ""},
    {"pascal_to_hectopascal", 0, 0, ""},
    {"valid_range", 2, 0, "LO,HI"},
    {"moving_average", 1, 1, "WINDOW"},
    {"zscore", 1, 1, "WINDOW"},
    {"zscore_flag", 2, 1, "WINDOW,THRESHOLD"},
};
#define NKERNELS (sizeof KERNELS / sizeof KERNELS[0])

static int32_t kernel_state_size(const char *name, const double *p) {
    if (!strcmp(name, "moving_average")) return moving_average_state(p[0]);
    if (!strcmp(name, "zscore")) return zscore_state(p[0]);
    if (!strcmp(name, "zscore_flag")) return zscore_flag_state(p[0], p[1]);
    return 0;
}

static int32_t kernel_run(const char *name, int32_t n, const int32_t *group, int32_t ngroups,
                          double *state, const double *x, double *y, const double *p) {
    if (!strcmp(name, "calibrate")) return calibrate(n, x, y, p[0], p[1]);
    if (!strcmp(name, "celsius_to_fahrenheit")) return celsius_to_fahrenheit(n, x, y);
    if (!strcmp(name, "pascal_to_hectopascal")) return pascal_to_hectopascal(n, x, y);
    if (!strcmp(name, "valid_range")) return valid_range(n, x, y, p[0], p[1]);
    if (!strcmp(name, "moving_average"))
        return moving_average(n, group, ngroups, state, x, y, p[0]);
    if (!strcmp(name, "zscore")) return zscore(n, group, ngroups, state, x, y, p[0]);
    if (!strcmp(name, "zscore_flag"))
        return zscore_flag(n, group, ngroups, state, x, y, p[0], p[1]);
    return fail("unknown kernel");
}

static void usage(FILE *to) {
    fputs("cosmobac kernels: run one kernel over columns of a CSV file.\n"
          "\n"
          "usage: [INPUT.csv [OUTPUT.csv]]   (argv[0] is ignored; Bacalhau passes \"\")\n"
          "  INPUT   default: $INPUT, else /inputs/readings.csv\n"
          "  OUTPUT  default: $OUTPUT, else /outputs/readings.csv (written once)\n"
          "environment:\n"
          "  KERNEL=name            required; one of the kernels below\n"
          "  COLUMNS=a,b            required; columns to run the kernel on, each on its own\n"
          "  PARAMS=p1,p2           the kernel's parameters, for every column\n"
          "  PARAMS_<COLUMN>=p1,p2  parameters for one column (name in upper case)\n"
          "  OUTPUTS=c,d            output column per input column (default: replace in place)\n"
          "  GROUP_BY=sensor_id     column whose values key the windows (empty: one window)\n"
          "kernels:\n",
          to);
    for (size_t i = 0; i < NKERNELS; i++)
        fprintf(to, "  %-22s PARAMS=%s%s\n", KERNELS[i].name, KERNELS[i].params_help,
                KERNELS[i].grouped ? "   (windows per group)" : "");
    fputs("exit codes: 0 ok, 2 usage, 3 input, 4 output, 5 bad data, 6 memory, 7 parameters\n",
          to);
}

__attribute__((noreturn, format(printf, 2, 3))) static void die(int code, const char *format,
                                                                  ...) {
    va_list args;
    va_start(args, format);
    fputs("cosmobac kernels: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    exit(code);
}

static void *need(void *block) {
    if (!block) die(EXIT_MEMORY, "out of memory");
    return block;
}

/* A growable byte buffer. */
typedef struct {
    char *data;
    size_t len, cap;
} buffer;

static void buf_reserve(buffer *b, size_t extra) {
    if (b->len + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    b->data = need(realloc(b->data, cap));
    b->cap = cap;
}

static void buf_put(buffer *b, const char *bytes, size_t n) {
    buf_reserve(b, n);
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
}

static char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) die(EXIT_INPUT, "cannot open input %s: %s", path, strerror(errno));
    buffer b = {0};
    for (;;) {
        buf_reserve(&b, 1 << 16);
        size_t got = fread(b.data + b.len, 1, b.cap - b.len, f);
        b.len += got;
        if (got == 0) break;
    }
    if (ferror(f)) die(EXIT_INPUT, "cannot read input %s: %s", path, strerror(errno));
    fclose(f);
    buf_reserve(&b, 1);
    b.data[b.len] = '\0';
    *size = b.len;
    return b.data;
}

/* One field of the CSV: its raw bytes (quotes included) in the input buffer. */
typedef struct {
    uint32_t start, len;
} span;

typedef struct {
    const char *text;
    size_t size;
    size_t ncols, nrows;
    span *fields; /* nrows * ncols, row-major */
} table;

/* Splits RFC 4180 CSV (quoted fields, "" escapes, CRLF or LF, no trailing newline needed). */
static void parse_csv(table *t) {
    const char *s = t->text;
    size_t n = t->size, pos = 0, cap = 0, count = 0, line = 1;
    t->ncols = 0;
    t->nrows = 0;
    t->fields = NULL;
    while (pos < n) {
        size_t row_start = count;
        if (s[pos] == '\n' || (s[pos] == '\r' && pos + 1 < n && s[pos + 1] == '\n')) {
            pos += s[pos] == '\r' ? 2 : 1; /* an empty line: skipped */
            line++;
            continue;
        }
        for (;;) {
            size_t start = pos;
            if (pos < n && s[pos] == '"') {
                pos++;
                for (;;) {
                    if (pos >= n) die(EXIT_DATA, "line %zu: a quoted field is not closed", line);
                    if (s[pos] == '"') {
                        if (pos + 1 < n && s[pos + 1] == '"') {
                            pos += 2;
                            continue;
                        }
                        pos++;
                        break;
                    }
                    if (s[pos] == '\n') line++;
                    pos++;
                }
            } else {
                while (pos < n && s[pos] != ',' && s[pos] != '\n' && s[pos] != '\r') pos++;
            }
            if (count == cap) {
                cap = cap ? cap * 2 : 1024;
                t->fields = need(realloc(t->fields, cap * sizeof(span)));
            }
            if (pos - start > UINT32_MAX || start > UINT32_MAX)
                die(EXIT_DATA, "the input is too large (more than 4 GiB)");
            t->fields[count++] = (span){(uint32_t)start, (uint32_t)(pos - start)};
            if (pos < n && s[pos] == ',') {
                pos++;
                continue;
            }
            if (pos < n && s[pos] == '\r') pos++;
            if (pos < n && s[pos] == '\n') pos++;
            else if (pos < n)
                die(EXIT_DATA, "line %zu: unexpected character after a quoted field", line);
            break;
        }
        size_t width = count - row_start;
        if (t->ncols == 0) {
            t->ncols = width;
        } else if (width != t->ncols) {
            die(EXIT_DATA, "line %zu has %zu fields, the header %zu", line, width, t->ncols);
        }
        line++;
    }
    if (t->ncols == 0) die(EXIT_DATA, "the input is empty: a header line is needed");
    t->nrows = count / t->ncols - 1;
}

/* The text of a field, quotes removed and "" unescaped, as a new NUL-terminated string. */
static char *field_text(const table *t, span f) {
    const char *p = t->text + f.start;
    char *out = need(malloc(f.len + 1)), *o = out;
    if (f.len >= 2 && p[0] == '"') {
        for (uint32_t i = 1; i + 1 < f.len; i++) {
            *o++ = p[i];
            if (p[i] == '"') i++;
        }
    } else {
        memcpy(o, p, f.len);
        o += f.len;
    }
    *o = '\0';
    return out;
}

static span field(const table *t, size_t row, size_t col) {
    return t->fields[(row + 1) * t->ncols + col]; /* row 0 is the header */
}

static long find_column(const table *t, const char *name) {
    for (size_t c = 0; c < t->ncols; c++) {
        char *text = field_text(t, t->fields[c]);
        int same = strcmp(text, name) == 0;
        free(text);
        if (same) return (long)c;
    }
    return -1;
}

static double parse_number(const table *t, size_t row, size_t col, const char *column) {
    span f = field(t, row, col);
    char small[64];
    const char *p = t->text + f.start;
    uint32_t len = f.len;
    if (len >= 2 && p[0] == '"') {
        p++;
        len -= 2;
    }
    if (len == 0) return NAN; /* empty: missing */
    if (len >= sizeof small) goto bad;
    memcpy(small, p, len);
    small[len] = '\0';
    char *end;
    double v = strtod(small, &end);
    if (end == small || *end != '\0') goto bad;
    return v;
bad:
    die(EXIT_DATA, "row %zu, column %s: %s is not a number", row + 1, column, field_text(t, f));
}

/* Dense group indices (0, 1, ... in order of first appearance) of a column's raw values. */
static int32_t group_rows(const table *t, long col, int32_t *group) {
    if (col < 0) {
        for (size_t r = 0; r < t->nrows; r++) group[r] = 0;
        return t->nrows ? 1 : 0;
    }
    size_t cap = 16;
    while (cap < 2 * t->nrows + 2) cap *= 2;
    int64_t *slots = need(malloc(cap * sizeof(int64_t))); /* row of the group's first value */
    int32_t *ids = need(malloc(cap * sizeof(int32_t)));
    for (size_t i = 0; i < cap; i++) slots[i] = -1;
    int32_t ngroups = 0;
    for (size_t r = 0; r < t->nrows; r++) {
        span f = field(t, r, (size_t)col);
        const unsigned char *p = (const unsigned char *)t->text + f.start;
        uint32_t h = 2166136261u; /* FNV-1a */
        for (uint32_t i = 0; i < f.len; i++) h = (h ^ p[i]) * 16777619u;
        size_t k = h & (cap - 1);
        for (;;) {
            if (slots[k] < 0) {
                slots[k] = (int64_t)r;
                ids[k] = ngroups++;
                group[r] = ids[k];
                break;
            }
            span g = field(t, (size_t)slots[k], (size_t)col);
            if (g.len == f.len && !memcmp(t->text + g.start, p, f.len)) {
                group[r] = ids[k];
                break;
            }
            k = (k + 1) & (cap - 1);
        }
    }
    free(slots);
    free(ids);
    return ngroups;
}

/* Comma-separated items of `text` (a copy is split in place). */
static size_t split(char *text, char **items, size_t max) {
    size_t count = 0;
    if (!text || !*text) return 0;
    for (char *p = text;;) {
        char *comma = strchr(p, ',');
        if (count == max) return max + 1;
        items[count++] = p;
        if (!comma) break;
        *comma = '\0';
        p = comma + 1;
    }
    return count;
}

static size_t parse_params(const char *text, double *out, size_t max, const char *what) {
    char *copy = need(strdup(text ? text : ""));
    char *items[16];
    size_t count = split(copy, items, 16);
    if (count > max) die(EXIT_USAGE, "%s: too many parameters", what);
    for (size_t i = 0; i < count; i++) {
        char *end;
        out[i] = strtod(items[i], &end);
        if (end == items[i] || *end != '\0') die(EXIT_USAGE, "%s: %s is not a number", what, items[i]);
    }
    free(copy);
    return count;
}

/* The shortest of %.15g, %.16g, %.17g that reads back as the same double; NaN is empty. */
static size_t format_number(char *out, double v) {
    if (isnan(v)) return 0;
    if (isinf(v)) return (size_t)sprintf(out, v > 0 ? "inf" : "-inf");
    int len = 0;
    for (int digits = 15; digits <= 17; digits++) {
        len = snprintf(out, 32, "%.*g", digits, v);
        if (strtod(out, NULL) == v) break;
    }
    return (size_t)len;
}

int main(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        exit(EXIT_OK);
    }
    if (argc > 3) {
        usage(stderr);
        die(EXIT_USAGE, "at most two arguments (INPUT OUTPUT), got %d", argc - 1);
    }
    const char *input = argc > 1 ? argv[1] : getenv("INPUT");
    const char *output = argc > 2 ? argv[2] : getenv("OUTPUT");
    if (!input || !*input) input = "/inputs/readings.csv";
    if (!output || !*output) output = "/outputs/readings.csv";
    const char *kernel = getenv("KERNEL");
    if (!kernel || !*kernel) {
        usage(stderr);
        die(EXIT_USAGE, "set KERNEL to the kernel to run");
    }
    const kernel_info *info = NULL;
    for (size_t i = 0; i < NKERNELS; i++)
        if (!strcmp(KERNELS[i].name, kernel)) info = &KERNELS[i];
    if (!info) {
        usage(stderr);
        die(EXIT_USAGE, "unknown KERNEL %s", kernel);
    }
    char *columns_text = need(strdup(getenv("COLUMNS") ? getenv("COLUMNS") : ""));
    char *columns[64];
    size_t ncolumns = split(columns_text, columns, 64);
    if (ncolumns == 0) die(EXIT_USAGE, "set COLUMNS to the columns to run %s on", kernel);
    if (ncolumns > 64) die(EXIT_USAGE, "COLUMNS: at most 64 columns");
    char *outputs_text = need(strdup(getenv("OUTPUTS") ? getenv("OUTPUTS") : ""));
    char *outputs[64];
    size_t noutputs = split(outputs_text, outputs, 64);
    if (noutputs == 0) {
        for (size_t i = 0; i < ncolumns; i++) outputs[i] = columns[i];
    } else if (noutputs != ncolumns) {
        die(EXIT_USAGE, "OUTPUTS must name one column per COLUMNS entry");
    }
    const char *group_by = getenv("GROUP_BY");
    if (!group_by) group_by = "sensor_id";

    size_t size;
    table t = {0};
    t.text = read_file(input, &size);
    t.size = size;
    parse_csv(&t);
    if (t.nrows > INT32_MAX) die(EXIT_DATA, "too many rows");
    int32_t n = (int32_t)t.nrows;

    long group_col = -1;
    if (info->grouped && *group_by) {
        group_col = find_column(&t, group_by);
        if (group_col < 0) die(EXIT_DATA, "no column %s to group by (GROUP_BY)", group_by);
    }
    int32_t *group = need(malloc(((size_t)n + 1) * sizeof(int32_t)));
    int32_t ngroups = info->grouped ? group_rows(&t, group_col, group) : 0;

    /* Output columns: replaced in place, or appended after the input's columns. */
    size_t total = t.ncols;
    long *out_col = need(malloc(ncolumns * sizeof(long)));
    double **values = need(calloc(ncolumns, sizeof(double *)));
    for (size_t c = 0; c < ncolumns; c++) {
        long in_col = find_column(&t, columns[c]);
        if (in_col < 0) die(EXIT_DATA, "no column %s in the input", columns[c]);
        double params[16] = {0};
        char key[160] = "PARAMS_";
        size_t k = strlen(key);
        for (const char *p = columns[c]; *p && k + 1 < sizeof key; p++)
            key[k++] = (*p >= 'a' && *p <= 'z') ? (char)(*p - 32) : *p;
        key[k] = '\0';
        const char *ptext = getenv(key) ? getenv(key) : getenv("PARAMS");
        size_t np = parse_params(ptext, params, 16, getenv(key) ? key : "PARAMS");
        if ((int32_t)np != info->nparams)
            die(EXIT_USAGE, "%s takes PARAMS=%s", kernel, info->params_help);
        double *x = need(malloc(((size_t)n + 1) * sizeof(double)));
        for (int32_t r = 0; r < n; r++) x[r] = parse_number(&t, (size_t)r, (size_t)in_col, columns[c]);
        double *y = need(malloc(((size_t)n + 1) * sizeof(double)));
        double *state = NULL;
        if (info->grouped) {
            int32_t width = kernel_state_size(kernel, params);
            if (width < 0) die(EXIT_KERNEL, "%s: invalid parameters for PARAMS=%s", kernel, info->params_help);
            state = need(calloc((size_t)ngroups * (size_t)width + 1, sizeof(double)));
        }
        if (kernel_run(kernel, n, group, ngroups, state, x, y, params))
            die(EXIT_KERNEL, "%s: %s", kernel, last_error);
        free(state);
        free(x);
        values[c] = y;
        out_col[c] = find_column(&t, outputs[c]);
        for (size_t e = 0; e < c && out_col[c] < 0; e++)
            if (!strcmp(outputs[e], outputs[c])) out_col[c] = out_col[e];
        if (out_col[c] < 0) out_col[c] = (long)total++;
    }

    /* Which value (if any) goes into each output column. */
    long *source = need(malloc(total * sizeof(long)));
    for (size_t c = 0; c < total; c++) source[c] = -1;
    for (size_t c = 0; c < ncolumns; c++) source[out_col[c]] = (long)c;

    buffer out = {0};
    for (size_t c = 0; c < total; c++) {
        if (c) buf_put(&out, ",", 1);
        if (c < t.ncols) {
            span h = t.fields[c];
            buf_put(&out, t.text + h.start, h.len);
        } else {
            buf_put(&out, outputs[source[c]], strlen(outputs[source[c]]));
        }
    }
    buf_put(&out, "\n", 1);
    char number[40];
    for (int32_t r = 0; r < n; r++) {
        for (size_t c = 0; c < total; c++) {
            if (c) buf_put(&out, ",", 1);
            if (source[c] >= 0) {
                buf_put(&out, number, format_number(number, values[source[c]][r]));
            } else {
                span f = field(&t, (size_t)r, c);
                buf_put(&out, t.text + f.start, f.len);
            }
        }
        buf_put(&out, "\n", 1);
    }

    FILE *f = fopen(output, "wb"); /* created once, written once: what Bacalhau outputs allow */
    if (!f) die(EXIT_OUTPUT, "cannot create output %s: %s", output, strerror(errno));
    if (fwrite(out.data, 1, out.len, f) != out.len || fclose(f) != 0)
        die(EXIT_OUTPUT, "cannot write output %s: %s", output, strerror(errno));
    fprintf(stderr, "cosmobac kernels: %s over %zu column(s) of %d rows: %s -> %s\n", kernel,
            ncolumns, n, input, output);
    exit(EXIT_OK); /* always proc_exit: Bacalhau records -1 for a plain return */
}
