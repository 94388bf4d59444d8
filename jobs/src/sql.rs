//! `dajia sql`: ad-hoc SQL over a catalog and dajia's outputs, with every
//! dajia function. A REPL (rustyline: history, multi-line statements ending
//! in `;`), or `-c SQL` / `-f FILE` for scripts; `COPY ... TO` works as in
//! DataFusion.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::context::{SQLOptions, SessionContext};
use datafusion::logical_expr::LogicalPlan;

use crate::catalog::{local_path, Catalog};
use crate::images::ImageRefs;
use crate::{delta, kb, udf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// A session with the catalog's tables, the output tables and every
/// function, with the default options.
pub async fn session_for(catalog: Option<&str>, out: Option<&str>) -> Result<SessionContext> {
    session_with_options(
        &Default::default(),
        &Default::default(),
        catalog,
        out,
        None,
        &[],
    )
    .await
}

/// A session carrying `options` (`SET` changes them), whose image functions
/// use the indexes in `image_kb` (else the catalog's `brand_images` and
/// counterfeit test purchases). Files are readable by path under the
/// catalog, the output and `read_under`, nowhere else.
pub async fn session_with_options(
    target: &crate::cluster::Target,
    options: &crate::options::DajiaOptions,
    catalog: Option<&str>,
    out: Option<&str>,
    image_kb: Option<&str>,
    read_under: &[String],
) -> Result<SessionContext> {
    let ctx = crate::cluster::session(target, options, None).await?;
    let roots: Vec<String> = catalog
        .into_iter()
        .chain(out)
        .map(String::from)
        .chain(read_under.iter().cloned())
        .collect();
    // (A cluster client reads no files by path.)
    let ctx = if target.is_cluster() {
        ctx
    } else {
        crate::file_tables::enable(ctx, &roots)
    };
    let images = &options.images;
    if let Some(c) = catalog {
        let cat = Catalog::open_any(c, None).await?;
        cat.register(&ctx).await?;
        for t in &cat.tables {
            for (f, why) in &t.corrupt {
                eprintln!("warning: {} file {} skipped: {why}", t.name, f.display());
            }
        }
        if cat.table("brands").is_some() {
            let kb = kb::load(&ctx).await?;
            udf::register_all(&ctx, Some(Arc::new(kb)));
        }
    }
    // Before the outputs are registered: a session's known fakes are the
    // catalog's counterfeit test purchases (not every takedown of `out`;
    // `dajia kb` indexes those once, for `--image-kb`).
    let ikb = match image_kb {
        Some(dir) => ImageRefs::load(&local_path(dir)?, images)?,
        None => {
            let mut k = ImageRefs::empty(images)?;
            for (_, id, e) in k.add_from_catalog(&ctx).await? {
                eprintln!("warning: reference image {id} skipped: {e}");
            }
            k
        }
    };
    let uri_root = catalog
        .map(crate::images::fetch::catalog_root)
        .transpose()?;
    udf::register_images(&ctx, Arc::new(ikb), uri_root);
    if let Some(o) = out {
        let root = local_path(o)?;
        for t in delta::output_tables() {
            delta::register_for(&ctx, t, &root.join(t), target.is_cluster()).await?;
        }
    }
    Ok(ctx)
}

pub fn help_text() -> String {
    let mut s = String::from("dajia functions (plus every DataFusion function):\n");
    for (sig, what, example) in udf::FUNCTION_HELP {
        s.push_str(&format!("\n  {sig}\n    {what}\n    e.g. {example}\n"));
    }
    s.push_str("\nReason codes (risk_scores.reasons, assess_listing, text_signals) and the weights (dajia.weights.*) that price them:\n");
    for sig in dajia_kernels::risk::SIGNALS {
        s.push_str(&format!(
            "  {:<26} {} [{}]\n",
            sig.code.as_str(),
            sig.doc,
            sig.weights.join(", ")
        ));
    }
    s.push_str("\nCommands: \\d lists tables, \\d TABLE describes one, \\set lists the dajia.* settings (change one with SET dajia.ocr.box_thresh = 0.5;), \\h this help, \\q quits. Statements end with ';'.\n");
    s
}

pub async fn run_statement(
    ctx: &SessionContext,
    sql: &str,
    format: Format,
    w: &mut dyn std::io::Write,
) -> Result<()> {
    if let Some(key) = process_option_set(sql) {
        anyhow::bail!(
            "{key} belongs to the process, not the session: the image functions' device and models are opened when `dajia sql` starts; start it again with --set {} (on a cluster each executor keeps its own --device and --models)",
            key.trim_start_matches("dajia.")
        );
    }
    let state = ctx.state();
    let writes = state.config().get_extension::<WritesAllowed>().is_some();
    let plan = state.create_logical_plan(sql).await?;
    verify_read_only(&plan, writes, true).map_err(|e| {
        anyhow::anyhow!(
            "`dajia sql` is read-only ({e}); start it with --allow-writes to run COPY, CREATE, INSERT or DROP"
        )
    })?;
    let batches = ctx.execute_logical_plan(plan).await?.collect().await?;
    print_batches(&batches, format, w)
}

/// Refuse a plan that writes (COPY TO, INSERT, CREATE, DROP: an ad-hoc
/// query must not write files or define tables over arbitrary paths)
/// unless `writes`, and one that changes the session (SET) unless `set`.
/// The error is DataFusion's reason, one line.
pub fn verify_read_only(plan: &LogicalPlan, writes: bool, set: bool) -> Result<(), String> {
    SQLOptions::new()
        .with_allow_ddl(writes)
        .with_allow_dml(writes)
        .with_allow_statements(set)
        .verify_plan(plan)
        .map_err(|e| {
            e.strip_backtrace()
                .trim_start_matches("Error during planning: ")
                .replace('\n', " ")
        })
}

/// Marks a session whose statements may write (`dajia sql --allow-writes`);
/// without it `run_statement` refuses DDL, DML and COPY.
#[derive(Debug)]
pub struct WritesAllowed;

/// Let `ctx`'s statements write (COPY TO, CREATE, INSERT, DROP).
pub fn allow_writes(ctx: &SessionContext) {
    ctx.state_ref()
        .write()
        .config_mut()
        .set_extension(Arc::new(WritesAllowed));
}

/// The option a `SET` statement changes when it is one of those that only
/// take effect at start-up (`dajia.images.device`, `dajia.images.models_dir`):
/// refused with a message instead of changing a value nothing reads again.
fn process_option_set(sql: &str) -> Option<&'static str> {
    let mut words = sql.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("set") {
        return None;
    }
    let mut target = words.next()?;
    if target.eq_ignore_ascii_case("session") || target.eq_ignore_ascii_case("local") {
        target = words.next()?;
    }
    let name = target
        .split(['=', ';'])
        .next()?
        .trim_matches(|c| c == '"' || c == '\'' || c == '`')
        .to_ascii_lowercase();
    ["dajia.images.device", "dajia.images.models_dir"]
        .into_iter()
        .find(|k| *k == name)
}

