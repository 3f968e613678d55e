//! Suite reports: per workload, budget and strategy, the final metrics over seeds (mean ± std,
//! 95% confidence interval), how many seeds reached the target and how fast, and a paired
//! comparison with the reference strategy over the same seeds. Written as a terminal table,
//! `summary.csv`, `report.md` and plots (PNG and SVG) in the suite directory.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::report::missing::{Missing, Style};
use crate::report::pairs::{self, pair_table, PairTable};
use crate::report::plots::{self, Curve, Group, Profile};
use crate::report::stats::{self, Paired, Summary};
use crate::results::{metric_rows, MetricRow, RunState, Store};
use crate::run::RunRecord;
use crate::suite::{Budget, Metric, Plan, PlannedWorkload};
use crate::train::Status;

/// The two budgets a suite compares at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Every strategy with the workload's epochs per phase (multi-phase strategies train longer).
    PerPhase,
    /// Every strategy with the same total number of steps.
    EqualSteps,
}

impl View {
    fn name(self) -> &'static str {
        match self {
            View::PerPhase => "per_phase",
            View::EqualSteps => "equal_steps",
        }
    }
    fn title(self) -> &'static str {
        match self {
            View::PerPhase => "at the per-phase budget (multi-phase strategies train longer)",
            View::EqualSteps => "at equal total steps",
        }
    }
}

/// One line of the summary: a strategy on a workload at one budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Workload label.
    pub workload: String,
    /// `per_phase` or `equal_steps`.
    pub budget: String,
    /// Strategy label.
    pub strategy: String,
    /// Planned runs (seeds).
    pub runs: usize,
    /// Runs that completed.
    pub completed: usize,
    /// Runs whose loss became NaN or infinite.
    pub diverged: usize,
    /// Runs that failed (plugin error or crash).
    pub failed: usize,
    /// Runs with no result yet.
    pub missing: usize,
    /// Mean optimizer steps per finished run.
    pub steps: f64,
    /// Mean forward plus backward passes of the model per finished run (what the steps cost:
    /// two per plain step, four per SAM step); None for runs recorded before pn-host counted
    /// them.
    pub passes: Option<f64>,
    /// Final training loss over completed runs.
    #[serde(skip)]
    pub train_loss: Summary,
    /// Final held-out loss.
    #[serde(skip)]
    pub valid_loss: Summary,
    /// Final held-out accuracy (classification only).
    #[serde(skip)]
    pub valid_accuracy: Option<Summary>,
    /// The compared metric (the target's, else train_loss).
    pub metric: String,
    /// The target value, if any.
    pub target: Option<f64>,
    /// Seeds that reached the target.
    pub reached: usize,
    /// Median over seeds of the steps to reach the target (unreached seeds count as never).
    pub steps_to_target: Option<f64>,
    /// Median seconds to reach the target, likewise.
    pub time_to_target_s: Option<f64>,
    /// Mean wall time per run.
    pub wall_time_s: f64,
    /// Paired comparison with the reference on `metric` (absent for the reference).
    #[serde(skip)]
    pub paired: Option<Paired>,
}

/// Everything a report shows.
#[derive(Debug, Clone)]
pub struct Report {
    /// Rows per workload, budget and strategy.
    pub rows: Vec<Row>,
    /// The plan it was made from.
    pub plan: Plan,
    /// Runs still missing, with their shards.
    pub missing: Missing,
    /// Every pair of strategies, per workload and budget.
    pub pairs: Vec<PairTable>,
}

struct Loaded<'a> {
    workload: &'a PlannedWorkload,
    strategy: &'a str,
    records: Vec<Option<RunRecord>>,
}

fn metric_of(metric: Metric, r: &RunRecord) -> Option<f64> {
    let m = r.final_metrics.as_ref()?;
    (r.status == Status::Completed).then_some(())?;
    match metric {
        Metric::TrainLoss => Some(m.train_loss),
        Metric::ValidLoss => Some(m.valid_loss),
        Metric::ValidAccuracy => m.valid_accuracy,
    }
}

fn row_metric(metric: Metric, r: &MetricRow) -> Option<f64> {
    match metric {
        Metric::TrainLoss => Some(r.train_loss),
        Metric::ValidLoss => Some(r.valid_loss),
        Metric::ValidAccuracy => r.valid_accuracy,
    }
}

