//! Performance profiles (AlgoPerf style): per strategy, the fraction of workloads it reaches
//! the target within tau times the best strategy's steps, as a step function over a log2 axis.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::{num, Axis};
use super::canvas::{chart, color, err, render};
use super::legend::{legend, place, split_for_legend};

/// One strategy's performance ratios over the suite's workloads.
///
/// `r` = its steps-to-target / the best strategy's on that workload (1.0 = best;
/// `f64::INFINITY` = never reached the target).
pub struct Profile {
    /// Legend label (the strategy's name).
    pub label: String,
    /// Index into the fixed palette (wraps around).
    pub color: usize,
    /// One ratio per workload.
    pub ratios: Vec<f64>,
}

/// AlgoPerf-style performance profile: for tau from 1 to `tau_max` (log2 x axis), the fraction of
/// workloads with ratio <= tau, as a step function per strategy; y axis 0..1.
pub fn performance_profile(
    stem: &Path,
    title: &str,
    profiles: &[Profile],
    tau_max: f64,
) -> Result<(), String> {
    render!(stem, draw_profiles(title, profiles, tau_max))
}

fn draw_profiles<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    profiles: &[Profile],
    tau_max: f64,
) -> Result<(), String> {
    let finite = profiles
        .iter()
        .flat_map(|p| &p.ratios)
        .filter(|r| r.is_finite());
    let tau_max = match tau_max.is_finite() && tau_max > 1.0 {
        true => tau_max,
        false => finite.fold(2.0f64, |a, &b| a.max(b * 1.05)),
    };
    let lx = tau_max.log2();
    // Powers of two; plain values when the axis spans less than two doublings.
    let keys: Vec<f64> = if lx < 2.0 {
        Axis::nice(1.0, tau_max, 6)
            .bold
            .into_iter()
            .map(f64::log2)
            .collect()
    } else {
        let doublings = 0..=lx as usize;
        doublings
            .step_by((lx as usize + 1).div_ceil(10))
            .map(|k| k as f64)
            .collect()
    };
    let step = |p: &Profile| {
        let n = p.ratios.len().max(1) as f64;
        let mut r: Vec<f64> = p.ratios.iter().filter(|r| r.is_finite()).copied().collect();
        r.sort_by(f64::total_cmp);
        // Ratios below 1 cannot occur by definition; they count as 1 (best).
        let frac = |tau: f64| r.partition_point(|&v| v <= tau) as f64 / n;
        let mut pts = vec![(0.0, frac(1.0))];
        for &t in r.iter().filter(|&&t| 1.0 < t && t <= tau_max) {
            pts.extend([(t.log2(), pts[pts.len() - 1].1), (t.log2(), frac(t))]);
        }
        pts.push((lx, frac(tau_max)));
        if p.ratios.is_empty() {
            pts.clear();
        }
        pts
    };
    let lines: Vec<Vec<(f64, f64)>> = profiles.iter().map(step).collect();
    let labels: Vec<&str> = profiles.iter().map(|p| p.label.as_str()).collect();
    let ys = (-0.02, 1.04);
    let pos = place((0.0, lx), ys, &labels, &lines);
    let (area, side) = split_for_legend(root, pos.is_some(), &labels)?;
    let x_axis = Axis::new(0.0, lx, keys, vec![]);
    let y_axis = Axis::new(ys.0, ys.1, vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0], vec![]);
    let x_fmt = |v: &f64| num(2f64.powf(*v));
    let x_label = "τ (steps-to-target / best strategy's)";
    let y_fmt = |v: &f64| num(*v);
    let y_label = "fraction of workloads with ratio ≤ τ";
    let mut chart = chart(
        &area,
        title,
        (x_axis, x_label, &x_fmt),
        (y_axis, y_label, &y_fmt),
        14.0,
    )?;
    for (i, (p, pts)) in profiles.iter().zip(lines).enumerate() {
        // Earlier series are drawn wider so that coinciding steps stay visible.
        let width = 2 + 2 * (profiles.len() - 1 - i).min(2) as u32;
        let style = color(p.color).stroke_width(width);
        chart
            .draw_series(LineSeries::new(pts, style))
            .map_err(err)?
            .label(p.label.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style.stroke_width(3)));
    }
    let items: Vec<(&str, usize)> = profiles
        .iter()
        .map(|p| (p.label.as_str(), p.color))
        .collect();
    legend(&mut chart, pos, side, &items)
}