pub fn print_batches(
    batches: &[RecordBatch],
    format: Format,
    w: &mut dyn std::io::Write,
) -> Result<()> {
    match format {
        Format::Table => {
            if !batches.is_empty() {
                writeln!(
                    w,
                    "{}",
                    datafusion::arrow::util::pretty::pretty_format_batches(batches)?
                )?;
            }
            let n: usize = batches.iter().map(|b| b.num_rows()).sum();
            writeln!(w, "{n} row(s)")?;
        }
        Format::Csv => {
            let mut cw = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *w);
            for b in batches {
                cw.write(b)?;
            }
        }
        Format::Json => {
            let mut jw = datafusion::arrow::json::LineDelimitedWriter::new(&mut *w);
            for b in batches {
                jw.write(b)?;
            }
            jw.finish()?;
        }
    }
    Ok(())
}

/// Split a script into statements at `;` outside quotes and `--` comments.
pub fn split_statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    cur.push(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            cur.push('\n');
                            break;
                        }
                    }
                }
                ';' => {
                    if !cur.trim().is_empty() {
                        out.push(cur.trim().to_string());
                    }
                    cur.clear();
                }
                _ => cur.push(c),
            },
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

async fn meta(ctx: &SessionContext, cmd: &str, format: Format) -> Result<bool> {
    let mut out = std::io::stdout();
    let parts: Vec<&str> = cmd.split_whitespace().collect();
    match parts.as_slice() {
        ["\\q"] | ["quit"] | ["exit"] => return Ok(false),
        ["\\h"] | ["help"] | ["\\?"] => print!("{}", help_text()),
        ["\\d"] => run_statement(ctx, "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1", format, &mut out).await?,
        ["\\d", t] => run_statement(ctx, &format!("DESCRIBE {t}"), format, &mut out).await?,
        ["\\set"] => run_statement(ctx, SHOW_OPTIONS, format, &mut out).await?,
        _ => eprintln!("unknown command {cmd}; \\h for help"),
    }
    Ok(true)
}