/// Steps and seconds until the run first met the target (per-epoch metrics over all phases,
/// then the selected phase's final metrics); `None` if it never did.
fn to_target(r: &RunRecord, metric: Metric, target: f64) -> Option<(f64, f64)> {
    let rows = metric_rows(r);
    if let Some(row) = rows
        .iter()
        .find(|row| row_metric(metric, row).is_some_and(|v| metric.meets(v, target)))
    {
        return Some((row.step as f64, row.elapsed_s));
    }
    let selected = r.selected_phase? as usize;
    metric_of(metric, r).filter(|&v| metric.meets(v, target))?;
    let steps: u64 = r.phases.iter().take(selected + 1).map(|p| p.steps).sum();
    Some((steps as f64, r.wall_time_s))
}

fn compared_metric(w: &PlannedWorkload) -> Metric {
    w.target.map_or(Metric::TrainLoss, |t| t.metric)
}

impl Report {
    /// Reads every planned run's result from `store`.
    pub fn build(store: &Store) -> Result<Self, String> {
        let plan = store.read_plan()?;
        let mut records = std::collections::HashMap::new();
        for run in &plan.runs {
            if let RunState::Finished(r) | RunState::Failed(r) = store.state(run, None) {
                records.insert(run.id.clone(), *r);
            }
        }
        let missing = Missing::find(store, &plan, |run| records.contains_key(&run.id));
        let (mut rows, mut pairs) = (vec![], vec![]);
        for w in &plan.workloads {
            let views: &[View] = if plan
                .runs
                .iter()
                .any(|r| r.workload == w.label && r.budget == Budget::EqualSteps)
            {
                &[View::EqualSteps, View::PerPhase]
            } else {
                &[View::PerPhase]
            };
            for &view in views {
                let loaded: Vec<Loaded> = plan
                    .strategies
                    .iter()
                    .map(|s| Loaded {
                        workload: w,
                        strategy: s,
                        records: select(&plan, w, s, view)
                            .into_iter()
                            .map(|id| records.get(&id).cloned())
                            .collect(),
                    })
                    .collect();
                let metric = compared_metric(w);
                let values: Vec<Vec<Option<f64>>> = loaded
                    .iter()
                    .map(|l| {
                        l.records
                            .iter()
                            .map(|r| r.as_ref().and_then(|r| metric_of(metric, r)))
                            .collect()
                    })
                    .collect();
                pairs.push(pair_table(
                    &w.label,
                    view.name(),
                    &plan.strategies,
                    &values,
                    metric.higher_is_better(),
                    plan.zero_method,
                ));
                let reference = loaded.iter().find(|l| l.strategy == plan.reference);
                for l in &loaded {
                    rows.push(summarise(
                        l,
                        view,
                        reference.filter(|r| r.strategy != l.strategy),
                        plan.zero_method,
                    ));
                }
            }
        }
        Ok(Self {
            rows,
            plan,
            missing,
            pairs,
        })
    }
}

/// Run ids of strategy `s` on `w` in `view`, one per seed in seed order.
fn select(plan: &Plan, w: &PlannedWorkload, s: &str, view: View) -> Vec<String> {
    let has_equal = plan
        .runs
        .iter()
        .any(|r| r.workload == w.label && r.strategy == s && r.budget == Budget::EqualSteps);
    let budget = if view == View::EqualSteps && has_equal {
        Budget::EqualSteps
    } else {
        Budget::PerPhase
    };
    plan.seeds
        .iter()
        .filter_map(|seed| {
            plan.runs
                .iter()
                .find(|r| {
                    r.workload == w.label
                        && r.strategy == s
                        && r.budget == budget
                        && r.config.seed == *seed
                })
                .map(|r| r.id.clone())
        })
        .collect()
}

