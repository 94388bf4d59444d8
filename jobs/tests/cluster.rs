//! Cluster mode: the scan on Ballista gives the single-node result, in
//! process (`standalone`) and as separate `dajia scheduler` / `dajia
//! executor` processes on 127.0.0.1; an executor killed mid-scan.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} is not listening on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A scheduler and `n` executors, stopped when dropped.
struct Cluster {
    url: String,
    scheduler: Child,
    executors: Vec<Child>,
    work: Vec<PathBuf>,
}

impl Cluster {
    fn start(n: usize, dir: &Path) -> Cluster {
        Cluster::start_with(n, dir, &[])
    }

    /// Executors given `extra` flags. With flags, an executor runs in `dir`
    /// without `$DAJIA_MODELS`, so nothing but its flags tells it where
    /// models are.
    fn start_with(n: usize, dir: &Path, extra: &[&str]) -> Cluster {
        let port = free_port();
        let log = |name: &str| std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let mut scheduler = bin()
            .args([
                "scheduler",
                "--port",
                &port.to_string(),
                "--executor-timeout",
                "10",
            ])
            .stdout(Stdio::null())
            .stderr(log("scheduler"))
            .spawn()
            .unwrap();
        wait_for_port(port, "scheduler", &mut scheduler);
        let url = format!("df://127.0.0.1:{port}");
        let mut c = Cluster {
            url,
            scheduler,
            executors: vec![],
            work: vec![],
        };
        for i in 0..n {
            let work = dir.join(format!("executor-{i}"));
            let (flight, grpc) = (free_port(), free_port());
            let mut cmd = bin();
            cmd.args([
                "executor",
                "--scheduler",
                &c.url,
                "--port",
                &flight.to_string(),
                "--grpc-port",
                &grpc.to_string(),
                "--concurrent-tasks",
                "2",
                "--memory-pool-size",
                "1G",
                "--heartbeat",
                "2",
                "--work-dir",
                work.to_str().unwrap(),
            ])
            .args(extra)
            .env("DAJIA_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log(&format!("executor-{i}")));
            if !extra.is_empty() {
                cmd.env_remove("DAJIA_MODELS").current_dir(dir);
            }
            let mut e = cmd.spawn().unwrap();
            wait_for_port(flight, "executor", &mut e);
            c.executors.push(e);
            c.work.push(work);
        }
        // Executors register with the scheduler as they start.
        std::thread::sleep(Duration::from_secs(2));
        c
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self
            .executors
            .iter_mut()
            .chain(std::iter::once(&mut self.scheduler))
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `sql`'s rows as CSV, fetched with arrow-flight's Flight SQL client from
/// a `dajia serve --flight-sql` started with `args`.
fn flight_sql_csv(args: &[&str], sql: &str) -> String {
    use arrow_flight::sql::client::FlightSqlServiceClient;
    use futures::TryStreamExt;
    const TOKEN: &str = "cluster-token-0123456789abcdef";
    let (mut server, uri) = serve_flight_sql(args, TOKEN, Stdio::inherit());
    let batches = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let channel = tonic::transport::Channel::from_shared(format!("http://{uri}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = FlightSqlServiceClient::new(channel);
        client.set_token(TOKEN.to_string());
        let info = client.execute(sql.to_string(), None).await.unwrap();
        let ticket = info.endpoint[0].ticket.clone().unwrap();
        let stream = client.do_get(ticket).await.unwrap();
        stream.try_collect::<Vec<_>>().await.unwrap()
    });
    let _ = server.kill();
    let _ = server.wait();
    let mut csv = Vec::new();
    {
        let mut w = datafusion::arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut csv);
        for b in &batches {
            w.write(b).unwrap();
        }
    }
    String::from_utf8(csv).unwrap()
}

fn options(cat: &Path, out: &Path) -> dajia::scan::ScanOptions {
    let mut o = dajia::scan::ScanOptions::new(cat.to_str().unwrap(), out.to_str().unwrap(), date());
    // The image stage runs in the client process either way; OCR would only
    // make the test slower.
    o.options.ocr.mode = dajia::ocr::OcrMode::Off;
    o
}

#[test]
fn in_process_cluster_scores_like_one_machine() {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog");
    gen_with_images(&cat, 4_000, 21, 0.05);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let local = rt
        .block_on(dajia::scan::run(&options(&cat, &dir.path().join("local"))))
        .unwrap();
    let mut o = options(&cat, &dir.path().join("cluster"));
    o.cluster = dajia::cluster::Target::InProcess;
    let cluster = rt.block_on(dajia::scan::run(&o)).unwrap();
    println!("local:\n{local}\ncluster:\n{cluster}");
    assert_eq!(local.scored, 4_000);
    assert_eq!(
        (
            cluster.scored,
            cluster.allow,
            cluster.review,
            cluster.takedown,
            cluster.rejects
        ),
        (
            local.scored,
            local.allow,
            local.review,
            local.takedown,
            local.rejects
        )
    );
    assert_eq!(cluster.top_reasons, local.top_reasons);
    assert!(local.images.is_some(), "the catalog has images");
    let (a, b) = (
        scores_json(&dir.path().join("local")),
        scores_json(&dir.path().join("cluster")),
    );
    assert_eq!(a.lines().count(), 4_000);
    assert!(a == b, "cluster rows differ from the local rows");
}

#[test]
fn scheduler_and_two_executors_score_like_one_machine() {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog");
    gen_with_images(&cat, 6_000, 22, 0.05);
    let (local, remote) = (dir.path().join("local"), dir.path().join("remote"));
    let (ok, s_local, err) = scan_with(&cat, &local, &["--ocr", "off"]);
    assert!(ok, "{err}");
    let cluster = Cluster::start(2, dir.path());
    // What a killed run left in _staging two days ago goes; a run that may
    // still be going keeps its folder.
    let stale = remote.join("_staging/2026-11-26-killed");
    let young = remote.join("_staging/2026-11-28-running");
    for d in [&stale, &young] {
        std::fs::create_dir_all(d.join("risk_scores")).unwrap();
        std::fs::write(d.join("risk_scores/part.parquet"), b"x").unwrap();
    }
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(49 * 3600);
    std::fs::File::open(&stale)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    let (ok, s_remote, err) =
        scan_with(&cat, &remote, &["--ocr", "off", "--cluster", &cluster.url]);
    assert!(ok, "cluster scan failed: {err}");
    println!("local:\n{s_local}\ncluster:\n{s_remote}");
    // Same counts, actions and reasons (lines with rates and times, and
    // the reports' paths, differ).
    let body = |s: &str| {
        s.lines()
            .filter(|l| !l.contains("/s") && !l.contains("device") && !l.contains("report "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(body(&s_local), body(&s_remote));
    let (a, b) = (scores_json(&local), scores_json(&remote));
    assert_eq!(a.lines().count(), 6_000);
    assert!(a == b, "cluster rows differ from the local rows");
    assert!(!stale.exists(), "a killed run's staging was kept");
    assert!(young.exists(), "a recent run's staging was removed");
    // No single writer: the scoring tasks each wrote their own part.
    let parts = std::fs::read_dir(remote.join("risk_scores").join(format!("dt={DATE}")))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "parquet")
        })
        .count();
    assert!(parts > 1, "{parts} part(s): one task wrote every row");
    // Both executors did work (each wrote shuffle files for the job).
    for w in &cluster.work {
        assert!(w.is_dir(), "{} has no work dir", w.display());
    }

    // dajia sql on the cluster: dajia's functions on the executors, the
    // catalog and the published table.
    let q = "SELECT count(*) AS n, sum(CASE WHEN normalize_text(title) LIKE '%高仿%' THEN 1 ELSE 0 END) AS replica, \
             sum(cardinality(text_signals(title))) AS signals, sum(cardinality(brand_mentions(title))) AS mentions FROM listings";
    // The same command without and with --cluster prints the same.
    let same = |args: &[&str]| {
        let local = run_ok(args);
        let on_cluster = run_ok(&[args, &["--cluster", &cluster.url]].concat());
        assert_eq!(local, on_cluster, "dajia {}", args.join(" "));
        local
    };
    let out = same(&[
        "sql",
        "--catalog",
        cat.to_str().unwrap(),
        "--format",
        "csv",
        "-c",
        q,
    ]);
    println!("sql:\n{out}");
    // The same query from a Flight SQL client of `dajia serve --cluster`:
    // the same rows.
    let via_flight = flight_sql_csv(
        &[
            "--catalog",
            cat.to_str().unwrap(),
            "--cluster",
            &cluster.url,
        ],
        q,
    );
    assert_eq!(via_flight, out, "Flight SQL on the cluster");
    let q = "SELECT action, count(*) AS n FROM risk_scores GROUP BY action ORDER BY action";
    same(&[
        "sql",
        "--out",
        remote.to_str().unwrap(),
        "--format",
        "csv",
        "-c",
        q,
    ]);
    // dajia eval on the cluster: the same report.
    same(&[
        "eval",
        "--scores",
        remote.to_str().unwrap(),
        "--labels",
        cat.to_str().unwrap(),
    ]);

    // dajia link on the cluster (its rounds checkpointed by the executors):
    // the in-process seller_clusters rows.
    let link = |out: &Path, extra: &[&str]| {
        let base = [
            "link",
            "--catalog",
            cat.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--date",
            DATE,
        ];
        run_ok(&[&base[..], extra].concat())
    };
    link(&local, &[]);
    link(&remote, &["--cluster", &cluster.url]);
    let clusters = |out: &Path| {
        run_ok(&[
            "sql",
            "--out",
            out.to_str().unwrap(),
            "--format",
            "json",
            "-c",
            "SELECT seller_id, cluster_id, cluster_size, closed_members, last_closed_at, evidence, path_attributes, path_sellers \
             FROM seller_clusters ORDER BY seller_id",
        ])
    };
    let (a, b) = (clusters(&local), clusters(&remote));
    assert!(a.lines().count() >= 10, "{a}");
    assert!(a == b, "cluster seller_clusters differ:\n{a}\n---\n{b}");

    // A wrong address is one line, and publishes nothing.
    let bad = dir.path().join("bad");
    let (ok, _, err) = scan_with(&cat, &bad, &["--cluster", "df://127.0.0.1:1"]);
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("df://127.0.0.1:1"), "{err}");
    assert!(!bad.join("risk_scores").exists());
    let (ok, _, err) = scan_with(&cat, &bad, &["--cluster", "http://x:1"]);
    assert!(!ok && err.contains("df://HOST:PORT"), "{err}");
}

/// Kill one of two executors while the scan's tasks run. Ballista's
/// scheduler notices (a failed task launch, a failed shuffle fetch, or
/// the missing heartbeat after `--executor-timeout`), resets the tasks and
/// shuffle outputs of the lost executor and runs them on the one left: the
/// scan completes with the single-node rows. Were it to fail instead
/// (e.g. the last executor lost), nothing may be published.
#[test]
fn executor_killed_mid_scan_is_retried_or_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog");
    gen(&cat, 40_000, 23);
    let (local, remote) = (dir.path().join("local"), dir.path().join("remote"));
    let (ok, _, err) = scan_with(&cat, &local, &["--ocr", "off"]);
    assert!(ok, "{err}");
    let mut cluster = Cluster::start(2, dir.path());
    let mut args = scan_args(&cat, &remote, DATE);
    args.extend(["--ocr", "off", "--cluster", &cluster.url].map(String::from));
    let mut scan = bin()
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the first executor that reports running a task of the job.
    let start = Instant::now();
    let victim = kill_an_executor_once_a_task_runs(dir.path(), &mut cluster, &mut scan);
    let killed_at = start.elapsed();
    let out = scan.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    println!(
        "killed executor {victim} at {killed_at:?}; scan {} after {:?}\n{stdout}{stderr}",
        if out.status.success() {
            "succeeded"
        } else {
            "failed"
        },
        start.elapsed()
    );
    // What the scheduler did about it (e.g. "Reset 2 tasks for running
    // job/stage …/1 on lost Executor …" after the heartbeat timeout).
    let log = std::fs::read_to_string(dir.path().join("scheduler.log")).unwrap_or_default();
    let handled: Vec<&str> = log
        .lines()
        .filter(|l| {
            let l = l.to_lowercase();
            l.contains("lost executor")
                || l.contains("heartbeat timed out")
                || l.contains("resubmit")
        })
        .collect();
    for l in &handled {
        println!("scheduler: {l}");
    }
    if out.status.success() {
        assert_eq!(
            scores_json(&local),
            scores_json(&remote),
            "retried run differs"
        );
    } else {
        assert_eq!(
            delta_version(&remote),
            0,
            "a failed run published a version"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    assert!(
        !handled.is_empty(),
        "the scheduler never noticed the lost executor:\n{log}"
    );
    // Documented behaviour (README, cluster mode): the scan completes.
    assert!(
        out.status.success(),
        "expected Ballista to retry the lost executor's tasks"
    );
}

/// With every executor gone the job cannot finish: the scheduler fails it
/// after its grace period, the scan fails in one line, and nothing is
/// published (no table version, no staged parts left).
#[test]
fn losing_every_executor_fails_cleanly_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog");
    gen(&cat, 40_000, 24);
    let out = dir.path().join("out");
    let mut cluster = Cluster::start(1, dir.path());
    let mut args = scan_args(&cat, &out, DATE);
    args.extend(["--ocr", "off", "--cluster", &cluster.url].map(String::from));
    let scan = bin()
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let log = dir.path().join("executor-0.log");
    while !std::fs::read_to_string(&log)
        .map(|l| l.contains("Execute task"))
        .unwrap_or(false)
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no task started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    cluster.executors[0].kill().unwrap();
    cluster.executors[0].wait().unwrap();
    let res = scan.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    println!(
        "scan after the last executor died ({:?}): {stderr}",
        start.elapsed()
    );
    assert!(
        !res.status.success(),
        "the scan cannot succeed without executors"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert_eq!(delta_version(&out), 0, "a failed run published a version");
    assert!(
        !out.join("_staging").exists(),
        "staged parts of the failed run were left behind"
    );
    let manifest = std::fs::read_dir(out.join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let m = std::fs::read_to_string(manifest.path()).unwrap();
    assert!(m.contains("\"outcome\": \"failed\""), "{m}");
}

/// Settings made on the client (`--set`, `[ocr]`, `[weights]`) reach the
/// functions on the executors, and each executor reads models from its own
/// `--models` (it has no `$DAJIA_MODELS` and no `./models`). Before the
/// options layer, executors registered OCR with default settings and the
/// default models folder, and weights travelled only inside the scan's plan.
#[test]
fn client_options_reach_executors_which_use_their_own_models() {
    let Some(models) = models_with("ppocrv5/ppocrv5_det.onnx") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog");
    gen_with_images(&cat, 400, 5, 0.2);
    let cluster = Cluster::start_with(1, dir.path(), &["--models", models.to_str().unwrap()]);
    let sql = |extra: &[&str], q: &str| {
        let mut args = vec![
            "sql",
            "--cluster",
            &cluster.url,
            "--catalog",
            cat.to_str().unwrap(),
            "--format",
            "csv",
            "-c",
            q,
        ];
        args.extend_from_slice(extra);
        let (ok, out, err) = run(&args);
        assert!(ok, "dajia {}: {err}", args.join(" "));
        out.lines().nth(1).unwrap_or_default().to_string()
    };
    let lines = "SELECT count(*) FROM (SELECT unnest(ocr_lines(content)) FROM images)";
    let read: u64 = sql(&[], lines).parse().unwrap();
    // (This catalog draws text over one photo.)
    assert!(
        read >= 1,
        "{read} lines read on the executor with its --models"
    );
    // Every line is below a mean confidence of 1.0: the client's setting
    // reached the executor.
    let none: u64 = sql(&["--set", "ocr.min_confidence=1.0"], lines)
        .parse()
        .unwrap();
    assert_eq!(
        none, 0,
        "client's ocr.min_confidence ignored on the executor"
    );
    let cfg = dir.path().join("dajia.toml");
    std::fs::write(&cfg, "[weights]\ncontact_diversion = 0.33\n").unwrap();
    let weight = "SELECT min(r['weight']), max(r['weight']) FROM (SELECT unnest(text_signals(title)) r FROM listings) WHERE r['code'] = 'contact_diversion'";
    assert_eq!(sql(&[], weight), "0.75,0.75");
    assert_eq!(
        sql(&["--config", cfg.to_str().unwrap()], weight),
        "0.33,0.33"
    );
}

/// `image_top_matches` over `dajia kb`'s indexes runs on the executors: the
/// client sends their path and hash, each executor loads them once, and the
/// rows equal the in-process ones. Indexes built in the client's memory
/// (from the catalog, no `--image-kb`) are refused with what to do.
#[test]
fn image_matching_on_executors_reads_the_indexes_the_client_names() {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog");
    gen_with_images(&cat, 300, 8, 0.2);
    let kb = dir.path().join("kb");
    run_ok(&[
        "kb",
        "--catalog",
        cat.to_str().unwrap(),
        "--out",
        kb.to_str().unwrap(),
    ]);
    let q = "SELECT image_id, m['kind'] AS kind, m['image_id'] AS matched, round(m['similarity'], 4) AS s \
             FROM (SELECT image_id, unnest(image_top_matches(content, 2)) AS m FROM images) ORDER BY image_id, s DESC, matched";
    let sql = |cluster: Option<&str>, kb: Option<&Path>| {
        let mut args = vec![
            "sql",
            "--catalog",
            cat.to_str().unwrap(),
            "--format",
            "csv",
            "-c",
            q,
        ];
        if let Some(url) = cluster {
            args.extend(["--cluster", url]);
        }
        if let Some(kb) = kb {
            args.extend(["--image-kb", kb.to_str().unwrap()]);
        }
        run(&args)
    };
    let (ok, local, err) = sql(None, Some(&kb));
    assert!(ok, "{err}");
    assert!(local.lines().count() > 100, "{local}");
    assert!(local.contains(",official,"), "{local}");
    let cluster = Cluster::start(1, dir.path());
    let (ok, remote, err) = sql(Some(&cluster.url), Some(&kb));
    assert!(ok, "{err}");
    assert_eq!(remote, local);
    let log = std::fs::read_to_string(dir.path().join("executor-0.log")).unwrap();
    assert!(!log.contains("panicked"), "{log}");
    let (ok, out, err) = sql(Some(&cluster.url), None);
    assert!(!ok, "{out}\n{err}");
    assert!(err.contains("--image-kb DIR"), "{err}");
}

/// Waits until one of the two executors logs a task it had not run when
/// called (the scan `scan` just submitted its first job), kills it; which.
fn kill_an_executor_once_a_task_runs(dir: &Path, cluster: &mut Cluster, scan: &mut Child) -> usize {
    let tasks = |i: usize| {
        std::fs::read_to_string(dir.join(format!("executor-{i}.log")))
            .map(|l| l.matches("Execute task").count())
            .unwrap_or(0)
    };
    let before = [tasks(0), tasks(1)];
    let running = |i: usize| tasks(i) > before[i];
    let start = Instant::now();
    while !(running(0) || running(1)) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no task started"
        );
        assert!(
            scan.try_wait().unwrap().is_none(),
            "scan ended before any task ran"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let victim = if running(0) { 0 } else { 1 };
    cluster.executors[victim].kill().unwrap();
    cluster.executors[victim].wait().unwrap();
    victim
}

/// The scan's image summary from the run's manifest, without its times.
fn image_counts(out: &Path) -> serde_json::Value {
    let runs = std::fs::read_dir(out.join("runs")).unwrap();
    let m = runs
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .max()
        .expect("a manifest");
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(m).unwrap()).unwrap();
    let mut i = m["summary"]["images"].clone();
    let o = i.as_object_mut().expect("an image stage ran");
    o.retain(|k, _| {
        !(k.contains("seconds")
            || ["images_per_second", "device", "gpu", "on_cluster", "ocr"].contains(&k.as_str()))
    });
    i
}

/// Every published rejects row, sorted.
fn rejects_csv(out: &Path) -> String {
    sql_csv(
        out,
        "SELECT table_name, file, row_key, reason, dt FROM rejects ORDER BY table_name, row_key, reason",
    )
}

/// Item 1 and 4 of the image stage on a cluster: two executors decode,
/// embed, match and OCR the catalog's images (inline and by `uri`), and the
/// published rows, rejects and image counts equal the in-process run's.
/// Then an executor is killed while the image stage runs: the run is retried
/// to the same rows, or fails and publishes nothing.
#[test]
fn image_stage_on_executors_gives_the_in_process_rows() {
    // Without the OCR models (a skip is said; CI requires them) the stage
    // still runs on the executors, without reading text.
    let ocr = if models_with("ppocrv5/ppocrv5_det.onnx").is_some() {
        "on"
    } else {
        "off"
    };
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog");
    gen_with_images(&cat, 1_200, 31, 0.3);
    // Unreadable images, and `uri`s inside and outside the catalog.
    let listener = add_bad_images(&cat);
    let (local, remote) = (dir.path().join("local"), dir.path().join("remote"));
    let (ok, s_local, err) = scan_with(&cat, &local, &["--ocr", ocr]);
    assert!(ok, "{err}");
    let mut cluster = Cluster::start(2, dir.path());
    let (ok, s_remote, err) = scan_with(&cat, &remote, &["--ocr", ocr, "--cluster", &cluster.url]);
    assert!(ok, "cluster scan failed: {err}");
    println!("local:\n{s_local}\ncluster:\n{s_remote}");
    let counts = image_counts(&local);
    println!("image counts: {counts}");
    assert!(
        counts["ocr_images_with_text"].as_u64().unwrap() > 0,
        "{counts}"
    );
    assert!(
        counts["matched_official"].as_u64().unwrap()
            + counts["matched_known_fake"].as_u64().unwrap()
            > 0,
        "{counts}"
    );
    assert_eq!(counts, image_counts(&remote));
    let (a, b) = (scores_json(&local), scores_json(&remote));
    assert_eq!(a.lines().count(), 1_200);
    assert!(
        ocr == "off" || a.contains("ocr:"),
        "no reason came from text in images"
    );
    assert!(a == b, "cluster rows differ from the local rows");
    assert_eq!(rejects_csv(&local), rejects_csv(&remote));
    assert!(
        s_remote.contains("the executors'"),
        "the image stage ran in the client:\n{s_remote}"
    );
    let rejects = rejects_csv(&remote);
    for refused in [
        "bad-traversal",
        "bad-dev-zero",
        "bad-file-url",
        "bad-symlink",
        "bad-http",
        "bad-bucket",
    ] {
        assert!(
            rejects.contains(refused),
            "{refused} not rejected:\n{rejects}"
        );
    }
    assert!(!rejects.contains("good-uri"), "{rejects}");
    assert!(
        listener.accept().is_err(),
        "a refused http uri was contacted"
    );
    // Nothing staged is left behind.
    assert!(!remote.join("_staging").exists());

    // An executor killed as soon as the image stage's tasks run.
    let again = dir.path().join("again");
    let mut args = scan_args(&cat, &again, DATE);
    args.extend(["--ocr", ocr, "--cluster", &cluster.url].map(String::from));
    let mut scan = bin()
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let victim = kill_an_executor_once_a_task_runs(dir.path(), &mut cluster, &mut scan);
    let out = scan.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "killed executor {victim} during the image stage; scan {}: {stderr}",
        if out.status.success() {
            "succeeded"
        } else {
            "failed"
        }
    );
    if out.status.success() {
        assert!(scores_json(&again) == a, "retried run differs");
        assert_eq!(image_counts(&again), counts);
        assert_eq!(rejects_csv(&again), rejects_csv(&local));
    } else {
        assert_eq!(delta_version(&again), 0, "a failed run published a version");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

/// Issue 19, item 7 on a cluster: a scan killed between its two commits and
/// one killed after both (before its manifest says `succeeded`) are
/// invisible to readers, and the rerun rolls them back and publishes a clean
/// run's rows.
#[test]
fn a_cluster_scan_killed_around_its_commits_is_invisible_and_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let (cat, out, local) = (
        dir.path().join("catalog"),
        dir.path().join("out"),
        dir.path().join("local"),
    );
    gen(&cat, 2_000, 31);
    let cluster = Cluster::start(1, dir.path());
    let mut args = scan_args(&cat, &out, DATE);
    args.extend(["--ocr", "off", "--cluster", &cluster.url].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, _, err) = run(&args);
    assert!(ok, "{err}");
    let before = (scores_csv(&out), rejects_csv(&out));
    std::fs::remove_dir_all(&cat).unwrap();
    gen(&cat, 2_500, 32);
    for stage in ["between_commits", "after_commits"] {
        let o = bin()
            .args(&args)
            .env("DAJIA_FAILPOINT_ABORT_AT", stage)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("aborting"),
            "{stage}: {err}"
        );
        assert_eq!((scores_csv(&out), rejects_csv(&out)), before, "{stage}");
    }
    let (ok, _, err) = run(&args);
    assert!(ok, "{err}");
    let (ok, _, err) = scan_with(&cat, &local, &["--ocr", "off"]);
    assert!(ok, "{err}");
    assert_eq!(scores_csv(&out), scores_csv(&local));
    assert_eq!(rejects_csv(&out), rejects_csv(&local));
    assert_eq!(scores_csv(&out).lines().count(), 2_501);
}

#[test]
fn an_executor_reads_its_image_ceilings_from_its_config_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("executor.toml");
    std::fs::write(&cfg, "[images]\ndecode_budget_bytes = 0\n").unwrap();
    // Checked before any connection (nothing listens on port 1).
    let (ok, _, err) = run(&[
        "executor",
        "--scheduler",
        "df://127.0.0.1:1",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        err.contains("images.decode_budget_bytes must be at least 1"),
        "{err}"
    );
    std::fs::write(&cfg, "[images]\nmax_pixles = 5\n").unwrap();
    let (ok, _, err) = run(&[
        "executor",
        "--scheduler",
        "df://127.0.0.1:1",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("max_pixles"), "{err}");
}
