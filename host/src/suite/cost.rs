//! What one step of a strategy costs, in gradient evaluations: with `equal_steps` a suite gives
//! every strategy of a workload the same number of forward and backward passes of the model,
//! which is the same number of steps only when every step costs one of each (a SAM step costs
//! two).
//!
//! The cost is measured, not declared: before planning, each strategy trains each workload for
//! one epoch of two batches (`train.max_batches = 2`), in worker processes like every run (a
//! plugin that crashes or hangs there cannot take the suite down), and the host counts the
//! passes its steps took. A strategy whose cost cannot be measured (its probe failed) is
//! budgeted at one pass per step, with a warning; its runs then fail the same way.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::Error;
use crate::results::Store;
use crate::run::RunConfig;
use crate::suite::pool::{self, PoolOptions};
use crate::suite::{Budget, PlannedRun, Suite};
use crate::train::Status;

/// Passes per step of each (workload, strategy) of a suite.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepCosts(BTreeMap<(String, String), f64>);

/// Batches each probe trains on.
const PROBE_BATCHES: usize = 2;

impl StepCosts {
    /// Every step one forward and one backward pass (a suite without `equal_steps`, whose plan
    /// needs no costs; tests).
    pub fn one_pass() -> Self {
        Self::default()
    }

    /// Forward plus backward passes per step, halved: 1 for plain training, 2 for SAM.
    pub fn of(&self, workload: &str, strategy: &str) -> f64 {
        self.0
            .get(&(workload.to_string(), strategy.to_string()))
            .copied()
            .unwrap_or(1.0)
    }

    /// Runs the `probes` with workers as `pool` says (its `worker_args` are the global flags
    /// only: the probes get a folder of their own) and reads what their steps cost.
    pub fn measure(probes: &[PlannedRun], pool: &PoolOptions) -> Result<Self, Error> {
        let dir = std::env::temp_dir().join(format!("pn-step-costs-{}", std::process::id()));
        let result = measure_in(probes, pool, &dir);
        let _ = std::fs::remove_dir_all(&dir);
        result
    }
}

/// One short run per workload and strategy of `suite`, whose passes per step are its cost.
pub fn probes(suite: &Suite) -> Vec<PlannedRun> {
    let mut probes = vec![];
    for w in &suite.workloads {
        for (label, strategy) in &suite.strategies {
            let mut config = RunConfig::new(strategy.clone(), &w.workload, 0);
            config.train.epochs = 1;
            config.train.max_batches = PROBE_BATCHES;
            config.train.record_every = 0;
            probes.push(PlannedRun {
                id: format!("{}.{label}.cost", w.label),
                workload: w.label.clone(),
                strategy: label.clone(),
                budget: Budget::PerPhase,
                phases: 1,
                passes_per_step: 1.0,
                config,
                trial: None,
                chosen_trial: None,
            });
        }
    }
    probes
}

fn measure_in(probes: &[PlannedRun], pool: &PoolOptions, dir: &Path) -> Result<StepCosts, Error> {
    let _ = std::fs::remove_dir_all(dir);
    let store = Store::create(dir)?;
    let mut options = pool.clone();
    options.quiet = true;
    options
        .worker_args
        .extend(["suite".into(), "worker".into(), dir.display().to_string()]);
    pool::execute(probes.to_vec(), &options, &|_, _| Ok(()))?;
    let mut costs = BTreeMap::new();
    for probe in probes {
        let record = store.result(probe, None);
        let cost = match &record {
            Some(r) if r.result.status == Status::Completed && r.result.steps > 0 => {
                (r.result.forward_passes + r.result.backward_passes) as f64
                    / (2 * r.result.steps) as f64
            }
            _ => {
                let why = record
                    .and_then(|r| r.result.message)
                    .unwrap_or_else(|| "no result".into());
                crate::errln!(
                    "warning: what a step of `{}` costs on `{}` could not be measured ({why}): its equal budget counts one pass per step",
                    probe.strategy,
                    probe.workload
                );
                1.0
            }
        };
        costs.insert((probe.workload.clone(), probe.strategy.clone()), cost);
    }
    Ok(StepCosts(costs))
}