fn summarise(l: &Loaded, view: View, reference: Option<&Loaded>, zero: stats::ZeroMethod) -> Row {
    let metric = compared_metric(l.workload);
    let done: Vec<&RunRecord> = l.records.iter().flatten().collect();
    let count = |s: Status| done.iter().filter(|r| r.status == s).count();
    let completed: Vec<&&RunRecord> = done
        .iter()
        .filter(|r| r.status == Status::Completed && r.final_metrics.is_some())
        .collect();
    let values = |f: &dyn Fn(&RunRecord) -> Option<f64>| -> Vec<f64> {
        completed.iter().filter_map(|r| f(r)).collect()
    };
    let accuracy = values(&|r| metric_of(Metric::ValidAccuracy, r));
    let target = l.workload.target;
    let (mut steps_to, mut time_to) = (vec![], vec![]);
    if let Some(t) = target {
        for r in &done {
            let hit = to_target(r, t.metric, t.value);
            steps_to.push(hit.map_or(f64::INFINITY, |h| h.0));
            time_to.push(hit.map_or(f64::INFINITY, |h| h.1));
        }
    }
    let finite = |x: f64| x.is_finite().then_some(x);
    let paired = reference.map(|reference| {
        let (mut a, mut b) = (vec![], vec![]);
        for (mine, theirs) in l.records.iter().zip(&reference.records) {
            let pair = (
                mine.as_ref().and_then(|r| metric_of(metric, r)),
                theirs.as_ref().and_then(|r| metric_of(metric, r)),
            );
            if let (Some(x), Some(y)) = pair {
                a.push(x);
                b.push(y);
            }
        }
        stats::paired(&a, &b, metric.higher_is_better(), zero)
    });
    Row {
        workload: l.workload.label.clone(),
        budget: view.name().into(),
        strategy: l.strategy.into(),
        runs: l.records.len(),
        completed: count(Status::Completed),
        diverged: count(Status::Diverged),
        failed: count(Status::Failed),
        missing: l.records.iter().filter(|r| r.is_none()).count(),
        steps: mean(&done.iter().map(|r| r.steps as f64).collect::<Vec<_>>()),
        passes: {
            let counted: Vec<f64> = done
                .iter()
                .map(|r| (r.forward_passes + r.backward_passes) as f64)
                .filter(|&p| p > 0.0)
                .collect();
            (!counted.is_empty()).then(|| mean(&counted))
        },
        train_loss: stats::summary_bootstrap(&values(&|r| metric_of(Metric::TrainLoss, r))),
        valid_loss: stats::summary_bootstrap(&values(&|r| metric_of(Metric::ValidLoss, r))),
        valid_accuracy: (!accuracy.is_empty()).then(|| stats::summary(&accuracy)),
        metric: metric.name().into(),
        target: target.map(|t| t.value),
        reached: target.map_or(0, |t| {
            values(&|r| metric_of(t.metric, r))
                .iter()
                .filter(|&&v| t.metric.meets(v, t.value))
                .count()
        }),
        steps_to_target: (!steps_to.is_empty())
            .then(|| stats::median(&steps_to))
            .and_then(finite),
        time_to_target_s: (!time_to.is_empty())
            .then(|| stats::median(&time_to))
            .and_then(finite),
        wall_time_s: mean(&done.iter().map(|r| r.wall_time_s).collect::<Vec<_>>()),
        paired,
    }
}

fn mean(xs: &[f64]) -> f64 {
    stats::summary(xs).mean
}

