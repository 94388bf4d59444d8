// The runtime's element-wise and layout ops (everything but convolutions
// and matmuls, which are cuDNN and cuBLAS on the GPU). One thread per output
// element, or per output group for reductions; written once, run by NVRTC on
// the GPU and compiled as C++ for the host launcher (kernels/build.rs), whose
// results are tested against the Rust reference executor (runtime/cpu.rs).
// Shapes are passed as small structs of up to RT_RANK axes.
//
// Storage: the program's values are f32 or IEEE half (`runtime::Precision`);
// every kernel takes its value pointers untyped with a flag saying which, and
// computes in f32 either way (loads widen, stores round to nearest even). A
// split reduction's partials and statistics are always f32.

#define RT_RANK 6
#define RT_CHAIN 8

// IEEE binary16 bits.
typedef unsigned short rt_half;

#ifdef __CUDACC_RTC__
// The conversions cuda_fp16.h makes, without its header (NVRTC finds no
// include path on a bare node).
DJ_FN float rt_h2f(rt_half h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
DJ_FN rt_half rt_f2h(float f) {
    rt_half h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
#else
// The compiler's own _Float16 (GCC >= 12, Clang): exact widening and
// round-to-nearest-even narrowing, as cvt.f32.f16 and cvt.rn.f16.f32.
DJ_FN float rt_h2f(rt_half h) {
    _Float16 f;
    __builtin_memcpy(&f, &h, 2);
    return (float)f;
}
DJ_FN rt_half rt_f2h(float f) {
    _Float16 v = (_Float16)f;
    rt_half h;
    __builtin_memcpy(&h, &v, 2);
    return h;
}
#endif

DJ_FN float rt_ld(const float* p, long long i) { return p[i]; }
DJ_FN float rt_ld(const rt_half* p, long long i) { return rt_h2f(p[i]); }
DJ_FN void rt_st(float* p, long long i, float v) { p[i] = v; }
DJ_FN void rt_st(rt_half* p, long long i, float v) { p[i] = rt_f2h(v); }

// A chain of element-wise functions (`program::Elementwise`), with `gate`:
// x * chain(x). Codes follow `Elementwise` in runtime/program.rs.
struct RtChain {
    int len;
    int gate;
    int op[RT_CHAIN];
    float a[RT_CHAIN];
    float b[RT_CHAIN];
    // After the gate: y * post_a + post_b (1 and 0 when there is none).
    float post_a;
    float post_b;
};

// An index space: `dims` of the iteration, and for each axis the stride it
// moves in a source (0: broadcast) and the divisor applied to the index first
// (nearest-neighbour upsampling).
struct RtView {
    int rank;
    long long dims[RT_RANK];
    long long stride[RT_RANK];
    long long div[RT_RANK];
    long long base;
};

DJ_FN float rt_apply(int op, float a, float b, float x) {
    switch (op) {
    case 0: return x * a + b;                        // Affine
    case 1: return fminf(fmaxf(x, a), b);            // Clip
    case 2: return 1.0f / (1.0f + expf(-x));         // Sigmoid
    case 3: return 1.0f / x;                         // Recip
    case 4: return 1.0f / sqrtf(x);                  // Rsqrt
    case 5: return sqrtf(x);                         // Sqrt
    case 6: return x * x;                            // Square
    case 7: return expf(x);                          // Exp
    case 8: return tanhf(x);                         // Tanh
    case 9: return fabsf(x);                         // Abs
    default: return -x;                              // Neg
    }
}

// The loops below are unrolled over the fixed maximum with the real length
// as a condition: every field is then read at a constant offset, straight
// from the kernel's parameters. A loop bounded by `len`/`rank` indexes the
// structs dynamically, which makes the compiler copy them to per-thread
// local memory for every element (measured on an H200: the epilogue took
// 76% of MobileNetV2's time).
DJ_FN float rt_chain(const RtChain* c, float x) {
    float z = x;
#pragma unroll
    for (int i = 0; i < RT_CHAIN; ++i) {
        if (i < c->len) z = rt_apply(c->op[i], c->a[i], c->b[i], z);
    }
    float y = c->gate ? x * z : z;
    return y * c->post_a + c->post_b;
}

// q = i / d and i % d, in 32 bits when both fit (64-bit division is a long
// software routine on a GPU; almost every tensor's indices fit in 32 bits).
DJ_FN long long rt_divmod(long long i, long long d, long long* rem) {
    if (((unsigned long long)i | (unsigned long long)d) <= 0xffffffffULL) {
        unsigned int q = (unsigned int)i / (unsigned int)d;
        *rem = (long long)((unsigned int)i - q * (unsigned int)d);
        return (long long)q;
    }
    long long q = i / d;
    *rem = i - q * d;
    return q;
}

// Offset in a source of linear index `i` of the iteration space.
DJ_FN long long rt_offset(const RtView* v, long long i) {
    long long off = v->base;
#pragma unroll
    for (int k = 0; k < RT_RANK; ++k) {
        int a = RT_RANK - 1 - k;
        if (a < v->rank) {
            long long idx;
            i = rt_divmod(i, v->dims[a], &idx);
            if (v->div[a] != 1) {
                long long unused;
                idx = rt_divmod(idx, v->div[a], &unused);
            }
            off += idx * v->stride[a];
        }
    }
    return off;
}

// Each kernel below is a template over the storage type T (float or
// rt_half) and an entry taking untyped pointers and the flag `half`: one
// entry point per kernel for both precisions, a branch every thread of a
// launch takes the same way.
#define RT_ENTRY(half, call_h, call_f) \
    do { if (half) { call_h; } else { call_f; } } while (0)
#define RT_C(T, p) ((const T*)(p))
#define RT_M(T, p) ((T*)(p))

// A convolution's epilogue, in place: y = chain(y + bias[c] + residual).
template <typename T>
DJ_FN void rt_epilogue_t(T* y, const T* bias, const T* residual, long long n, long long channels,
                         long long plane, const RtChain* chain) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)n) return;
    long long c, unused;
    rt_divmod(rt_divmod((long long)t, plane, &unused), channels, &c);
    float z = rt_ld(y, t) + rt_ld(bias, c) + (residual ? rt_ld(residual, t) : 0.0f);
    rt_st(y, t, rt_chain(chain, z));
}