/// A statement as the REPL history keeps it: the values of secret settings
/// and options (`SET s3.secret_access_key = '…'`, `OPTIONS ('aws.secret_access_key'
/// '…')`, tokens, passwords) replaced by `'***'`, so that `~/.dajia_history`
/// never holds a credential.
pub fn for_history(stmt: &str) -> String {
    static SECRET: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#"(?i)((?:secret|password|passwd|token|access_key|account_key|api_key|private_key|credential|sas)[A-Za-z0-9_.\-]*['"]?(?:\s*=\s*|\s+to\s+|\s+))('(?:[^']|'')*'|"[^"]*"|[^\s,;)]+)"#,
        )
        .expect("a valid pattern")
    });
    SECRET.replace_all(stmt, "$1'***'").into_owned()
}

pub async fn repl(ctx: &SessionContext, format: Format) -> Result<()> {
    use rustyline::error::ReadlineError;
    let mut rl = rustyline::DefaultEditor::new()?;
    let history: Option<PathBuf> =
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".dajia_history"));
    if let Some(h) = &history {
        let _ = rl.load_history(h);
    }
    println!("dajia sql — \\h for help, \\q to quit; statements end with ';'");
    let mut buf = String::new();
    loop {
        let prompt = if buf.is_empty() { "dajia> " } else { "   ..> " };
        match rl.readline(prompt) {
            Ok(line) => {
                let t = line.trim();
                if buf.is_empty() && t.starts_with('\\')
                    || buf.is_empty() && matches!(t, "help" | "quit" | "exit")
                {
                    let _ = rl.add_history_entry(for_history(t));
                    if !meta(ctx, t, format).await? {
                        break;
                    }
                    continue;
                }
                buf.push_str(&line);
                buf.push('\n');
                if t.ends_with(';') {
                    let _ = rl.add_history_entry(for_history(buf.trim()));
                    for stmt in split_statements(&buf) {
                        if let Err(e) =
                            run_statement(ctx, &stmt, format, &mut std::io::stdout()).await
                        {
                            eprintln!("error: {e:#}");
                        }
                    }
                    buf.clear();
                }
            }
            Err(ReadlineError::Interrupted) => buf.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => bail!("reading input: {e}"),
        }
    }
    if let Some(h) = &history {
        let _ = rl.save_history(h);
    }
    Ok(())
}

/// The session's `dajia.*` settings with their docs.
pub const SHOW_OPTIONS: &str = "SELECT name, value, description FROM information_schema.df_settings WHERE name LIKE 'dajia.%' ORDER BY name";

