//! Comparison plots: learning curves, final-metric distributions, performance profiles and
//! tuning sensitivity (score against a setting's value).
//!
//! Every plot is written twice, as `<stem>.png` and `<stem>.svg`, 900x560 px on white. Text uses
//! the embedded DejaVu Sans font, so no system fonts are needed. Colours index a fixed palette, so
//! a strategy keeps its colour across plots.

use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::stats;

const SIZE: (u32, u32) = (900, 560);
const FONT: &str = "sans-serif";
/// Tableau 10 (0xRRGGBB): distinguishable, reasonably colour-blind-friendly.
const PALETTE: [u32; 10] = [
    0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22,
    0x17becf,
];

type Area<DB> = DrawingArea<DB, Shift>;
type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<Axis, Axis>>;
/// A tick formatter chosen at run time.
type TickFormat = Box<dyn Fn(&f64) -> String>;
/// An axis with its description and tick formatter.
type AxisSpec<'a> = (Axis, &'a str, &'a dyn Fn(&f64) -> String);

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

/// One strategy's final values over seeds.
pub struct Group {
    /// Label on the x axis (the strategy's name).
    pub label: String,
    /// Index into the fixed palette (wraps around).
    pub color: usize,
    /// One final value per seed.
    pub values: Vec<f64>,
}

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

/// Renders with `$draw(&root, args..)` on a PNG and then an SVG backend.
macro_rules! render {
    ($stem:expr, $draw:ident($($arg:expr),*)) => {{
        let stem: &Path = $stem;
        prepare(stem)?;
        let png = with_ext(stem, "png");
        let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
        $draw(&root, $($arg),*)
            .and_then(|()| root.present().map_err(err))
            .map_err(|e| format!("cannot write plot {}: {e}", png.display()))?;
        drop(root);
        let svg = with_ext(stem, "svg");
        let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
        $draw(&root, $($arg),*)
            .and_then(|()| root.present().map_err(err))
            .map_err(|e| format!("cannot write plot {}: {e}", svg.display()))
    }};
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

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    s.into()
}

/// Registers the embedded font (once) and creates the output directory.
fn prepare(stem: &Path) -> Result<(), String> {
    static FONTS: std::sync::Once = std::sync::Once::new();
    FONTS.call_once(|| {
        // Both calls only fail on invalid font bytes, which the embedded fonts are not.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
    match stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display())),
        None => Ok(()),
    }
}

fn color(i: usize) -> RGBColor {
    let c = PALETTE[i % PALETTE.len()];
    RGBColor((c >> 16) as u8, (c >> 8) as u8, c as u8)
}

