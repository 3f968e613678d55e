//! Learning curves: one workload's loss or metric over steps, a mean line over a shaded band per
//! strategy, with dashed marks at phase boundaries.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::{bounds, num, runs, Axis, AxisSpec, Scale};
use super::canvas::{chart, color, err, render};
use super::legend::{legend, place, split_for_legend};

/// One strategy's curve: mean over seeds with a band (e.g. mean ± std), on a shared x grid.
pub struct Curve {
    /// Legend label (the strategy's name).
    pub label: String,
    /// Index into the fixed palette (wraps around).
    pub color: usize,
    /// x values (e.g. steps), shared by `mean`, `low` and `high`.
    pub x: Vec<f64>,
    /// Mean over seeds at each x.
    pub mean: Vec<f64>,
    /// Lower edge of the band at each x.
    pub low: Vec<f64>,
    /// Upper edge of the band at each x.
    pub high: Vec<f64>,
}

/// Learning curves of one workload, one colour per strategy (mean line over a shaded band), with
/// vertical dashed grey lines at the `phase_marks` x values.
///
/// `log_y` gives a logarithmic y axis; non-positive values are clamped to the smallest positive
/// value in the data. Non-finite values are skipped (lines break there).
pub fn learning_curves(
    stem: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    log_y: bool,
    curves: &[Curve],
    phase_marks: &[f64],
) -> Result<(), String> {
    render!(
        stem,
        draw_curves(title, x_label, y_label, log_y, curves, phase_marks)
    )
}

fn draw_curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    log_y: bool,
    curves: &[Curve],
    marks: &[f64],
) -> Result<(), String> {
    let all = curves
        .iter()
        .flat_map(|c| c.mean.iter().chain(&c.low).chain(&c.high));
    let scale = Scale::new(log_y, all);
    let fx = |x: f64| Some(x).filter(|x| x.is_finite());
    let lines: Vec<Vec<Vec<(f64, f64)>>> = curves
        .iter()
        .map(|c| {
            runs(
                c.x.iter()
                    .zip(&c.mean)
                    .map(|(&x, &m)| fx(x).zip(scale.map(m))),
            )
        })
        .collect();
    let bands: Vec<Vec<Vec<(f64, f64, f64)>>> = curves
        .iter()
        .map(|c| {
            let pts = c.x.iter().zip(&c.low).zip(&c.high);
            runs(pts.map(|((&x, &l), &h)| Some((fx(x)?, scale.map(l)?, scale.map(h)?))))
        })
        .collect();
    let flat = lines.iter().flatten().flatten();
    let xs = bounds(
        flat.clone()
            .map(|p| p.0)
            .chain(bands.iter().flatten().flatten().map(|b| b.0)),
        0.01,
    );
    let band_ys = bands.iter().flatten().flatten().flat_map(|b| [b.1, b.2]);
    let ys = bounds(flat.map(|p| p.1).chain(band_ys), 0.05);
    let labels: Vec<&str> = curves.iter().map(|c| c.label.as_str()).collect();
    let mut occupied: Vec<Vec<(f64, f64)>> = lines.iter().flatten().cloned().collect();
    for run in bands.iter().flatten() {
        occupied.push(run.iter().map(|b| (b.0, b.1)).collect());
        occupied.push(run.iter().map(|b| (b.0, b.2)).collect());
    }
    let pos = place(xs, ys, &labels, &occupied);
    let (area, side) = split_for_legend(root, pos.is_some(), &labels)?;
    let (y_axis, y_fmt) = scale.axis(ys);
    let x_axis: AxisSpec = (Axis::nice(xs.0, xs.1, 10), x_label, &|v| num(*v));
    let mut chart = chart(&area, title, x_axis, (y_axis, y_label, &y_fmt), 14.0)?;
    for (c, band) in curves.iter().zip(&bands) {
        for run in band {
            let poly = run
                .iter()
                .map(|b| (b.0, b.1))
                .chain(run.iter().rev().map(|b| (b.0, b.2)));
            let style = color(c.color).mix(0.18).filled();
            chart
                .draw_series([Polygon::new(poly.collect::<Vec<_>>(), style)])
                .map_err(err)?;
        }
    }
    let grey = RGBColor(110, 110, 110).stroke_width(1);
    for &m in marks.iter().filter(|m| (xs.0..=xs.1).contains(*m)) {
        let mark = DashedLineSeries::new([(m, ys.0), (m, ys.1)], 6, 5, grey);
        chart.draw_series(mark).map_err(err)?;
    }
    for (c, runs) in curves.iter().zip(&lines) {
        let style = color(c.color).stroke_width(2);
        let empty = std::iter::empty::<(f64, f64)>();
        chart
            .draw_series(LineSeries::new(empty, style))
            .map_err(err)?
            .label(c.label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style.stroke_width(3)));
        for run in runs {
            match run[..] {
                [p] => chart.draw_series([Circle::new(p, 3, style.filled())]),
                _ => chart.draw_series(LineSeries::new(run.iter().copied(), style)),
            }
            .map_err(err)?;
        }
    }
    let items: Vec<(&str, usize)> = curves.iter().map(|c| (c.label.as_str(), c.color)).collect();
    legend(&mut chart, pos, side, &items)
}
