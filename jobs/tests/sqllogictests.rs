//! Runs every `tests/slt/*.slt` file (sqllogictest format, the DataFusion
//! convention) against a `dajia sql` session over a small generated catalog.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::execution::context::SessionContext;
use sqllogictest::{DBOutput, DefaultColumnType};

struct Db(Arc<SessionContext>);

#[async_trait]
impl sqllogictest::AsyncDB for Db {
    type Error = datafusion::error::DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Self::Error> {
        let df = self.0.sql(sql).await?;
        let ncols = df.schema().fields().len();
        let batches = df.collect().await?;
        let head = sql.trim_start().to_lowercase();
        let is_stmt = ["create", "copy", "set", "reset"]
            .iter()
            .any(|k| head.starts_with(k));
        if is_stmt {
            return Ok(DBOutput::StatementComplete(0));
        }
        let opts = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for b in &batches {
            let fmts: Vec<_> = b
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
                .collect::<Result<_, _>>()?;
            for r in 0..b.num_rows() {
                rows.push(fmts.iter().map(|f| f.value(r).to_string()).collect());
            }
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; ncols],
            rows,
        })
    }

    async fn shutdown(&mut self) {}
}

#[test]
fn slt_files() {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog");
    common::gen_with_images(&cat, 2_000, 21, 0.05);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ctx = Arc::new(
        rt.block_on(dajia::sql::session_for(Some(cat.to_str().unwrap()), None))
            .unwrap(),
    );
    let slt_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<_> = std::fs::read_dir(&slt_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        let mut runner = sqllogictest::Runner::new(|| {
            let ctx = ctx.clone();
            async move { Ok::<_, datafusion::error::DataFusionError>(Db(ctx)) }
        });
        let script = std::fs::read_to_string(&f)
            .unwrap()
            .replace("__TMP__", dir.path().to_str().unwrap());
        rt.block_on(runner.run_script_async(&script))
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}
