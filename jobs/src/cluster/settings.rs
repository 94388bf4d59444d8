//! `dajia.cluster.*`: how a client plans its queries for a Ballista cluster
//! (the options layer, `crate::options`; `[cluster]` in the TOML file,
//! `--cluster-partitions` or `DAJIA_CLUSTER_PARTITIONS`, `SET`).

use documented::DocumentedFields;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    /// Partitions of a cluster query (tasks per stage): a few per executor
    /// core of a small cluster; raise it with the cluster.
    pub partitions: usize,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings { partitions: 16 }
    }
}

impl ClusterSettings {
    /// Checks every value, apart from any I/O.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.partitions > 0, "cluster.partitions must be at least 1");
        Ok(())
    }
}
