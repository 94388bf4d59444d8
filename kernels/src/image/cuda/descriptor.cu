// The `descriptor` embedder (kernels/src/image/descriptor.rs is the reference
// and documents each block): one thread per 32x32 RGB8 thumbnail, writing its
// 155 L2-normalised floats. Every loop is the CPU code's loop, in its order.

#define D_SIDE 32
#define D_K 8
#define D_DCT_LEN (D_K * D_K - 1)
#define D_GRID 4
#define D_CHROMA_LEN (D_GRID * D_GRID * 2)
#define D_HUE_BINS 12
#define D_GREY_BINS 4
#define D_COLOUR_LEN (D_HUE_BINS * 2 + D_GREY_BINS)
#define D_ORIENT_BINS 8
#define D_ORIENT_LEN (D_ORIENT_BINS * 4)
#define D_DIM (D_DCT_LEN + D_CHROMA_LEN + D_COLOUR_LEN + D_ORIENT_LEN)
#define D_PI 3.14159265358979323846f

DJ_FN int dj_rem(int a, int n) { int r = a % n; return r < 0 ? r + n : r; }

DJ_FN void dj_soft_add(float* hist, int n, float pos, float w, int wrap) {
    float p = pos - 0.5f;
    float lo = floorf(p);
    float f = p - lo;
    int i0, i1;
    if (wrap) {
        i0 = dj_rem((int)lo, n);
        i1 = dj_rem((int)lo + 1, n);
    } else {
        float a = lo > 0.0f ? lo : 0.0f;
        float b = lo + 1.0f > 0.0f ? lo + 1.0f : 0.0f;
        i0 = (int)a < n - 1 ? (int)a : n - 1;
        i1 = (int)b < n - 1 ? (int)b : n - 1;
    }
    hist[i0] += w * (1.0f - f);
    hist[i1] += w * f;
}

DJ_FN void dj_normalise(float* v, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; ++i) s += v[i] * v[i];
    s = sqrtf(s);
    if (s > 1e-12f)
        for (int i = 0; i < n; ++i) v[i] /= s;
}

DJ_FN void dj_hellinger_centred(float* v, int n) {
    float mean = 0.0f;
    for (int i = 0; i < n; ++i) {
        v[i] = sqrtf(v[i] > 0.0f ? v[i] : 0.0f);
        mean += v[i];
    }
    mean /= (float)n;
    for (int i = 0; i < n; ++i) v[i] -= mean;
}

// Euclidean remainder of a float, as Rust's f32::rem_euclid.
DJ_FN float dj_frem(float a, float n) {
    float r = fmodf(a, n);
    return r < 0.0f ? r + n : r;
}