DJ_KERNEL void rt_epilogue(void* y, const void* bias, const void* residual, long long n,
                           long long channels, long long plane, RtChain chain, int half) {
    RT_ENTRY(half,
             rt_epilogue_t(RT_M(rt_half, y), RT_C(rt_half, bias), RT_C(rt_half, residual), n,
                           channels, plane, &chain),
             rt_epilogue_t(RT_M(float, y), RT_C(float, bias), RT_C(float, residual), n,
                           channels, plane, &chain));
}

template <typename T>
DJ_FN void rt_map_t(const T* x, T* y, long long n, const RtChain* chain) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)n) return;
    rt_st(y, t, rt_chain(chain, rt_ld(x, t)));
}

DJ_KERNEL void rt_map(const void* x, void* y, long long n, RtChain chain, int half) {
    RT_ENTRY(half, rt_map_t(RT_C(rt_half, x), RT_M(rt_half, y), n, &chain),
             rt_map_t(RT_C(float, x), RT_M(float, y), n, &chain));
}

// Numpy-broadcast binary op (codes follow `program::BinOp`).
template <typename T>
DJ_FN void rt_binary_t(const T* a, const T* b, T* y, long long n, int op, const RtView* va,
                       const RtView* vb) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)n) return;
    float x = rt_ld(a, rt_offset(va, t)), z = rt_ld(b, rt_offset(vb, t));
    float r;
    switch (op) {
    case 0: r = x + z; break;
    case 1: r = x - z; break;
    case 2: r = x * z; break;
    case 3: r = x / z; break;
    case 4: r = fmaxf(x, z); break;
    case 5: r = fminf(x, z); break;
    default: r = powf(x, z); break;
    }
    rt_st(y, t, r);
}

