//! The suite file and its expansion into runs (strategies × workloads × seeds, plus
//! equal-step budgets), and sharding. The runs' results live in [`crate::results::store`].

use std::path::Path;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use toml::Spanned;

use crate::plugin::registry::{phases_of, Kind, Registry};
use crate::report::stats::ZeroMethod;
use crate::run::{self, ComponentRef, RunConfig};
use crate::suite::cost::StepCosts;
use crate::suite::tuning::{self, Trial, TrialBudget, Tuning, TuningFile};
use crate::train::TrainConfig;

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

/// Seeds: a count (`master_seed`, `master_seed + 1`, …) or an explicit list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Seeds {
    Count(u64),
    List(Vec<u64>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComponentSpec {
    name: Spanned<String>,
    #[serde(default)]
    config: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StrategySpec {
    #[serde(default)]
    name: Option<Spanned<String>>,
    #[serde(default)]
    config: Option<Spanned<toml::Value>>,
    /// Its search space (see [`tuning::parse_entry`]).
    #[serde(default)]
    search: Option<Spanned<IndexMap<Spanned<String>, toml::Value>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadSpec {
    model: ComponentSpec,
    dataset: ComponentSpec,
    #[serde(default)]
    train: Option<Spanned<TrainConfig>>,
    #[serde(default)]
    target: Option<Target>,
}

/// The most seeds a suite may run each strategy with.
const MAX_SEEDS: u64 = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    #[serde(default)]
    name: Option<String>,
    reference: Spanned<String>,
    seeds: Seeds,
    #[serde(default)]
    master_seed: u64,
    #[serde(default = "yes")]
    equal_steps: bool,
    #[serde(default)]
    zero_method: ZeroMethod,
    #[serde(default)]
    plugins: IndexMap<String, Spanned<String>>,
    #[serde(default)]
    tuning: Option<Spanned<TuningFile>>,
    strategies: IndexMap<Spanned<String>, StrategySpec>,
    workloads: IndexMap<Spanned<String>, WorkloadSpec>,
}

fn yes() -> bool {
    true
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
    phases: Vec<u32>,
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

/// The line (from 1) where `span` starts; a table's span starts at its `[header]`.
fn line_of(text: &str, span: std::ops::Range<usize>) -> usize {
    text.as_bytes()[..span.start.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn to_json(value: &Option<Spanned<toml::Value>>) -> Value {
    value
        .as_ref()
        .and_then(|v| serde_json::to_value(v.get_ref()).ok())
        .unwrap_or(Value::Null)
}

/// The line to blame for a component that cannot be built: its name when no plugin provides
/// it, else its config.
fn blame(
    registry: &Registry,
    kind: Kind,
    text: &str,
    name: &Spanned<String>,
    config: &Option<Spanned<toml::Value>>,
) -> usize {
    match config {
        Some(c) if registry.provider(kind, name.get_ref()).is_some() => line_of(text, c.span()),
        _ => line_of(text, name.span()),
    }
}

/// Whether `name` can name a folder or a part of a run id: letters, digits, `_` and `-`.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn check_label(label: &Spanned<String>, text: &str, origin: &str) -> Result<String, String> {
    let name = label.get_ref();
    if is_plain_name(name) {
        Ok(name.clone())
    } else {
        Err(format!(
            "{origin}, line {}: label `{name}` may use only letters, digits, `_` and `-`",
            line_of(text, label.span())
        ))
    }
}

impl Suite {
    /// Parses a suite file and checks every name, config and pin against `registry`; errors
    /// name the file and line.
    pub fn parse(text: &str, origin: &str, registry: &Registry) -> Result<Self, String> {
        Self::parse_inner(text, origin, registry, false)
    }

    /// Like [`Suite::parse`], but leaves out strategies no loaded plugin provides (other than
    /// the reference).
    pub fn parse_available(text: &str, origin: &str, registry: &Registry) -> Result<Self, String> {
        Self::parse_inner(text, origin, registry, true)
    }

    fn parse_inner(
        text: &str,
        origin: &str,
        registry: &Registry,
        lenient: bool,
    ) -> Result<Self, String> {
        let at = |line: usize| format!("{origin}, line {line}");
        let file: SuiteFile = run::parse_toml(text, origin)?;
        let name = file.name.clone().unwrap_or_else(|| {
            Path::new(origin)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "suite".into())
        });
        let seeds = match &file.seeds {
            Seeds::Count(0) => return Err(format!("{origin}: `seeds` must be at least 1")),
            Seeds::Count(n) if *n > MAX_SEEDS => {
                return Err(format!(
                    "{origin}: `seeds` must be at most {MAX_SEEDS}, got {n}"
                ))
            }
            // TOML integers are i64, so the sum cannot overflow a u64
            Seeds::Count(n) => (file.master_seed..file.master_seed + n).collect(),
            Seeds::List(list) if list.is_empty() => {
                return Err(format!("{origin}: `seeds` is an empty list"))
            }
            Seeds::List(list) => list.clone(),
        };
        if let Some(twice) = listed_twice(&seeds) {
            return Err(format!("{origin}: seed {twice} is listed twice in `seeds`"));
        }
        if !is_plain_name(&name) {
            return Err(format!(
                "{origin}: suite name `{name}` may use only letters, digits, `_` and `-` (it names the suite's folder; set `name = \"...\"`)"
            ));
        }
        for (file_name, pin) in &file.plugins {
            check_pin(registry, file_name, pin.get_ref())
                .map_err(|e| format!("{}: {e}", at(line_of(text, pin.span()))))?;
        }
        if file.strategies.is_empty() || file.workloads.is_empty() {
            return Err(format!(
                "{origin}: a suite needs at least one [strategies.NAME] and one [workloads.NAME]"
            ));
        }
        let mut strategies = vec![];
        let mut phases = vec![];
        let trial_budget = match &file.tuning {
            Some(t) => Some(
                t.get_ref()
                    .check(&seeds)
                    .map_err(|e| format!("{}: {e}", at(line_of(text, t.span()))))?,
            ),
            None => None,
        };
        let (mut spaces, mut search_lines) = (IndexMap::new(), IndexMap::new());
        for (label, spec) in &file.strategies {
            let label_name = check_label(label, text, origin)?;
            let component = spec.name.as_ref().unwrap_or(label);
            if lenient
                && label != &file.reference
                && registry
                    .provider(Kind::Strategy, component.get_ref())
                    .is_none()
            {
                continue;
            }
            let line = blame(registry, Kind::Strategy, text, component, &spec.config);
            let config = to_json(&spec.config);
            let (strategy, _) = registry
                .strategy(component.get_ref(), &config)
                .map_err(|e| format!("{}: {e}", at(line)))?;
            let k = phases_of(&strategy).map_err(|e| format!("{}: {e}", at(line)))?;
            if let Some(search) = &spec.search {
                let at_search = at(line_of(text, search.span()));
                let Some((trials, _)) = trial_budget else {
                    return Err(format!(
                        "{at_search}: `search` needs a [tuning] table with `trials = N`"
                    ));
                };
                let mut space = vec![];
                for (key, value) in search.get_ref() {
                    let at_key = at(line_of(text, key.span()));
                    let settings = tuning::parse_entry(key.get_ref(), value)
                        .map_err(|e| format!("{at_key}: {e}"))?;
                    tuning::check_settings(registry, component.get_ref(), &config, &settings)
                        .map_err(|e| format!("{at_key}: {e}"))?;
                    space.extend(settings);
                }
                tuning::check_size(&space).map_err(|e| format!("{at_search}: {e}"))?;
                tuning::check_strategy(registry, component.get_ref(), &config, k, &space, trials)
                    .map_err(|e| format!("{at_search}: strategy `{label_name}`: {e}"))?;
                spaces.insert(label_name.clone(), space);
                search_lines.insert(label_name.clone(), line_of(text, search.span()));
            }
            phases.push(k);
            strategies.push((
                label_name,
                ComponentRef {
                    name: component.get_ref().clone(),
                    config,
                },
            ));
        }
        if !strategies
            .iter()
            .any(|(l, _)| l == file.reference.get_ref())
        {
            return Err(format!(
                "{}: reference `{}` is not one of the strategies ({})",
                at(line_of(text, file.reference.span())),
                file.reference.get_ref(),
                strategies
                    .iter()
                    .map(|(l, _)| l.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let mut workloads = vec![];
        for (label, spec) in &file.workloads {
            let label_name = check_label(label, text, origin)?;
            let component = |c: &ComponentSpec| ComponentRef {
                name: c.name.get_ref().clone(),
                config: to_json(&c.config),
            };
            let model = component(&spec.model);
            let blamed =
                |c: &ComponentSpec, kind| at(blame(registry, kind, text, &c.name, &c.config));
            registry
                .model(&model.name, &model.config)
                .map_err(|e| format!("{}: {e}", blamed(&spec.model, Kind::Model)))?;
            let dataset = component(&spec.dataset);
            registry
                .dataset(&dataset.name, &dataset.config)
                .map_err(|e| format!("{}: {e}", blamed(&spec.dataset, Kind::Dataset)))?;
            let train = spec
                .train
                .as_ref()
                .map(|t| t.get_ref().clone())
                .unwrap_or_default();
            train.validate().map_err(|e| {
                let line = spec.train.as_ref().map_or(1, |t| line_of(text, t.span()));
                format!("{}: {e}", at(line))
            })?;
            workloads.push(PlannedWorkload {
                label: label_name,
                workload: run::Workload {
                    model,
                    dataset,
                    train,
                },
                target: spec.target,
            });
        }
        let tuning = match (&file.tuning, trial_budget) {
            (Some(t), Some((trials, trial_seeds))) => {
                let at_tuning = at(line_of(text, t.span()));
                if spaces.is_empty() {
                    return Err(format!(
                        "{at_tuning}: [tuning] but no strategy has a search space ([strategies.NAME.search])"
                    ));
                }
                let tuning = Tuning {
                    trials,
                    seeds: trial_seeds,
                    spaces,
                    budget: t.get_ref().budget,
                };
                for (w, (label, spec)) in workloads.iter().zip(&file.workloads) {
                    let line = spec.train.as_ref().map_or(label.span(), |t| t.span());
                    tuning::check_holdout(w)
                        .map_err(|e| format!("{}: {e}", at(line_of(text, line))))?;
                }
                for (label, strategy) in &strategies {
                    let Some(line) = search_lines.get(label) else {
                        continue;
                    };
                    for w in &workloads {
                        tuning::check_trials(&tuning, label, strategy, w)
                            .map_err(|e| format!("{}: strategy `{label}`: {e}", at(*line)))?;
                    }
                }
                Some(tuning)
            }
            _ => None,
        };
        Ok(Self {
            tuning,
            name,
            reference: file.reference.into_inner(),
            seeds,
            equal_steps: file.equal_steps,
            zero_method: file.zero_method,
            strategies,
            workloads,
            source: text.to_string(),
            phases,
        })
    }

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
    ) -> Result<(), String> {
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

fn check_pin(registry: &Registry, file_name: &str, sha256: &str) -> Result<(), String> {
    let plugin = registry
        .plugins
        .iter()
        .find(|p| p.path.ends_with(file_name) || p.path.file_name().is_some_and(|n| n == file_name))
        .ok_or_else(|| format!("pinned plugin `{file_name}` is not loaded"))?;
    if plugin.sha256 != sha256.to_ascii_lowercase() {
        return Err(format!(
            "plugin {} has changed: sha256 {} but the suite pins {sha256}",
            plugin.path.display(),
            plugin.sha256
        ));
    }
    Ok(())
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
pub fn parse_shard(text: &str) -> Result<(usize, usize), String> {
    let parsed = text
        .split_once('/')
        .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((i, n)) if 1 <= i && i <= n => Ok((i, n)),
        _ => Err(format!(
            "--shard `{text}`: expected I/N with 1 ≤ I ≤ N, e.g. 2/8"
        )),
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
        assert_eq!(parse_shard("2/8"), Ok((2, 8)));
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
