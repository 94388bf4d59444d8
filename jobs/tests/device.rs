//! `--device` on the jobs: `cpu` scans as before and the manifest says where
//! the image work ran; `cuda` without a usable GPU (this build or this
//! machine) is a one-line error and publishes nothing; `auto` falls back to
//! the CPU; bad values are refused before any I/O.

mod common;

use common::*;

fn manifest(out: &std::path::Path) -> serde_json::Value {
    let runs = out.join("runs");
    let mut files: Vec<_> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    serde_json::from_slice(&std::fs::read(files.last().unwrap()).unwrap()).unwrap()
}

#[test]
fn device_flag_on_scan_and_sql() {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("cat");
    gen_with_images(&cat, 400, 5, 0.3);

    // cpu: the scan runs; the manifest records the device and stage times.
    let out = dir.path().join("out-cpu");
    let (ok, stdout, stderr) = scan_with(&cat, &out, &["--device", "cpu", "--ocr", "off"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("device    cpu ("), "{stdout}");
    let m = manifest(&out);
    assert!(m["device"].as_str().unwrap().starts_with("cpu ("), "{m}");
    let images = &m["summary"]["images"];
    assert!(
        images["embed_match_seconds"].as_f64().unwrap() > 0.0,
        "{images}"
    );
    assert!(
        images["device"].as_str().unwrap().starts_with("cpu"),
        "{images}"
    );

    // cuda without a GPU: one line naming what is missing, nothing published.
    if dajia_kernels::device::select(dajia_kernels::device::DeviceChoice::Cuda).is_err() {
        let out = dir.path().join("out-cuda");
        let (ok, _, stderr) = scan_with(&cat, &out, &["--device", "cuda", "--ocr", "off"]);
        assert!(!ok);
        let line = stderr.trim();
        assert_eq!(line.lines().count(), 1, "{stderr}");
        assert!(
            line.contains("built without CUDA")
                || line.contains("library not found")
                || line.contains("no CUDA device"),
            "{line}"
        );
        assert!(!out.join("risk_scores").join("_delta_log").exists());
        let m = manifest(&out);
        assert_eq!(m["outcome"], "failed", "{m}");

        // The same in dajia sql, and through the environment.
        let (ok, _, stderr) = run(&["sql", "--device", "cuda", "-c", "SELECT 1"]);
        assert!(!ok && stderr.trim().lines().count() == 1, "{stderr}");
        let out = bin()
            .args(["sql", "-c", "SELECT 1"])
            .env("DAJIA_DEVICE", "cuda")
            .output()
            .unwrap();
        assert!(!out.status.success());
    }

    // auto never fails: a GPU, or the CPU.
    let out = dir.path().join("out-auto");
    let (ok, _, stderr) = scan_with(&cat, &out, &["--device", "auto", "--ocr", "off"]);
    assert!(ok, "{stderr}");

    // A bad value is refused before anything is read or written.
    let out = dir.path().join("out-bad");
    let (ok, _, stderr) = scan_with(&cat, &out, &["--device", "tpu"]);
    assert!(
        !ok && stderr.contains("unknown device `tpu` (auto, cpu or cuda)"),
        "{stderr}"
    );
    assert!(!out.exists());
}
