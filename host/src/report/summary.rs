//! Suite reports: per workload, budget and strategy, the final metrics over seeds (mean ± std,
//! 95% confidence interval), how many seeds reached the target and how fast, and a paired
//! comparison with the reference strategy over the same seeds: the numbers behind the text
//! ([`crate::report::render`]) and the figures ([`crate::report::figures`]).

use serde::Serialize;

use crate::error::Error;
use crate::report::missing::Missing;
use crate::report::pairs::{pair_table, PairTable};
use crate::report::runs::{Run, Runs};
use crate::report::stats::{self, Paired, Summary};
use crate::report::tuning::{tuned, Tuned};
use crate::results::{MetricRow, Store};
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
    pub(super) fn name(self) -> &'static str {
        match self {
            View::PerPhase => "per_phase",
            View::EqualSteps => "equal_steps",
        }
    }
    pub(super) fn title(self) -> &'static str {
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
    /// Per workload and strategy, its tuning trials and the chosen one (empty without tuning).
    pub tuning: Vec<Tuned>,
    /// Every planned run's result, read once from the store.
    pub runs: Runs,
}

pub(super) struct Loaded<'a> {
    workload: &'a PlannedWorkload,
    strategy: &'a str,
    records: Vec<Option<&'a Run>>,
}

pub(super) fn metric_of(metric: Metric, r: &RunRecord) -> Option<f64> {
    let m = r.result.final_metrics.as_ref()?;
    (r.result.status == Status::Completed).then_some(())?;
    match metric {
        Metric::TrainLoss => Some(m.train_loss),
        Metric::ValidLoss => Some(m.valid_loss),
        Metric::ValidAccuracy => m.valid_accuracy,
    }
}

pub(super) fn row_metric(metric: Metric, r: &MetricRow) -> Option<f64> {
    match metric {
        Metric::TrainLoss => Some(r.train_loss),
        Metric::ValidLoss => Some(r.valid_loss),
        Metric::ValidAccuracy => r.valid_accuracy,
    }
}

/// Steps and seconds until the run first met the target (per-epoch metrics over all phases,
/// then the selected phase's final metrics); `None` if it never did.
pub(super) fn to_target(run: &Run, metric: Metric, target: f64) -> Option<(f64, f64)> {
    let r = &run.record;
    if let Some(row) = run
        .rows
        .iter()
        .find(|row| row_metric(metric, row).is_some_and(|v| metric.meets(v, target)))
    {
        return Some((row.step as f64, row.elapsed_s));
    }
    let selected = r.result.selected_phase? as usize;
    metric_of(metric, r).filter(|&v| metric.meets(v, target))?;
    let steps: u64 = r
        .result
        .phases
        .iter()
        .take(selected + 1)
        .map(|p| p.steps)
        .sum();
    Some((steps as f64, r.result.wall_time_s))
}

/// The metric a workload's tables compare: its target's, else the training loss.
pub fn compared_metric(w: &PlannedWorkload) -> Metric {
    w.target.map_or(Metric::TrainLoss, |t| t.metric)
}

impl Report {
    /// Reads every planned run's result from `store` (once: see [`Runs`]).
    pub fn build(store: &Store) -> Result<Self, Error> {
        let mut plan = store.read_plan()?;
        let runs = Runs::load(store, &mut plan);
        let missing = Missing::find(store, &plan, |run| runs.get(&run.id).is_some());
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
                            .map(|id| runs.get(&id))
                            .collect(),
                    })
                    .collect();
                let metric = compared_metric(w);
                let values: Vec<Vec<Option<f64>>> = loaded
                    .iter()
                    .map(|l| {
                        l.records
                            .iter()
                            .map(|r| r.and_then(|r| metric_of(metric, &r.record)))
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
        let tuning = tuned(&plan, |run| runs.record(run).cloned());
        Ok(Self {
            rows,
            plan,
            missing,
            pairs,
            tuning,
            runs,
        })
    }

    /// Whether runs of `workload` reported on their data set's test split (`test_split` in
    /// their `run.json`): their `valid_*` metrics are then measured on the test split.
    pub fn test_split(&self, workload: &str) -> bool {
        self.runs
            .in_plan(&self.plan)
            .any(|(planned, run)| planned.workload == workload && run.record.test_split)
    }
}

/// Run ids of strategy `s` on `w` in `view`, one per seed in seed order.
pub(super) fn select(plan: &Plan, w: &PlannedWorkload, s: &str, view: View) -> Vec<String> {
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

pub(super) fn summarise(
    l: &Loaded,
    view: View,
    reference: Option<&Loaded>,
    zero: stats::ZeroMethod,
) -> Row {
    let metric = compared_metric(l.workload);
    let done_runs: Vec<&Run> = l.records.iter().copied().flatten().collect();
    let done: Vec<&RunRecord> = done_runs.iter().map(|r| &r.record).collect();
    let count = |s: Status| done.iter().filter(|r| r.result.status == s).count();
    let completed: Vec<&&RunRecord> = done
        .iter()
        .filter(|r| r.result.status == Status::Completed && r.result.final_metrics.is_some())
        .collect();
    let values = |f: &dyn Fn(&RunRecord) -> Option<f64>| -> Vec<f64> {
        completed.iter().filter_map(|r| f(r)).collect()
    };
    let accuracy = values(&|r| metric_of(Metric::ValidAccuracy, r));
    let target = l.workload.target;
    let (mut steps_to, mut time_to) = (vec![], vec![]);
    if let Some(t) = target {
        for r in &done_runs {
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
                mine.and_then(|r| metric_of(metric, &r.record)),
                theirs.and_then(|r| metric_of(metric, &r.record)),
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
        steps: mean(
            &done
                .iter()
                .map(|r| r.result.steps as f64)
                .collect::<Vec<_>>(),
        ),
        passes: {
            let counted: Vec<f64> = done
                .iter()
                .map(|r| (r.result.forward_passes + r.result.backward_passes) as f64)
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
        wall_time_s: mean(
            &done
                .iter()
                .map(|r| r.result.wall_time_s)
                .collect::<Vec<_>>(),
        ),
        paired,
    }
}

pub(super) fn mean(xs: &[f64]) -> f64 {
    stats::summary(xs).mean
}