fn sci(x: f64) -> String {
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
fn cells(r: &Row) -> Vec<String> {
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

const HEADERS: [&str; 11] = [
    "strategy",
    "steps",
    "passes",
    "completed",
    "final train loss: mean ± std [95% CI]",
    "final valid loss or accuracy",
    "reached target",
    "median steps to target",
    "wins vs ref",
    "Δ vs ref: mean ± std [95% CI]",
    "Wilcoxon p",
];

fn groups(rows: &[Row]) -> Vec<(&str, &str, Vec<&Row>)> {
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

fn view_title(budget: &str) -> &'static str {
    if budget == View::EqualSteps.name() {
        View::EqualSteps.title()
    } else {
        View::PerPhase.title()
    }
}

impl Report {
    fn heading(&self, workload: &str) -> String {
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
                view_title(budget),
                self.heading(workload)
            );
            let table: Vec<Vec<String>> = std::iter::once(HEADERS.map(String::from).to_vec())
                .chain(rows.iter().map(|r| cells(r)))
                .collect();
            let widths: Vec<usize> = (0..HEADERS.len())
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
        if !self.missing.is_empty() {
            out.push('\n');
            out.push_str(&self.missing.text(Style::Terminal));
        }
        out
    }

    /// `summary.csv`: one row per workload, budget and strategy.
    pub fn csv(&self) -> Result<Vec<u8>, String> {
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
        w.into_inner().map_err(|e| e.to_string())
    }

    /// `report.md`, embedding the plots.
    pub fn markdown(&self, runs_meta: &str) -> String {
        let mut out = format!("# Suite `{}`\n\n{runs_meta}\n", self.plan.suite);
        let zero_rule = match self.plan.zero_method {
            stats::ZeroMethod::Wilcox => {
                "seeds with a zero difference are left out, as scipy's \
                default `zero_method=\"wilcox\"` does; with many ties at zero this raises p; a \
                suite can choose `zero_method = \"pratt\"` or `\"zsplit\"`"
            }
            stats::ZeroMethod::Pratt => {
                "`zero_method = \"pratt\"`: seeds with a zero difference \
                are ranked with the others, then their ranks are dropped"
            }
            stats::ZeroMethod::Zsplit => {
                "`zero_method = \"zsplit\"`: seeds with a zero difference \
                are ranked with the others, their ranks split between both signs"
            }
        };
        out.push_str(&format!(
            "How to read it: each row summarises one strategy over the same seeds. \
             `mean ± std [95% CI]` gives the mean, the standard deviation over seeds and a 95% \
             confidence interval of the mean: for losses (positive, often spread over decades) \
             the percentile bootstrap (10,000 resamples, seeded), which stays within the \
             values' range; for accuracies and differences the t-based interval. `wins vs ref` is the fraction of seeds \
             on which the strategy ended better than the reference (ties count half); `Δ vs ref` \
             is the paired difference strategy − reference of the compared metric, and the \
             Wilcoxon signed-rank p-value tests whether it is centred on zero ({zero_rule}). \
             Below each table of three or more strategies, every \
             pair is compared the same way, with p Holm-adjusted over the table's pairs. Tables \
             *at equal total steps* give single-phase strategies as many optimizer steps as the \
             longest strategy; tables *at the per-phase budget* give every strategy the \
             workload's epochs per phase, so multi-phase strategies train longer there. \
             `passes` counts the forward and backward passes of the model per run: what the \
             steps cost (a SAM step costs two of each). \
             Learning curves show the mean over seeds (the geometric mean for losses, drawn on a \
             log axis) with a band from the 25th to the 75th percentile; steps count over all \
             phases, and each phase is drawn as its own line.\n",
        ));
        let mut last = "";
        for (workload, budget, rows) in groups(&self.rows) {
            if workload != last {
                if !last.is_empty() {
                    out.push_str(&plot_links(last));
                }
                let _ = writeln!(out, "\n## {workload}\n\n{}.", self.heading(workload));
                if let Some(w) = self.plan.workloads.iter().find(|w| w.label == workload) {
                    let _ = writeln!(
                        out,
                        "\nmodel `{}` {}, data set `{}` {}, {} epochs per phase.",
                        w.workload.model.name,
                        w.workload.model.config,
                        w.workload.dataset.name,
                        w.workload.dataset.config,
                        w.workload.train.epochs
                    );
                }
                last = workload;
            }
            let _ = writeln!(out, "\n### {}\n", capitalise(view_title(budget)));
            let _ = writeln!(out, "| {} |", HEADERS.join(" | "));
            let _ = writeln!(out, "|{}", "---|".repeat(HEADERS.len()));
            for r in rows {
                let _ = writeln!(out, "| {} |", cells(r).join(" | "));
            }
            if let Some(pairs) = self
                .pairs
                .iter()
                .find(|p| p.workload == workload && p.budget == budget && p.strategies.len() > 2)
            {
                out.push_str(&pairs::markdown(pairs));
            }
        }
        if !last.is_empty() {
            out.push_str(&plot_links(last));
        }
        if self.plan.workloads.iter().any(|w| w.target.is_some()) {
            out.push_str(
                "\n## Performance profile\n\nFor each strategy, the fraction of workloads on \
                 which its median steps to the target is within a factor τ of the best \
                 strategy's (AlgoPerf style; a strategy whose median seed never reaches the \
                 target counts as never).\n\n![performance profile](plots/performance-profile.png)\n",
            );
        }
        if !self.missing.is_empty() {
            out.push_str("\n## Missing runs\n\n");
            out.push_str(&self.missing.text(Style::Markdown));
        }
        out
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn plot_links(workload: &str) -> String {
    format!(
        "\n![learning curves of {workload}](plots/{workload}-curves.png)\n\n\
         ![final values of {workload}](plots/{workload}-final.png)\n"
    )
}

/// Draws the plots of a report into `dir/plots`.
pub fn draw(store: &Store, report: &Report) -> Result<(), String> {
    let plan = &report.plan;
    let dir = store.dir.join("plots");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
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
            let records: Vec<RunRecord> = select(plan, w, s, view)
                .iter()
                .filter_map(
                    |id| match store.state(plan.runs.iter().find(|r| &r.id == id)?, None) {
                        RunState::Finished(r) => Some(*r),
                        _ => None,
                    },
                )
                .collect();
            let per_run: Vec<Vec<MetricRow>> = records.iter().map(metric_rows).collect();
            let longest = per_run
                .iter()
                .max_by_key(|r| r.len())
                .cloned()
                .unwrap_or_default();
            for pair in longest.windows(2).filter(|p| p[0].phase != p[1].phase) {
                let at = pair[0].step as f64;
                if !phase_marks.contains(&at) {
                    phase_marks.push(at);
                }
            }
            let mut curve = Curve {
                label: s.clone(),
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
            curves.push(curve);
            finals.push(Group {
                label: s.clone(),
                color,
                values: records
                    .iter()
                    .filter_map(|r| metric_of(metric, r))
                    .collect(),
            });
            let steps: Vec<f64> = records
                .iter()
                .map(|r| {
                    w.target
                        .and_then(|t| to_target(r, t.metric, t.value))
                        .map_or(f64::INFINITY, |h| h.0)
                })
                .collect();
            medians.push(if steps.is_empty() {
                f64::INFINITY
            } else {
                stats::median(&steps)
            });
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

/// Builds the report of `store` and writes `summary.csv`, `report.md` and the plots.
pub fn write(store: &Store) -> Result<Report, String> {
    let report = Report::build(store)?;
    let meta = runs_meta(store, &report);
    crate::run::write_atomic(&store.dir.join("summary.csv"), &report.csv()?)?;
    draw(store, &report)?;
    let markdown = report.markdown(&meta);
    crate::run::write_atomic(&store.dir.join("report.md"), markdown.as_bytes())?;
    let suite_file = std::fs::read_to_string(store.dir.join("suite.toml")).ok();
    let page = super::html::render(
        &format!("Suite {}", report.plan.suite),
        &markdown,
        &store.dir.join("plots"),
        suite_file.as_deref(),
    );
    crate::run::write_atomic(&store.dir.join("report.html"), page.as_bytes())?;
    Ok(report)
}

/// Which examples multi-phase strategies chose their phase by, per workload.
fn selection_text(plan: &Plan) -> String {
    let (apart, same): (Vec<&PlannedWorkload>, Vec<&PlannedWorkload>) = plan
        .workloads
        .iter()
        .partition(|w| w.workload.train.holdout > 0.0);
    let labels = |ws: &[&PlannedWorkload]| {
        ws.iter()
            .map(|w| format!("`{}` ({})", w.label, w.workload.train.holdout))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::new();
    if !apart.is_empty() {
        let _ = write!(
            out,
            " Strategies chose their phase on a part of the held-out split kept apart (`train.holdout`: {}); the tables report the rest.",
            labels(&apart)
        );
    }
    if !same.is_empty() {
        let names: Vec<String> = same.iter().map(|w| format!("`{}`", w.label)).collect();
        let _ = write!(
            out,
            " On {}, multi-phase strategies chose their phase on the held-out split the tables report (`train.holdout = 0`), which flatters them.",
            names.join(", ")
        );
    }
    out
}

fn runs_meta(store: &Store, report: &Report) -> String {
    let plan = &report.plan;
    let records: Vec<RunRecord> = plan
        .runs
        .iter()
        .filter_map(|r| match store.state(r, None) {
            RunState::Finished(r) | RunState::Failed(r) => Some(*r),
            _ => None,
        })
        .collect();
    let mut out = format!(
        "{} runs: {} strategies × {} workloads × {} seeds ({}), plus equal-step budgets.",
        plan.runs.len(),
        plan.strategies.len(),
        plan.workloads.len(),
        plan.seeds.len(),
        seeds_text(&plan.seeds)
    );
    out.push_str(&selection_text(plan));
    if let Some(r) = records.first() {
        let _ = write!(
            out,
            " Device `{}`, pn-host {}. Plugins:",
            r.device, r.pn_host_version
        );
        // Every plugin file any run used, once (a file rebuilt mid-suite shows twice).
        let mut files: Vec<(String, &str)> = vec![];
        for p in records.iter().flat_map(|r| &r.plugins) {
            let name = p
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let sha = &p.sha256[..12.min(p.sha256.len())];
            if !files.iter().any(|(n, s)| *n == name && *s == sha) {
                files.push((name, sha));
            }
        }
        files.sort();
        for (name, sha) in files {
            let _ = write!(out, " `{name}` (sha256 {sha}…)");
        }
        out.push('.');
    }
    out.push_str(" Results per run: `runs/<id>/` beside this report.\n");
    out
}

fn seeds_text(seeds: &[u64]) -> String {
    let contiguous = seeds.windows(2).all(|w| w[1] == w[0] + 1);
    match (seeds.first(), seeds.last()) {
        (Some(a), Some(b)) if contiguous && seeds.len() > 2 => format!("{a}–{b}"),
        _ => seeds
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The path of the report's markdown file.
pub fn markdown_path(dir: &Path) -> std::path::PathBuf {
    dir.join("report.md")
}
