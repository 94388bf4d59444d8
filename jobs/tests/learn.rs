//! `dajia learn`: the variant table the scan embeds is exactly what the
//! learner makes of the real spam pairs, and it helps on pairs held out of
//! training; bad input files are clear errors.

use std::path::PathBuf;

use dajia::learn::variants::{read_pairs, read_texts, run, VariantsOptions};
use dajia_kernels::text::learn::LearnOptions;
use dajia_kernels::text::variants::{parse, VARIANT_CHARS_TSV};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

fn options() -> VariantsOptions {
    VariantsOptions {
        pairs: data("spam_variant_pairs_train.tsv"),
        benign: vec![
            data("product_titles_train.tsv"),
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../kernels/data/brand_gazetteer_zh.tsv"),
        ],
        out: None,
        learn: LearnOptions::default(),
    }
}

#[test]
fn embedded_table_is_what_the_learner_makes_and_it_helps_on_held_out_pairs() {
    let r = run(&options()).unwrap();
    assert_eq!(r.train_pairs + r.held_out_pairs, 5680);
    // Shares are written to three decimals: compare the rest.
    let key = |v: &dajia_kernels::text::variants::Variant| (v.from, v.to, v.count, v.benign);
    assert_eq!(
        parse(VARIANT_CHARS_TSV).unwrap().iter().map(key).collect::<Vec<_>>(),
        r.learned.iter().map(key).collect::<Vec<_>>(),
        "kernels/data/variant_chars.tsv is stale: rerun `dajia learn variants --out kernels/data/variant_chars.tsv`"
    );
    // Held out: the learned table recovers more of the hand-normalised
    // text and at least as many contact ids.
    assert!(
        r.after.char_accuracy > r.before.char_accuracy + 0.005,
        "before {:?} after {:?}",
        r.before,
        r.after
    );
    assert!(
        r.after.contact_ids_recovered > r.before.contact_ids_recovered,
        "{r:?}"
    );
    assert!(r.before.contact_ids > 100, "{r:?}");
}

#[test]
fn bad_pair_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.tsv");
    std::fs::write(&empty, "raw\tnormalised\n").unwrap();
    let e = read_pairs(&empty).unwrap_err().to_string();
    assert!(e.contains("no `raw<TAB>normalised` pairs"), "{e}");
    let binary = dir.path().join("bin.tsv");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, b'\t', 0x80]).unwrap();
    let e = read_pairs(&binary).unwrap_err().to_string();
    assert!(e.contains("not UTF-8"), "{e}");
    let e = read_pairs(&dir.path().join("missing.tsv"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("reading"), "{e}");
    let headless = dir.path().join("headless.tsv");
    std::fs::write(&headless, "a\tb\n").unwrap();
    let e = read_texts(&headless).unwrap_err().to_string();
    assert!(e.contains("no `title` or `brand` column"), "{e}");
    // Malformed lines are counted and skipped, not fatal.
    let mixed = dir.path().join("mixed.tsv");
    std::fs::write(
        &mixed,
        "raw\tnormalised\nno tab here\n宋你\t送你\na\tb\tc\n",
    )
    .unwrap();
    let (pairs, skipped) = read_pairs(&mixed).unwrap();
    assert_eq!((pairs.len(), skipped), (1, 2));
}
