//! The leads as a case handler receives them: `leads.csv` (one line per
//! lead) and `lead-<region>-<rank>-<cluster>.md` (one page per lead: who,
//! what ties them, what they sold, the listings and their reasons).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use super::Lead;

fn yuan(cents: i64) -> String {
    format!("{:.2}", cents as f64 / 100.0)
}

/// Write the export of `leads` (date `dt`) into `dir`.
pub fn write(dir: &Path, dt: &str, leads: &[Lead]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut csv = csv_writer(&dir.join("leads.csv"))?;
    csv.write_record([
        "date",
        "region",
        "rank",
        "cluster_id",
        "sellers",
        "listings",
        "estimated_counterfeit_sales_cny",
        "confirmed_purchases",
        "page",
    ])?;
    for l in leads {
        let page = page_name(l);
        csv.write_record([
            dt.to_string(),
            l.region.clone(),
            l.rank.to_string(),
            l.cluster_id.to_string(),
            l.sellers.len().to_string(),
            l.listings.to_string(),
            yuan(l.estimated_counterfeit_sales_cents),
            l.confirmed_purchases.to_string(),
            page.clone(),
        ])?;
        std::fs::write(dir.join(&page), page_text(dt, l))
            .with_context(|| format!("writing {page}"))?;
    }
    csv.flush()?;
    Ok(())
}

fn csv_writer(path: &Path) -> Result<csv::Writer<std::fs::File>> {
    Ok(csv::Writer::from_path(path).with_context(|| format!("creating {}", path.display()))?)
}

fn page_name(l: &Lead) -> String {
    format!("lead-{}-{}-cluster-{}.md", l.region, l.rank, l.cluster_id)
}

/// Markdown cells cannot hold `|` or line breaks.
fn cell(s: &str) -> String {
    s.replace('|', "/").replace(['\n', '\r'], " ")
}

fn page_text(dt: &str, l: &Lead) -> String {
    let e = &l.evidence;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Lead: seller network {} ({}, rank {})\n",
        l.cluster_id, l.region, l.rank
    );
    let _ = writeln!(s, "- Date of the analysis: {dt}");
    let _ = writeln!(
        s,
        "- Estimated counterfeit sales: CNY {} ({} listings with counterfeit evidence)",
        yuan(l.estimated_counterfeit_sales_cents),
        l.listings
    );
    let _ = writeln!(
        s,
        "- Test purchases judged counterfeit: {}",
        l.confirmed_purchases
    );
    let _ = writeln!(s, "- Accounts: {}\n", l.sellers.len());
    let _ = writeln!(s, "## What ties the accounts together\n");
    let _ = writeln!(
        s,
        "| attribute | value (platform hash) | accounts sharing it |\n|---|---|---|"
    );
    for (a, v, n) in &e.linking_values {
        let _ = writeln!(s, "| {} | `{}` | {n} |", cell(a), cell(v));
    }
    let _ = writeln!(s, "\n## Accounts\n");
    let _ = writeln!(s, "| seller | status | closed for | region | chain to a closed counterfeiter |\n|---|---|---|---|---|");
    for m in &e.members {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            m.seller_id,
            cell(m.status.as_deref().unwrap_or("")),
            cell(m.closed_reason.as_deref().unwrap_or("")),
            cell(m.region.as_deref().unwrap_or("")),
            cell(m.chain.as_deref().unwrap_or(""))
        );
    }
    let _ = writeln!(
        s,
        "\n## Sales of listings with counterfeit evidence, by month\n"
    );
    let _ = writeln!(s, "| month | CNY |\n|---|---|");
    for (m, c) in &e.sales_by_month {
        let _ = writeln!(s, "| {m} | {} |", yuan(*c));
    }
    let _ = writeln!(
        s,
        "\n## Listings (largest estimated counterfeit sales first)\n"
    );
    let _ = writeln!(s, "| listing | seller | title | action | score | sales CNY | counted CNY | reasons |\n|---|---|---|---|---|---|---|---|");
    for x in &e.listings {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.2} | {} | {} | {} |",
            x.listing_id,
            x.seller_id,
            cell(&x.title),
            x.action,
            x.score,
            yuan(x.sales_cents),
            yuan(x.estimated_counterfeit_cents),
            cell(&x.reasons.join("; "))
        );
    }
    let _ = writeln!(s, "\n## Test purchases\n");
    if e.verdicts.is_empty() {
        let _ = writeln!(s, "None of the accounts' listings was test-bought.");
    } else {
        let _ = writeln!(s, "| listing | verdict |\n|---|---|");
        for (id, v) in &e.verdicts {
            let _ = writeln!(s, "| {id} | {} |", cell(v));
        }
    }
    s
}
