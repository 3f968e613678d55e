//! The report's figures: gathers per-seed curves, final values and steps to target from the
//! runs the report read ([`Report::runs`]), and has [`crate::report::plots`] draw them into
//! `plots/`.

use std::path::Path;

use crate::error::Error;
use crate::report::plots::{self, Curve, Group, Profile};
use crate::report::runs::{Run, Runs};
use crate::report::stats;
use crate::results::MetricRow;
use crate::suite::{Budget, Metric, PlannedWorkload};

use crate::report::summary::*;

/// Draws the plots of a report into `suite_dir/plots`.
pub fn draw(suite_dir: &Path, report: &Report) -> Result<(), Error> {
    let plan = &report.plan;
    let dir = suite_dir.join("plots");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
    let mut profile: Vec<Vec<f64>> = vec![vec![]; plan.strategies.len()];
    for w in &plan.workloads {
        let metric = compared_metric(w);
        let log_y = !metric.higher_is_better();
        let view = if plan
            .runs
            .iter()
            .any(|r| r.workload == w.label && r.budget == Budget::EqualSteps)
        {
            View::EqualSteps
        } else {
            View::PerPhase
        };
        let mut curves = vec![];
        let mut phase_marks: Vec<f64> = vec![];
        let mut finals = vec![];
        let mut medians = vec![];
        for (color, s) in plan.strategies.iter().enumerate() {
            let records = finished(&report.runs, select(plan, w, s, view));
            let per_run: Vec<&[MetricRow]> = records.iter().map(|r| r.rows.as_slice()).collect();
            let longest: &[MetricRow] = per_run
                .iter()
                .max_by_key(|r| r.len())
                .copied()
                .unwrap_or_default();
            for pair in longest.windows(2).filter(|p| p[0].phase != p[1].phase) {
                let at = pair[0].step as f64;
                if !phase_marks.contains(&at) {
                    phase_marks.push(at);
                }
            }
            curves.push(curve(s, color, &per_run, longest, metric, log_y));
            finals.push(Group {
                label: s.clone(),
                color,
                values: records
                    .iter()
                    .filter_map(|r| metric_of(metric, &r.record))
                    .collect(),
            });
            medians.push(median_steps_to_target(w, &records));
        }
        let name = metric.name();
        plots::learning_curves(
            &dir.join(format!("{}-curves", w.label)),
            &format!("{} — {name} ({})", w.label, view.title()),
            "optimizer steps (all phases)",
            name,
            log_y,
            &curves,
            &phase_marks,
        )?;
        plots::distributions(
            &dir.join(format!("{}-final", w.label)),
            &format!("{} — final {name} over seeds ({})", w.label, view.title()),
            name,
            log_y,
            &finals,
        )?;
        if w.target.is_some() {
            let best = medians.iter().copied().fold(f64::INFINITY, f64::min);
            for (s, m) in medians.iter().enumerate() {
                profile[s].push(if best.is_finite() {
                    m / best
                } else {
                    f64::INFINITY
                });
            }
        }
    }
    if plan.workloads.iter().any(|w| w.target.is_some()) {
        let profiles: Vec<Profile> = plan
            .strategies
            .iter()
            .zip(profile)
            .enumerate()
            .map(|(color, (s, ratios))| Profile {
                label: s.clone(),
                color,
                ratios,
            })
            .collect();
        plots::performance_profile(
            &dir.join("performance-profile"),
            &format!("{}: performance profile (steps to target)", plan.suite),
            &profiles,
            8.0,
        )?;
    }
    Ok(())
}

/// The finished (completed or diverged) runs among `ids`.
fn finished(runs: &Runs, ids: Vec<String>) -> Vec<&Run> {
    ids.iter()
        .filter_map(|id| runs.get(id).filter(|r| r.finished()))
        .collect()
}

/// The learning curve of one strategy: at each row of its longest run, the mean over seeds
/// (geometric for losses) and the band from the 25th to the 75th percentile.
fn curve(
    label: &str,
    color: usize,
    per_run: &[&[MetricRow]],
    longest: &[MetricRow],
    metric: Metric,
    log_y: bool,
) -> Curve {
    let mut curve = Curve {
        label: label.to_string(),
        color,
        x: vec![],
        mean: vec![],
        low: vec![],
        high: vec![],
    };
    for (i, row) in longest.iter().enumerate() {
        if i > 0 && longest[i - 1].phase != row.phase {
            // Each phase is its own trajectory: break the line between phases.
            for v in [
                &mut curve.x,
                &mut curve.mean,
                &mut curve.low,
                &mut curve.high,
            ] {
                v.push(f64::NAN);
            }
        }
        let mut at: Vec<f64> = per_run
            .iter()
            .filter_map(|r| r.get(i).and_then(|row| row_metric(metric, row)))
            .filter(|v| v.is_finite())
            .collect();
        at.sort_by(f64::total_cmp);
        curve.x.push(row.step as f64);
        curve.mean.push(if log_y {
            // Losses span decades: their mean on a log axis is the geometric mean.
            mean(
                &at.iter()
                    .map(|v| v.max(f64::MIN_POSITIVE).ln())
                    .collect::<Vec<_>>(),
            )
            .exp()
        } else {
            mean(&at)
        });
        curve.low.push(stats::quantile(&at, 0.25));
        curve.high.push(stats::quantile(&at, 0.75));
    }
    curve
}

/// The median over `records` of the steps to the workload's target (infinite for a seed that
/// never reaches it, or without runs).
fn median_steps_to_target(w: &PlannedWorkload, records: &[&Run]) -> f64 {
    let steps: Vec<f64> = records
        .iter()
        .map(|r| {
            w.target
                .and_then(|t| to_target(r, t.metric, t.value))
                .map_or(f64::INFINITY, |h| h.0)
        })
        .collect();
    if steps.is_empty() {
        f64::INFINITY
    } else {
        stats::median(&steps)
    }
}