/// Run a script: every statement, stopping at the first error. A line of
/// its own starting with `\` is a command, as in the REPL (`\set`, `\d`).
pub async fn run_script(ctx: &SessionContext, script: &str, format: Format) -> Result<()> {
    for stmt in split_statements(script) {
        if stmt.starts_with('\\') && !stmt.contains('\n') {
            meta(ctx, &stmt, format).await?;
            continue;
        }
        run_statement(ctx, &stmt, format, &mut std::io::stdout())
            .await
            .with_context(|| format!("in statement: {}", stmt.lines().next().unwrap_or("")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_reach_the_history() {
        for (stmt, kept) in [
            ("SET s3.secret_access_key = 'abc/DEF+1';", "SET s3.secret_access_key = '***';"),
            ("set s3.session_token=xyz", "set s3.session_token='***'"),
            ("SET s3.secret_access_key TO 'ab''cd'", "SET s3.secret_access_key TO '***'"),
            ("SET azure.account_key = 'k'", "SET azure.account_key = '***'"),
            (
                "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 's3://b/t' OPTIONS ('aws.secret_access_key' 'abc', 'aws.region' 'x')",
                "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 's3://b/t' OPTIONS ('aws.secret_access_key' '***', 'aws.region' 'x')",
            ),
            ("SELECT count(*) FROM risk_scores", "SELECT count(*) FROM risk_scores"),
        ] {
            assert_eq!(for_history(stmt), kept);
        }
        assert!(
            !for_history("SET s3.access_key_id = 'AKIA1'; SET s3.secret_access_key='s3cr3t'")
                .contains("s3cr3t")
        );
    }

    #[test]
    fn set_of_a_process_option_is_named() {
        for sql in [
            "SET dajia.images.device = 'cuda'",
            "set DAJIA.IMAGES.DEVICE='cpu';",
            "SET SESSION dajia.images.models_dir TO '/m'",
            "SET \"dajia.images.models_dir\" = '/m'",
        ] {
            assert!(process_option_set(sql).is_some(), "{sql}");
        }
        for sql in [
            "SET dajia.images.max_pixels = 100",
            "SELECT 'SET dajia.images.device'",
            "SET dajia.images.device_extra = 1",
            "",
        ] {
            assert_eq!(process_option_set(sql), None, "{sql}");
        }
    }

    #[tokio::test]
    async fn writes_are_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let ctx =
            datafusion::prelude::SessionContext::new_with_config(crate::session::base_config());
        let file = dir.path().join("out.csv");
        let copy = format!("COPY (SELECT 1 AS x) TO '{}' STORED AS CSV", file.display());
        let create = format!(
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '{}'",
            file.display()
        );
        let mut out = Vec::new();
        for sql in [&copy, &create, &"CREATE VIEW v AS SELECT 1".to_string()] {
            let e = run_statement(&ctx, sql, Format::Csv, &mut out)
                .await
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("read-only") && e.contains("--allow-writes"),
                "{e}"
            );
        }
        assert!(!file.exists(), "a refused COPY wrote a file");
        assert!(!ctx.table_exist("v").unwrap());
        // Queries, SET and SHOW still run.
        run_statement(&ctx, "SELECT 1", Format::Csv, &mut out)
            .await
            .unwrap();
        run_statement(
            &ctx,
            "SET dajia.images.max_pixels = 100",
            Format::Csv,
            &mut out,
        )
        .await
        .unwrap();
        allow_writes(&ctx);
        run_statement(&ctx, &copy, Format::Csv, &mut out)
            .await
            .unwrap();
        assert!(file.exists());
        run_statement(&ctx, &create, Format::Csv, &mut out)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn set_of_the_device_is_refused_and_changes_nothing() {
        let ctx =
            datafusion::prelude::SessionContext::new_with_config(crate::session::base_config());
        let mut out = Vec::new();
        let e = run_statement(
            &ctx,
            "SET dajia.images.device = 'cuda'",
            Format::Table,
            &mut out,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("--set images.device"), "{e}");
        assert_eq!(
            crate::session::options(&ctx).images.device.to_string(),
            "auto"
        );
        // Session options still change.
        run_statement(
            &ctx,
            "SET dajia.images.max_pixels = 100",
            Format::Table,
            &mut out,
        )
        .await
        .unwrap();
    }

    // The `sql_split` fuzz target's properties (fuzz/), with SQL's own
    // characters over-represented.
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn every_statement_splits_to_itself(script in "[a-zA-Z0-9 ;'\"\\-\n=_.()]{0,120}|\\PC{0,60}") {
            for stmt in split_statements(&script) {
                proptest::prop_assert!(!stmt.is_empty());
                proptest::prop_assert_eq!(&stmt, stmt.trim());
                proptest::prop_assert_eq!(split_statements(&stmt), vec![stmt.clone()]);
            }
        }

        #[test]
        fn redaction_is_stable_and_hides_the_value(
            key in "(s3\\.secret_access_key|password|aws\\.session_token)",
            value in "[a-zA-Z0-9/+]{6,20}",
            tail in "[a-z ;]{0,20}",
        ) {
            let stmt = format!("SET {key} = '{value}';{tail}");
            let shown = for_history(&stmt);
            proptest::prop_assert!(!shown.contains(&value), "{}", shown);
            proptest::prop_assert_eq!(for_history(&shown), shown);
        }
    }
}
