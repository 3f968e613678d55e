//! The canvas every plot shares: the two output files per plot (PNG and SVG, via `render!`),
//! the embedded font, the fixed palette, and the white frame with title and labelled axes.
//!
//! Kept apart from the figure kinds so that every figure looks the same: same size, fonts,
//! colours and grid.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::{Axis, AxisSpec};

pub(super) const SIZE: (u32, u32) = (900, 560);
pub(super) const FONT: &str = "sans-serif";
/// Tableau 10 (0xRRGGBB): distinguishable, reasonably colour-blind-friendly.
pub(super) const PALETTE: [u32; 10] = [
    0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22,
    0x17becf,
];

pub(super) type Area<DB> = DrawingArea<DB, Shift>;
pub(super) type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<Axis, Axis>>;

/// Renders with `$draw(&root, args..)` on a PNG and then an SVG backend.
macro_rules! render {
    ($stem:expr, $draw:ident($($arg:expr),*)) => {{
        use $crate::report::plots::canvas::{err, prepare, with_ext, SIZE};
        use plotters::prelude::{BitMapBackend, IntoDrawingArea, SVGBackend};
        let stem: &std::path::Path = $stem;
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
pub(super) use render;

pub(super) fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

pub(super) fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    s.into()
}

/// Registers the embedded font (once) and creates the output directory.
pub(super) fn prepare(stem: &Path) -> Result<(), String> {
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

pub(super) fn color(i: usize) -> RGBColor {
    let c = PALETTE[i % PALETTE.len()];
    RGBColor((c >> 16) as u8, (c >> 8) as u8, c as u8)
}

/// White canvas, title, axes with labels; returns the chart to draw into.
pub(super) fn chart<'a, DB: DrawingBackend>(
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