DJ_KERNEL void rt_binary(const void* a, const void* b, void* y, long long n, int op, RtView va,
                         RtView vb, int half) {
    RT_ENTRY(half,
             rt_binary_t(RT_C(rt_half, a), RT_C(rt_half, b), RT_M(rt_half, y), n, op, &va, &vb),
             rt_binary_t(RT_C(float, a), RT_C(float, b), RT_M(float, y), n, op, &va, &vb));
}

// y[dst(i)] = x[src(i)] over one iteration space: permutation, broadcast,
// slice, upsampling, one input of a concatenation, plain copies. The bits
// move unchanged in either precision.
template <typename T>
DJ_FN void rt_copy_t(const T* x, T* y, long long n, const RtView* src, const RtView* dst) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)n) return;
    y[rt_offset(dst, t)] = x[rt_offset(src, t)];
}

DJ_KERNEL void rt_copy(const void* x, void* y, long long n, RtView src, RtView dst, int half) {
    RT_ENTRY(half, rt_copy_t(RT_C(rt_half, x), RT_M(rt_half, y), n, &src, &dst),
             rt_copy_t(RT_C(float, x), RT_M(float, y), n, &src, &dst));
}

// Between precisions: a program's f32 input into its half arena, its half
// outputs into f32 for the host (either flag 0: a plain f32 copy).
DJ_KERNEL void rt_convert(const void* x, void* y, long long n, int x_half, int y_half) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)n) return;
    float v = x_half ? rt_ld(RT_C(rt_half, x), t) : rt_ld(RT_C(float, x), t);
    if (y_half) rt_st(RT_M(rt_half, y), t, v);
    else rt_st(RT_M(float, y), t, v);
}

// Elements in one reduction group.
DJ_FN long long rt_count(const RtView* inner) {
    long long count = 1;
#pragma unroll
    for (int a = 0; a < RT_RANK; ++a) {
        if (a < inner->rank) count *= inner->dims[a];
    }
    return count;
}

// One thread per output group: `groups` maps the group to the first input
// element, `inner` walks the reduced axes. op: 0 sum, 1 max, 2 min,
// 3 mean of squares, 4 softmax (writes every element of the group),
// 5 RMS norm (eps in `eps`, writes every element), 6 mean.
template <typename T>
DJ_FN void rt_reduce_t(const T* x, T* y, long long n_groups, int op, float eps,
                       const RtView* groups, const RtView* inner) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)n_groups) return;
    long long base = rt_offset(groups, t);
    long long count = rt_count(inner);
    if (op <= 3 || op == 6) {
        float acc = op == 1 ? DJ_NEG_INF : (op == 2 ? -DJ_NEG_INF : 0.0f);
        for (long long j = 0; j < count; ++j) {
            float v = rt_ld(x, base + rt_offset(inner, j));
            if (op == 0 || op == 6) acc += v;
            else if (op == 1) acc = fmaxf(acc, v);
            else if (op == 2) acc = fminf(acc, v);
            else acc += v * v;
        }
        rt_st(y, t, op == 3 || op == 6 ? acc / (float)count : acc);
        return;
    }
    if (op == 4) {
        // The sum of exponentials from the inputs (not from the stored,
        // possibly rounded outputs), then each output once.
        float m = DJ_NEG_INF, s = 0.0f;
        for (long long j = 0; j < count; ++j) m = fmaxf(m, rt_ld(x, base + rt_offset(inner, j)));
        for (long long j = 0; j < count; ++j) s += expf(rt_ld(x, base + rt_offset(inner, j)) - m);
        for (long long j = 0; j < count; ++j) {
            long long o = base + rt_offset(inner, j);
            rt_st(y, o, expf(rt_ld(x, o) - m) / s);
        }
        return;
    }
    float sq = 0.0f;
    for (long long j = 0; j < count; ++j) {
        float v = rt_ld(x, base + rt_offset(inner, j));
        sq += v * v;
    }
    float r = 1.0f / sqrtf(sq / (float)count + eps);
    for (long long j = 0; j < count; ++j) {
        long long o = base + rt_offset(inner, j);
        rt_st(y, o, rt_ld(x, o) * r);
    }
}

