//! Legends: a corner of the chart that the lines leave empty, or else a strip beside the chart
//! with one coloured line and label per series.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::canvas::{color, err, Area, Chart, FONT, SIZE};

/// Picks a legend corner that the polylines (plot space, within `xs` x `ys`) leave empty;
/// `None` when every corner is busy (the legend then goes beside the chart).
pub(super) fn place(
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
pub(super) fn split_for_legend<DB: DrawingBackend>(
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
pub(super) fn side_legend<DB: DrawingBackend>(
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
pub(super) fn legend<'a, DB: DrawingBackend + 'a>(
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
