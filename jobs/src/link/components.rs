//! Connected components of the seller graph, as SQL rounds over Parquet
//! checkpoints: the alternating large-star / small-star contraction of
//! Kiveris et al. ("Connected Components in MapReduce and Beyond", SoCC 2014;
//! what GraphFrames uses).
//!
//! Why this method: each round is two joins and two group-bys over the edge
//! list, which DataFusion runs in bounded memory in one process and Ballista
//! spreads over executors alike; it needs O(log² n) rounds whatever the
//! graph's diameter (label propagation needs as many rounds as the longest
//! chain, and a union-find needs all edges in one memory). The edge list
//! only shrinks: every round turns the graph into stars around each
//! component's smallest seller id.
//!
//! Edges are stored once as `(a, b)` with `a > b`.

use anyhow::{bail, Result};
use datafusion::execution::context::SessionContext;

use super::checkpoint::Checkpoints;

/// Rounds after which the contraction is declared stuck (it converges in
/// O(log² n): 10 rounds for millions of sellers in practice).
const MAX_ROUNDS: usize = 100;

/// Both directions of the edges of table `e`.
fn both(e: &str) -> String {
    format!("SELECT a AS u, b AS v FROM {e} UNION ALL SELECT b AS u, a AS v FROM {e}")
}

/// Large-star: every node u links each larger neighbour to the smallest of
/// u's neighbourhood (u included).
fn large_star(e: &str) -> String {
    format!(
        "WITH d AS ({d}), m AS (SELECT u, least(u, min(v)) AS m FROM d GROUP BY u) \
         SELECT DISTINCT d.v AS a, m.m AS b FROM d JOIN m ON d.u = m.u WHERE d.v > d.u",
        d = both(e)
    )
}

/// Small-star: every node u links itself and each smaller neighbour to the
/// smallest of its smaller neighbours.
fn small_star(e: &str) -> String {
    format!(
        "WITH d AS ({d}), n AS (SELECT u, v FROM d WHERE v < u), \
              m AS (SELECT u, min(v) AS m FROM n GROUP BY u) \
         SELECT n.v AS a, m.m AS b FROM n JOIN m ON n.u = m.u WHERE n.v <> m.m \
         UNION SELECT u AS a, m AS b FROM m",
        d = both(e)
    )
}

/// Is every component a star around its smallest node: no node both a
/// leaf and a centre, no leaf with two centres?
fn not_stars(e: &str) -> String {
    format!(
        "SELECT (SELECT count(*) FROM {e} x JOIN {e} y ON x.b = y.a) \
              + (SELECT count(*) FROM (SELECT a FROM {e} GROUP BY a HAVING count(*) > 1))"
    )
}

/// What [`components`] did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Rounds {
    pub rounds: usize,
    /// Edges at the start (after removing duplicates) and at the end.
    pub edges_in: u64,
    pub edges_out: u64,
}

