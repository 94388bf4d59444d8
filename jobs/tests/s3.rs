//! Catalogs on S3: a local S3-compatible server (moto, from PyPI) holds a
//! generated catalog; the scan and `dajia sql` read it in one process and on
//! a cluster, with the same results as from a local folder, without printing
//! the credentials. Skips when moto is not installed, unless
//! `DAJIA_REQUIRE_S3` is set (CI installs it: `.ci/run`).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const SECRET: &str = "dajia-test-secret-never-printed";

struct Moto(Child, u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> Option<Moto> {
    let ok = Command::new("python3")
        .args(["-c", "import moto.server"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("DAJIA_REQUIRE_S3").is_none(),
            "DAJIA_REQUIRE_S3 is set but python3 cannot import moto.server (pip install 'moto[server]')"
        );
        eprintln!("skipped: no moto server (pip install 'moto[server]')");
        return None;
    }
    // A port picked free can be taken before moto binds it (by another
    // test's process): then moto exits, and it is started again on another.
    for _ in 0..3 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let mut m = Moto(child, port);
        let start = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(m);
            }
            if m.0.try_wait().unwrap().is_some() {
                eprintln!(
                    "moto exited on port {port}: {}",
                    std::fs::read_to_string(log.path()).unwrap_or_default()
                );
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "moto did not start: {}",
                std::fs::read_to_string(log.path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("moto did not start on three ports");
}

/// `PUT /bucket` (moto does not check signatures).
fn create_bucket(port: u16, bucket: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

fn env(cmd: &mut Command, port: u16) -> &mut Command {
    cmd.env("AWS_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "dajia-test-key")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "us-east-1")
}

fn run_env(port: u16, args: &[&str]) -> (bool, String, String) {
    let out = env(&mut bin(), port).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Upload every file under `dir` to `s3://bucket/prefix/...`.
fn upload(port: u16, dir: &Path, bucket: &str, prefix: &str) {
    use object_store::{ObjectStoreExt, PutPayload};
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id("dajia-test-key")
        .with_secret_access_key(SECRET)
        .build()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let key = object_store::path::Path::from(format!("{prefix}/{rel}"));
            let bytes = std::fs::read(&p).unwrap();
            rt.block_on(store.put(&key, PutPayload::from(bytes)))
                .unwrap();
        }
    }
}

#[test]
fn catalog_on_s3_scans_like_a_local_folder_in_process_and_on_a_cluster() {
    let Some(moto) = start_moto() else { return };
    let port = moto.1;
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog");
    gen_with_images(&cat, 3_000, 31, 0.03);
    // A corrupt file in the bucket is set aside, as in a folder.
    std::fs::write(cat.join("listings/part-99999.parquet"), b"PAR1 not parquet").unwrap();
    create_bucket(port, "catalogs");
    upload(port, &cat, "catalogs", "nightly/2026-11-28");
    let uri = "s3://catalogs/nightly/2026-11-28";

    let local = dir.path().join("local");
    let (ok, s_local, err) = scan_with(&cat, &local, &["--ocr", "off"]);
    assert!(ok, "{err}");
    let from_s3 = dir.path().join("from-s3");
    let (ok, s_s3, err) = run_env(
        port,
        &[
            "scan",
            "--catalog",
            uri,
            "--out",
            from_s3.to_str().unwrap(),
            "--date",
            DATE,
            "--no-progress",
            "--ocr",
            "off",
        ],
    );
    assert!(ok, "scan of the S3 catalog failed: {err}");
    println!("local:\n{s_local}\ns3:\n{s_s3}");
    assert!(!s_s3.contains(SECRET) && !err.contains(SECRET));
    let a = scores_json(&local);
    assert_eq!(a.lines().count(), 3_000);
    assert!(
        a == scores_json(&from_s3),
        "S3 catalog rows differ from the local folder's"
    );
    // The corrupt object is a reject, named by its URL.
    let (ok, rejects, err) = run(&[
        "sql",
        "--out",
        from_s3.to_str().unwrap(),
        "--format",
        "csv",
        "-c",
        "SELECT file, reason FROM rejects WHERE table_name = 'listings'",
    ]);
    assert!(ok, "{err}");
    assert!(
        rejects.contains("s3://catalogs/nightly/2026-11-28/listings/part-99999.parquet"),
        "{rejects}"
    );
    for m in std::fs::read_dir(from_s3.join("runs")).unwrap() {
        let m = std::fs::read_to_string(m.unwrap().path()).unwrap();
        assert!(!m.contains(SECRET), "the manifest holds the secret");
    }

    // dajia sql reads it too, in process and on a cluster whose nodes
    // get the same environment.
    let q = "SELECT count(*) AS n, sum(cardinality(text_signals(title))) AS signals FROM listings";
    let (ok, l, err) = run_env(port, &["sql", "--catalog", uri, "--format", "csv", "-c", q]);
    assert!(ok, "{err}");
    assert!(l.contains("3000,"), "{l}");

    let sched_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut nodes: Vec<Child> = vec![];
    let mut scheduler = env(&mut bin(), port)
        .args(["scheduler", "--port", &sched_port.to_string()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while TcpStream::connect(("127.0.0.1", sched_port)).is_err() {
        assert!(scheduler.try_wait().unwrap().is_none(), "scheduler exited");
        std::thread::sleep(Duration::from_millis(100));
    }
    let url = format!("df://127.0.0.1:{sched_port}");
    for i in 0..2 {
        let p = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let g = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        nodes.push(
            env(&mut bin(), port)
                .args([
                    "executor",
                    "--scheduler",
                    &url,
                    "--port",
                    &p.to_string(),
                    "--grpc-port",
                    &g.to_string(),
                    "--concurrent-tasks",
                    "2",
                    "--memory-pool-size",
                    "1G",
                    "--work-dir",
                    dir.path().join(format!("e{i}")).to_str().unwrap(),
                ])
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        while TcpStream::connect(("127.0.0.1", p)).is_err() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    nodes.push(scheduler);
    std::thread::sleep(Duration::from_secs(2));
    let on_cluster = dir.path().join("cluster");
    let (ok, s_c, err) = run_env(
        port,
        &[
            "scan",
            "--catalog",
            uri,
            "--out",
            on_cluster.to_str().unwrap(),
            "--date",
            DATE,
            "--no-progress",
            "--ocr",
            "off",
            "--cluster",
            &url,
        ],
    );
    let (ok_sql, r, err_sql) = run_env(
        port,
        &[
            "sql",
            "--catalog",
            uri,
            "--format",
            "csv",
            "-c",
            q,
            "--cluster",
            &url,
        ],
    );
    for mut n in nodes {
        let _ = n.kill();
        let _ = n.wait();
    }
    assert!(ok, "cluster scan of the S3 catalog failed: {err}");
    assert!(!s_c.contains(SECRET) && !err.contains(SECRET));
    assert!(
        a == scores_json(&on_cluster),
        "cluster rows of the S3 catalog differ"
    );
    assert!(ok_sql, "{err_sql}");
    assert_eq!(l, r);

    // Outputs on S3 are refused in one line, before any work.
    let (ok, _, err) = run_env(
        port,
        &[
            "scan",
            "--catalog",
            uri,
            "--out",
            "s3://catalogs/out",
            "--date",
            DATE,
            "--no-progress",
        ],
    );
    assert!(!ok && err.trim().lines().count() == 1, "{err}");
    assert!(!err.contains(SECRET));
}

#[test]
fn unreadable_rows_in_an_s3_catalog_are_salvaged_like_local_ones() {
    let Some(moto) = start_moto() else { return };
    let port = moto.1;
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog");
    gen(&cat, 300, 32);
    let listing =
        add_file_with_invalid_utf8(&cat, "listings", "part-bad.parquet", 5, 7_000_001, "title");
    let seller =
        add_file_with_invalid_utf8(&cat, "sellers", "part-bad.parquet", 3, 9_000_001, "region");
    create_bucket(port, "salvage");
    upload(port, &cat, "salvage", "nightly");
    let out = dir.path().join("out");
    let (ok, stdout, err) = run_env(
        port,
        &[
            "scan",
            "--catalog",
            "s3://salvage/nightly",
            "--out",
            out.to_str().unwrap(),
            "--date",
            DATE,
            "--no-progress",
            "--ocr",
            "off",
        ],
    );
    assert!(ok, "scan failed: {err}\n{stdout}");
    let (ok, rejects, err) = run(&[
        "sql",
        "--out",
        out.to_str().unwrap(),
        "--format",
        "csv",
        "-c",
        "SELECT table_name, file, row_key, reason FROM rejects ORDER BY row_key",
    ]);
    assert!(ok, "{err}");
    // 300 + the 4 readable rows of the damaged listings file.
    assert!(stdout.contains("304 listings scored"), "{stdout}{rejects}");
    for (table, id, column) in [
        ("listings", listing, "title"),
        ("sellers", seller, "region"),
    ] {
        let want = format!(
            "{table},s3://salvage/nightly/{table}/part-bad.parquet,{id},{column} is not valid UTF-8 (byte 7)"
        );
        assert!(rejects.lines().any(|l| l == want), "{want}\n{rejects}");
    }
    assert!(!out.join("_staging").exists(), "staged copies are removed");
}
