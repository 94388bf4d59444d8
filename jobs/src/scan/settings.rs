//! `dajia.scan.*`: the nightly scan's own settings (the options layer,
//! `crate::options`; `[scan]` in the TOML file, `--max-text-bytes`, `SET`).

use documented::DocumentedFields;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct ScanSettings {
    /// Titles or descriptions longer than this many bytes are rejected (to
    /// `rejects`, with the reason), not scored.
    pub max_text_bytes: usize,
    /// How long a scan's hold on its output lasts without renewal, in
    /// seconds. A running scan renews it every quarter of this; a second scan
    /// of the same output refuses to start while it holds. A killed scan's
    /// hold lapses after this long (or delete `OUT/_lease.json`).
    pub lease_seconds: u64,
    /// An identity value (phone, address, device, ... hash) shared by more
    /// sellers than this links nobody: it is a placeholder, a logistics hub
    /// or a default device id, not a person. Such values are left out of the
    /// seller links (which would otherwise pair every seller sharing one,
    /// quadratically) and listed in the run manifest.
    pub max_sellers_per_identity: u64,
}

impl Default for ScanSettings {
    fn default() -> Self {
        ScanSettings {
            max_text_bytes: 16 * 1024,
            lease_seconds: 600,
            max_sellers_per_identity: 50,
        }
    }
}

impl ScanSettings {
    /// Checks every value, apart from any I/O.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.max_text_bytes > 0,
            "scan.max_text_bytes must be at least 1"
        );
        anyhow::ensure!(
            self.max_sellers_per_identity >= 2,
            "scan.max_sellers_per_identity must be at least 2 (a link joins two sellers)"
        );
        anyhow::ensure!(
            self.lease_seconds >= 4,
            "scan.lease_seconds must be at least 4 (it is renewed every quarter of it)"
        );
        Ok(())
    }
}
