//! Text-path throughput of `KnowledgeBase::assess`, one thread: real titles
//! (jobs/data) against the 620-brand knowledge base of jobs/data.
//! usage: cargo run --release -p dajia-kernels --example assess_throughput [N]
//! (in a dev build the kernels are optimised too, see the workspace Cargo.toml)
use dajia_kernels::risk::{Brand, KnowledgeBase, ListingInput, Rules};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300_000);
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../jobs/data/");
    let titles: Vec<String> = std::fs::read_to_string(format!("{root}product_titles_train.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').nth(1).map(str::to_string))
        .collect();
    let brands: Vec<Brand> = std::fs::read_to_string(format!("{root}brands_en_zh.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .enumerate()
        .map(|(i, l)| {
            let c: Vec<&str> = l.split('\t').collect();
            Brand {
                id: i as i64,
                name: c[0].to_string(),
                aliases: vec![c.get(1).unwrap_or(&"").replace(' ', "")],
                categories: vec![],
                min_price_cents: Some(100_000),
                protected: c.get(4) == Some(&"international_brands"),
                authorized_sellers: Default::default(),
            }
        })
        .collect();
    let kb = KnowledgeBase::new(brands);
    // Load what loads lazily (the dictionary behind homophone checks)
    // outside `assess`, so that a profiler can count `assess` alone.
    dajia_kernels::text::homophones::is_real_word("膏访", &(0..6));
    let rules = Rules::default();
    let t = std::time::Instant::now();
    let mut flagged = 0usize;
    for i in 0..n {
        let title = &titles[i % titles.len()];
        let a = kb.assess(
            &rules,
            &ListingInput {
                title,
                price_cents: Some(50_000),
                seller_id: 1,
                category: Some("其他"),
                ..Default::default()
            },
        );
        flagged += (a.score >= 0.5) as usize;
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "{n} listings in {s:.3}s: {:.0} listings/s on one thread ({flagged} flagged)",
        n as f64 / s
    );
}
