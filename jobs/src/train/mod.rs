//! `dajia train`: learns how much each reason weighs, and where review and
//! takedown start, from the verdicts the platform already has (test
//! purchases, resolved complaints), and writes a versioned model file that
//! `--model FILE` scores with.
//!
//! - Features: the reasons the nightly scan gave each labelled listing
//!   (`risk_scores`), read in default weights (`data`).
//! - Split by time: the latest `holdout_share` of the verdicts (whole days)
//!   is held out; the fit never sees it, and the file reports the default
//!   rules and the model side by side on it.
//! - Fit (`fit`): the scan's noisy-OR with an exponent per reason code,
//!   pulled towards the defaults; thresholds chosen on the training slice
//!   so that precision is no lower than the defaults' there.
//! - Refuses with a clear message when labels are too few or one-sided.

pub mod backing;
pub mod data;
pub mod fit;
pub mod model_file;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use chrono::NaiveDate;
use serde::Serialize;

use dajia_kernels::risk::{Learned, Thresholds, MODEL_VERSION, SIGNALS};

use crate::catalog::{local_path, Catalog};
use crate::delta;
pub use model_file::ModelFile;

use fit::{Example, FitOptions};
use model_file::{Bin, Metrics, Slice};

/// Options of `dajia train`.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub catalog: String,
    pub out: String,
    /// The last day of the window (verdicts up to it count).
    pub date: NaiveDate,
    pub window_days: u32,
    /// Share of the verdicts, the latest, held out for evaluation.
    pub holdout_share: f64,
    pub l2: f64,
    /// Fewest training verdicts, and fewest of each kind, to train at all.
    pub min_labels: u64,
    pub min_per_class: u64,
    /// Also write the model here.
    pub model_out: Option<PathBuf>,
}

impl TrainOptions {
    pub fn new(catalog: &str, out: &str, date: NaiveDate) -> Self {
        TrainOptions {
            catalog: catalog.into(),
            out: out.into(),
            date,
            window_days: 90,
            holdout_share: 0.25,
            l2: 1.0,
            min_labels: 50,
            min_per_class: 10,
            model_out: None,
        }
    }

    /// Checks every value, apart from any I/O.
    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(self.window_days > 0, "--window-days must be at least 1");
        anyhow::ensure!(
            self.holdout_share > 0.0 && self.holdout_share < 0.9,
            "--holdout-share must be above 0 and below 0.9"
        );
        anyhow::ensure!(
            self.l2.is_finite() && self.l2 >= 0.0,
            "--l2 must be 0 or more"
        );
        anyhow::ensure!(
            self.min_per_class >= 1,
            "--min-per-class must be at least 1"
        );
        Ok(())
    }
}

/// What `dajia train` did.
#[derive(Debug, Clone, Serialize)]
pub struct TrainRun {
    pub model: ModelFile,
    pub path: String,
    pub sweeps: usize,
    pub seconds: f64,
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date")
}

/// A day (days since 1970-01-01) as `YYYY-MM-DD`; empty when unknown.
fn day_string(day: Option<i32>) -> String {
    day.and_then(|d| epoch().checked_add_signed(chrono::Duration::days(i64::from(d))))
        .map(|d| d.to_string())
        .unwrap_or_default()
}

fn slice(rows: &[&data::Labelled]) -> Slice {
    let days: Vec<i32> = rows.iter().filter_map(|r| r.day).collect();
    let pos = rows.iter().filter(|r| r.example.counterfeit).count() as u64;
    Slice {
        from: day_string(days.iter().min().copied()),
        to: day_string(days.iter().max().copied()),
        counterfeit: pos,
        genuine: rows.len() as u64 - pos,
    }
}

fn scored(rows: &[&data::Labelled], beta: &[f64]) -> Vec<(f64, bool)> {
    rows.iter()
        .map(|r| (fit::score(&r.example.z, beta), r.example.counterfeit))
        .collect()
}

/// A threshold just below `t` in `f32` (the scan's scores are `f32`), so
/// that the listing whose score is `t` is still flagged.
fn below(t: f64) -> f32 {
    ((t - 1e-6) as f32).clamp(0.0, 1.0)
}

/// The level of the sign test a review threshold must pass to move from
/// the default ([`fit::fewest_errors`]): a one-in-twenty chance that labels
/// this lopsided come from a band where the move gains nothing.
pub const THRESHOLD_SIGNIFICANCE: f64 = 0.05;

/// Listings of the night a model is checked on (`backing`): a sample by
/// hash when the night has more listings with reasons.
pub const NIGHT_SAMPLE: usize = 1_000_000;

/// The strongest pull towards the defaults tried, as a multiple of `--l2`
/// (4⁸): past it the model is the defaults.
const MAX_PULL: f64 = 65_536.0;

