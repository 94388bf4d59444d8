//! Files queried by path (`SELECT * FROM 'dir/x.parquet'`, as in
//! datafusion-cli), but only under the folders a `dajia sql` session was
//! given: its catalog, its output and any `--read-files-under DIR`. A query
//! naming `/etc/passwd`, `~/.aws/credentials` or a symbolic link out of the
//! catalog is refused in one line. DataFusion's own factory does the
//! reading; this only decides whether it may.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{DynamicFileCatalog, TableProvider, UrlTableFactory};
use datafusion::datasource::dynamic_file::DynamicListTableFactory;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::SessionContext;
use datafusion::execution::session_state::SessionStateBuilder;

/// A folder files may be read from.
#[derive(Debug, Clone, PartialEq)]
enum Root {
    Local(PathBuf),
    /// `s3://bucket/prefix/`, with the trailing slash.
    Store(String),
}

#[derive(Debug)]
struct Confined {
    inner: DynamicListTableFactory,
    roots: Vec<Root>,
}

/// `ctx` with files readable by path under `roots` (local folders or
/// `s3://` prefixes) and nowhere else. Folders that do not exist yet are
/// skipped.
pub fn enable(ctx: SessionContext, roots: &[String]) -> SessionContext {
    let roots = roots.iter().filter_map(|r| root(r)).collect();
    let current = Arc::clone(ctx.state().catalog_list());
    let factory = Arc::new(Confined {
        inner: DynamicListTableFactory::new(Default::default()),
        roots,
    });
    let catalogs = Arc::new(DynamicFileCatalog::new(
        current,
        Arc::clone(&factory) as Arc<dyn UrlTableFactory>,
    ));
    let session_id = ctx.session_id();
    let ctx: SessionContext = SessionStateBuilder::new_from_existing(ctx.state())
        .with_session_id(session_id)
        .with_catalog_list(catalogs)
        .build()
        .into();
    // DataFusion's factory reads through the session it is attached to.
    factory
        .inner
        .session_store()
        .with_state(ctx.state_weak_ref());
    ctx
}

fn root(r: &str) -> Option<Root> {
    if crate::store::is_s3(r) {
        return Some(Root::Store(format!("{}/", r.trim_end_matches('/'))));
    }
    let p = crate::catalog::local_path(r).ok()?;
    std::fs::canonicalize(p).ok().map(Root::Local)
}

/// The part of a local path before any glob character: what must exist.
fn fixed_prefix(path: &Path) -> PathBuf {
    path.components()
        .take_while(
            |c| !matches!(c, Component::Normal(s) if s.to_string_lossy().contains(['*', '?', '['])),
        )
        .collect()
}

impl Confined {
    /// `Ok(false)`: not a file this session knows (the name is then "not
    /// found", as any unknown table); an error: a file outside the roots.
    fn allowed(&self, url: &str) -> Result<bool> {
        let refuse = || {
            let roots: Vec<String> = self
                .roots
                .iter()
                .map(|r| match r {
                    Root::Local(p) => p.display().to_string(),
                    Root::Store(s) => s.clone(),
                })
                .collect();
            DataFusionError::Plan(format!(
                "`{url}` is outside the folders this session reads files from ({}); \
                 start dajia sql with --read-files-under DIR to read it",
                if roots.is_empty() {
                    "none".to_string()
                } else {
                    roots.join(", ")
                }
            ))
        };
        if crate::store::is_s3(url) {
            // `..` (plain or escaped) would be resolved after this check.
            let lower = url.to_ascii_lowercase();
            if lower.split('/').any(|s| s == ".." || s == ".") || lower.contains("%2e") {
                return Err(refuse());
            }
            let inside = self
                .roots
                .iter()
                .any(|r| matches!(r, Root::Store(p) if url.starts_with(p.as_str())));
            return if inside { Ok(true) } else { Err(refuse()) };
        }
        if let Some((scheme, _)) = url.split_once("://") {
            if scheme != "file" {
                return Err(refuse());
            }
        }
        let Ok(path) = crate::catalog::local_path(url) else {
            return Err(refuse());
        };
        // Resolved as the reader will (symbolic links followed, `..` gone).
        let Ok(real) = std::fs::canonicalize(fixed_prefix(&path)) else {
            return Ok(false);
        };
        let inside = self
            .roots
            .iter()
            .any(|r| matches!(r, Root::Local(p) if real.starts_with(p)));
        if inside {
            Ok(true)
        } else {
            Err(refuse())
        }
    }
}

#[async_trait]
impl UrlTableFactory for Confined {
    async fn try_new(&self, url: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if !self.allowed(url)? {
            return Ok(None);
        }
        self.inner.try_new(url).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_are_read_by_path_only_under_the_given_folders() {
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("catalog");
        let outside = dir.path().join("elsewhere");
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        for d in [&inside, &outside] {
            std::fs::write(d.join("t.csv"), "a,b\n1,2\n").unwrap();
        }
        std::os::unix::fs::symlink(outside.join("t.csv"), inside.join("link.csv")).unwrap();
        let ctx = enable(
            SessionContext::new(),
            &[inside.display().to_string(), "s3://bucket/prefix".into()],
        );
        let q = |p: String| {
            let ctx = ctx.clone();
            async move {
                match ctx.sql(&format!("SELECT count(*) FROM '{p}'")).await {
                    Ok(df) => df.collect().await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        q(inside.join("t.csv").display().to_string()).await.unwrap();
        for bad in [
            outside.join("t.csv").display().to_string(),
            format!("{}/../elsewhere/t.csv", inside.display()),
            inside.join("link.csv").display().to_string(),
            "/etc/passwd".to_string(),
            "s3://bucket/other/x.parquet".to_string(),
            "s3://bucket/prefix/../other/x.parquet".to_string(),
            "s3://bucket/prefix/%2E%2E/other/x.parquet".to_string(),
            "http://example.com/x.csv".to_string(),
        ] {
            let e = q(bad.clone()).await.unwrap_err();
            assert!(e.contains("outside the folders"), "{bad}: {e}");
        }
        // A name that is no file stays an unknown table.
        let e = q("no_such_table".into()).await.unwrap_err();
        assert!(e.contains("not found"), "{e}");
    }
}
