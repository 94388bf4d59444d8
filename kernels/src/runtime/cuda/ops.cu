// The runtime's element-wise and layout ops (everything but convolutions
// and matmuls, which are cuDNN and cuBLAS on the GPU). One thread per output
// element, or per output group for reductions; written once, run by NVRTC on
// the GPU and compiled as C++ for the host launcher (kernels/build.rs), whose
// results are tested against the Rust reference executor (runtime/cpu.rs).
// Shapes are passed as small structs of up to RT_RANK axes.

#define RT_RANK 6
#define RT_CHAIN 8

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

// A convolution's epilogue, in place: y = chain(y + bias[c] + residual).
DJ_KERNEL void rt_epilogue(float* y, const float* bias, const float* residual, long long n,
                           long long channels, long long plane, RtChain chain) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)n) return;
    long long c, unused;
    rt_divmod(rt_divmod((long long)t, plane, &unused), channels, &c);
    float z = y[t] + bias[c] + (residual ? residual[t] : 0.0f);
    y[t] = rt_chain(&chain, z);
}

DJ_KERNEL void rt_map(const float* x, float* y, long long n, RtChain chain) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)n) return;
    y[t] = rt_chain(&chain, x[t]);
}

// Numpy-broadcast binary op (codes follow `program::BinOp`).
DJ_KERNEL void rt_binary(const float* a, const float* b, float* y, long long n, int op,
                         RtView va, RtView vb) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)n) return;
    float x = a[rt_offset(&va, t)], z = b[rt_offset(&vb, t)];
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
    y[t] = r;
}

// y[dst(i)] = x[src(i)] over one iteration space: permutation, broadcast,
// slice, upsampling, one input of a concatenation, plain copies.
DJ_KERNEL void rt_copy(const float* x, float* y, long long n, RtView src, RtView dst) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)n) return;
    y[rt_offset(&dst, t)] = x[rt_offset(&src, t)];
}

// One thread per output group: `groups` maps the group to the first input
// element, `inner` walks the reduced axes. op: 0 sum, 1 max, 2 min,
// 3 mean of squares, 4 softmax (writes every element of the group),
// 5 RMS norm (eps in `eps`, writes every element).
DJ_KERNEL void rt_reduce(const float* x, float* y, long long n_groups, int op, float eps,
                         RtView groups, RtView inner) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)n_groups) return;
    long long base = rt_offset(&groups, t);
    long long count = 1;
#pragma unroll
    for (int a = 0; a < RT_RANK; ++a) {
        if (a < inner.rank) count *= inner.dims[a];
    }
    if (op <= 3) {
        float acc = op == 1 ? DJ_NEG_INF : (op == 2 ? -DJ_NEG_INF : 0.0f);
        for (long long j = 0; j < count; ++j) {
            float v = x[base + rt_offset(&inner, j)];
            if (op == 0) acc += v;
            else if (op == 1) acc = fmaxf(acc, v);
            else if (op == 2) acc = fminf(acc, v);
            else acc += v * v;
        }
        y[t] = op == 3 ? acc / (float)count : acc;
        return;
    }
    if (op == 4) {
        float m = DJ_NEG_INF, s = 0.0f;
        for (long long j = 0; j < count; ++j) m = fmaxf(m, x[base + rt_offset(&inner, j)]);
        for (long long j = 0; j < count; ++j) {
            long long o = base + rt_offset(&inner, j);
            y[o] = expf(x[o] - m);
            s += y[o];
        }
        for (long long j = 0; j < count; ++j) y[base + rt_offset(&inner, j)] /= s;
        return;
    }
    float sq = 0.0f;
    for (long long j = 0; j < count; ++j) {
        float v = x[base + rt_offset(&inner, j)];
        sq += v * v;
    }
    float r = 1.0f / sqrtf(sq / (float)count + eps);
    for (long long j = 0; j < count; ++j) {
        long long o = base + rt_offset(&inner, j);
        y[o] = x[o] * r;
    }
}