DJ_KERNEL void rt_reduce(const void* x, void* y, long long n_groups, int op, float eps,
                         RtView groups, RtView inner, int half) {
    RT_ENTRY(half,
             rt_reduce_t(RT_C(rt_half, x), RT_M(rt_half, y), n_groups, op, eps, &groups, &inner),
             rt_reduce_t(RT_C(float, x), RT_M(float, y), n_groups, op, eps, &groups, &inner));
}

// Reductions over few, long groups (global pooling, a softmax over a long
// axis) split each group into `chunks` interleaved parts so that every part
// is one thread: adjacent threads read adjacent elements, and thousands of
// threads share a group that one thread would otherwise walk alone (measured
// on an H200: the detector's global sums took 45% of its time that way).
// Pass 1 writes one partial per (group, chunk); pass 2 combines a group's
// partials; softmax and RMS norm then scale every element (pass 3).
// op: 0 sum, 1 max, 2 min, 3 sum of squares, 6 sum of exp(x - stat[g]).
// Partials and statistics are f32 in either precision.
template <typename T>
DJ_FN void rt_reduce_part_t(const T* x, float* part, long long n_groups, int chunks, int op,
                            const float* stat, const RtView* groups, const RtView* inner) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)n_groups * (unsigned long long)chunks) return;
    long long c;
    long long g = rt_divmod((long long)t, chunks, &c);
    long long base = rt_offset(groups, g);
    long long count = rt_count(inner);
    float acc = op == 1 ? DJ_NEG_INF : (op == 2 ? -DJ_NEG_INF : 0.0f);
    float m = op == 6 ? stat[g] : 0.0f;
    for (long long j = c; j < count; j += chunks) {
        float v = rt_ld(x, base + rt_offset(inner, j));
        if (op == 0) acc += v;
        else if (op == 1) acc = fmaxf(acc, v);
        else if (op == 2) acc = fminf(acc, v);
        else if (op == 3) acc += v * v;
        else acc += expf(v - m);
    }
    part[t] = acc;
}

DJ_KERNEL void rt_reduce_part(const void* x, float* part, long long n_groups, int chunks, int op,
                              const float* stat, RtView groups, RtView inner, int half) {
    RT_ENTRY(half,
             rt_reduce_part_t(RT_C(rt_half, x), part, n_groups, chunks, op, stat, &groups, &inner),
             rt_reduce_part_t(RT_C(float, x), part, n_groups, chunks, op, stat, &groups, &inner));
}

// Pass 2: one thread per group combines its `chunks` partials. op as pass 1,
// plus 4 mean (of the partial sums or sums of squares) and 5 RMS scale
// 1/sqrt(mean of squares + eps).
// `y` is a value of the program (stored as `y_half` says) or a statistic (f32).
template <typename T>
DJ_FN void rt_reduce_combine_t(const float* part, T* y, long long n_groups, int chunks, int op,
                               float count, float eps) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)n_groups) return;
    const float* p = part + (long long)t * chunks;
    float acc = p[0];
    for (int c = 1; c < chunks; ++c) {
        if (op == 1) acc = fmaxf(acc, p[c]);
        else if (op == 2) acc = fminf(acc, p[c]);
        else acc += p[c];
    }
    if (op == 4) acc = acc / count;
    else if (op == 5) acc = 1.0f / sqrtf(acc / count + eps);
    rt_st(y, t, acc);
}

DJ_KERNEL void rt_reduce_combine(const float* part, void* y, long long n_groups, int chunks,
                                 int op, float count, float eps, int y_half) {
    RT_ENTRY(y_half,
             rt_reduce_combine_t(part, RT_M(rt_half, y), n_groups, chunks, op, count, eps),
             rt_reduce_combine_t(part, RT_M(float, y), n_groups, chunks, op, count, eps));
}

// Pass 3: one thread per element. softmax (op 0): exp(x - m[g]) / s[g];
// RMS norm (op 1): x * r[g] (r in `m`).
template <typename T>
DJ_FN void rt_reduce_scale_t(const T* x, T* y, long long n, long long count, int op,
                             const float* m, const float* s, const RtView* groups,
                             const RtView* inner) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)n) return;
    long long j;
    long long g = rt_divmod((long long)t, count, &j);
    long long o = rt_offset(groups, g) + rt_offset(inner, j);
    float v = rt_ld(x, o);
    rt_st(y, o, op == 0 ? expf(v - m[g]) / s[g] : v * m[g]);
}

