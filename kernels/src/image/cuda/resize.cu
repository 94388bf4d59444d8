// Resize a packed batch of RGB8 images to side x side, the way the CPU path
// does it (fast_image_resize / Pillow convolution with the bilinear filter,
// widened by the scale factor when shrinking, so that it antialiases), then
// either keep RGB8 (the descriptor's thumbnails) or normalise to planar CHW
// floats with ImageNet mean/std (mobilenet's input).
//
// Batch layout: image i has width[i] x height[i] pixels starting at byte
// offset[i] of `src`. One thread per output pixel of the whole batch.

// Filter taps along one axis for output coordinate `o`: the first source
// index, the count, and 1 / (sum of weights). Pillow's precompute_coeffs.
DJ_FN void dj_taps(int in_size, int out_size, int o, int* first, int* count,
                   float* center, float* inv_scale, float* norm) {
    float scale = (float)in_size / (float)out_size;
    float filter_scale = scale > 1.0f ? scale : 1.0f;
    float support = filter_scale; // bilinear support is 1.0
    float c = ((float)o + 0.5f) * scale;
    int lo = (int)(c - support + 0.5f);
    if (lo < 0) lo = 0;
    int hi = (int)(c + support + 0.5f);
    if (hi > in_size) hi = in_size;
    float ss = 1.0f / filter_scale;
    float sum = 0.0f;
    for (int i = lo; i < hi; ++i) {
        float w = 1.0f - fabsf(((float)i - c + 0.5f) * ss);
        if (w > 0.0f) sum += w;
    }
    *first = lo;
    *count = hi - lo;
    *center = c;
    *inv_scale = ss;
    *norm = sum > 0.0f ? 1.0f / sum : 0.0f;
}

DJ_FN float dj_tap(int i, float c, float ss) {
    float w = 1.0f - fabsf(((float)i - c + 0.5f) * ss);
    return w > 0.0f ? w : 0.0f;
}

// The resized RGB value (rounded to 0..255, as the CPU path's u8 output) of
// output pixel (ox, oy) of image `img`.
DJ_FN void dj_resample(const unsigned char* src, const unsigned long long* offset,
                       const int* width, const int* height, int img, int side,
                       int ox, int oy, float rgb[3]) {
    int w = width[img], h = height[img];
    const unsigned char* p = src + offset[img];
    int x0, nx, y0, ny;
    float cx, sx, nxw, cy, sy, nyw;
    dj_taps(w, side, ox, &x0, &nx, &cx, &sx, &nxw);
    dj_taps(h, side, oy, &y0, &ny, &cy, &sy, &nyw);
    float acc[3] = {0.0f, 0.0f, 0.0f};
    for (int y = y0; y < y0 + ny; ++y) {
        float wy = dj_tap(y, cy, sy);
        if (wy == 0.0f) continue;
        float row[3] = {0.0f, 0.0f, 0.0f};
        const unsigned char* line = p + (unsigned long long)y * w * 3;
        for (int x = x0; x < x0 + nx; ++x) {
            float wx = dj_tap(x, cx, sx);
            row[0] += wx * line[x * 3];
            row[1] += wx * line[x * 3 + 1];
            row[2] += wx * line[x * 3 + 2];
        }
        acc[0] += wy * row[0];
        acc[1] += wy * row[1];
        acc[2] += wy * row[2];
    }
    for (int c = 0; c < 3; ++c) {
        float v = floorf(acc[c] * nxw * nyw + 0.5f);
        rgb[c] = v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v);
    }
}

// dst: n x side x side x 3 bytes (RGB8, row-major).
DJ_KERNEL void resize_rgb8(const unsigned char* src, const unsigned long long* offset,
                           const int* width, const int* height, int n, int side,
                           unsigned char* dst) {
    unsigned long long t = DJ_THREAD_ID;
    unsigned long long per = (unsigned long long)side * side;
    if (t >= per * n) return;
    int img = (int)(t / per);
    int pix = (int)(t % per);
    float rgb[3];
    dj_resample(src, offset, width, height, img, side, pix % side, pix / side, rgb);
    for (int c = 0; c < 3; ++c) dst[t * 3 + c] = (unsigned char)rgb[c];
}

// dst: n x 3 x side x side floats, (v/255 - mean) / std per channel.
DJ_KERNEL void resize_imagenet(const unsigned char* src, const unsigned long long* offset,
                               const int* width, const int* height, int n, int side,
                               float* dst) {
    const float mean[3] = {0.485f, 0.456f, 0.406f};
    const float std_[3] = {0.229f, 0.224f, 0.225f};
    unsigned long long t = DJ_THREAD_ID;
    unsigned long long per = (unsigned long long)side * side;
    if (t >= per * n) return;
    int img = (int)(t / per);
    int pix = (int)(t % per);
    float rgb[3];
    dj_resample(src, offset, width, height, img, side, pix % side, pix / side, rgb);
    for (int c = 0; c < 3; ++c)
        dst[((unsigned long long)img * 3 + c) * per + pix] = (rgb[c] / 255.0f - mean[c]) / std_[c];
}
