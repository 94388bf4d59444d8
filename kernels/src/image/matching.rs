//! Exact top-k cosine similarity of query embeddings against a reference set:
//! a blocked matrix product (matrixmultiply's sgemm, the GEMM behind ndarray)
//! over blocks of queries in parallel (rayon), with a running top-k per query.
//! Embeddings are L2-normalised, so the dot product is the cosine.

use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

/// Row-major `len() × dim` reference embeddings.
#[derive(Debug, Clone, Default)]
pub struct ReferenceSet {
    pub dim: usize,
    data: Vec<f32>,
    /// Changes whenever the contents do: a GPU keeps one uploaded copy per
    /// version instead of uploading the set for every batch of queries.
    version: u64,
}

fn next_version() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl ReferenceSet {
    pub fn new(dim: usize) -> Self {
        ReferenceSet {
            dim,
            data: Vec::new(),
            version: next_version(),
        }
    }

    pub fn push(&mut self, v: &[f32]) {
        assert_eq!(v.len(), self.dim, "reference embedding length");
        self.data.extend_from_slice(v);
        self.version = next_version();
    }

    /// All embeddings, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Identifies these contents (see the field).
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn len(&self) -> usize {
        if self.dim == 0 {
            0
        } else {
            self.data.len() / self.dim
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// Row of the reference set.
    pub index: u32,
    pub similarity: f32,
}

/// Queries per block (rows of C) and references per block (columns of C):
/// a 256×2048 f32 block of C is 2 MiB, it stays in L2/L3 while it is scanned.
const QUERY_BLOCK: usize = 256;
pub(crate) const REF_BLOCK: usize = 2048;

/// `C[m×nb] = Q[m×dim] · R[nb×dim]ᵀ` (row-major; `c` holds at least m×nb).
pub(crate) fn similarity_block(
    q: &[f32],
    m: usize,
    r: &[f32],
    nb: usize,
    dim: usize,
    c: &mut [f32],
) {
    assert!(q.len() >= m * dim && r.len() >= nb * dim && c.len() >= m * nb);
    // SAFETY: the slices hold m×dim, nb×dim and m×nb floats (checked above)
    // with the strides given; matrixmultiply reads/writes only those.
    unsafe {
        matrixmultiply::sgemm(
            m,
            dim,
            nb,
            1.0,
            q.as_ptr(),
            dim as isize,
            1,
            r.as_ptr(),
            1,
            dim as isize,
            0.0,
            c.as_mut_ptr(),
            nb as isize,
            1,
        );
    }
}

/// The `k` most similar references of each query (row-major `q × dim`),
/// best first. Ties keep the lower reference index.
pub fn top_k(queries: &[f32], refs: &ReferenceSet, k: usize) -> Vec<Vec<Match>> {
    let dim = refs.dim;
    assert!(
        dim > 0 && queries.len() % dim == 0,
        "query length is not a multiple of dim"
    );
    let q = queries.len() / dim;
    let n = refs.len();
    if k == 0 || n == 0 {
        return vec![Vec::new(); q];
    }
    queries
        .par_chunks(QUERY_BLOCK * dim)
        .flat_map_iter(|qb| {
            let m = qb.len() / dim;
            let mut best: Vec<Vec<Match>> = vec![Vec::with_capacity(k + 1); m];
            let mut c = vec![0f32; m * REF_BLOCK];
            for r0 in (0..n).step_by(REF_BLOCK) {
                let nb = REF_BLOCK.min(n - r0);
                let b = &refs.data[r0 * dim..(r0 + nb) * dim];
                similarity_block(qb, m, b, nb, dim, &mut c);
                for (i, top) in best.iter_mut().enumerate() {
                    for (j, &s) in c[i * nb..(i + 1) * nb].iter().enumerate() {
                        if top.len() == k && s <= top[k - 1].similarity {
                            continue;
                        }
                        let at = top.partition_point(|x| x.similarity >= s);
                        top.insert(
                            at,
                            Match {
                                index: (r0 + j) as u32,
                                similarity: s,
                            },
                        );
                        top.truncate(k);
                    }
                }
            }
            best
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u64, dim: usize) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
        let mut v: Vec<f32> = (0..dim)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2000) as f32 / 1000.0 - 1.0
            })
            .collect();
        let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        v.iter_mut().for_each(|a| *a /= n);
        v
    }

    #[test]
    fn blocked_top_k_equals_brute_force() {
        let dim = 37;
        let mut refs = ReferenceSet::new(dim);
        for i in 0..5000 {
            refs.push(&unit(i, dim));
        }
        let queries: Vec<f32> = (0..300u64).flat_map(|i| unit(10_000 + i, dim)).collect();
        let got = top_k(&queries, &refs, 5);
        assert_eq!(got.len(), 300);
        for (qi, top) in got.iter().enumerate() {
            let qv = &queries[qi * dim..(qi + 1) * dim];
            let mut all: Vec<(usize, f32)> = (0..refs.len())
                .map(|j| (j, refs.row(j).iter().zip(qv).map(|(a, b)| a * b).sum()))
                .collect();
            all.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
            assert_eq!(top.len(), 5);
            for (m, (j, s)) in top.iter().zip(&all) {
                assert_eq!(m.index as usize, *j);
                assert!((m.similarity - s).abs() < 1e-5);
            }
        }
        // A query equal to a reference finds it first with similarity 1.
        let top = top_k(refs.row(4321), &refs, 1);
        assert_eq!(top[0][0].index, 4321);
        assert!((top[0][0].similarity - 1.0).abs() < 1e-5);
        assert!(top_k(&queries, &ReferenceSet::new(dim), 3)
            .iter()
            .all(|t| t.is_empty()));
    }
}
