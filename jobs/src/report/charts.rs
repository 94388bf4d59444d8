//! The report's charts, drawn by plotters as SVG strings that the page
//! inlines (no image files, no fonts: the browser draws the text; plotters
//! escapes it).

use anyhow::{anyhow, Result};
use plotters::prelude::*;

const WIDTH: u32 = 760;
const BAR: RGBColor = RGBColor(0x3b, 0x6e, 0xa8);
const FLAG: RGBColor = RGBColor(0xc0, 0x39, 0x2b);

fn err(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("drawing a chart: {e:?}")
}

/// Horizontal bars, the first item on top; `fmt` labels the value axis.
pub fn bars(title: &str, items: &[(String, f64)], fmt: &dyn Fn(f64) -> String) -> Result<String> {
    bars_coloured(title, items, fmt, &|_| BAR)
}

/// Counts by action, each in its action's colour.
pub fn actions(items: &[(String, f64)]) -> Result<String> {
    bars_coloured(
        "Listings by action",
        items,
        &|v| format!("{v:.0}"),
        &|name| match name {
            "takedown" => FLAG,
            "review" => RGBColor(0xe6, 0x9b, 0x22),
            _ => RGBColor(0x4c, 0x9a, 0x5b),
        },
    )
}

fn bars_coloured(
    title: &str,
    items: &[(String, f64)],
    fmt: &dyn Fn(f64) -> String,
    colour: &dyn Fn(&str) -> RGBColor,
) -> Result<String> {
    let n = items.len().max(1) as u32;
    let height = 70 + 26 * n;
    let max = items.iter().map(|i| i.1).fold(0.0, f64::max);
    let max = if max > 0.0 { max * 1.08 } else { 1.0 };
    // Longest label, in characters (plotters measures by bytes, which
    // overstates Chinese labels).
    let label_chars = items
        .iter()
        .map(|i| i.0.chars().count())
        .max()
        .unwrap_or(4)
        .min(28) as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 17))
            .margin(8)
            .x_label_area_size(26)
            .y_label_area_size(16 + 8 * label_chars)
            .build_cartesian_2d(0f64..max, (0u32..n).into_segmented())
            .map_err(err)?;
        let label = |v: &SegmentValue<u32>| match v {
            SegmentValue::CenterOf(i) if *i < n => items
                .get((n - 1 - i) as usize)
                .map(|x| x.0.chars().take(28).collect())
                .unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .label_style(("sans-serif", 13))
            .y_labels(n as usize)
            .y_label_formatter(&label)
            .x_labels(6)
            .x_label_formatter(&|x| fmt(*x))
            .draw()
            .map_err(err)?;
        for (i, (name, v)) in items.iter().enumerate() {
            let y = n - 1 - i as u32;
            chart
                .draw_series(
                    Histogram::horizontal(&chart)
                        .style(colour(name).filled())
                        .margin(4)
                        .data([(y, *v)]),
                )
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Listings per score bin (bins of width `1 / counts.len()`).
pub fn histogram(title: &str, counts: &[u64]) -> Result<String> {
    let n = counts.len().max(1) as u32;
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.08;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 17))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d((0u32..n).into_segmented(), 0f64..max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .label_style(("sans-serif", 13))
            .x_labels(n as usize / 2)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                    format!("{:.2}", *i as f64 / n as f64)
                }
                SegmentValue::Last => String::new(),
            })
            .y_label_formatter(&|y| format!("{y:.0}"))
            .x_desc("score")
            .y_desc("listings")
            .draw()
            .map_err(err)?;
        // One series per bin: a series of several keeps its bars in a
        // HashMap and draws them in a different order on every run, so two
        // reports of the same night would differ.
        for (i, c) in counts.iter().enumerate() {
            chart
                .draw_series(
                    Histogram::vertical(&chart)
                        .style(BAR.filled())
                        .margin(2)
                        .data([(i as u32, *c as f64)]),
                )
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_draws_the_same_svg_every_time() {
        let counts: Vec<u64> = (0..20).map(|i| (i * 37 % 11) * 1000).collect();
        let first = histogram("Listings by risk score", &counts).unwrap();
        for _ in 0..3 {
            assert_eq!(histogram("Listings by risk score", &counts).unwrap(), first);
        }
    }
}
