//! The summary printed at the end of a scan: counts by action and reason of
//! the rows the run published (tallied as they streamed to the writer).

use serde::Serialize;

use super::progress::Tally;

#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanSummary {
    pub date: String,
    pub scored: u64,
    pub allow: u64,
    pub review: u64,
    pub takedown: u64,
    pub rejects: usize,
    pub top_reasons: Vec<(String, u64)>,
    pub table_version: i64,
    pub seconds: f64,
    pub rows_per_second: f64,
    pub images: Option<super::ImageStageSummary>,
    /// The seller networks linked before scoring.
    pub links: Option<crate::link::LinkSummary>,
    /// The night's HTML report (`dajia report`), written after the manifest.
    #[serde(skip)]
    pub report: Option<std::path::PathBuf>,
}

impl ScanSummary {
    /// The summary of a run from the tally of the rows it published.
    pub fn from_tally(dt: &str, t: &Tally) -> ScanSummary {
        let get = |a: &str| t.actions.get(a).copied().unwrap_or(0);
        let mut top: Vec<(String, u64)> = t.reasons.iter().map(|(k, v)| (k.clone(), *v)).collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        top.truncate(8);
        ScanSummary {
            date: dt.into(),
            scored: t.actions.values().sum(),
            allow: get("allow"),
            review: get("review"),
            takedown: get("takedown"),
            top_reasons: top,
            ..Default::default()
        }
    }
}

impl std::fmt::Display for ScanSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |n: u64| {
            if self.scored == 0 {
                0.0
            } else {
                100.0 * n as f64 / self.scored as f64
            }
        };
        writeln!(
            f,
            "dajia scan {}: {} listings scored in {:.1}s ({:.0} listings/s)",
            self.date, self.scored, self.seconds, self.rows_per_second
        )?;
        writeln!(
            f,
            "  allow     {:>10}  {:5.1}%",
            self.allow,
            pct(self.allow)
        )?;
        writeln!(
            f,
            "  review    {:>10}  {:5.1}%",
            self.review,
            pct(self.review)
        )?;
        writeln!(
            f,
            "  takedown  {:>10}  {:5.1}%",
            self.takedown,
            pct(self.takedown)
        )?;
        writeln!(f, "  rejects   {:>10}", self.rejects)?;
        if let Some(p) = &self.report {
            writeln!(f, "  report    {}", p.display())?;
        }
        if let Some(l) = &self.links {
            writeln!(
                f,
                "  sellers   {:>10}  linked to a seller closed for counterfeiting ({} clusters of {} sellers, {} with a closed member, largest {}; {} identity values too common to link)",
                l.linked_to_closed, l.clusters, l.clustered_sellers, l.clusters_with_closed, l.largest_cluster, l.hot_values_total
            )?;
        }
        if let Some(i) = &self.images {
            writeln!(
                f,
                "  images    {:>10}  ({} embedder, {:.0} images/s; {} rejected; {} official and {} known-fake matches against {} + {} references)",
                i.images, i.embedder, i.images_per_second, i.rejected, i.matched_official, i.matched_known_fake,
                i.references_official, i.references_known_fakes
            )?;
            writeln!(
                f,
                "  ocr       {:>10}  images with text ({}; {} lines, {} characters; {} skipped by the text gate; {:.1} thread-seconds)",
                i.ocr_images_with_text, i.ocr, i.ocr_lines, i.ocr_chars, i.ocr_gated_out, i.ocr_thread_seconds
            )?;
            if i.on_cluster {
                write!(
                    f,
                    "  device    {}; this process {:.1} CPU-s",
                    i.device, i.process_cpu_seconds
                )?;
            } else {
                write!(
                    f,
                    "  device    {}: decode+embed+match {:.1}s, ocr {:.1}s; this process {:.1} CPU-s",
                    i.device, i.embed_match_seconds, i.ocr_seconds, i.process_cpu_seconds
                )?;
            }
            if let Some(g) = &i.gpu {
                write!(
                    f,
                    " (decode {:.1} CPU thread-s, GPU {:.1}s, {} batches, {} split on out-of-memory, {} images on the CPU)",
                    g.decode_thread_seconds, g.device_seconds, g.batches, g.splits, g.cpu_fallback
                )?;
            }
            writeln!(f)?;
        }
        writeln!(f, "  top reasons:")?;
        for (code, n) in &self.top_reasons {
            writeln!(f, "    {code:<26} {n:>10}")?;
        }
        write!(f, "  risk_scores version {}", self.table_version)
    }
}