/// From table `edges(a BIGINT, b BIGINT)` (any order, duplicates and self
/// loops allowed), register table `components(seller_id, cluster_id)`: one
/// row per node of an edge, `cluster_id` the smallest node of its
/// component.
pub async fn components(
    ctx: &SessionContext,
    edges: &str,
    out: &str,
    cp: &mut Checkpoints,
) -> Result<Rounds> {
    let start = ctx
        .sql(&format!(
            "SELECT DISTINCT greatest(a, b) AS a, least(a, b) AS b FROM {edges} WHERE a <> b"
        ))
        .await?;
    let edges_in = cp.save(ctx, "cc_edges", start).await?;
    let mut rounds = 0;
    loop {
        let converged = crate::session::counts(ctx, &not_stars("cc_edges")).await?[0] == 0;
        if converged {
            break;
        }
        rounds += 1;
        if rounds > MAX_ROUNDS {
            bail!("connected components did not converge in {MAX_ROUNDS} rounds");
        }
        let l = ctx.sql(&large_star("cc_edges")).await?;
        cp.save(ctx, "cc_edges", l).await?;
        let s = ctx.sql(&small_star("cc_edges")).await?;
        cp.save(ctx, "cc_edges", s).await?;
    }
    let edges_out = crate::session::counts(ctx, "SELECT count(*) FROM cc_edges").await?[0];
    let df = ctx
        .sql(
            "SELECT a AS seller_id, b AS cluster_id FROM cc_edges \
             UNION ALL SELECT DISTINCT b AS seller_id, b AS cluster_id FROM cc_edges",
        )
        .await?;
    cp.save(ctx, out, df).await?;
    Ok(Rounds {
        rounds,
        edges_in,
        edges_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::sync::Arc;

    /// The reference: union-find, each node labelled by its component's
    /// smallest node.
    fn reference(edges: &[(i64, i64)]) -> HashMap<i64, i64> {
        fn find(p: &mut HashMap<i64, i64>, x: i64) -> i64 {
            let parent = *p.entry(x).or_insert(x);
            if parent == x {
                return x;
            }
            let r = find(p, parent);
            p.insert(x, r);
            r
        }
        let mut p = HashMap::new();
        for &(a, b) in edges {
            let (ra, rb) = (find(&mut p, a), find(&mut p, b));
            p.insert(ra.max(rb), ra.min(rb));
        }
        let nodes: Vec<i64> = p.keys().copied().collect();
        nodes.into_iter().map(|n| (n, find(&mut p, n))).collect()
    }

    /// The components of `edges`, with checkpoints kept in memory up to
    /// `budget` bytes (0: every one written to Parquet and read back), and
    /// whether any checkpoint was written.
    async fn run_within(edges: &[(i64, i64)], budget: usize) -> (HashMap<i64, i64>, Rounds, bool) {
        let ctx = SessionContext::new();
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("a", DataType::Int64, false),
                Field::new("b", DataType::Int64, false),
            ])),
            vec![
                Arc::new(Int64Array::from_iter_values(edges.iter().map(|e| e.0))),
                Arc::new(Int64Array::from_iter_values(edges.iter().map(|e| e.1))),
            ],
        )
        .unwrap();
        ctx.register_batch("e", batch).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut cp = Checkpoints::new(&dir.path().join("cp"), false)
            .unwrap()
            .with_memory_budget(budget);
        let r = components(&ctx, "e", "cc", &mut cp).await.unwrap();
        let mut got = HashMap::new();
        for b in ctx
            .sql("SELECT seller_id, cluster_id FROM cc")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap()
        {
            let (s, c) = (
                b.column(0).as_primitive::<Int64Type>(),
                b.column(1).as_primitive::<Int64Type>(),
            );
            for i in 0..b.num_rows() {
                assert!(
                    got.insert(s.value(i), c.value(i)).is_none(),
                    "seller {} twice",
                    s.value(i)
                );
            }
        }
        let wrote = has_parquet_file(&dir.path().join("cp"));
        (got, r, wrote)
    }

    fn has_parquet_file(dir: &std::path::Path) -> bool {
        std::fs::read_dir(dir).unwrap().flatten().any(|e| {
            let p = e.path();
            if p.is_dir() {
                has_parquet_file(&p)
            } else {
                p.extension().is_some_and(|x| x == "parquet")
            }
        })
    }

    async fn run(edges: &[(i64, i64)]) -> (HashMap<i64, i64>, Rounds) {
        let (got, r, wrote) = run_within(edges, crate::link::checkpoint::IN_MEMORY_BYTES).await;
        assert!(!wrote, "small checkpoints stay in memory");
        (got, r)
    }

    fn expected(edges: &[(i64, i64)]) -> HashMap<i64, i64> {
        let loops_only: Vec<(i64, i64)> = edges.iter().copied().filter(|e| e.0 != e.1).collect();
        reference(&loops_only)
    }

    #[tokio::test]
    async fn a_long_chain_and_a_ring_become_two_components() {
        // A chain 1-2-...-200 given in a scrambled order, and a ring.
        let mut edges: Vec<(i64, i64)> = (1..200).map(|i| (i + 1, i)).collect();
        edges.reverse();
        edges.swap(3, 150);
        edges.extend([(1000, 1001), (1001, 1002), (1002, 1000), (1003, 1003)]);
        let (got, r) = run(&edges).await;
        assert_eq!(got, expected(&edges));
        assert_eq!(got[&200], 1);
        assert_eq!(got[&1002], 1000);
        assert!(!got.contains_key(&1003), "a self loop links nobody");
        assert!(r.rounds <= 12, "{r:?}");
        // Past the memory budget every checkpoint goes through Parquet,
        // with the same result.
        let (spilled, r2, wrote) = run_within(&edges, 0).await;
        assert!(wrote, "a zero budget writes every checkpoint");
        assert_eq!(spilled, got);
        assert_eq!(r2.rounds, r.rounds);
    }

    #[tokio::test]
    async fn no_edges_no_components() {
        let (got, r) = run(&[]).await;
        assert!(got.is_empty());
        assert_eq!(r.rounds, 0);
        // Empty checkpoints past the budget: no file to read back, an empty table.
        let (got, r, _) = run_within(&[], 0).await;
        assert!(got.is_empty());
        assert_eq!(r.rounds, 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn matches_union_find(edges in proptest::collection::vec((0i64..60, 0i64..60), 0..120)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (got, _) = rt.block_on(run(&edges));
            prop_assert_eq!(got, expected(&edges));
        }
    }
}
