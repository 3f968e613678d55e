//! The runs a report is made from, read once: every planned run's `run.json` (finished or
//! failed) and its per-epoch rows, kept in memory so that the summary, the tables, `summary.csv`,
//! `report.md` and the figures all render from the same copy.

use std::collections::HashMap;

use crate::results::{metric_rows, MetricRow, RunState, Store};
use crate::run::RunRecord;
use crate::suite::{Plan, PlannedRun};
use crate::train::Status;

/// One run's record with its per-epoch rows (steps counted over all phases).
#[derive(Debug, Clone)]
pub struct Run {
    /// What `run.json` holds.
    pub record: RunRecord,
    /// Its per-epoch metrics, as `metrics.csv` lists them.
    pub rows: Vec<MetricRow>,
}

impl Run {
    /// Completed or diverged: a result the figures draw (a failed run has none).
    pub fn finished(&self) -> bool {
        self.record.result.status != Status::Failed
    }
}

/// The current result of every planned run that has one, by run id.
#[derive(Debug, Clone, Default)]
pub struct Runs {
    by_id: HashMap<String, Run>,
}

impl Runs {
    /// Reads the tuning trials of `plan`, gives its final runs the settings of their chosen
    /// trials (another shard may have finished the trials since the plan was written), then
    /// reads the final runs: each run's files once.
    pub fn load(store: &Store, plan: &mut Plan) -> Self {
        let mut runs = Self::default();
        runs.read(store, plan.runs.iter().filter(|r| r.trial.is_some()));
        crate::suite::tuning::resolve(plan, |run| runs.record(run).cloned());
        runs.read(store, plan.runs.iter().filter(|r| r.trial.is_none()));
        runs
    }

    fn read<'a>(&mut self, store: &Store, planned: impl IntoIterator<Item = &'a PlannedRun>) {
        for run in planned {
            if let RunState::Finished(r) | RunState::Failed(r) = store.state(run, None) {
                let rows = metric_rows(&r);
                self.by_id.insert(run.id.clone(), Run { record: *r, rows });
            }
        }
    }

    /// The result of the run with id `id`, if it has one.
    pub fn get(&self, id: &str) -> Option<&Run> {
        self.by_id.get(id)
    }

    /// The record of `run`, if it has a result.
    pub fn record(&self, run: &PlannedRun) -> Option<&RunRecord> {
        self.get(&run.id).map(|r| &r.record)
    }

    /// The results of `plan`'s runs in plan order, each with its planned run.
    pub fn in_plan<'a>(
        &'a self,
        plan: &'a Plan,
    ) -> impl Iterator<Item = (&'a PlannedRun, &'a Run)> {
        plan.runs.iter().filter_map(|p| Some((p, self.get(&p.id)?)))
    }
}
