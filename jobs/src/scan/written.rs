//! What the scan learns of its scores as this process writes them (shown
//! each written batch through `cluster::write_parts::observe_writes`): the
//! report's figures, and that no listing is written twice.
//!
//! Both used to be queries over the written parts, before the commit and
//! for the report (at 1M listings, 63 ms of wall time for `count(DISTINCT
//! listing_id)` and ~0.25 CPU-seconds for the report's read of every
//! `reasons`); here they are a copy of the ids and counters. On a
//! cluster the executors write out of this process's reach, and the
//! queries remain (`delta::publish::Expect::unique`, `report::run`).

use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{anyhow, bail, Context, Result};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::error::DataFusionError;

use crate::cluster::write_parts::WrittenBatches;
use crate::report::{ScoreFigures, ScoreTally};

/// [`WrittenScores`] shared by the partitions that write and the checks
/// after them.
#[derive(Clone, Default)]
pub struct Written(Arc<Mutex<WrittenScores>>);

impl Written {
    /// What the writing partitions show each batch to.
    pub fn observer(&self) -> WrittenBatches {
        let w = self.clone();
        WrittenBatches(Box::new(move |b| {
            w.lock()
                .and_then(|mut w| w.add(b))
                .map_err(|e| DataFusionError::External(e.into()))
        }))
    }

    /// [`WrittenScores::check_each_once`], for the check before the commit.
    pub fn check_each_once(&self) -> Box<dyn FnOnce() -> Result<()> + Send> {
        let w = self.clone();
        Box::new(move || w.lock()?.check_each_once())
    }

    /// The report's figures of the rows written.
    pub fn figures(self) -> Result<ScoreFigures> {
        Ok(std::mem::take(&mut *self.lock()?).figures())
    }

    fn lock(&self) -> Result<MutexGuard<'_, WrittenScores>> {
        self.0
            .lock()
            .map_err(|_| anyhow!("a writer panicked while counting the scores"))
    }
}

#[derive(Default)]
struct WrittenScores {
    tally: ScoreTally,
    /// Every `listing_id` written so far, in the order written.
    ids: Vec<i64>,
}

impl WrittenScores {
    /// Count a batch about to be written.
    pub fn add(&mut self, b: &RecordBatch) -> Result<()> {
        let ids = b
            .column_by_name("listing_id")
            .context("the scores have no `listing_id`")?
            .as_primitive_opt::<Int64Type>()
            .context("`listing_id` is not a BIGINT")?;
        self.ids.extend(ids.iter().flatten());
        self.tally.add_scores(b)
    }

    /// An error when a listing was written twice (a listing the catalog
    /// lists twice, or a join that multiplied rows): run before the commit,
    /// it publishes nothing.
    pub fn check_each_once(&mut self) -> Result<()> {
        // Each partition writes its ids in order, so the stable sort
        // (which merges runs) costs little more than reading them.
        self.ids.sort();
        if let Some(w) = self.ids.windows(2).find(|w| w[0] == w[1]) {
            bail!("`listing_id` {} is written twice; publishing nothing", w[0]);
        }
        Ok(())
    }

    /// The report's figures of the rows written.
    pub fn figures(self) -> ScoreFigures {
        self.tally.figures()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn scores(ids: &str) -> RecordBatch {
        let sql = format!(
            "SELECT listing_id, CAST(0.5 AS REAL) AS score, 'review' AS action, CAST(NULL AS BIGINT) AS brand_id, \
                    make_array(named_struct('code', 'c', 'detail', 'd', 'weight', CAST(0.5 AS REAL))) AS reasons \
             FROM (SELECT CAST(column1 AS BIGINT) AS listing_id FROM (VALUES {ids}))"
        );
        let b = SessionContext::new()
            .sql(&sql)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        datafusion::arrow::compute::concat_batches(&b[0].schema(), &b).unwrap()
    }

    #[tokio::test]
    async fn a_listing_written_twice_is_an_error_in_one_batch_or_across_two() {
        let mut w = WrittenScores::default();
        w.add(&scores("(5), (2)").await).unwrap();
        w.add(&scores("(3), (2)").await).unwrap();
        let err = w.check_each_once().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`listing_id` 2 is written twice; publishing nothing"
        );
        let mut w = WrittenScores::default();
        w.add(&scores("(7), (7)").await).unwrap();
        assert!(w.check_each_once().is_err());
        let mut w = WrittenScores::default();
        w.add(&scores("(3), (1)").await).unwrap();
        w.add(&scores("(2)").await).unwrap();
        w.check_each_once().unwrap();
        let f = w.figures();
        assert_eq!(f.actions[1]["n"], 3, "{:?}", f.actions);
    }
}
