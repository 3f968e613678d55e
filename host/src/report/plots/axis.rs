//! Axes and scales: explicit tick positions (plotters' own "nice" ticks, or decades and their
//! 2..9 minor ticks on a log axis), the linear or log10 mapping of data values, compact tick
//! labels, and padded data bounds.
//!
//! Every figure kind maps its values through a [`Scale`] and draws on [`Axis`] coordinates, so a
//! log axis reads the same in all of them.

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// A tick formatter chosen at run time.
pub(super) type TickFormat = Box<dyn Fn(&f64) -> String>;
/// An axis with its description and tick formatter.
pub(super) type AxisSpec<'a> = (Axis, &'a str, &'a dyn Fn(&f64) -> String);

/// A linear axis with explicit bold (labelled) and light tick positions.
pub(super) struct Axis {
    range: std::ops::Range<f64>,
    pub(super) bold: Vec<f64>,
    light: Vec<f64>,
}

impl Axis {
    pub(super) fn new(lo: f64, hi: f64, bold: Vec<f64>, light: Vec<f64>) -> Self {
        Axis {
            range: lo..hi,
            bold,
            light,
        }
    }
    /// Plotters' own "nice" linear ticks, at most `n`.
    pub(super) fn nice(lo: f64, hi: f64, n: usize) -> Self {
        Axis::new(lo, hi, RangedCoordf64::from(lo..hi).key_points(n), vec![])
    }
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;
    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        RangedCoordf64::from(self.range.clone()).map(v, limit)
    }
    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        match hint.weight().allow_light_points() {
            true => self.light.clone(),
            false => self.bold.clone(),
        }
    }
    fn range(&self) -> std::ops::Range<f64> {
        self.range.clone()
    }
}

/// Maps data values to plot space: identity, or log10 with non-positive values clamped.
#[derive(Clone, Copy)]
pub(super) struct Scale {
    log: bool,
    floor: f64,
}

impl Scale {
    pub(super) fn new<'a>(log: bool, values: impl Iterator<Item = &'a f64>) -> Self {
        let floor = values
            .filter(|v| v.is_finite() && **v > 0.0)
            .fold(f64::INFINITY, |a, &b| a.min(b));
        Scale {
            log,
            floor: if floor.is_finite() { floor } else { 1.0 },
        }
    }
    pub(super) fn map(self, v: f64) -> Option<f64> {
        match (v.is_finite(), self.log) {
            (false, _) => None,
            (true, true) => Some(v.max(self.floor).log10()),
            (true, false) => Some(v),
        }
    }
    /// A y axis over `[lo, hi]` (plot space) with readable ticks, and its tick formatter.
    pub(super) fn axis(self, (lo, hi): (f64, f64)) -> (Axis, impl Fn(&f64) -> String) {
        // Decades read best as 1e-7 when the axis spans several; otherwise plain numbers.
        let sci = self.log && hi - lo >= 2.0;
        let fmt = move |v: &f64| match (self.log, sci) {
            (false, _) => num(*v),
            (true, true) => format!("{:.0e}", 10f64.powf(*v)),
            (true, false) => num(10f64.powf(*v)),
        };
        if !self.log {
            return (Axis::nice(lo, hi, 8), fmt);
        }
        const NINE: [f64; 9] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let within = |m: &[f64]| -> Vec<f64> {
            let decades = lo.floor() as i32..=hi.ceil() as i32;
            let all = decades.flat_map(|k| m.iter().map(move |&m| k as f64 + m.log10()));
            all.filter(|v| (lo..=hi).contains(v)).collect()
        };
        if hi - lo < 1.0 {
            // Less than a decade: evenly spaced values read best.
            let keys = Axis::nice(10f64.powf(lo), 10f64.powf(hi), 6).bold;
            let keys = keys
                .into_iter()
                .filter(|v| *v > 0.0)
                .map(f64::log10)
                .collect();
            return (Axis::new(lo, hi, keys, vec![]), fmt);
        }
        let decades = within(&[1.0]);
        let keys = match decades.len() {
            n if n > 10 => decades.into_iter().step_by(n.div_ceil(10)).collect(),
            3.. => decades,
            _ => within(&[1.0, 2.0, 5.0]),
        };
        let light = if hi - lo <= 12.0 {
            within(&NINE[1..])
        } else {
            vec![]
        };
        (Axis::new(lo, hi, keys, light), fmt)
    }
}

/// Formats a tick value compactly (at most 3 significant digits for odd values).
pub(super) fn num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e7).contains(&a) {
        let s = format!("{v:.1e}");
        s.replace(".0e", "e")
    } else {
        let digits = (2 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.digits$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.')
        } else {
            &s
        };
        s.to_string()
    }
}

/// Finite min/max of `values` padded by `pad` of the span; a sane range when degenerate.
pub(super) fn bounds(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if lo > hi || !(hi - lo).is_finite() {
        (0.0, 1.0)
    } else if hi - lo <= 1e-12 * lo.abs().max(1e-300) {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - d, hi + d)
    } else {
        (lo - pad * (hi - lo), hi + pad * (hi - lo))
    }
}

/// Splits at `None`s into runs of consecutive values.
pub(super) fn runs<T: Copy>(items: impl Iterator<Item = Option<T>>) -> Vec<Vec<T>> {
    let mut out = vec![Vec::new()];
    for item in items {
        match (item, out.last_mut()) {
            (Some(v), Some(run)) => run.push(v),
            (None, Some(run)) if !run.is_empty() => out.push(Vec::new()),
            _ => {}
        }
    }
    out.retain(|r| !r.is_empty());
    out
}
