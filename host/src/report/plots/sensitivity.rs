//! Tuning sensitivity: each trial's score against its value of one tuned setting (numbers on a
//! linear or log axis, choices by name), the chosen trial ringed.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::{bounds, Axis, Scale, TickFormat};
use super::canvas::{chart, color, err, render};

/// The trials of one tuned setting: each trial's score against its value of the setting.
pub struct Sensitivity {
    /// (value, score) per trial; a choice setting's value is the index of its choice.
    pub points: Vec<(f64, f64)>,
    /// The chosen trial's point, drawn larger.
    pub chosen: Option<(f64, f64)>,
    /// A log x axis (log-uniform settings).
    pub log_x: bool,
    /// A log y axis (losses).
    pub log_y: bool,
    /// The names of a choice setting's values, by index (empty for numbers).
    pub choices: Vec<String>,
}

/// A scatter plot of trial scores against one setting's value, the chosen trial ringed.
pub fn sensitivity(
    stem: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    data: &Sensitivity,
) -> Result<(), String> {
    render!(stem, draw_sensitivity(title, x_label, y_label, data))
}

fn draw_sensitivity<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    data: &Sensitivity,
) -> Result<(), String> {
    let x_scale = Scale::new(data.log_x, data.points.iter().map(|p| &p.0));
    let y_scale = Scale::new(data.log_y, data.points.iter().map(|p| &p.1));
    let map = |(x, y): (f64, f64)| Some((x_scale.map(x)?, y_scale.map(y)?));
    let points: Vec<(f64, f64)> = data.points.iter().filter_map(|&p| map(p)).collect();
    let ys = bounds(points.iter().map(|p| p.1), 0.06);
    let (x_axis, x_fmt): (Axis, TickFormat) = if data.choices.is_empty() {
        let (axis, fmt) = x_scale.axis(bounds(points.iter().map(|p| p.0), 0.04));
        (axis, Box::new(fmt))
    } else {
        let n = data.choices.len();
        let keys = (0..n).map(|i| i as f64).collect();
        let names = data.choices.clone();
        let name = move |v: &f64| names.get(v.round() as usize).cloned().unwrap_or_default();
        (
            Axis::new(-0.5, n as f64 - 0.5, keys, vec![]),
            Box::new(name),
        )
    };
    let (y_axis, y_fmt) = y_scale.axis(ys);
    root.fill(&WHITE).map_err(err)?;
    let mut chart = chart(
        root,
        title,
        (x_axis, x_label, &*x_fmt),
        (y_axis, y_label, &y_fmt),
        14.0,
    )?;
    let c = color(0);
    chart
        .draw_series(
            points
                .iter()
                .map(|&p| Circle::new(p, 4, c.mix(0.8).filled())),
        )
        .map_err(err)?;
    if let Some(p) = data.chosen.and_then(map) {
        let ring = color(3).stroke_width(3);
        chart.draw_series([Circle::new(p, 9, ring)]).map_err(err)?;
    }
    Ok(())
}
