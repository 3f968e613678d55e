//! Tuning with equal budgets: a suite's `[tuning]` table (trials and their seeds), each
//! strategy's search space (`[strategies.NAME.search]`: uniform, log-uniform or a choice per
//! setting), the trial points (a scrambled Sobol sequence, the same for every strategy), and the
//! choice of the best trial once every trial has a result.
//!
//! Trials are ordinary runs of the plan (`Budget::Trial`), scored on the part of the held-out
//! split kept for selection (`train.holdout`), never on the part the tables report. The final
//! runs of a tuned strategy wait until every trial of its workload has a result; they then take
//! the best trial's settings. Everything here is a pure function of the plan and the run records,
//! so `suite report` makes the same choice without plugins.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use pn_plugin_api::abi::StrategyBox;

use crate::plugin::registry::{phases_of, Registry};
use crate::run::{self, ComponentRef, RunConfig, RunRecord};
use crate::suite::{Budget, Metric, Plan, PlannedRun, PlannedWorkload};
use crate::train::Status;

/// The most trials a suite may give each strategy (the Sobol sequence has 2^16 points).
pub const MAX_TRIALS: u32 = 1024;
/// The most settings one search space may have (the Sobol sequence's dimensions).
pub const MAX_SETTINGS: usize = 256;
/// The first seed of `[tuning] seeds = N`: far from any suite's own seeds, so trials never
/// train on the seeds the tables report.
pub const FIRST_TRIAL_SEED: u64 = 1_000_000;
/// The train settings a search space may name: those that do not change the budget (epochs,
/// batch size) or the split (holdout).
pub const TUNABLE_TRAIN: [&str; 9] = [
    "optimizer",
    "lr",
    "momentum",
    "dampening",
    "nesterov",
    "beta1",
    "beta2",
    "epsilon",
    "weight_decay",
];

/// How one setting is drawn from a point's coordinate u in [0, 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    /// low + u (high − low); whole numbers when both bounds are integers.
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
        /// Round to whole numbers.
        integer: bool,
    },
    /// low (high / low)^u, 0 < low < high; whole numbers when both bounds are integers.
    LogUniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
        /// Round to whole numbers.
        integer: bool,
    },
    /// One of the values, each an equal share of [0, 1).
    Choice(Vec<Value>),
}

/// One setting of a search space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    /// `name` for a strategy setting, `train.name` for a training setting.
    pub key: String,
    /// Its distribution.
    pub distribution: Distribution,
}

impl Setting {
    /// The `section.key` path [`run::set_value`] takes.
    fn path(&self) -> String {
        if self.key.starts_with("train.") {
            self.key.clone()
        } else {
            format!("strategy.{}", self.key)
        }
    }

    /// The value at coordinate `u`.
    fn value(&self, u: f64) -> Value {
        let number = |x: f64, integer: bool| {
            if integer {
                Value::from(x.round() as i64)
            } else {
                Value::from(round_significant(x, 4))
            }
        };
        match &self.distribution {
            Distribution::Uniform { low, high, integer } => {
                number(low + u * (high - low), *integer)
            }
            Distribution::LogUniform { low, high, integer } => {
                number(low * (high / low).powf(u), *integer)
            }
            Distribution::Choice(values) => {
                let i = ((u * values.len() as f64) as usize).min(values.len() - 1);
                values[i].clone()
            }
        }
    }

    /// Whether a sensitivity plot should put this setting on a log axis.
    pub fn log_scale(&self) -> bool {
        matches!(self.distribution, Distribution::LogUniform { .. })
    }
}

