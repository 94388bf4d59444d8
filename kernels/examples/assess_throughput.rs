//! Text-path throughput of `KnowledgeBase::assess`, one thread: real titles
//! (jobs/data) against the 620-brand knowledge base of jobs/data.
//! usage: cargo run --release -p dajia-kernels --example assess_throughput [N] [TEXTS]
//! TEXTS: a TSV with a header and `title<TAB>description` lines (e.g. a
//! generated catalog's listings) to time instead of the real titles.
//! (in a dev build the kernels are optimised too, see the workspace Cargo.toml)
use dajia_kernels::risk::{Brand, KnowledgeBase, ListingInput, Rules};

/// The `dajia` binary's allocator, so that allocation costs what it costs
/// in a scan.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300_000);
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../jobs/data/");
    let texts: Vec<(String, Option<String>)> = match std::env::args().nth(2) {
        Some(path) => std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| {
                let (t, d) = l.split_once('\t').unwrap_or((l, ""));
                (t.to_string(), (!d.is_empty()).then(|| d.to_string()))
            })
            .collect(),
        None => std::fs::read_to_string(format!("{root}product_titles_train.tsv"))
            .unwrap()
            .lines()
            .skip(1)
            .filter_map(|l| l.split('\t').nth(1).map(|t| (t.to_string(), None)))
            .collect(),
    };
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
    let cpu0 = thread_cpu_seconds();
    let t = std::time::Instant::now();
    let mut flagged = 0usize;
    for i in 0..n {
        let (title, description) = &texts[i % texts.len()];
        let a = kb.assess(
            &rules,
            &ListingInput {
                title,
                description: description.as_deref(),
                price_cents: Some(50_000),
                seller_id: 1,
                category: Some("其他"),
                ..Default::default()
            },
        );
        flagged += (a.score >= 0.5) as usize;
    }
    let s = t.elapsed().as_secs_f64();
    // On a shared VM the wall clock includes time the host took away;
    // the thread's own run time (Linux schedstat) counts only its work.
    let cpu = thread_cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
    println!(
        "{n} listings in {s:.3}s: {:.0} listings/s on one thread ({flagged} flagged){}",
        n as f64 / s,
        cpu.map(|c| format!(
            "; {c:.3} s on CPU: {:.0} listings per CPU-second",
            n as f64 / c
        ))
        .unwrap_or_default()
    );
}

/// This thread's time on a CPU so far (`/proc/thread-self/schedstat`, ns).
fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}
