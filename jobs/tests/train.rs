//! `dajia train` and `--model FILE`: weights learned from verdicts, a model
//! file that round-trips, scores that name it, refusals that explain.

mod common;

use common::*;

#[test]
fn train_writes_a_model_the_scan_scores_with() {
    let dir = tempfile::tempdir().unwrap();
    let (cat, out) = (dir.path().join("catalog"), dir.path().join("out"));
    gen(&cat, 20_000, 11);
    let (c, o) = (cat.to_str().unwrap(), out.to_str().unwrap());
    let train = ["train", "--catalog", c, "--out", o, "--date", DATE];

    // Nothing scanned yet: a clear message.
    let (ok, _, err) = run(&train);
    assert!(!ok && err.contains("dajia scan"), "{err}");
    let (ok, _, err) = scan(&cat, &out);
    assert!(ok, "{err}");

    // Too few labels, or one-sided: refused, and nothing written.
    let (ok, _, err) = run(&[&train[..], &["--min-labels", "1000000"]].concat());
    assert!(!ok && err.contains("too few labels"), "{err}");
    let (ok, _, err) = run(&[&train[..], &["--window-days", "1"]].concat());
    assert!(!ok && err.contains("too few labels"), "{err}");
    let (ok, _, err) = run(&[&train[..], &["--holdout-share", "1.5"]].concat());
    assert!(!ok && err.contains("--holdout-share"), "{err}");
    assert!(!out.join("models").exists());

    let copy = dir.path().join("model.json");
    let s = run_ok(&[&train[..], &["--model-out", copy.to_str().unwrap()]].concat());
    println!("{s}");
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&copy).unwrap()).unwrap();
    let version = model["version"].as_str().unwrap().to_string();
    assert!(version.starts_with("trained-2026-11-28+"), "{version}");
    assert!(out.join("models").join(format!("{version}.json")).exists());
    // Evaluated on later verdicts than it learned from.
    assert!(
        model["holdout"]["from"].as_str().unwrap() >= model["train"]["to"].as_str().unwrap(),
        "{model}"
    );
    let (d, t) = (&model["holdout_default"], &model["holdout_trained"]);
    for m in [d, t] {
        assert!(m["auc"].as_f64().unwrap() > 0.5, "{model}");
    }

    // Deterministic: the same verdicts give the same model.
    let again = run_ok(&train);
    assert!(again.contains(&version), "{again}");

    // The scan scores with it, and every row names it.
    let (ok, summary, err) = scan_with(&cat, &out, &["--model", copy.to_str().unwrap()]);
    assert!(ok, "{err}");
    println!("{summary}");
    let v = sql_csv(&out, "SELECT DISTINCT model_version AS v FROM risk_scores");
    assert_eq!(v.lines().nth(1), Some(version.as_str()), "{v}");
    // Rows the model scored are read back in default weights: training on
    // them again gives the same exponents (to rounding).
    let copy2 = dir.path().join("model2.json");
    let after = run_ok(&[&train[..], &["--model-out", copy2.to_str().unwrap()]].concat());
    assert!(!after.contains("left out"), "{after}");
    let model2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&copy2).unwrap()).unwrap();
    for (k, v) in model["model"].as_object().unwrap() {
        if let Some(x) = v.as_f64() {
            let y = model2["model"][k].as_f64().unwrap();
            assert!((x - y).abs() < 1e-3, "{k}: {x} then {y}");
        }
    }

    // A damaged or hand-edited model file is refused with its cause.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"format\": \"dajia-model/1\", \"version\": 3").unwrap();
    let (ok, _, err) = scan_with(&cat, &out, &["--model", bad.to_str().unwrap()]);
    assert!(!ok && err.contains("not JSON"), "{err}");
    let mut edited = model.clone();
    edited["thresholds"]["review"] = serde_json::json!(0.01);
    std::fs::write(&bad, edited.to_string()).unwrap();
    let (ok, _, err) = scan_with(&cat, &out, &["--model", bad.to_str().unwrap()]);
    assert!(!ok && err.contains("do not match its version"), "{err}");
    std::fs::write(&bad, "{\"format\": \"onnx\"}").unwrap();
    let (ok, _, err) = scan_with(&cat, &out, &["--model", bad.to_str().unwrap()]);
    assert!(!ok && err.contains("dajia train"), "{err}");
}
