//! Tuning with equal budgets: a suite's `[tuning]` table (trials, their seeds and budget), the
//! trial runs it adds to the plan, and the checks made when the suite file is read. Each
//! strategy's search space and its trials (a scrambled Sobol sequence, the same for every
//! strategy) are in [`space`]; scoring trials and choosing the best in [`choice`].
//!
//! Trials are ordinary runs of the plan (`Budget::Trial`), scored on the part of the held-out
//! split kept for selection (`train.holdout`), never on the part the tables report. The final
//! runs of a tuned strategy wait until every trial of its workload has a result; they then take
//! the best trial's settings.

pub mod choice;
pub mod space;

pub use choice::*;
pub use space::*;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use pn_plugin_api::abi::StrategyBox;

use crate::plugin::registry::{phases_of, Registry};
use crate::run::{ComponentRef, RunConfig};
use crate::suite::{Budget, PlannedRun, PlannedWorkload};

/// The most trials a suite may give each strategy (the Sobol sequence has 2^16 points).
pub const MAX_TRIALS: u32 = 1024;
/// The first seed of `[tuning] seeds = N`: far from any suite's own seeds, so trials never
/// train on the seeds the tables report.
pub const FIRST_TRIAL_SEED: u64 = 1_000_000;

/// The `[tuning]` table of a suite file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuningFile {
    /// Trials per strategy with a search space.
    pub trials: u32,
    /// The seeds every trial runs on: a count (from [`FIRST_TRIAL_SEED`]) or a list.
    #[serde(default)]
    pub seeds: Option<TrialSeeds>,
    /// The budget trials train with.
    #[serde(default)]
    pub budget: TrialBudget,
}

/// The budget trials train with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialBudget {
    /// The workload's epochs per phase (the default).
    #[default]
    PerPhase,
    /// A strategy's equal-step budget where the suite gives it one (`equal_steps` and fewer
    /// phases than the longest strategy), else its per-phase budget: tuned at the budget of
    /// the tables at equal total steps.
    EqualSteps,
}

/// Trial seeds as written: a count or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TrialSeeds {
    /// `seeds = N`: N seeds from [`FIRST_TRIAL_SEED`].
    Count(u64),
    /// `seeds = [..]`.
    List(Vec<u64>),
}

/// Tuning as planned, written into `plan.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tuning {
    /// Trials per tuned strategy.
    pub trials: u32,
    /// The seeds every trial runs on.
    pub seeds: Vec<u64>,
    /// Search spaces by strategy label (strategies without one are not tuned).
    pub spaces: IndexMap<String, Space>,
    /// The budget trials train with.
    #[serde(default)]
    pub budget: TrialBudget,
}

impl Tuning {
    /// The trial runs of strategy `label` on workload `w`, every trial on every trial seed,
    /// `epochs` per phase; none for a strategy without a search space.
    pub fn trial_runs(
        &self,
        w: &PlannedWorkload,
        label: &str,
        strategy: &ComponentRef,
        phases: u32,
        epochs: u32,
        passes_per_step: f64,
    ) -> Vec<PlannedRun> {
        let Some(space) = self.spaces.get(label) else {
            return vec![];
        };
        let mut runs = vec![];
        for trial in trials(space, self.trials) {
            for &seed in &self.seeds {
                let mut base = RunConfig::new(strategy.clone(), &w.workload, seed);
                base.train.epochs = epochs;
                // Checked at parse time: every trial's settings apply.
                let Ok(config) = apply(&base, space, &trial) else {
                    continue;
                };
                runs.push(PlannedRun {
                    id: format!("{}.{label}.trial{:03}.seed{seed}", w.label, trial.index),
                    workload: w.label.clone(),
                    strategy: label.to_string(),
                    budget: Budget::Trial,
                    phases,
                    passes_per_step,
                    config,
                    trial: Some(trial.clone()),
                    chosen_trial: None,
                });
            }
        }
        runs
    }
}

impl TuningFile {
    /// Checks the table against the suite's `final_seeds`; returns the trials and their seeds.
    pub fn check(&self, final_seeds: &[u64]) -> Result<(u32, Vec<u64>), String> {
        if !(1..=MAX_TRIALS).contains(&self.trials) {
            return Err(format!(
                "`tuning.trials` must be 1 to {MAX_TRIALS}, got {}",
                self.trials
            ));
        }
        let seeds = match &self.seeds {
            None => vec![FIRST_TRIAL_SEED],
            Some(TrialSeeds::Count(n)) if (1..=100).contains(n) => {
                (FIRST_TRIAL_SEED..FIRST_TRIAL_SEED + n).collect()
            }
            Some(TrialSeeds::Count(n)) => {
                return Err(format!("`tuning.seeds` must be 1 to 100, got {n}"))
            }
            Some(TrialSeeds::List(list)) if list.is_empty() => {
                return Err("`tuning.seeds` is an empty list".into())
            }
            Some(TrialSeeds::List(list)) => list.clone(),
        };
        if let Some(shared) = seeds.iter().find(|s| final_seeds.contains(s)) {
            return Err(format!(
                "tuning seed {shared} is also one of the suite's `seeds`: trials must not train on the seeds the tables report"
            ));
        }
        if let Some(twice) = crate::suite::plan::listed_twice(&seeds) {
            return Err(format!("seed {twice} is listed twice in `tuning.seeds`"));
        }
        Ok((self.trials, seeds))
    }
}

