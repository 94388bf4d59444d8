// Resize a packed batch of RGB8 images to side x side with the CPU path's
// bytes exactly (fast_image_resize's fixed-point bilinear convolution,
// antialiased when shrinking): the taps come from the host (`resample.rs`,
// `ResizeTables`), the vertical pass writes an RGB8 intermediate, the
// horizontal pass reads it. Then keep RGB8 (the descriptor's thumbnails) or
// normalise to planar CHW floats with ImageNet mean/std (mobilenet's input).
//
// Batch layout: image i has width[i] pixels per row starting at byte
// src_off[i] of `src`; its intermediate is side rows of width[i] pixels
// starting at pixel tmp_first[i] of `tmp` (tmp_first has n + 1 entries).
// rows[((i * 2 + axis) * side + o) * 3 ..] = first source index, tap count,
// offset in `taps`; axis 0 vertical, 1 horizontal; precision[i * 2 + axis].

// One output value of a pass: `count` taps over `stride`-spaced bytes.
DJ_FN unsigned char dj_taps_apply(const unsigned char* p, long long stride, const int* row,
                                  int precision, const short* taps) {
    int acc = 1 << (precision - 1);
    const unsigned char* q = p + (long long)row[0] * stride;
    const short* k = taps + row[2];
    for (int i = 0; i < row[1]; ++i) acc += (int)q[(long long)i * stride] * (int)k[i];
    acc >>= precision;
    return (unsigned char)(acc < 0 ? 0 : (acc > 255 ? 255 : acc));
}

// Vertical pass: one thread per intermediate pixel of the whole batch.
DJ_KERNEL void resize_vertical(const unsigned char* src, const unsigned long long* src_off,
                               const int* width, const unsigned long long* tmp_first, int n,
                               int side, const int* rows, const int* precision,
                               const short* taps, unsigned char* tmp) {
    unsigned long long t = DJ_THREAD_ID;
    if (n <= 0 || t >= tmp_first[n]) return;
    // The image holding pixel t: the last with tmp_first[i] <= t.
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (tmp_first[mid] <= t) lo = mid; else hi = mid - 1;
    }
    int img = lo, w = width[img];
    unsigned long long local = t - tmp_first[img];
    int oy = (int)(local / w), x = (int)(local % w);
    const int* row = rows + ((img * 2) * side + oy) * 3;
    const unsigned char* col = src + src_off[img] + (unsigned long long)x * 3;
    for (int c = 0; c < 3; ++c)
        tmp[t * 3 + c] = dj_taps_apply(col + c, (long long)w * 3, row, precision[img * 2], taps);
}

// Output pixel t of the whole batch (horizontal pass), as RGB.
DJ_FN int dj_horizontal(const unsigned char* tmp, const int* width,
                        const unsigned long long* tmp_first, int side, const int* rows,
                        const int* precision, const short* taps, unsigned long long t,
                        unsigned char rgb[3]) {
    unsigned long long per = (unsigned long long)side * side;
    int img = (int)(t / per);
    int pix = (int)(t % per);
    int ox = pix % side, oy = pix / side;
    int w = width[img];
    const unsigned char* line = tmp + (tmp_first[img] + (unsigned long long)oy * w) * 3;
    const int* row = rows + ((img * 2 + 1) * side + ox) * 3;
    for (int c = 0; c < 3; ++c)
        rgb[c] = dj_taps_apply(line + c, 3, row, precision[img * 2 + 1], taps);
    return pix;
}

// dst: n x side x side x 3 bytes (RGB8, row-major). One thread per pixel.
DJ_KERNEL void resize_rgb8(const unsigned char* tmp, const int* width,
                           const unsigned long long* tmp_first, int n, int side,
                           const int* rows, const int* precision, const short* taps,
                           unsigned char* dst) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)side * side * n) return;
    unsigned char rgb[3];
    dj_horizontal(tmp, width, tmp_first, side, rows, precision, taps, t, rgb);
    for (int c = 0; c < 3; ++c) dst[t * 3 + c] = rgb[c];
}

// dst: n x 3 x side x side floats, (v/255 - mean) / std per channel.
DJ_KERNEL void resize_imagenet(const unsigned char* tmp, const int* width,
                               const unsigned long long* tmp_first, int n, int side,
                               const int* rows, const int* precision, const short* taps,
                               float* dst) {
    const float mean[3] = {0.485f, 0.456f, 0.406f};
    const float std_[3] = {0.229f, 0.224f, 0.225f};
    unsigned long long t = DJ_THREAD_ID;
    unsigned long long per = (unsigned long long)side * side;
    if (t >= per * n) return;
    unsigned char rgb[3];
    int pix = dj_horizontal(tmp, width, tmp_first, side, rows, precision, taps, t, rgb);
    unsigned long long img = t / per;
    for (int c = 0; c < 3; ++c)
        dst[(img * 3 + c) * per + pix] = ((float)rgb[c] / 255.0f - mean[c]) / std_[c];
}
