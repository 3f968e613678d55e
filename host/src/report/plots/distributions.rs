//! Distributions of a final metric: a box plot per strategy with every seed's value as a
//! jittered point on top, strategy names (elided when long) on the x axis.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::{bounds, Axis, Scale};
use super::canvas::{chart, color, err, render};
use crate::report::stats;

/// One strategy's final values over seeds.
pub struct Group {
    /// Label on the x axis (the strategy's name).
    pub label: String,
    /// Index into the fixed palette (wraps around).
    pub color: usize,
    /// One final value per seed.
    pub values: Vec<f64>,
}

/// Distribution of a final metric per strategy: a box plot (median, quartiles, whiskers at
/// min/max) with every seed's value as a deterministically jittered point on top.
///
/// Strategy labels go on the x axis; an empty group gets its label and no box. `log_y` as in
/// [`learning_curves`].
pub fn distributions(
    stem: &Path,
    title: &str,
    y_label: &str,
    log_y: bool,
    groups: &[Group],
) -> Result<(), String> {
    render!(stem, draw_groups(title, y_label, log_y, groups))
}

/// `s` with its middle replaced by "…" when it has more than `max` characters.
pub(super) fn elide(s: &str, max: usize) -> String {
    let c: Vec<char> = s.chars().collect();
    if c.len() <= max {
        return s.to_string();
    }
    let keep = max.max(3) - 1;
    let (head, tail) = (keep.div_ceil(2), keep / 2);
    c[..head]
        .iter()
        .chain(['…'].iter())
        .chain(&c[c.len() - tail..])
        .collect()
}
/// Draws the box plots and seed points of `groups` (see [`distributions`]).
fn draw_groups<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    y_label: &str,
    log_y: bool,
    groups: &[Group],
) -> Result<(), String> {
    let scale = Scale::new(log_y, groups.iter().flat_map(|g| &g.values));
    let data: Vec<Vec<f64>> = groups
        .iter()
        .map(|g| {
            let mut v: Vec<f64> = g.values.iter().filter_map(|&v| scale.map(v)).collect();
            v.sort_by(f64::total_cmp);
            v
        })
        .collect();
    let ys = bounds(data.iter().flatten().copied(), 0.06);
    let n = groups.len().max(1);
    let keys: Vec<f64> = (0..groups.len()).map(|i| i as f64).collect();
    let x_axis = Axis::new(-0.5, n as f64 - 0.5, keys, vec![]);
    // Strategy labels side by side: shrink the font, then elide the middle of long names.
    let slot = 760.0 / n as f64;
    let chars = groups.iter().map(|g| g.label.chars().count().max(1)).max();
    let x_font = (slot / (0.5 * chars.unwrap_or(1) as f64)).clamp(10.0, 15.0);
    let fit = (slot / (0.5 * x_font)) as usize;
    let name = |v: &f64| {
        groups
            .get(v.round() as usize)
            .map_or(String::new(), |g| elide(&g.label, fit))
    };
    let (y_axis, y_fmt) = scale.axis(ys);
    root.fill(&WHITE).map_err(err)?;
    let mut chart = chart(
        root,
        title,
        (x_axis, "", &name),
        (y_axis, y_label, &y_fmt),
        x_font,
    )?;
    for (i, (g, v)) in groups
        .iter()
        .zip(&data)
        .enumerate()
        .filter(|(_, (_, v))| !v.is_empty())
    {
        let (x, c) = (i as f64, color(g.color));
        let (q1, med, q3) = (
            stats::quantile(v, 0.25),
            stats::quantile(v, 0.5),
            stats::quantile(v, 0.75),
        );
        let (lo, hi) = (v[0], v[v.len() - 1]);
        let (bw, cw) = (0.28, 0.12);
        let line =
            |a: (f64, f64), b: (f64, f64), w: u32| PathElement::new([a, b], c.stroke_width(w));
        let fill = Rectangle::new([(x - bw, q1), (x + bw, q3)], c.mix(0.15).filled());
        chart.draw_series([fill]).map_err(err)?;
        let outline = [
            (x - bw, q1),
            (x + bw, q1),
            (x + bw, q3),
            (x - bw, q3),
            (x - bw, q1),
        ];
        chart
            .draw_series([
                PathElement::new(outline, c.stroke_width(2)),
                line((x, lo), (x, q1), 2),
                line((x, q3), (x, hi), 2),
                line((x - cw, lo), (x + cw, lo), 2),
                line((x - cw, hi), (x + cw, hi), 2),
                line((x - bw, med), (x + bw, med), 4),
            ])
            .map_err(err)?;
        // Deterministic jitter: golden-ratio sequence over the seed index.
        let jitter = |k: usize| ((k as f64 * 0.618_034).fract() - 0.5) * 0.36;
        let points = g
            .values
            .iter()
            .enumerate()
            .filter_map(|(k, &y)| Some((x + jitter(k), scale.map(y)?)));
        let dark = RGBColor(c.0 / 2, c.1 / 2, c.2 / 2).mix(0.75).filled();
        chart
            .draw_series(points.map(|p| Circle::new(p, 3, dark)))
            .map_err(err)?;
    }
    Ok(())
}