// Reductions over few, long groups (global pooling, a softmax over a long
// axis) split each group into `chunks` interleaved parts so that every part
// is one thread: adjacent threads read adjacent elements, and thousands of
// threads share a group that one thread would otherwise walk alone (measured
// on an H200: the detector's global sums took 45% of its time that way).
// Pass 1 writes one partial per (group, chunk); pass 2 combines a group's
// partials; softmax and RMS norm then scale every element (pass 3).
// op: 0 sum, 1 max, 2 min, 3 sum of squares, 6 sum of exp(x - stat[g]).
DJ_KERNEL void rt_reduce_part(const float* x, float* part, long long n_groups, int chunks,
                              int op, const float* stat, RtView groups, RtView inner) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)n_groups * (unsigned long long)chunks) return;
    long long c;
    long long g = rt_divmod((long long)t, chunks, &c);
    long long base = rt_offset(&groups, g);
    long long count = 1;
#pragma unroll
    for (int a = 0; a < RT_RANK; ++a) {
        if (a < inner.rank) count *= inner.dims[a];
    }
    float acc = op == 1 ? DJ_NEG_INF : (op == 2 ? -DJ_NEG_INF : 0.0f);
    float m = op == 6 ? stat[g] : 0.0f;
    for (long long j = c; j < count; j += chunks) {
        float v = x[base + rt_offset(&inner, j)];
        if (op == 0) acc += v;
        else if (op == 1) acc = fmaxf(acc, v);
        else if (op == 2) acc = fminf(acc, v);
        else if (op == 3) acc += v * v;
        else acc += expf(v - m);
    }
    part[t] = acc;
}

// Pass 2: one thread per group combines its `chunks` partials. op as pass 1,
// plus 4 mean of squares and 5 RMS scale 1/sqrt(mean of squares + eps).
DJ_KERNEL void rt_reduce_combine(const float* part, float* y, long long n_groups, int chunks,
                                 int op, float count, float eps) {
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
    y[t] = acc;
}

// Pass 3: one thread per element. softmax (op 0): exp(x - m[g]) / s[g];
// RMS norm (op 1): x * r[g] (r in `m`).
DJ_KERNEL void rt_reduce_scale(const float* x, float* y, long long n, long long count, int op,
                               const float* m, const float* s, RtView groups, RtView inner) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)n) return;
    long long j;
    long long g = rt_divmod((long long)t, count, &j);
    long long o = rt_offset(&groups, g) + rt_offset(&inner, j);
    y[o] = op == 0 ? expf(x[o] - m[g]) / s[g] : x[o] * m[g];
}

// Sum or average over windows of NCHW planes (padding not counted).
DJ_KERNEL void rt_pool(const float* x, float* y, long long n, int h, int w, int ho, int wo,
                       int kh, int kw, int sh, int sw, int pt, int pl, int average) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)n) return;
    long long plane = (long long)t / ((long long)ho * wo);
    int oy = (int)(((long long)t / wo) % ho), ox = (int)((long long)t % wo);
    const float* xin = x + plane * h * w;
    float sum = 0.0f;
    int count = 0;
    for (int ky = 0; ky < kh; ++ky) {
        int iy = oy * sh + ky - pt;
        if (iy < 0 || iy >= h) continue;
        for (int kx = 0; kx < kw; ++kx) {
            int ix = ox * sw + kx - pl;
            if (ix < 0 || ix >= w) continue;
            sum += xin[iy * w + ix];
            ++count;
        }
    }
    y[t] = average ? sum / (float)(count > 0 ? count : 1) : sum;
}

// Transposed convolution with kernel = stride, no padding: each output pixel
// reads one input pixel per input channel of its group.
DJ_KERNEL void rt_deconv(const float* x, const float* wt, const float* bias, float* y,
                         long long n, int ci, int co, int h, int w, int kh, int kw, int group) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)n) return;
    int ho = h * kh, wo = w * kw;
    int ox = (int)((long long)t % wo), oy = (int)(((long long)t / wo) % ho);
    long long oc = ((long long)t / ((long long)ho * wo)) % co;
    long long b = (long long)t / ((long long)ho * wo * co);
    int ci_g = ci / group, co_g = co / group;
    long long g = oc / co_g;
    int iy = oy / kh, ix = ox / kw, ky = oy % kh, kx = ox % kw;
    float acc = bias[oc];
    for (int c = 0; c < ci_g; ++c) {
        float v = x[((b * ci + g * ci_g + c) * h + iy) * (long long)w + ix];
        acc += v * wt[((oc * ci_g + c) * kh + ky) * (long long)kw + kx];
    }
    y[t] = acc;
}