/// A linear axis with explicit bold (labelled) and light tick positions.
struct Axis {
    range: std::ops::Range<f64>,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl Axis {
    fn new(lo: f64, hi: f64, bold: Vec<f64>, light: Vec<f64>) -> Self {
        Axis {
            range: lo..hi,
            bold,
            light,
        }
    }
    /// Plotters' own "nice" linear ticks, at most `n`.
    fn nice(lo: f64, hi: f64, n: usize) -> Self {
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
struct Scale {
    log: bool,
    floor: f64,
}

impl Scale {
    fn new<'a>(log: bool, values: impl Iterator<Item = &'a f64>) -> Self {
        let floor = values
            .filter(|v| v.is_finite() && **v > 0.0)
            .fold(f64::INFINITY, |a, &b| a.min(b));
        Scale {
            log,
            floor: if floor.is_finite() { floor } else { 1.0 },
        }
    }
    fn map(self, v: f64) -> Option<f64> {
        match (v.is_finite(), self.log) {
            (false, _) => None,
            (true, true) => Some(v.max(self.floor).log10()),
            (true, false) => Some(v),
        }
    }
    /// A y axis over `[lo, hi]` (plot space) with readable ticks, and its tick formatter.
    fn axis(self, (lo, hi): (f64, f64)) -> (Axis, impl Fn(&f64) -> String) {
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
fn num(v: f64) -> String {
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
fn bounds(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
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
fn runs<T: Copy>(items: impl Iterator<Item = Option<T>>) -> Vec<Vec<T>> {
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

/// White canvas, title, axes with labels; returns the chart to draw into.
fn chart<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    (x, x_label, x_fmt): AxisSpec,
    (y, y_label, y_fmt): AxisSpec,
    x_font: f64,
) -> Result<Chart<'a, DB>, String> {
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22).into_font().style(FontStyle::Bold))
        .margin(16)
        .margin_right(30)
        .x_label_area_size(if x_label.is_empty() { 34 } else { 56 })
        .y_label_area_size(80)
        .build_cartesian_2d(x, y)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .axis_desc_style((FONT, 17))
        .x_label_style((FONT, x_font))
        .y_label_style((FONT, 14))
        .x_label_formatter(x_fmt)
        .y_label_formatter(y_fmt)
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.04))
        .axis_style(BLACK.mix(0.6))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

/// Picks a legend corner that the polylines (plot space, within `xs` x `ys`) leave empty;
/// `None` when every corner is busy (the legend then goes beside the chart).
fn place(
    xs: (f64, f64),
    ys: (f64, f64),
    labels: &[&str],
    lines: &[Vec<(f64, f64)>],
) -> Option<SeriesLabelPosition> {
    const G: usize = 48;
    let mut grid = [[false; G]; G];
    let at = |v: f64, (lo, hi): (f64, f64)| {
        (((v - lo) / (hi - lo) * G as f64).max(0.0) as usize).min(G - 1)
    };
    for line in lines {
        for w in line.windows(2).chain(line.windows(1)) {
            let ((x0, y0), (x1, y1)) = (w[0], w[w.len() - 1]);
            for i in 0..=G {
                let t = i as f64 / G as f64;
                grid[at(x0 + t * (x1 - x0), xs)][at(y0 + t * (y1 - y0), ys)] = true;
            }
        }
    }
    // Legend size in grid cells (plot area ~780x420 px; ~8.5 px per character at 14 px).
    let chars = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let w = (((60.0 + 8.5 * chars as f64) / 780.0 * G as f64).ceil() as usize).min(G);
    let h = (((24.0 + 21.0 * labels.len() as f64) / 420.0 * G as f64).ceil() as usize).min(G - 1);
    use SeriesLabelPosition::*;
    let corners = [
        (UpperRight, true, true),
        (UpperLeft, false, true),
        (LowerRight, true, false),
        (LowerLeft, false, false),
    ];
    let busy = |&(_, right, top): &(SeriesLabelPosition, bool, bool)| {
        let xs = if right { G - w..G } else { 0..w };
        let ys = if top { G - h..G } else { 0..h };
        xs.flat_map(|x| ys.clone().map(move |y| (x, y)))
            .filter(|&(x, y)| grid[x][y])
            .count()
    };
    let best = corners
        .into_iter()
        .min_by_key(busy)
        .unwrap_or((UpperRight, true, true));
    (busy(&best) == 0).then_some(best.0)
}

/// Fills `root` white and, when the legend cannot go `inside` the chart,
/// splits off a strip on the right for it.
fn split_for_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    inside: bool,
    labels: &[&str],
) -> Result<(Area<DB>, Option<Area<DB>>), String> {
    root.fill(&WHITE).map_err(err)?;
    if inside || labels.is_empty() {
        return Ok((root.clone(), None));
    }
    let chars = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let width = (48.0 + 8.5 * chars as f64).clamp(120.0, 300.0) as i32;
    let (chart, side) = root.split_horizontally(SIZE.0 as i32 - width);
    Ok((chart, Some(side)))
}

/// A legend drawn in its own strip beside the chart: a coloured line and the label per series.
fn side_legend<DB: DrawingBackend>(
    side: &DrawingArea<DB, Shift>,
    items: &[(&str, usize)],
) -> Result<(), String> {
    for (i, (label, c)) in items.iter().enumerate() {
        let y = 70 + 24 * i as i32;
        side.draw(&PathElement::new(
            [(4, y), (28, y)],
            color(*c).stroke_width(3),
        ))
        .map_err(err)?;
        side.draw(&Text::new(
            label.to_string(),
            (34, y - 8),
            (FONT, 14).into_font(),
        ))
        .map_err(err)?;
    }
    Ok(())
}

/// Draws the legend: as a box at `pos` inside the chart, or else in the `side` strip.
fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    pos: Option<SeriesLabelPosition>,
    side: Option<DrawingArea<DB, Shift>>,
    items: &[(&str, usize)],
) -> Result<(), String> {
    match (pos, side) {
        _ if items.is_empty() => Ok(()),
        (Some(pos), _) => chart
            .configure_series_labels()
            .position(pos)
            .margin(12)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(err),
        (None, Some(side)) => side_legend(&side, items),
        (None, None) => Ok(()),
    }
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

/// `s` with its middle replaced by "…" when it has more than `max` characters.
fn elide(s: &str, max: usize) -> String {
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

/// Linear-interpolated quantile of sorted, non-empty `v`.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, unique scratch directory.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pn-plots-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// The PNG decodes at 900x560 and the SVG holds every label.
    fn check(stem: &Path, labels: &[&str]) {
        let png = image::open(with_ext(stem, "png")).expect("PNG decodes");
        assert_eq!((png.width(), png.height()), SIZE);
        let svg = std::fs::read_to_string(with_ext(stem, "svg")).expect("SVG written");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for label in labels {
            assert!(
                svg.contains(label),
                "{label:?} missing from {}",
                stem.display()
            );
        }
    }

    /// Saw-tooth log-scale losses: each phase restarts at 0.1 and decays at `rate`.
    fn sawtooth(label: &str, color: usize, rate: f64) -> Curve {
        let x: Vec<f64> = (0..=300).map(|i| i as f64 * 40.0).collect();
        let mean: Vec<f64> = x
            .iter()
            .map(|t| 0.1 * (-rate * (t % 3000.0)).exp())
            .collect();
        let low = mean.iter().map(|m| m / 3.0).collect();
        let high = mean.iter().map(|m| m * 3.0).collect();
        Curve {
            label: label.into(),
            color,
            x,
            mean,
            low,
            high,
        }
    }

    #[test]
    fn learning_curves_write_png_and_svg() {
        let dir = scratch("curves");
        let curves = [
            sawtooth("baseline", 0, 2e-3),
            sawtooth("persistent", 1, 5e-3),
        ];
        let stem = dir.join("loss");
        learning_curves(
            &stem,
            "Loss",
            "step",
            "loss",
            true,
            &curves,
            &[3000.0, 6000.0],
        )
        .unwrap();
        check(&stem, &["Loss", "step", "baseline", "persistent", "1e-3"]);
        learning_curves(
            &dir.join("lin"),
            "Linear",
            "step",
            "loss",
            false,
            &curves,
            &[],
        )
        .unwrap();
        check(&dir.join("lin"), &["Linear", "baseline"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn distributions_write_png_and_svg() {
        let dir = scratch("dist");
        let seeds = |scale: f64| {
            (0..20)
                .map(|k| scale * (1.0 + (k as f64 * 0.37).sin()))
                .collect()
        };
        let groups = [
            Group {
                label: "baseline".into(),
                color: 0,
                values: seeds(1e-3),
            },
            Group {
                label: "persistent".into(),
                color: 1,
                values: seeds(1e-6),
            },
            Group {
                label: "not-run".into(),
                color: 2,
                values: vec![],
            },
        ];
        let stem = dir.join("final");
        distributions(&stem, "Final loss", "final loss", true, &groups).unwrap();
        check(
            &stem,
            &[
                "Final loss",
                "final loss",
                "baseline",
                "persistent",
                "not-run",
            ],
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn performance_profile_writes_png_and_svg() {
        let dir = scratch("profile");
        let profiles = [
            Profile {
                label: "baseline".into(),
                color: 0,
                ratios: vec![1.0, 2.5, f64::INFINITY, 7.0],
            },
            Profile {
                label: "persistent".into(),
                color: 1,
                ratios: vec![1.0, 1.0, 1.0, 1.3],
            },
        ];
        let stem = dir.join("profile");
        performance_profile(&stem, "Profile", &profiles, 16.0).unwrap();
        check(
            &stem,
            &[
                "Profile",
                "baseline",
                "persistent",
                "fraction of workloads",
                "\n16\n",
            ],
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn long_labels_are_elided_in_the_middle() {
        assert_eq!(elide("baseline", 8), "baseline");
        assert_eq!(elide("persistent-neurons", 9), "pers…rons");
        assert_eq!(elide("abcdef", 0), "a…f");
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let dir = scratch("degenerate");
        let nan = f64::NAN;
        let curves = [
            Curve {
                label: "single".into(),
                color: 0,
                x: vec![5.0],
                mean: vec![0.5],
                low: vec![0.4],
                high: vec![0.6],
            },
            Curve {
                label: "gaps".into(),
                color: 11,
                x: vec![1.0, 2.0, 3.0],
                mean: vec![nan, -1.0, 0.0],
                low: vec![],
                high: vec![],
            },
            Curve {
                label: "empty".into(),
                color: 2,
                x: vec![],
                mean: vec![],
                low: vec![],
                high: vec![],
            },
        ];
        let flat = [Curve {
            label: "flat".into(),
            color: 3,
            x: vec![0.0, 1.0],
            mean: vec![2.0; 2],
            low: vec![2.0; 2],
            high: vec![2.0; 2],
        }];
        for log in [false, true] {
            learning_curves(&dir.join("c"), "c", "x", "y", log, &curves, &[]).unwrap();
            check(&dir.join("c"), &["single", "gaps", "empty"]);
            learning_curves(&dir.join("f"), "f", "x", "y", log, &flat, &[0.5, nan]).unwrap();
            learning_curves(&dir.join("n"), "nothing", "x", "y", log, &[], &[]).unwrap();
            let groups = [
                Group {
                    label: "same".into(),
                    color: 0,
                    values: vec![3.0; 4],
                },
                Group {
                    label: "odd".into(),
                    color: 1,
                    values: vec![nan, 0.0, -2.0],
                },
                Group {
                    label: "one".into(),
                    color: 2,
                    values: vec![f64::INFINITY, 1.0],
                },
            ];
            distributions(&dir.join("d"), "d", "y", log, &groups).unwrap();
            check(&dir.join("d"), &["same", "odd", "one"]);
            distributions(&dir.join("e"), "no groups", "y", log, &[]).unwrap();
        }
        let profiles = [
            Profile {
                label: "none".into(),
                color: 0,
                ratios: vec![],
            },
            Profile {
                label: "never".into(),
                color: 1,
                ratios: vec![f64::INFINITY, nan],
            },
            Profile {
                label: "best".into(),
                color: 2,
                ratios: vec![1.0, 1.0],
            },
        ];
        for tau_max in [nan, 0.5, 1.0, 1.5, 3.0, 1e6] {
            performance_profile(&dir.join("p"), "p", &profiles, tau_max).unwrap();
            check(&dir.join("p"), &["none", "never", "best"]);
        }
        performance_profile(&dir.join("q"), "q", &[], 4.0).unwrap();
        let bad = Path::new("/dev/null/not-a-dir/plot");
        let e = learning_curves(bad, "t", "x", "y", false, &flat, &[]).unwrap_err();
        assert!(e.contains("/dev/null/not-a-dir"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
