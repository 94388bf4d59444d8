//! One run, one result: a scan killed at any stage publishes nothing that
//! readers see, the next run gives exactly a clean run's rows, a second scan
//! of an output refuses while one holds it, and `dajia vacuum` deletes only
//! what no reader needs.

mod common;

use std::path::Path;

use common::*;

/// A catalog of `seed` with one corrupt listings file (so `rejects` has a
/// row that differs between catalogs).
fn catalog(cat: &Path, seed: u64) {
    gen_with_images(cat, 3_000, seed, 0.05);
    std::fs::write(
        cat.join("listings")
            .join(format!("zz-corrupt-{seed}.parquet")),
        b"PAR1 not really parquet",
    )
    .unwrap();
}

/// What a reader of `out` sees: the scores, the rejects, and the run ids in
/// each table.
fn seen(out: &Path) -> (String, String, String, String) {
    let ids = |t: &str| sql_csv(out, &format!("SELECT DISTINCT run_id FROM {t} ORDER BY 1"));
    (
        scores_csv(out),
        sql_csv(
            out,
            "SELECT table_name, file, row_key, reason FROM rejects ORDER BY table_name, file, row_key, reason",
        ),
        ids("risk_scores"),
        ids("rejects"),
    )
}

fn manifests(out: &Path) -> Vec<serde_json::Value> {
    let mut v: Vec<serde_json::Value> = std::fs::read_dir(out.join("runs"))
        .unwrap()
        .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    v.sort_by_key(|m| m["started_at"].as_str().unwrap().to_string());
    v
}

#[test]
fn a_scan_killed_at_any_stage_publishes_nothing_and_the_rerun_equals_a_clean_run() {
    let dir = tempfile::tempdir().unwrap();
    let (cat, out, clean) = (
        dir.path().join("catalog"),
        dir.path().join("out"),
        dir.path().join("clean"),
    );
    catalog(&cat, 4);
    let args = scan_args(&cat, &out, DATE);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(run(&args).0);
    let before = seen(&out);
    assert_eq!(before.2, before.3, "both tables from one run");
    assert_eq!(before.2.lines().count(), 2, "one run id: {}", before.2);
    assert!(before.1.contains("zz-corrupt-4"), "{}", before.1);

    // Another catalog: a completed run would change both tables.
    std::fs::remove_dir_all(&cat).unwrap();
    catalog(&cat, 99);
    let clean_args = scan_args(&cat, &clean, DATE);
    let clean_args: Vec<&str> = clean_args.iter().map(String::as_str).collect();
    assert!(run(&clean_args).0);
    let want = seen(&clean);

    // Killed (abort: no unwinding, as kill -9) at each stage in turn, each
    // run on top of the last one's leftovers.
    let stages = [
        ("DAJIA_FAILPOINT_ABORT_AT", "catalog"),
        ("DAJIA_FAILPOINT_ABORT_AT", "images"),
        ("DAJIA_FAILPOINT_ABORT_AFTER_ROWS", "1000"),
        ("DAJIA_FAILPOINT_ABORT_AT", "between_commits"),
        ("DAJIA_FAILPOINT_ABORT_AT", "after_commits"),
    ];
    for (var, stage) in stages {
        let o = bin().args(&args).env(var, stage).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{stage}: {err}");
        assert!(err.contains("aborting"), "{stage}: {err}");
        assert_eq!(
            seen(&out),
            before,
            "after a kill at {stage}, readers see the last good run"
        );
        let last = manifests(&out).pop().unwrap();
        assert_eq!(last["outcome"], "running", "{stage}: {last}");
    }
    // The kill after both commits left new latest versions; readers did not
    // see them, and the next run rolls them back before its own.
    let o = bin().args(&args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let after = seen(&out);
    assert_eq!(
        (&after.0, &after.1),
        (&want.0, &want.1),
        "the rerun gives a clean run's rows"
    );
    assert_eq!(after.2, after.3, "both tables from one run");
    let last = manifests(&out).pop().unwrap();
    assert_eq!(last["outcome"], "succeeded");
    assert!(
        after.2.contains(last["run_id"].as_str().unwrap()),
        "{after:?} {last}"
    );
    assert!(
        last["commits"]["risk_scores"].as_i64().is_some()
            && last["commits"]["rejects"].as_i64().is_some(),
        "{last}"
    );
}

#[test]
fn a_second_scan_of_an_output_refuses_to_start_while_one_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let (cat, out) = (dir.path().join("catalog"), dir.path().join("out"));
    gen(&cat, 300, 1);
    std::fs::create_dir_all(&out).unwrap();
    // A scan of this host that is alive (this test process) holds the lease.
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let until = (chrono::Utc::now() + chrono::Duration::minutes(10)).to_rfc3339();
    let lease = serde_json::json!({
        "run_id": "2026-11-28-other-run", "host": host.trim(), "pid": std::process::id(),
        "acquired_at": chrono::Utc::now().to_rfc3339(), "expires_at": until,
    });
    std::fs::write(out.join("_lease.json"), lease.to_string()).unwrap();
    let (ok, _, err) = scan(&cat, &out);
    assert!(!ok);
    assert!(
        err.contains("another scan holds") && err.contains("2026-11-28-other-run"),
        "{err}"
    );
    assert!(
        !out.join("runs").exists() && !out.join("risk_scores").exists(),
        "no work done"
    );
    std::fs::remove_file(out.join("_lease.json")).unwrap();
    let (ok, _, err) = scan(&cat, &out);
    assert!(ok, "{err}");
    assert!(!out.join("_lease.json").exists(), "released at the end");
}

