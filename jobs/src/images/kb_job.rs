//! `dajia kb`: builds the brand image index from `brand_images` and keeps the
//! known-fake image index up to date from test purchases and earlier
//! takedowns. Official photos are re-indexed whole every run (brands replace
//! their photos); known fakes accumulate across runs.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use chrono::NaiveDate;

use dajia_kernels::risk::ImageMatchKind;

use super::{index, ImageOptions, ImageRefs};
use crate::catalog::{local_path, Catalog};
use crate::{delta, session};

#[derive(Debug, Clone)]
pub struct KbOptions {
    pub catalog: String,
    pub out: String,
    /// A scan's output (or its risk_scores table): takedowns become known fakes.
    pub scores: Option<String>,
    pub date: Option<NaiveDate>,
    pub images: ImageOptions,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct KbSummary {
    pub embedder: String,
    pub official: usize,
    pub known_fakes: usize,
    pub known_fakes_added: usize,
    /// Reference images that could not be read: (image_id, reason).
    pub rejected: Vec<(String, String)>,
    pub official_path: PathBuf,
    pub known_fakes_path: PathBuf,
    pub seconds: f64,
}

pub async fn run(opts: &KbOptions) -> Result<KbSummary> {
    let started = Instant::now();
    let out = local_path(&opts.out)?;
    let catalog = Catalog::open_any(&opts.catalog, opts.date).await?;
    catalog.require(&["brand_images"])?;
    let ctx = session::new_session(&Default::default(), None);
    catalog.register(&ctx).await?;
    if let Some(scores) = &opts.scores {
        let dir = local_path(scores)?;
        let dir = if dir.join("_delta_log").is_dir() {
            dir
        } else {
            delta::output_dir(&dir, "risk_scores")
        };
        anyhow::ensure!(
            delta::register(&ctx, "risk_scores", &dir).await?,
            "--scores {}: no risk_scores Delta table there",
            dir.display()
        );
    }

    let mut kb = ImageRefs::empty(&opts.images)?;
    if let Some(f) = index::read(&out, ImageMatchKind::KnownFake, opts.images.embedder)? {
        kb.refs.fakes = f;
    }
    let before = kb.refs.fakes.len();
    let bad = kb.add_from_catalog(&ctx).await?;
    kb.save(&out)?;
    let official_path = index::path(&out, ImageMatchKind::Official, opts.images.embedder);
    let known_fakes_path = index::path(&out, ImageMatchKind::KnownFake, opts.images.embedder);
    Ok(KbSummary {
        embedder: opts.images.embedder.to_string(),
        official: kb.refs.official.len(),
        known_fakes: kb.refs.fakes.len(),
        known_fakes_added: kb.refs.fakes.len() - before,
        rejected: bad
            .into_iter()
            .map(|(_, id, e)| (id, e.to_string()))
            .collect(),
        official_path,
        known_fakes_path,
        seconds: started.elapsed().as_secs_f64(),
    })
}
