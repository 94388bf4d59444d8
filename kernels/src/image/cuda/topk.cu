// Running top-k per query over the similarity matrix, one block of
// references at a time (the matrix product itself is cuBLAS sgemm on the GPU,
// matrixmultiply on the host). One thread per query row; `best_*` (rows x k)
// persist across blocks, start at (-inf, 0xffffffff), and keep the CPU path's
// order: best first, ties keep the lower reference index (blocks arrive in
// increasing reference order and an equal score never displaces).
DJ_KERNEL void top_k_merge(const float* sims, int rows, int cols, unsigned int col_offset,
                           int k, float* best_sim, unsigned int* best_idx) {
    unsigned long long t = DJ_THREAD_ID;
    if (t >= (unsigned long long)rows) return;
    const float* row = sims + t * (unsigned long long)cols;
    float* bs = best_sim + t * k;
    unsigned int* bi = best_idx + t * k;
    for (int j = 0; j < cols; ++j) {
        float s = row[j];
        if (!(s > bs[k - 1])) continue;
        int at = k - 1;
        while (at > 0 && bs[at - 1] < s) {
            bs[at] = bs[at - 1];
            bi[at] = bi[at - 1];
            --at;
        }
        bs[at] = s;
        bi[at] = col_offset + (unsigned int)j;
    }
}