/// Parquet files under a table folder.
fn parquet_files(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() && !p.ends_with("_delta_log") {
            n += parquet_files(&p);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            n += 1;
        }
    }
    n
}

#[test]
fn vacuum_deletes_replaced_and_orphaned_files_and_readers_see_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (cat, out) = (dir.path().join("catalog"), dir.path().join("out"));
    gen(&cat, 3_000, 5);
    let args = scan_args(&cat, &out, DATE);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(run(&args).0);
    assert!(run(&args).0); // replaces the partition: the first run's files are out
    let killed = bin()
        .args(&args)
        .env("DAJIA_FAILPOINT_ABORT_AFTER_ROWS", "1000")
        .status()
        .unwrap();
    assert!(!killed.success()); // may leave files no version references
    let before = seen(&out);
    let files = parquet_files(&out.join("risk_scores"));
    let o = run_ok(&[
        "vacuum",
        "--out",
        out.to_str().unwrap(),
        "--retain",
        "0m",
        "--dry-run",
    ]);
    assert!(o.contains("risk_scores: would delete"), "{o}");
    assert_eq!(
        parquet_files(&out.join("risk_scores")),
        files,
        "a dry run deletes nothing"
    );
    let o = run_ok(&["vacuum", "--out", out.to_str().unwrap(), "--retain", "0m"]);
    let deleted: usize = o
        .lines()
        .find(|l| l.starts_with("risk_scores: deleted"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{o}"));
    assert!(deleted >= 1, "{o}");
    assert_eq!(parquet_files(&out.join("risk_scores")), files - deleted);
    assert_eq!(
        seen(&out),
        before,
        "readers of the published version are unaffected"
    );
    // A retention keeps recently replaced files.
    let o = run_ok(&["vacuum", "--out", out.to_str().unwrap(), "--retain", "7d"]);
    assert!(o.contains("risk_scores: deleted 0 files"), "{o}");
    let (ok, _, err) = run(&[
        "vacuum",
        "--out",
        out.to_str().unwrap(),
        "--retain",
        "7 days",
    ]);
    assert!(!ok && err.contains("unit"), "{err}");
}