// thumbs: n x 32 x 32 x 3 bytes; out: n x D_DIM floats.
DJ_KERNEL void describe(const unsigned char* thumbs, int n, float* out) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)n) return;
    const unsigned char* th = thumbs + t * (D_SIDE * D_SIDE * 3);
    float cosv[D_K][D_SIDE];
    for (int k = 0; k < D_K; ++k)
        for (int i = 0; i < D_SIDE; ++i)
            cosv[k][i] = cosf(D_PI * (float)(2 * i + 1) * (float)k / (float)(2 * D_SIDE));

    float grey[D_SIDE][D_SIDE];
    float chroma[D_CHROMA_LEN];
    float colour[D_COLOUR_LEN];
    float orient[D_ORIENT_LEN];
    for (int i = 0; i < D_CHROMA_LEN; ++i) chroma[i] = 0.0f;
    for (int i = 0; i < D_COLOUR_LEN; ++i) colour[i] = 0.0f;
    for (int i = 0; i < D_ORIENT_LEN; ++i) orient[i] = 0.0f;
    const int cell = D_SIDE / D_GRID;
    for (int y = 0; y < D_SIDE; ++y) {
        for (int x = 0; x < D_SIDE; ++x) {
            const unsigned char* px = th + (y * D_SIDE + x) * 3;
            float r = px[0] / 255.0f, g = px[1] / 255.0f, b = px[2] / 255.0f;
            grey[y][x] = 0.299f * r + 0.587f * g + 0.114f * b;
            int k = ((y / cell) * D_GRID + x / cell) * 2;
            chroma[k] += (r - g) * 0.70710678118654752f;
            chroma[k + 1] += (r + g - 2.0f * b) / sqrtf(6.0f);
            float mx = fmaxf(fmaxf(r, g), b);
            float mn = fminf(fminf(r, g), b);
            float sat = mx > 0.0f ? (mx - mn) / mx : 0.0f;
            if (sat < 0.2f || mx < 0.15f) {
                dj_soft_add(colour + D_HUE_BINS * 2, D_GREY_BINS, mx * D_GREY_BINS, 1.0f, 0);
            } else {
                float d = mx - mn;
                float h6;
                if (mx == r) h6 = dj_frem((g - b) / d, 6.0f);
                else if (mx == g) h6 = (b - r) / d + 2.0f;
                else h6 = (r - g) / d + 4.0f;
                int level = sat < 0.55f ? 0 : D_HUE_BINS;
                dj_soft_add(colour + level, D_HUE_BINS, h6 / 6.0f * D_HUE_BINS, 1.0f, 1);
            }
        }
    }

    // Layout: separable DCT-II of the grey thumbnail.
    float rows[D_SIDE][D_K];
    for (int y = 0; y < D_SIDE; ++y)
        for (int u = 0; u < D_K; ++u) {
            float s = 0.0f;
            for (int x = 0; x < D_SIDE; ++x) s += grey[y][x] * cosv[u][x];
            rows[y][u] = s;
        }
    float* o = out + t * D_DIM;
    float layout[D_DCT_LEN];
    int li = 0;
    for (int v = 0; v < D_K; ++v)
        for (int u = 0; u < D_K; ++u) {
            if (u == 0 && v == 0) continue;
            float coef = 0.0f;
            for (int y = 0; y < D_SIDE; ++y) coef += cosv[v][y] * rows[y][u];
            if (u % 2 == 1) coef = fabsf(coef);
            layout[li++] = coef / (1.0f + 0.3f * (float)(u + v));
        }

    // Texture: folded gradient orientations in four mirror-symmetric regions.
    for (int y = 1; y < D_SIDE - 1; ++y)
        for (int x = 1; x < D_SIDE - 1; ++x) {
            float gx = grey[y][x + 1] - grey[y][x - 1];
            float gy = grey[y + 1][x] - grey[y - 1][x];
            float mag = sqrtf(gx * gx + gy * gy);
            if (mag < 1e-3f) continue;
            float theta = dj_frem(atan2f(gy, gx), D_PI);
            float folded = fminf(theta, D_PI - theta);
            int centre = x >= D_SIDE / 4 && x < D_SIDE * 3 / 4 && y >= D_SIDE / 4 && y < D_SIDE * 3 / 4;
            int regs[4] = {1, centre, y < D_SIDE / 2, y >= D_SIDE / 2};
            for (int k = 0; k < 4; ++k)
                if (regs[k])
                    dj_soft_add(orient + k * D_ORIENT_BINS, D_ORIENT_BINS,
                                folded / (D_PI / 2.0f) * D_ORIENT_BINS, mag, 0);
        }

    dj_hellinger_centred(colour, D_COLOUR_LEN);
    for (int k = 0; k < 4; ++k) dj_hellinger_centred(orient + k * D_ORIENT_BINS, D_ORIENT_BINS);
    for (int i = 0; i < D_CHROMA_LEN; ++i) chroma[i] /= (float)(cell * cell);
    float folded[D_CHROMA_LEN];
    int fi = 0;
    for (int gy = 0; gy < D_GRID; ++gy)
        for (int gx = 0; gx < D_GRID / 2; ++gx)
            for (int ch = 0; ch < 2; ++ch) {
                float a = chroma[(gy * D_GRID + gx) * 2 + ch];
                float b = chroma[(gy * D_GRID + D_GRID - 1 - gx) * 2 + ch];
                folded[fi++] = a + b;
                folded[fi++] = fabsf(a - b);
            }

    // Blocks weighted (layout, colour layout, colour histogram, texture).
    const float weights[4] = {0.5f, 1.0f, 1.0f, 0.5f};
    float* blocks[4] = {layout, folded, colour, orient};
    const int lens[4] = {D_DCT_LEN, D_CHROMA_LEN, D_COLOUR_LEN, D_ORIENT_LEN};
    int at = 0;
    for (int k = 0; k < 4; ++k) {
        dj_normalise(blocks[k], lens[k]);
        for (int i = 0; i < lens[k]; ++i) o[at++] = blocks[k][i] * weights[k];
    }
    dj_normalise(o, D_DIM);
}
