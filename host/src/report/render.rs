//! The report as text: the terminal table and `summary.csv`, and the cells and groups that
//! `report.md` ([`super::markdown`]) shares with them.

use std::fmt::Write as _;

use crate::error::Error;
use crate::report::missing::Style;
use crate::report::stats::Summary;
use crate::suite::Metric;

use crate::report::summary::*;

/// A number as the tables write it: four decimals, or three significant digits in scientific
/// notation when small or large.
pub(super) fn sci(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x != 0.0 && (x.abs() < 1e-2 || x.abs() >= 1e4) {
        format!("{x:.2e}")
    } else {
        format!("{x:.4}")
    }
}

fn with_ci(s: &Summary) -> String {
    if s.n == 0 {
        return "-".into();
    }
    format!(
        "{} ± {} [{}, {}]",
        sci(s.mean),
        sci(s.std),
        sci(s.ci_low),
        sci(s.ci_high)
    )
}

fn opt(x: Option<f64>, f: impl Fn(f64) -> String) -> String {
    x.map_or("-".into(), f)
}

/// The cells of a row for the terminal and markdown tables.
pub(super) fn cells(r: &Row) -> Vec<String> {
    let paired = r.paired.as_ref();
    vec![
        r.strategy.clone(),
        format!("{:.0}", r.steps),
        r.passes.map_or("-".into(), |p| format!("{p:.0}")),
        format!(
            "{}/{}{}",
            r.completed,
            r.runs,
            if r.diverged + r.failed + r.missing > 0 {
                format!(" ({}d {}f {}m)", r.diverged, r.failed, r.missing)
            } else {
                String::new()
            }
        ),
        with_ci(&r.train_loss),
        match &r.valid_accuracy {
            Some(a) => format!("{} (acc)", with_ci(a)),
            None => with_ci(&r.valid_loss),
        },
        match r.target {
            Some(_) => format!("{}/{}", r.reached, r.runs),
            None => "-".into(),
        },
        opt(r.steps_to_target, |s| format!("{s:.0}")),
        opt(paired.map(|p| p.win_rate), |w| format!("{:.0}%", 100.0 * w)),
        paired.map_or("-".into(), |p| with_ci(&p.diff)),
        opt(paired.and_then(|p| p.wilcoxon_p), |p| {
            if p < 1e-3 {
                format!("{p:.1e}")
            } else {
                format!("{p:.3}")
            }
        }),
    ]
}

/// The column headers of the terminal and markdown tables; with `test_split` (the workload's
/// runs report on their data set's test split) the held-out column says `test`.
pub(super) fn headers(test_split: bool) -> [&'static str; 11] {
    [
        "strategy",
        "steps",
        "passes",
        "completed",
        "final train loss: mean ± std [95% CI]",
        match test_split {
            true => "final test loss or accuracy",
            false => "final valid loss or accuracy",
        },
        "reached target",
        "median steps to target",
        "wins vs ref",
        "Δ vs ref: mean ± std [95% CI]",
        "Wilcoxon p",
    ]
}

pub(super) fn groups(rows: &[Row]) -> Vec<(&str, &str, Vec<&Row>)> {
    let mut out: Vec<(&str, &str, Vec<&Row>)> = vec![];
    for r in rows {
        match out
            .iter_mut()
            .find(|(w, b, _)| *w == r.workload && *b == r.budget)
        {
            Some(g) => g.2.push(r),
            None => out.push((&r.workload, &r.budget, vec![r])),
        }
    }
    out
}

