//! A suite and its expansion into runs (strategies × workloads × seeds, plus equal-step
//! budgets), and sharding. Reading the suite file into a [`Suite`] is `file.rs`'s; the runs'
//! results live in [`crate::results::store`].

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::plugin::registry::{phases_of, Registry};
use crate::report::stats::ZeroMethod;
use crate::run::{self, ComponentRef, RunConfig};
use crate::suite::cost::StepCosts;
use crate::suite::tuning::{Trial, TrialBudget, Tuning};

/// The metric a workload's target is set on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Task loss on the training split (lower is better).
    TrainLoss,
    /// Task loss on the held-out split (lower is better).
    ValidLoss,
    /// Accuracy on the held-out split (higher is better).
    ValidAccuracy,
}

impl Metric {
    /// Whether larger values are better.
    pub fn higher_is_better(self) -> bool {
        self == Metric::ValidAccuracy
    }
    /// Whether `value` meets `target`.
    pub fn meets(self, value: f64, target: f64) -> bool {
        if self.higher_is_better() {
            value >= target
        } else {
            value <= target
        }
    }
    /// Its snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Metric::TrainLoss => "train_loss",
            Metric::ValidLoss => "valid_loss",
            Metric::ValidAccuracy => "valid_accuracy",
        }
    }
}

/// A workload's target: a run reaches it when its final `metric` meets `value`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The metric.
    pub metric: Metric,
    /// The value to reach (at most, for losses; at least, for accuracy).
    pub value: f64,
}

/// A suite file read and checked against the loaded plugins.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The suite's name (default: the file's stem).
    pub name: String,
    /// The strategy label every other strategy is compared with.
    pub reference: String,
    /// The seeds every strategy runs on every workload.
    pub seeds: Vec<u64>,
    /// Whether strategies with fewer phases also run with the total budget of the longest.
    pub equal_steps: bool,
    /// How the Wilcoxon tests of the report treat zero differences.
    pub zero_method: ZeroMethod,
    /// Strategies by label, in file order.
    pub strategies: Vec<(String, ComponentRef)>,
    /// Workloads by label, in file order.
    pub workloads: Vec<PlannedWorkload>,
    /// The suite file's text.
    pub source: String,
    /// Trials and search spaces, when the suite has a `[tuning]` table.
    pub tuning: Option<Tuning>,
    /// Phases of each strategy (same order as `strategies`).
    pub(super) phases: Vec<u32>,
}

/// One workload of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedWorkload {
    /// Its label in the suite file.
    pub label: String,
    /// Model, data set and training settings.
    pub workload: run::Workload,
    /// Its target, if any.
    pub target: Option<Target>,
}

/// Which budget a run has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// `train.epochs` per phase, as the workload says.
    PerPhase,
    /// Epochs stretched so the run takes as many steps as the suite's longest strategy.
    EqualSteps,
    /// A tuning trial: the per-phase budget, on a trial seed, scored on the selection split.
    Trial,
}

fn one_pass() -> f64 {
    1.0
}

fn is_one_pass(passes: &f64) -> bool {
    *passes == 1.0
}

/// One run of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedRun {
    /// Unique id, also its folder name: `workload.strategy[.equal_steps].seedN`.
    pub id: String,
    /// Workload label.
    pub workload: String,
    /// Strategy label.
    pub strategy: String,
    /// Its budget.
    pub budget: Budget,
    /// Phases of its strategy.
    pub phases: u32,
    /// Forward plus backward passes per step of its strategy, halved, as measured for a suite
    /// with `equal_steps` (see [`crate::suite::cost`]); 1 (not written) also when not measured.
    #[serde(default = "one_pass", skip_serializing_if = "is_one_pass")]
    pub passes_per_step: f64,
    /// What the run trains.
    pub config: RunConfig,
    /// The trial this run is, for a tuning trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<Trial>,
    /// The trial whose settings this final run of a tuned strategy took (none while its
    /// trials are unfinished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen_trial: Option<u32>,
}

/// Every run of a suite, written to `plan.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Suite name.
    pub suite: String,
    /// Reference strategy label.
    pub reference: String,
    /// Strategy labels in order.
    pub strategies: Vec<String>,
    /// Workloads in order.
    pub workloads: Vec<PlannedWorkload>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Runs, sorted by id.
    pub runs: Vec<PlannedRun>,
    /// How the Wilcoxon tests of the report treat zero differences.
    #[serde(default, skip_serializing_if = "is_wilcox")]
    pub zero_method: ZeroMethod,
    /// Trials and search spaces, for a suite with a `[tuning]` table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning: Option<Tuning>,
}

fn is_wilcox(zero: &ZeroMethod) -> bool {
    *zero == ZeroMethod::Wilcox
}

/// The first seed that `seeds` lists a second time.
pub(crate) fn listed_twice(seeds: &[u64]) -> Option<u64> {
    seeds
        .iter()
        .enumerate()
        .find(|(i, s)| seeds[..*i].contains(s))
        .map(|(_, s)| *s)
}

impl Suite {
    /// Keeps only the strategies `keep` accepts (and the reference).
    pub fn retain_strategies(&mut self, keep: impl Fn(&str, &ComponentRef) -> bool) {
        let reference = self.reference.clone();
        let mut phases = self.phases.iter();
        let mut kept_phases = vec![];
        self.strategies.retain(|(label, c)| {
            let k = *phases.next().unwrap_or(&1);
            let keep = *label == reference || keep(label, c);
            if keep {
                kept_phases.push(k);
            }
            keep
        });
        self.phases = kept_phases;
    }

