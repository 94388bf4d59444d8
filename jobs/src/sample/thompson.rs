//! Exploration by Thompson sampling over cells (category × brand ×
//! region): each cell's counterfeit rate has a Beta posterior, whose prior
//! is the scan's own expectation for the cell (its mean score, worth
//! `PRIOR_WEIGHT` purchases) and whose evidence is the cell's earlier
//! verdicts. Each exploration slot goes to the cell with the highest draw,
//! so cells the model knows little about, but may be bad, get purchases.

use rand::Rng;
use rand_distr::{Beta, Distribution};

/// Pseudo-purchases the scan's expectation is worth in a cell's prior.
pub const PRIOR_WEIGHT: f64 = 2.0;

/// One cell: what the scan expects and what purchases found.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Eligible listings in the cell.
    pub listings: u64,
    /// Mean expected counterfeit rate of its listings (the scores).
    pub mean_score: f64,
    pub counterfeit: u64,
    pub genuine: u64,
}

impl Cell {
    fn posterior(&self) -> (f64, f64) {
        let m = self.mean_score.clamp(0.001, 0.999);
        (
            PRIOR_WEIGHT * m + self.counterfeit as f64,
            PRIOR_WEIGHT * (1.0 - m) + self.genuine as f64,
        )
    }
}

/// How many of `slots` purchases go to each cell (never more than its
/// listings).
pub fn allocate(cells: &[Cell], slots: usize, rng: &mut impl Rng) -> Vec<usize> {
    let mut given = vec![0usize; cells.len()];
    let dists: Vec<Option<Beta<f64>>> = cells
        .iter()
        .map(|c| {
            let (a, b) = c.posterior();
            Beta::new(a, b).ok()
        })
        .collect();
    for _ in 0..slots {
        let mut best: Option<(usize, f64)> = None;
        for (i, d) in dists.iter().enumerate() {
            if given[i] as u64 >= cells[i].listings {
                continue;
            }
            let Some(d) = d else { continue };
            let theta = d.sample(rng);
            if best.is_none_or(|(_, t)| theta > t) {
                best = Some((i, theta));
            }
        }
        match best {
            Some((i, _)) => given[i] += 1,
            None => break, // every cell exhausted
        }
    }
    given
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn slots_follow_the_posteriors_and_respect_sizes() {
        let cell = |listings, mean_score, counterfeit, genuine| Cell {
            listings,
            mean_score,
            counterfeit,
            genuine,
        };
        let cells = vec![
            // Known bad, known good, unknown and suspicious, tiny.
            cell(1000, 0.2, 40, 10),
            cell(1000, 0.2, 1, 200),
            cell(1000, 0.6, 0, 0),
            cell(2, 0.9, 0, 0),
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let given = allocate(&cells, 200, &mut rng);
        assert_eq!(given.iter().sum::<usize>(), 200);
        assert!(given[0] > given[1] && given[2] > given[1], "{given:?}");
        assert!(given[3] <= 2, "{given:?}");
        let mut again = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        assert_eq!(
            allocate(&cells, 200, &mut again),
            given,
            "seeded: same plan"
        );
        // More slots than listings: every listing, then stop.
        let small = vec![cell(3, 0.5, 0, 0)];
        assert_eq!(allocate(&small, 10, &mut rng), vec![3]);
    }
}
