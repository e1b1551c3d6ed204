/* An exponentially weighted moving average per sensor: a grouped kernel for cosmobac's batch ABI.
 * It needs no C library, so it builds in a fraction of a second:
 *
 *   python -m ziglang cc --target=wasm32-wasi -O2 -nostdlib -Wl,--no-entry -o ewma.wasm ewma.c
 */
#include <stdint.h>

#define EXPORT(name) __attribute__((export_name(name)))

/* alloc: memory past the module's data, grown as needed, never freed (the host allocates its
 * buffers once, and again only for a bigger batch). 0 when the memory cap is reached. */
extern unsigned char __heap_base;
static uint64_t heap_top;

EXPORT("alloc") void *alloc(int32_t size) {
    if (!heap_top) heap_top = (uintptr_t)&__heap_base;
    if (size < 0) return 0;
    uint64_t start = (heap_top + 15) & ~(uint64_t)15, end = start + (uint64_t)size;
    uint64_t have = (uint64_t)__builtin_wasm_memory_size(0) * 65536;
    if (end > have && __builtin_wasm_memory_grow(0, (end - have + 65535) / 65536) == (__SIZE_TYPE__)-1)
        return 0;
    heap_top = end;
    return (void *)(uintptr_t)start;
}

static const char *message = "";
EXPORT("error_message") const char *error_message(void) { return message; }

/* Two doubles of state per sensor: [0] 1.0 once a value was seen, [1] the average. */
EXPORT("ewma__state") int32_t ewma_state(double alpha) {
    if (!(alpha > 0.0 && alpha <= 1.0)) {
        message = "alpha must be in (0, 1]";
        return -1;
    }
    return 2;
}

/* y = the average after this row; missing values (NaN, ±Inf) leave it unchanged. */
EXPORT("ewma")
int32_t ewma(int32_t n, const int32_t *group, int32_t ngroups, double *state, const double *x,
             double *y, double alpha) {
    if (ewma_state(alpha) < 0) return 1;
    for (int32_t i = 0; i < n; i++) {
        if (group[i] < 0 || group[i] >= ngroups) {
            message = "group index out of range";
            return 2;
        }
        double *s = state + 2 * group[i];
        if (__builtin_isfinite(x[i])) {
            s[1] = s[0] != 0.0 ? s[1] + alpha * (x[i] - s[1]) : x[i];
            s[0] = 1.0;
        }
        y[i] = s[0] != 0.0 ? s[1] : __builtin_nan("");
    }
    return 0;
}