    /// Adds a strategy under `label` (a plugin's strategy that the suite file does not name).
    pub fn add_strategy(
        &mut self,
        registry: &Registry,
        label: &str,
        component: ComponentRef,
    ) -> Result<(), Error> {
        let (strategy, _) = registry.strategy(&component.name, &component.config)?;
        let k = phases_of(&strategy).map_err(|e| format!("strategy `{label}`: {e}"))?;
        self.phases.push(k);
        self.strategies.push((label.to_string(), component));
        Ok(())
    }

    /// Expands the suite into its runs, sorted by id. With `equal_steps`, a strategy whose
    /// runs cost fewer passes than the workload's costliest strategy (phases × passes per step,
    /// `costs`) also runs with its epochs stretched to the same total passes.
    pub fn plan(&self, costs: &StepCosts) -> Plan {
        let mut runs = vec![];
        for w in &self.workloads {
            let cost = |label: &str, k: u32| f64::from(k) * costs.of(&w.label, label);
            let longest = (self.strategies.iter().zip(&self.phases))
                .map(|((label, _), &k)| cost(label, k))
                .fold(0.0, f64::max);
            for ((label, strategy), &k) in self.strategies.iter().zip(&self.phases) {
                let mut budgets = vec![(Budget::PerPhase, w.workload.train.epochs)];
                if self.equal_steps && cost(label, k) < longest {
                    let epochs = f64::from(w.workload.train.epochs);
                    let stretched = (epochs * longest / cost(label, k)).ceil() as u32;
                    budgets.push((Budget::EqualSteps, stretched));
                }
                for &(budget, epochs) in &budgets {
                    for &seed in &self.seeds {
                        let mut config = RunConfig::new(strategy.clone(), &w.workload, seed);
                        config.train.epochs = epochs;
                        let infix = match budget {
                            Budget::PerPhase | Budget::Trial => String::new(),
                            Budget::EqualSteps => ".equal_steps".into(),
                        };
                        runs.push(PlannedRun {
                            id: format!("{}.{label}{infix}.seed{seed}", w.label),
                            workload: w.label.clone(),
                            strategy: label.clone(),
                            budget,
                            phases: k,
                            passes_per_step: costs.of(&w.label, label),
                            config,
                            trial: None,
                            chosen_trial: None,
                        });
                    }
                }
                if let Some(t) = &self.tuning {
                    // The last budget is the longest: the equal-step one where there is one.
                    let epochs = match t.budget {
                        TrialBudget::PerPhase => w.workload.train.epochs,
                        TrialBudget::EqualSteps => budgets.last().map_or(1, |b| b.1),
                    };
                    let passes = costs.of(&w.label, label);
                    runs.extend(t.trial_runs(w, label, strategy, k, epochs, passes));
                }
            }
        }
        runs.sort_by(|a, b| a.id.cmp(&b.id));
        Plan {
            suite: self.name.clone(),
            reference: self.reference.clone(),
            strategies: self.strategies.iter().map(|(l, _)| l.clone()).collect(),
            workloads: self.workloads.clone(),
            seeds: self.seeds.clone(),
            runs,
            zero_method: self.zero_method,
            tuning: self.tuning.clone(),
        }
    }
}

/// The first workload of the embedded default suite (for `pn-host run` without a run file).
pub fn default_workload() -> run::Workload {
    let file: toml::Table = toml::from_str(run::DEFAULT_SUITE).expect("embedded suite parses");
    let mut workload = file["workloads"]
        .as_table()
        .and_then(|w| w.values().next())
        .and_then(|w| w.as_table())
        .cloned()
        .expect("embedded suite has a workload");
    workload.remove("target");
    toml::Value::Table(workload)
        .try_into()
        .expect("embedded workload is valid")
}

/// Parses `I/N` (1 ≤ I ≤ N).
pub fn parse_shard(text: &str) -> Result<(usize, usize), Error> {
    let parsed = text
        .split_once('/')
        .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((i, n)) if 1 <= i && i <= n => Ok((i, n)),
        _ => Err(format!("--shard `{text}`: expected I/N with 1 ≤ I ≤ N, e.g. 2/8").into()),
    }
}

/// Shard `i` of `n` (from 1): every `n`-th run of the id-sorted list, starting at the `i`-th,
/// so each shard gets a similar mix of strategies and every run lands in exactly one shard.
pub fn shard<T>(runs: Vec<T>, (i, n): (usize, usize)) -> Vec<T> {
    runs.into_iter()
        .enumerate()
        .filter(|(k, _)| shard_of(*k, n) == i)
        .map(|(_, r)| r)
        .collect()
}

/// The shard (from 1, of `n`) that runs the `k`-th run (from 0) of the id-sorted list.
pub fn shard_of(k: usize, n: usize) -> usize {
    k % n + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_run_exactly_once() {
        for n in 1..=7 {
            let runs: Vec<usize> = (0..23).collect();
            let mut seen: Vec<usize> = (1..=n).flat_map(|i| shard(runs.clone(), (i, n))).collect();
            seen.sort();
            assert_eq!(seen, runs, "n = {n}");
            let sizes: Vec<usize> = (1..=n).map(|i| shard(runs.clone(), (i, n)).len()).collect();
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        }
    }

    #[test]
    fn shard_syntax() {
        assert_eq!(parse_shard("2/8").unwrap(), (2, 8));
        assert!(parse_shard("0/8").is_err());
        assert!(parse_shard("9/8").is_err());
        assert!(parse_shard("3").is_err());
    }

    #[test]
    fn targets_respect_direction() {
        assert!(Metric::TrainLoss.meets(1e-4, 1e-3));
        assert!(!Metric::TrainLoss.meets(1e-2, 1e-3));
        assert!(Metric::ValidAccuracy.meets(0.97, 0.95));
        assert!(!Metric::ValidAccuracy.meets(0.9, 0.95));
    }
}