/// Thresholds for exponents `beta` on the training slice. Review: a
/// score that makes the fewest errors there (a false flag and a miss
/// weigh alike; a person reviews), the default unless the labels show a
/// better one beyond chance. Takedown (removal without a person) is
/// conservative: never below the default, and raised where the training
/// slice shows the defaults' takedown precision is not reached there;
/// listings cross it by their reweighted scores, not by a lower bar.
fn thresholds(train: &[(f64, bool)], default: &[(f64, bool)], d: &Thresholds) -> Thresholds {
    let m = Metrics::of(default, d);
    let takedown = fit::lowest_threshold(train, m.takedown_precision.max(m.precision), 1.0)
        .map(below)
        .unwrap_or(d.takedown)
        .max(d.takedown);
    let preferred = f64::from(d.review);
    let t = fit::fewest_errors(train, preferred, THRESHOLD_SIGNIFICANCE);
    let review = if t == preferred { d.review } else { below(t) }.min(takedown);
    Thresholds { review, takedown }
}

fn calibration(holdout: &[(f64, bool)]) -> Vec<Bin> {
    (0..10)
        .map(|i| {
            let (lo, hi) = (i as f64 / 10.0, (i + 1) as f64 / 10.0);
            let inside: Vec<&(f64, bool)> = holdout
                .iter()
                .filter(|(s, _)| *s >= lo && (*s < hi || (i == 9 && *s <= hi)))
                .collect();
            let pos = inside.iter().filter(|x| x.1).count() as u64;
            Bin {
                score_from: lo,
                score_to: hi,
                listings: inside.len() as u64,
                counterfeit: pos,
                rate: (!inside.is_empty()).then(|| pos as f64 / inside.len() as f64),
            }
        })
        .collect()
}