/// Builds strategy `name` from its suite `config` with the strategy settings of `trial` among
/// `keys` (train settings are not the strategy's).
fn strategy_with(
    registry: &Registry,
    name: &str,
    config: &Value,
    trial: &Trial,
    keys: &[&Setting],
) -> Result<StrategyBox, String> {
    let mut settings = match config {
        Value::Object(o) => o.clone(),
        _ => Default::default(),
    };
    for s in keys.iter().filter(|s| !s.key.starts_with("train.")) {
        settings.insert(s.key.clone(), trial.values[&s.key].clone());
    }
    Ok(registry.strategy(name, &Value::Object(settings))?.0)
}

/// Checks that strategy `name` (with its suite `config`) has the settings `space` names, each
/// with its first trial's value, and that train settings take the values given, so that an
/// unknown or invalid setting is blamed on its line.
pub fn check_settings(
    registry: &Registry,
    name: &str,
    config: &Value,
    space: &Space,
) -> Result<(), String> {
    let first = &self::trials(space, 1)[0];
    for s in space {
        strategy_with(registry, name, config, first, &[s])?;
    }
    // Train settings: every choice has the setting's type (ranges are checked per workload).
    let unit = ComponentRef {
        name: String::new(),
        config: Value::Null,
    };
    let workload = crate::run::Workload {
        model: unit.clone(),
        dataset: unit.clone(),
        train: Default::default(),
    };
    let train: Space = space
        .iter()
        .filter(|s| s.key.starts_with("train."))
        .cloned()
        .collect();
    for trial in self::trials(&train, choices(&train)) {
        apply(&RunConfig::new(unit.clone(), &workload, 0), &train, &trial)?;
    }
    Ok(())
}

/// Enough trials of `space` to meet every choice of each setting (the product of the numbers
/// of choices, at most [`MAX_TRIALS`]).
fn choices(space: &Space) -> u32 {
    let n = space.iter().map(|s| match &s.distribution {
        Distribution::Choice(values) => values.len() as u64,
        _ => 1,
    });
    n.fold(2u64, |a, b| a.saturating_mul(b))
        .min(MAX_TRIALS as u64) as u32
}

/// Checks that every trial of `space` builds strategy `name` (its suite `config` with the
/// trial's strategy settings) and keeps its `phases`: the plan's budgets assume a fixed count.
pub fn check_strategy(
    registry: &Registry,
    name: &str,
    config: &Value,
    phases: u32,
    space: &Space,
    trials: u32,
) -> Result<(), String> {
    let keys: Vec<&Setting> = space.iter().collect();
    for trial in self::trials(space, trials) {
        let strategy = strategy_with(registry, name, config, &trial, &keys)?;
        let k = phases_of(&strategy)?;
        if k != phases {
            return Err(format!(
                "trial {} ({}) has {k} phases instead of {phases}: a search space may not change a strategy's number of phases",
                trial.index,
                describe(&trial)
            ));
        }
    }
    Ok(())
}

/// Checks that tuning can score trials on workload `w`: it keeps a selection split.
pub fn check_holdout(w: &PlannedWorkload) -> Result<(), String> {
    if w.workload.train.holdout <= 0.0 {
        return Err(format!(
            "tuning scores trials on the part of the held-out split kept for selection: set `holdout` (e.g. 0.5) in the train settings of workload `{}`",
            w.label
        ));
    }
    Ok(())
}

/// Checks that every trial of strategy `label` has valid train settings on workload `w`.
pub fn check_trials(
    tuning: &Tuning,
    label: &str,
    strategy: &ComponentRef,
    w: &PlannedWorkload,
) -> Result<(), String> {
    let Some(space) = tuning.spaces.get(label) else {
        return Ok(());
    };
    let base = RunConfig::new(strategy.clone(), &w.workload, 0);
    for trial in trials(space, tuning.trials) {
        let config = apply(&base, space, &trial)?;
        config.train.validate().map_err(|e| {
            format!(
                "trial {} ({}) on workload `{}`: {e}",
                trial.index,
                describe(&trial),
                w.label
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_counts_and_seeds_are_checked() {
        let zero = TuningFile {
            trials: 0,
            seeds: None,
            budget: TrialBudget::PerPhase,
        };
        assert!(zero.check(&[0]).unwrap_err().contains("must be 1 to"));
        let shared = TuningFile {
            trials: 2,
            seeds: Some(TrialSeeds::List(vec![3])),
            budget: TrialBudget::PerPhase,
        };
        assert!(shared.check(&[3]).unwrap_err().contains("tuning seed 3"));
    }
}