DJ_KERNEL void rt_reduce_scale(const void* x, void* y, long long n, long long count, int op,
                               const float* m, const float* s, RtView groups, RtView inner,
                               int half) {
    RT_ENTRY(half,
             rt_reduce_scale_t(RT_C(rt_half, x), RT_M(rt_half, y), n, count, op, m, s, &groups,
                               &inner),
             rt_reduce_scale_t(RT_C(float, x), RT_M(float, y), n, count, op, m, s, &groups,
                               &inner));
}

// Sum or average over windows of NCHW planes (padding not counted).
template <typename T>
DJ_FN void rt_pool_t(const T* x, T* y, long long n, int h, int w, int ho, int wo, int kh, int kw,
                     int sh, int sw, int pt, int pl, int average) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)n) return;
    long long plane = (long long)t / ((long long)ho * wo);
    int oy = (int)(((long long)t / wo) % ho), ox = (int)((long long)t % wo);
    const T* xin = x + plane * h * w;
    float sum = 0.0f;
    int count = 0;
    for (int ky = 0; ky < kh; ++ky) {
        int iy = oy * sh + ky - pt;
        if (iy < 0 || iy >= h) continue;
        for (int kx = 0; kx < kw; ++kx) {
            int ix = ox * sw + kx - pl;
            if (ix < 0 || ix >= w) continue;
            sum += rt_ld(xin, iy * w + ix);
            ++count;
        }
    }
    rt_st(y, t, average ? sum / (float)(count > 0 ? count : 1) : sum);
}

DJ_KERNEL void rt_pool(const void* x, void* y, long long n, int h, int w, int ho, int wo, int kh,
                       int kw, int sh, int sw, int pt, int pl, int average, int half) {
    RT_ENTRY(half,
             rt_pool_t(RT_C(rt_half, x), RT_M(rt_half, y), n, h, w, ho, wo, kh, kw, sh, sw, pt,
                       pl, average),
             rt_pool_t(RT_C(float, x), RT_M(float, y), n, h, w, ho, wo, kh, kw, sh, sw, pt, pl,
                       average));
}

// Transposed convolution with kernel = stride, no padding: each output pixel
// reads one input pixel per input channel of its group.
template <typename T>
DJ_FN void rt_deconv_t(const T* x, const T* wt, const T* bias, T* y, long long n, int ci, int co,
                       int h, int w, int kh, int kw, int group) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)n) return;
    int ho = h * kh, wo = w * kw;
    int ox = (int)((long long)t % wo), oy = (int)(((long long)t / wo) % ho);
    long long oc = ((long long)t / ((long long)ho * wo)) % co;
    long long b = (long long)t / ((long long)ho * wo * co);
    int ci_g = ci / group, co_g = co / group;
    long long g = oc / co_g;
    int iy = oy / kh, ix = ox / kw, ky = oy % kh, kx = ox % kw;
    float acc = rt_ld(bias, oc);
    for (int c = 0; c < ci_g; ++c) {
        float v = rt_ld(x, ((b * ci + g * ci_g + c) * h + iy) * (long long)w + ix);
        acc += v * rt_ld(wt, ((oc * ci_g + c) * kh + ky) * (long long)kw + kx);
    }
    rt_st(y, t, acc);
}

DJ_KERNEL void rt_deconv(const void* x, const void* wt, const void* bias, void* y, long long n,
                         int ci, int co, int h, int w, int kh, int kw, int group, int half) {
    RT_ENTRY(half,
             rt_deconv_t(RT_C(rt_half, x), RT_C(rt_half, wt), RT_C(rt_half, bias),
                         RT_M(rt_half, y), n, ci, co, h, w, kh, kw, group),
             rt_deconv_t(RT_C(float, x), RT_C(float, wt), RT_C(float, bias), RT_M(float, y), n,
                         ci, co, h, w, kh, kw, group));
}