/// Run `dajia train`.
pub async fn run(o: &TrainOptions) -> Result<TrainRun> {
    let t = Instant::now();
    o.validate()?;
    let out = local_path(&o.out)?;
    let mut catalog = Catalog::open_any(&o.catalog, Some(o.date)).await?;
    catalog.keep(&["test_purchases", "complaints"]);
    if catalog.table("test_purchases").is_none() && catalog.table("complaints").is_none() {
        bail!(
            "{} has no labels: dajia train needs test_purchases or complaints",
            o.catalog
        );
    }
    let ctx = crate::session::new_session(&Default::default(), None);
    catalog.register(&ctx).await?;
    if !delta::register(&ctx, "risk_scores", &delta::output_dir(&out, "risk_scores")).await? {
        bail!(
            "{} has no risk_scores table: dajia train learns from the reasons `dajia scan` gave",
            out.display()
        );
    }
    let models = data::known_models(&out);
    let to = (o.date - epoch()).num_days() as i32;
    let from = to - o.window_days as i32 + 1;
    let labels = data::load(&ctx, from, to, &models).await?;
    let mut rows: Vec<&data::Labelled> = labels.rows.iter().collect();
    rows.sort_by_key(|r| (r.day.unwrap_or(i32::MIN), r.listing_id));

    // The held-out slice: the latest verdicts, whole days.
    let n = rows.len();
    let want = ((n as f64) * o.holdout_share).round() as usize;
    let mut cut = n.saturating_sub(want.max(1));
    if let Some(day) = rows.get(cut).and_then(|r| r.day) {
        while cut > 0 && rows[cut - 1].day == Some(day) {
            cut -= 1;
        }
    }
    let (train, holdout) = rows.split_at(cut);
    let (ts, hs) = (slice(train), slice(holdout));
    let skipped: Vec<(String, u64)> = labels.skipped.into_iter().collect();
    let why = if skipped.is_empty() {
        String::new()
    } else {
        format!(
            " ({} left out: {})",
            skipped.iter().map(|s| s.1).sum::<u64>(),
            skipped
                .iter()
                .map(|(w, n)| format!("{n} {w}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    if (train.len() as u64) < o.min_labels
        || ts.counterfeit < o.min_per_class
        || ts.genuine < o.min_per_class
    {
        bail!(
            "too few labels to train: {} counterfeit and {} genuine verdicts in the training slice of {} days up to {} \
             (need {} in all and {} of each){why}; the defaults stay",
            ts.counterfeit, ts.genuine, o.window_days, o.date, o.min_labels, o.min_per_class
        );
    }
    if hs.counterfeit == 0 || hs.genuine == 0 {
        bail!(
            "the held-out slice ({} counterfeit, {} genuine) needs verdicts of both kinds to evaluate; \
             widen --window-days or raise --holdout-share{why}",
            hs.counterfeit, hs.genuine
        );
    }

    let examples: Vec<Example> = train.iter().map(|r| r.example.clone()).collect();
    let labelled: Vec<&Example> = examples.iter().collect();
    let night = data::population(&ctx, to, NIGHT_SAMPLE, &models).await?;
    let k = SIGNALS.len();
    let ones = vec![1.0; k];
    let defaults = Thresholds::default();
    // The weakest pull towards the defaults under which every decision the
    // model changes on the night's listings is backed (`backing`): from
    // `--l2`, four times stronger each try; the defaults themselves when
    // even the strongest leaves a change unbacked.
    let mut l2 = o.l2;
    let mut unbacked = Vec::new();
    let (f, learned, beta, th, changes) = loop {
        let f = fit::fit(
            &examples,
            k,
            &FitOptions {
                l2,
                ..Default::default()
            },
        );
        let mut learned = Learned {
            name: format!("trained-{}", o.date),
            ..Default::default()
        };
        for (s, b) in SIGNALS.iter().zip(&f.beta) {
            learned.set_scale(s.code, *b as f32);
        }
        // Score with the exponents as stored (f32), as the scan will.
        let beta: Vec<f64> = SIGNALS
            .iter()
            .map(|s| f64::from(learned.scale(s.code)))
            .collect();
        let th = thresholds(&scored(train, &beta), &scored(train, &ones), &defaults);
        let changes = backing::changes(
            &night,
            &labelled,
            &beta,
            f64::from(th.review),
            f64::from(defaults.review),
            THRESHOLD_SIGNIFICANCE,
        );
        let (backed, not): (Vec<_>, Vec<_>) = changes.into_iter().partition(|c| c.backed);
        if not.is_empty() {
            break (f, learned, beta, th, backed);
        }
        unbacked = not;
        if l2 >= o.l2.max(1.0) * MAX_PULL {
            let learned = Learned {
                name: learned.name,
                ..Default::default()
            };
            break (f, learned, ones.clone(), defaults.clone(), Vec::new());
        }
        l2 = if l2 == 0.0 { 1.0 } else { l2 * 4.0 };
    };
    let held_trained = scored(holdout, &beta);
    let mut model = ModelFile {
        format: model_file::FORMAT.into(),
        version: String::new(),
        base_model_version: MODEL_VERSION.into(),
        trained_at: chrono::Utc::now().to_rfc3339(),
        model: learned,
        thresholds: th.clone(),
        leak: f.leak,
        l2,
        train: ts,
        holdout: hs,
        holdout_default: Metrics::of(&scored(holdout, &ones), &defaults),
        holdout_trained: Metrics::of(&held_trained, &th),
        calibration: calibration(&held_trained),
        skipped,
        night_listings: night.len() as u64,
        changes,
        unbacked,
    };
    model.version = model.rules().version();
    let path = ModelFile::path_under(&out, &model.version);
    model.write(&path)?;
    if let Some(p) = &o.model_out {
        model.write(p)?;
    }
    Ok(TrainRun {
        path: path.display().to_string(),
        model,
        sweeps: f.sweeps,
        seconds: t.elapsed().as_secs_f64(),
    })
}

impl std::fmt::Display for TrainRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.model;
        writeln!(
            f,
            "trained {} on {} counterfeit and {} genuine verdicts ({} to {}); held out {} and {} ({} to {})",
            m.version,
            m.train.counterfeit,
            m.train.genuine,
            m.train.from,
            m.train.to,
            m.holdout.counterfeit,
            m.holdout.genuine,
            m.holdout.from,
            m.holdout.to
        )?;
        writeln!(f, "  exponent per reason (1 = default weight):")?;
        for s in SIGNALS {
            writeln!(
                f,
                "    {:<26} {:>7.3}",
                s.code.as_str(),
                m.model.scale(s.code)
            )?;
        }
        writeln!(
            f,
            "  thresholds: review {:.4}, takedown {:.4} (defaults {}, {})",
            m.thresholds.review,
            m.thresholds.takedown,
            Thresholds::default().review,
            Thresholds::default().takedown
        )?;
        let moved: u64 = m.changes.iter().map(|c| c.listings).sum();
        writeln!(
            f,
            "  checked on {} listings of the night: {moved} decisions changed in {} patterns of reasons, each backed by verdicts; pull towards the defaults l2 {}",
            m.night_listings,
            m.changes.len(),
            m.l2
        )?;
        let show = |f: &mut std::fmt::Formatter<'_>, c: &backing::Change| {
            writeln!(
                f,
                "    {:<9} {:>7} listings with {} ({} counterfeit, {} genuine verdicts)",
                if c.flagged { "flagged" } else { "unflagged" },
                c.listings,
                c.reasons,
                c.counterfeit,
                c.genuine
            )
        };
        for c in m.changes.iter().take(5) {
            show(f, c)?;
        }
        if !m.unbacked.is_empty() {
            writeln!(
                f,
                "  weaker pulls left changes without verdicts to back them, e.g.:"
            )?;
            for c in m.unbacked.iter().take(5) {
                show(f, c)?;
            }
        }
        writeln!(
            f,
            "  held out        precision  recall  takedown precision  recall    AUC"
        )?;
        for (name, x) in [
            ("defaults", &m.holdout_default),
            ("trained", &m.holdout_trained),
        ] {
            writeln!(
                f,
                "    {name:<12} {:>10.3} {:>7.3} {:>19.3} {:>7.3} {:>6.3}",
                x.precision, x.recall, x.takedown_precision, x.takedown_recall, x.auc
            )?;
        }
        for (why, n) in &m.skipped {
            writeln!(f, "  left out: {n} {why}")?;
        }
        write!(
            f,
            "model: {} ({} sweeps, {:.1} s)",
            self.path, self.sweeps, self.seconds
        )
    }
}
