//! `normalize_text` and every text matcher (brands, disguised brands,
//! replica vocabulary, contact diversion, homophones) through the listing
//! assessment, on any text: no panic, a score in [0, 1], and normalisation
//! that does not blow up its input.
#![no_main]

use std::sync::LazyLock;

use dajia_kernels::risk::{Brand, KnowledgeBase, ListingInput, Rules};
use dajia_kernels::text::normalize_text;
use libfuzzer_sys::fuzz_target;

static KB: LazyLock<KnowledgeBase> = LazyLock::new(|| {
    let brand = |id: i64, name: &str, aliases: &[&str]| Brand {
        id,
        name: name.into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        categories: vec!["bags".into()],
        min_price_cents: Some(100_000),
        protected: true,
        ..Default::default()
    };
    let kb = KnowledgeBase::new(vec![
        brand(1, "Gucci", &["古驰", "古奇"]),
        brand(2, "Nike", &["耐克"]),
        brand(3, "Louis Vuitton", &["路易威登", "LV"]),
        brand(4, "Chanel", &["香奈儿"]),
    ]);
    // Load the word dictionary (jieba's, ~20 s in this debug build) before
    // fuzzing (`init`), not inside the first input that needs it: the first
    // run reported that input as a time-out (a one-time cost per process).
    dajia_kernels::text::homophones::is_real_word("圣诞快乐", &(0..6));
    kb
});

fuzz_target!(
    init: {
        LazyLock::force(&KB);
    },
    |text: &str| {
    // A title, a tab, a description (the seeds are real titles and spam).
    let (title, description) = text.split_once('\t').unwrap_or((text, ""));
    let n = normalize_text(title);
    assert!(
        n.chars().count() <= 4 * title.chars().count() + 16,
        "{title:?} -> {n:?}"
    );
    let a = KB.assess(
        &Rules::default(),
        &ListingInput {
            title,
            description: Some(description),
            declared_brand: Some("Gucci"),
            category: Some("bags"),
            price_cents: Some(1_000),
            seller_id: 9,
            ..Default::default()
        },
    );
    assert!((0.0..=1.0).contains(&a.score), "score {}", a.score);
    }
);
