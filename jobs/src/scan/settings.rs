//! `dajia.scan.*`: the nightly scan's own settings (the options layer,
//! `crate::options`; `[scan]` in the TOML file, `--max-text-bytes`, `SET`).

use documented::DocumentedFields;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct ScanSettings {
    /// Titles or descriptions longer than this many bytes are rejected (to
    /// `rejects`, with the reason), not scored.
    pub max_text_bytes: usize,
}

impl Default for ScanSettings {
    fn default() -> Self {
        ScanSettings {
            max_text_bytes: 16 * 1024,
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
        Ok(())
    }
}