/// `x` rounded to `digits` significant digits, so trial settings read as plain numbers.
fn round_significant(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(digits - 1 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// A strategy's search space: its settings in file order.
pub type Space = Vec<Setting>;

/// One trial: its index and the values it sets, by setting key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// From 0.
    pub index: u32,
    /// The value of each setting of the space.
    pub values: IndexMap<String, Value>,
}

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

/// Reads one entry of a `[strategies.NAME.search]` table: `setting = { uniform = [low, high] }`,
/// `{ log_uniform = [low, high] }` or `{ choice = [a, b, ...] }`; train settings as
/// `train.lr = { ... }` (TOML reads that as a `train` table, hence several settings). Errors
/// name the setting; the caller adds the file and line.
pub fn parse_entry(key: &str, value: &toml::Value) -> Result<Vec<Setting>, String> {
    match value.as_table() {
        Some(train) if key == "train" => train
            .iter()
            .map(|(name, value)| {
                if !TUNABLE_TRAIN.contains(&name.as_str()) {
                    return Err(format!(
                        "`train.{name}` cannot be tuned (tunable train settings: {}; epochs, batch size and holdout set the budget and the split)",
                        TUNABLE_TRAIN.join(", ")
                    ));
                }
                parse_setting(&format!("train.{name}"), value)
            })
            .collect(),
        _ => Ok(vec![parse_setting(key, value)?]),
    }
}

/// Checks the size of a whole space.
pub fn check_size(space: &Space) -> Result<(), String> {
    if space.is_empty() {
        return Err("`search` names no setting".into());
    }
    if space.len() > MAX_SETTINGS {
        return Err(format!(
            "`search` has {} settings; at most {MAX_SETTINGS}",
            space.len()
        ));
    }
    Ok(())
}

fn parse_setting(key: &str, value: &toml::Value) -> Result<Setting, String> {
    const FORMS: &str =
        "expected one of { uniform = [low, high] }, { log_uniform = [low, high] }, { choice = [a, b, ...] }";
    let table = value
        .as_table()
        .filter(|t| t.len() == 1)
        .ok_or_else(|| format!("search setting `{key}`: {FORMS}"))?;
    let (form, args) = table.iter().next().expect("one entry");
    let items = args
        .as_array()
        .ok_or_else(|| format!("search setting `{key}`: `{form}` takes a list"))?;
    let bounds = || -> Result<(f64, f64, bool), String> {
        let number = |v: &toml::Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
        match items.as_slice() {
            [lo, hi] => match (number(lo), number(hi)) {
                (Some(l), Some(h)) if l.is_finite() && h.is_finite() && l < h => {
                    Ok((l, h, lo.is_integer() && hi.is_integer()))
                }
                _ => Err(format!(
                    "search setting `{key}`: `{form}` needs two finite numbers low < high, got {args}"
                )),
            },
            _ => Err(format!(
                "search setting `{key}`: `{form}` takes [low, high], got {args}"
            )),
        }
    };
    let distribution = match form.as_str() {
        "uniform" => {
            let (low, high, integer) = bounds()?;
            Distribution::Uniform { low, high, integer }
        }
        "log_uniform" => {
            let (low, high, integer) = bounds()?;
            if low <= 0.0 {
                return Err(format!(
                    "search setting `{key}`: `log_uniform` needs bounds above 0, got {args}"
                ));
            }
            Distribution::LogUniform { low, high, integer }
        }
        "choice" if items.is_empty() => {
            return Err(format!("search setting `{key}`: `choice` is an empty list"))
        }
        "choice" => Distribution::Choice(
            items
                .iter()
                .map(|v| {
                    serde_json::to_value(v).map_err(|e| format!("search setting `{key}`: {e}"))
                })
                .collect::<Result<_, _>>()?,
        ),
        other => {
            return Err(format!(
                "search setting `{key}`: unknown form `{other}`: {FORMS}"
            ))
        }
    };
    Ok(Setting {
        key: key.to_string(),
        distribution,
    })
}

/// The `trials` points of `space`: point i sets setting d from coordinate d of point i of a
/// scrambled Sobol sequence (`sobol_burley`, scramble seed 0). The same file gives the same
/// trials; every strategy's first trials cover its space evenly.
pub fn trials(space: &Space, trials: u32) -> Vec<Trial> {
    (0..trials)
        .map(|i| Trial {
            index: i,
            values: space
                .iter()
                .enumerate()
                .map(|(d, s)| {
                    let u = sobol_burley::sample(i, d as u32, 0) as f64;
                    (s.key.clone(), s.value(u))
                })
                .collect(),
        })
        .collect()
}

/// `config` with the trial's values set.
pub fn apply(config: &RunConfig, space: &Space, trial: &Trial) -> Result<RunConfig, String> {
    let mut config = config.clone();
    for s in space {
        let value = trial.values.get(&s.key).cloned().unwrap_or(Value::Null);
        run::set_value(&mut config, &s.path(), value)
            .map_err(|e| format!("search setting `{}`: {e}", s.key))?;
    }
    Ok(config)
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
/// with its first trial's value, so that an unknown or invalid setting is blamed on its line.
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
    Ok(())
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

/// Checks that tuning can score trials on workload `w` (it keeps a selection split) and that
/// every trial's train settings are valid there.
pub fn check_workload(
    tuning: &Tuning,
    strategies: &[(String, ComponentRef)],
    w: &PlannedWorkload,
) -> Result<(), String> {
    if w.workload.train.holdout <= 0.0 {
        return Err(format!(
            "tuning scores trials on the part of the held-out split kept for selection: set `holdout` (e.g. 0.5) in the train settings of workload `{}`",
            w.label
        ));
    }
    for (label, strategy) in strategies {
        let Some(space) = tuning.spaces.get(label) else {
            continue;
        };
        let base = RunConfig::new(strategy.clone(), &w.workload, 0);
        for trial in trials(space, tuning.trials) {
            let config =
                apply(&base, space, &trial).map_err(|e| format!("strategy `{label}`: {e}"))?;
            config.train.validate().map_err(|e| {
                format!(
                    "strategy `{label}`, trial {} ({}) on workload `{}`: {e}",
                    trial.index,
                    describe(&trial),
                    w.label
                )
            })?;
        }
    }
    Ok(())
}

/// A trial's settings as `key = value, ...`.
pub fn describe(trial: &Trial) -> String {
    trial
        .values
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A trial's score on the selection split: its selection loss, or its selection accuracy when
/// the workload compares accuracy (then higher is better). A run that failed or diverged, or
/// that has no selection metrics (no `train.holdout`), scores as the worst.
pub fn score(record: &RunRecord, metric: Metric) -> f64 {
    let worst = if metric.higher_is_better() {
        f64::NEG_INFINITY
    } else {
        f64::INFINITY
    };
    if record.status != Status::Completed {
        return worst;
    }
    let Some(phase) = record
        .selected_phase
        .and_then(|p| record.phases.get(p as usize))
    else {
        return worst;
    };
    let value = if metric.higher_is_better() {
        phase.final_select_accuracy
    } else {
        phase.final_select_loss
    };
    value.filter(|v| v.is_finite()).unwrap_or(worst)
}

/// One trial's result: its mean score over the trial seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialScore {
    /// The trial.
    pub trial: Trial,
    /// Mean score over the seeds (the worst value when a seed failed).
    pub score: f64,
}

/// The scored trials of one workload and strategy, or None while some trial has no result.
pub fn scores(
    plan: &Plan,
    workload: &str,
    strategy: &str,
    record: impl Fn(&PlannedRun) -> Option<RunRecord>,
) -> Option<Vec<TrialScore>> {
    let w = plan.workloads.iter().find(|w| w.label == workload)?;
    let metric = crate::report::compared_metric(w);
    let mut by_trial: IndexMap<u32, (Trial, Vec<f64>)> = IndexMap::new();
    for run in plan
        .runs
        .iter()
        .filter(|r| r.workload == workload && r.strategy == strategy)
    {
        let Some(trial) = &run.trial else { continue };
        let score = score(&record(run)?, metric);
        by_trial
            .entry(trial.index)
            .or_insert_with(|| (trial.clone(), vec![]))
            .1
            .push(score);
    }
    by_trial.sort_keys();
    Some(
        by_trial
            .into_values()
            .map(|(trial, s)| TrialScore {
                trial,
                score: s.iter().sum::<f64>() / s.len().max(1) as f64,
            })
            .collect(),
    )
}

/// The best of `scores` (lowest loss or highest accuracy; the earliest trial on a tie).
pub fn best(scores: &[TrialScore], metric: Metric) -> Option<&TrialScore> {
    let better = |a: f64, b: f64| {
        if metric.higher_is_better() {
            a > b
        } else {
            a < b
        }
    };
    scores
        .iter()
        .fold(None, |best: Option<&TrialScore>, s| match best {
            Some(b) if !better(s.score, b.score) => Some(b),
            _ => Some(s),
        })
}

/// Gives the final runs of every tuned strategy whose trials all have a result the best
/// trial's settings (`chosen_trial`). Returns how many final runs still wait for trials.
pub fn resolve(plan: &mut Plan, record: impl Fn(&PlannedRun) -> Option<RunRecord>) -> usize {
    let Some(tuning) = plan.tuning.clone() else {
        return 0;
    };
    let mut waiting = 0;
    for w in plan.workloads.clone() {
        let metric = crate::report::compared_metric(&w);
        for (strategy, space) in &tuning.spaces {
            let chosen = scores(plan, &w.label, strategy, &record)
                .and_then(|s| best(&s, metric).map(|b| b.trial.clone()));
            for run in plan
                .runs
                .iter_mut()
                .filter(|r| r.workload == w.label && &r.strategy == strategy && r.trial.is_none())
            {
                match &chosen {
                    Some(trial) => {
                        // Checked at parse time: every trial's settings apply.
                        if let Ok(config) = apply(&run.config, space, trial) {
                            run.config = config;
                            run.chosen_trial = Some(trial.index);
                        }
                    }
                    None => waiting += 1,
                }
            }
        }
    }
    waiting
}

/// Whether `run` is a final run still waiting for the trials of its strategy.
pub fn waits(plan: &Plan, run: &PlannedRun) -> bool {
    run.trial.is_none()
        && run.chosen_trial.is_none()
        && plan
            .tuning
            .as_ref()
            .is_some_and(|t| t.spaces.contains_key(&run.strategy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(text: &str) -> Result<Space, String> {
        let table: IndexMap<String, toml::Value> = toml::from_str(text).unwrap();
        let mut space = vec![];
        for (key, value) in &table {
            space.extend(parse_entry(key, value)?);
        }
        check_size(&space)?;
        Ok(space)
    }

    #[test]
    fn the_three_forms_and_train_settings_parse() {
        let s = space(
            "lambda = { log_uniform = [0.01, 10.0] }\nrelease = { uniform = [0, 1.0] }\n\
             kernel = { choice = [\"gaussian\", \"inverse_power\"] }\ntrain.lr = { log_uniform = [1e-4, 1e-1] }",
        )
        .unwrap();
        let keys: Vec<&str> = s.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["lambda", "release", "kernel", "train.lr"]);
        assert!(s[0].log_scale() && !s[1].log_scale());
        assert_eq!(s[3].path(), "train.lr");
        assert_eq!(s[0].path(), "strategy.lambda");
    }

    #[test]
    fn mistakes_in_a_space_are_one_line_errors_naming_the_setting() {
        for (text, needle) in [
            (
                "x = { log_uniform = [0, 1] }",
                "`x`: `log_uniform` needs bounds above 0",
            ),
            ("x = { log_uniform = [-1, 1] }", "above 0"),
            ("x = { uniform = [2, 1] }", "low < high"),
            ("x = { uniform = [1] }", "takes [low, high]"),
            ("x = { choice = [] }", "`x`: `choice` is an empty list"),
            ("x = { normal = [0, 1] }", "unknown form `normal`"),
            ("x = 3", "expected one of"),
            (
                "train.epochs = { uniform = [1, 5] }",
                "`train.epochs` cannot be tuned",
            ),
        ] {
            let e = space(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
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

    #[test]
    fn trials_are_deterministic_within_bounds_and_integers_stay_integers() {
        let s = space(
            "a = { log_uniform = [1e-3, 1e3] }\nb = { uniform = [1, 9] }\nc = { choice = [1, 2, 3] }",
        )
        .unwrap();
        let t = trials(&s, 64);
        assert_eq!(t, trials(&s, 64));
        for trial in &t {
            let a = trial.values["a"].as_f64().unwrap();
            assert!((1e-3..=1e3).contains(&a), "{a}");
            let b = &trial.values["b"];
            assert!(b.is_i64() && (1..=9).contains(&b.as_i64().unwrap()), "{b}");
        }
        // Quasi-random: the log-uniform setting visits every decade in the first 16 trials,
        // each choice comes up, and the trials are all different.
        let decades: std::collections::BTreeSet<i64> = t[..16]
            .iter()
            .map(|t| t.values["a"].as_f64().unwrap().log10().floor() as i64)
            .collect();
        assert_eq!(decades.len(), 6, "{decades:?}");
        for c in 1..=3 {
            assert!(t[..8].iter().any(|t| t.values["c"] == c), "choice {c}");
        }
        let distinct: std::collections::BTreeSet<String> =
            t.iter().map(|t| format!("{:?}", t.values)).collect();
        assert_eq!(distinct.len(), 64);
    }

    /// A synthetic objective with a known best region: (log10 x + 2)² + (y − 0.7)², best at
    /// x = 0.01, y = 0.7. Sixteen trials land the best near it.
    #[test]
    fn the_search_finds_the_known_best_region_of_a_synthetic_objective() {
        let s = space("x = { log_uniform = [1e-5, 1.0] }\ny = { uniform = [0.0, 1.0] }").unwrap();
        let objective = |t: &Trial| {
            let x = t.values["x"].as_f64().unwrap();
            let y = t.values["y"].as_f64().unwrap();
            (x.log10() + 2.0).powi(2) + (y - 0.7).powi(2)
        };
        let scored: Vec<TrialScore> = trials(&s, 16)
            .into_iter()
            .map(|trial| TrialScore {
                score: objective(&trial),
                trial,
            })
            .collect();
        let b = best(&scored, Metric::ValidLoss).unwrap();
        let x = b.trial.values["x"].as_f64().unwrap();
        let y = b.trial.values["y"].as_f64().unwrap();
        assert!((10f64.powf(-2.8)..10f64.powf(-1.2)).contains(&x), "x = {x}");
        assert!((0.45..0.95).contains(&y), "y = {y}");
        // Higher is better for accuracy: the same trials, the other way round.
        let worst = best(&scored, Metric::ValidAccuracy).unwrap();
        assert!(scored.iter().all(|s| s.score <= worst.score));
    }

    #[test]
    fn values_read_as_plain_numbers() {
        assert_eq!(round_significant(0.012345678, 4), 0.01235);
        assert_eq!(round_significant(1234.5678, 4), 1235.0);
    }
}
