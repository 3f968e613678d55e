//! Loss surfaces: a two-parameter model's loss over a grid as a heat map (log scale), with
//! trajectories drawn on it and marked points (e.g. anchors); `pn-host surface` draws these.

use std::path::Path;

use plotters::prelude::*;

use super::axis::{bounds, num, Axis, AxisSpec};
use super::canvas::{chart, color, err, render, Area};
use super::legend::{legend, split_for_legend};

/// A loss surface over a rectangle of the plane: `z[j][i]` at (`x[i]`, `y[j]`).
pub struct Surface {
    /// Grid x coordinates, increasing.
    pub x: Vec<f64>,
    /// Grid y coordinates, increasing.
    pub y: Vec<f64>,
    /// Values, one row per y.
    pub z: Vec<Vec<f64>>,
}

/// A loss surface as a heat map (log scale, dark is low), with paths drawn on it (one colour
/// each, a dot at the start) and `marks` as black crosses (e.g. the anchors θk*).
pub fn surface(
    stem: &Path,
    title: &str,
    labels: (&str, &str),
    surface: &Surface,
    paths: &[(String, Vec<(f64, f64)>)],
    marks: &[(f64, f64)],
) -> Result<(), String> {
    render!(stem, draw_surface(title, labels, surface, paths, marks))
}

/// A dark-to-light colour ramp (blue, teal, yellow) at `t` in [0, 1].
fn ramp(t: f64) -> RGBColor {
    let stops = [
        (32.0, 24.0, 90.0),
        (33.0, 145.0, 140.0),
        (250.0, 230.0, 80.0),
    ];
    let t = t.clamp(0.0, 1.0) * 2.0;
    let (k, f) = ((t.floor() as usize).min(1), t - t.floor().min(1.0));
    let (a, b) = (stops[k], stops[k + 1]);
    let mix = |u: f64, v: f64| (u + (v - u) * f) as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn draw_surface<DB: DrawingBackend>(
    root: &Area<DB>,
    title: &str,
    (x_label, y_label): (&str, &str),
    s: &Surface,
    paths: &[(String, Vec<(f64, f64)>)],
    marks: &[(f64, f64)],
) -> Result<(), String> {
    let (Some(&x0), Some(&x1), Some(&y0), Some(&y1)) =
        (s.x.first(), s.x.last(), s.y.first(), s.y.last())
    else {
        return Err("empty surface".into());
    };
    let logs: Vec<f64> = s.z.iter().flatten().map(|v| v.max(1e-12).log10()).collect();
    let (lo, hi) = bounds(logs.iter().copied(), 0.0);
    root.fill(&WHITE).map_err(err)?;
    let labels: Vec<&str> = paths.iter().map(|(l, _)| l.as_str()).collect();
    let (area, side) = split_for_legend(root, false, &labels)?;
    let x_axis: AxisSpec = (Axis::nice(x0, x1, 8), x_label, &|v| num(*v));
    let y_axis: AxisSpec = (Axis::nice(y0, y1, 8), y_label, &|v| num(*v));
    let mut chart = chart(&area, title, x_axis, y_axis, 14.0)?;
    let half = |v: &[f64], i: usize| {
        let prev = if i > 0 {
            v[i - 1]
        } else {
            v[i] - (v[1.min(v.len() - 1)] - v[0])
        };
        (v[i] + prev) / 2.0
    };
    let edge = |v: &[f64], i: usize| {
        if i + 1 < v.len() {
            half(v, i + 1)
        } else {
            v[i] + (v[i] - half(v, i))
        }
    };
    let cells =
        s.y.iter()
            .enumerate()
            .flat_map(|(j, _)| s.x.iter().enumerate().map(move |(i, _)| (i, j)));
    chart
        .draw_series(cells.map(|(i, j)| {
            let t = (s.z[j][i].max(1e-12).log10() - lo) / (hi - lo).max(1e-12);
            Rectangle::new(
                [
                    (half(&s.x, i), half(&s.y, j)),
                    (edge(&s.x, i), edge(&s.y, j)),
                ],
                ramp(t).filled(),
            )
        }))
        .map_err(err)?;
    for (k, (_, path)) in paths.iter().enumerate() {
        let style = color(k + 1).stroke_width(2);
        chart
            .draw_series(LineSeries::new(path.iter().copied(), style))
            .map_err(err)?;
        if let Some(&start) = path.first() {
            chart
                .draw_series([Circle::new(start, 4, style.filled())])
                .map_err(err)?;
        }
    }
    chart
        .draw_series(
            marks
                .iter()
                .map(|&m| Cross::new(m, 7, BLACK.stroke_width(3))),
        )
        .map_err(err)?;
    let items: Vec<(&str, usize)> = paths
        .iter()
        .enumerate()
        .map(|(k, (l, _))| (l.as_str(), k + 1))
        .collect();
    legend(&mut chart, None, side, &items)
}