impl Report {
    /// The title of a budget's tables: equal budgets are in passes where some strategy's step
    /// costs more than one forward and backward pass.
    pub(super) fn view_title(&self, budget: &str) -> &'static str {
        match budget == View::EqualSteps.name() {
            true if !self.costly_steps().is_empty() => "at equal total passes",
            true => View::EqualSteps.title(),
            false => View::PerPhase.title(),
        }
    }

    /// `strategy` (passes per step) for every strategy whose step costs more than one pass.
    pub(super) fn costly_steps(&self) -> Vec<String> {
        let mut costly: Vec<String> = vec![];
        for r in self.plan.runs.iter().filter(|r| r.passes_per_step != 1.0) {
            let item = format!("`{}` ({})", r.strategy, r.passes_per_step);
            if !costly.contains(&item) {
                costly.push(item);
            }
        }
        costly
    }

    pub(super) fn heading(&self, workload: &str) -> String {
        let w = self.plan.workloads.iter().find(|w| w.label == workload);
        let metric = w.map(compared_metric).unwrap_or(Metric::TrainLoss);
        let target = w
            .and_then(|w| w.target)
            .map(|t| {
                let op = if t.metric.higher_is_better() {
                    "≥"
                } else {
                    "≤"
                };
                format!("target {} {op} {}", t.metric.name(), sci(t.value))
            })
            .unwrap_or_else(|| "no target".into());
        format!(
            "reference `{}`, compared on final {}, {target}",
            self.plan.reference,
            metric.name()
        )
    }

    /// The terminal table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for (workload, budget, rows) in groups(&self.rows) {
            let _ = writeln!(
                out,
                "\n{workload} — {} ({})",
                self.view_title(budget),
                self.heading(workload)
            );
            let headers = headers(self.test_split(workload));
            let table: Vec<Vec<String>> = std::iter::once(headers.map(String::from).to_vec())
                .chain(rows.iter().map(|r| cells(r)))
                .collect();
            let widths: Vec<usize> = (0..headers.len())
                .map(|c| {
                    table
                        .iter()
                        .map(|r| r[c].chars().count())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            for line in &table {
                let cells: Vec<String> = line
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                let _ = writeln!(out, "{}", cells.join("  ").trim_end());
            }
        }
        let tuned = crate::report::tuning::terminal(self);
        if !tuned.is_empty() {
            out.push('\n');
            out.push_str(&tuned);
        }
        if !self.missing.is_empty() {
            out.push('\n');
            out.push_str(&self.missing.text(Style::Terminal));
        }
        out
    }

    /// `summary.csv`: one row per workload, budget and strategy.
    ///
    /// Its header is fixed: the `valid_*` columns keep their names where a workload's runs
    /// report on a test split (the tables say `test` there), since tests, scripts and users
    /// read the columns by name; `report.md` says which workloads they are test metrics of.
    pub fn csv(&self) -> Result<Vec<u8>, Error> {
        let mut w = csv::Writer::from_writer(vec![]);
        let mut header: Vec<String> = [
            "workload",
            "budget",
            "strategy",
            "runs",
            "completed",
            "diverged",
            "failed",
            "missing",
            "steps",
            "passes",
        ]
        .map(String::from)
        .to_vec();
        for m in ["train_loss", "valid_loss", "valid_accuracy"] {
            for s in ["mean", "std", "ci_low", "ci_high"] {
                header.push(format!("{m}_{s}"));
            }
        }
        header.extend(
            [
                "metric",
                "target",
                "reached",
                "steps_to_target_median",
                "time_to_target_median_s",
                "wall_time_mean_s",
                "paired_n",
                "win_rate",
                "diff_mean",
                "diff_std",
                "diff_ci_low",
                "diff_ci_high",
                "wilcoxon_p",
                "t_test_p",
            ]
            .map(String::from),
        );
        w.write_record(&header).map_err(|e| e.to_string())?;
        let num = |x: f64| match x {
            x if !x.is_finite() => String::new(),
            x if x != 0.0 && !(1e-4..1e6).contains(&x.abs()) => format!("{x:e}"),
            x => format!("{x}"),
        };
        let some = |x: Option<f64>| x.map(num).unwrap_or_default();
        let summary = |s: Option<&Summary>| -> Vec<String> {
            match s {
                Some(s) => vec![num(s.mean), num(s.std), num(s.ci_low), num(s.ci_high)],
                None => vec![String::new(); 4],
            }
        };
        for r in &self.rows {
            let mut rec = vec![
                r.workload.clone(),
                r.budget.clone(),
                r.strategy.clone(),
                r.runs.to_string(),
                r.completed.to_string(),
                r.diverged.to_string(),
                r.failed.to_string(),
                r.missing.to_string(),
                num(r.steps),
                some(r.passes),
            ];
            rec.extend(summary(Some(&r.train_loss)));
            rec.extend(summary(Some(&r.valid_loss)));
            rec.extend(summary(r.valid_accuracy.as_ref()));
            let p = r.paired.as_ref();
            rec.extend([
                r.metric.clone(),
                some(r.target),
                r.reached.to_string(),
                some(r.steps_to_target),
                some(r.time_to_target_s),
                num(r.wall_time_s),
                p.map(|p| p.n.to_string()).unwrap_or_default(),
                some(p.map(|p| p.win_rate)),
            ]);
            rec.extend(summary(p.map(|p| &p.diff)));
            rec.extend([
                some(p.and_then(|p| p.wilcoxon_p)),
                some(p.and_then(|p| p.t_test_p)),
            ]);
            w.write_record(&rec).map_err(|e| e.to_string())?;
        }
        w.into_inner().map_err(|e| e.to_string().into())
    }
}
