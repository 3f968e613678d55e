//! The suite file: its TOML shape (serde types that keep each value's span) and reading it into
//! a [`Suite`], checking every label, name, config and pin against the loaded plugins, so that
//! an error names the file and the line to blame. Expanding a suite into runs is
//! [`super::plan`]'s.

use std::path::Path;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use crate::error::Error;
use crate::plugin::registry::{phases_of, Kind, Registry};
use crate::report::stats::ZeroMethod;
use crate::run::{self, ComponentRef};
use crate::suite::tuning::{self, Tuning, TuningFile};
use crate::train::TrainConfig;

use super::plan::{listed_twice, PlannedWorkload, Suite, Target};

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

fn check_label(label: &Spanned<String>, text: &str, origin: &str) -> Result<String, Error> {
    let name = label.get_ref();
    if is_plain_name(name) {
        Ok(name.clone())
    } else {
        Err(Error::config(
            origin,
            Some(line_of(text, label.span())),
            format!("label `{name}` may use only letters, digits, `_` and `-`"),
        ))
    }
}

impl Suite {
    /// Parses a suite file and checks every name, config and pin against `registry`; errors
    /// name the file and line.
    pub fn parse(text: &str, origin: &str, registry: &Registry) -> Result<Self, Error> {
        Self::parse_inner(text, origin, registry, false)
    }

    /// Like [`Suite::parse`], but leaves out strategies no loaded plugin provides (other than
    /// the reference).
    pub fn parse_available(text: &str, origin: &str, registry: &Registry) -> Result<Self, Error> {
        Self::parse_inner(text, origin, registry, true)
    }

    fn parse_inner(
        text: &str,
        origin: &str,
        registry: &Registry,
        lenient: bool,
    ) -> Result<Self, Error> {
        let file: SuiteFile = run::parse_toml(text, origin)?;
        let name = file.name.clone().unwrap_or_else(|| {
            Path::new(origin)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "suite".into())
        });
        let seeds = seeds_of(&file.seeds, file.master_seed, origin)?;
        if !is_plain_name(&name) {
            return Err(Error::config(
                origin,
                None,
                format!("suite name `{name}` may use only letters, digits, `_` and `-` (it names the suite's folder; set `name = \"...\"`)"),
            ));
        }
        let reader = Reader {
            text,
            origin,
            registry,
        };
        for (file_name, pin) in &file.plugins {
            check_pin(registry, file_name, pin.get_ref()).map_err(|e| reader.at(pin.span(), e))?;
        }
        if file.strategies.is_empty() || file.workloads.is_empty() {
            return Err(Error::config(
                origin,
                None,
                "a suite needs at least one [strategies.NAME] and one [workloads.NAME]",
            ));
        }
        let trial_budget = match &file.tuning {
            Some(t) => Some(
                t.get_ref()
                    .check(&seeds)
                    .map_err(|e| reader.at(t.span(), e))?,
            ),
            None => None,
        };
        let trials = trial_budget.as_ref().map(|(trials, _)| *trials);
        let strategies = reader.strategies(&file, lenient, trials)?;
        let workloads = reader.workloads(&file)?;
        let tuning = match (&file.tuning, trial_budget) {
            (Some(t), Some((trials, seeds))) => {
                Some(reader.tuning(&file, t, (trials, seeds), &strategies, &workloads)?)
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
            strategies: strategies.list,
            workloads,
            source: text.to_string(),
            phases: strategies.phases,
        })
    }
}

/// The seeds a suite file asks for: `seeds` from `master_seed`, or its list.
fn seeds_of(seeds: &Seeds, master_seed: u64, origin: &str) -> Result<Vec<u64>, Error> {
    let seeds = match seeds {
        Seeds::Count(0) => return Err(Error::config(origin, None, "`seeds` must be at least 1")),
        Seeds::Count(n) if *n > MAX_SEEDS => {
            return Err(Error::config(
                origin,
                None,
                format!("`seeds` must be at most {MAX_SEEDS}, got {n}"),
            ))
        }
        // TOML integers are i64, so the sum cannot overflow a u64
        Seeds::Count(n) => (master_seed..master_seed + n).collect(),
        Seeds::List(list) if list.is_empty() => {
            return Err(Error::config(origin, None, "`seeds` is an empty list"))
        }
        Seeds::List(list) => list.clone(),
    };
    if let Some(twice) = listed_twice(&seeds) {
        return Err(Error::config(
            origin,
            None,
            format!("seed {twice} is listed twice in `seeds`"),
        ));
    }
    Ok(seeds)
}

/// The strategies of a suite file, checked: labels and components, phases, search spaces.
struct Strategies {
    list: Vec<(String, ComponentRef)>,
    phases: Vec<u32>,
    spaces: IndexMap<String, tuning::Space>,
    /// The line of each search space, by label.
    search_lines: IndexMap<String, usize>,
}

/// A suite file's text, its origin for messages, and the plugins it is checked against.
struct Reader<'a> {
    text: &'a str,
    origin: &'a str,
    registry: &'a Registry,
}

impl Reader<'_> {
    /// `message` at the line where `span` starts.
    fn at(&self, span: std::ops::Range<usize>, message: impl std::fmt::Display) -> Error {
        self.line(line_of(self.text, span), message)
    }

    /// `message` at `line`.
    fn line(&self, line: usize, message: impl std::fmt::Display) -> Error {
        Error::config(self.origin, Some(line), message.to_string())
    }

    /// Builds every strategy once (leaving out, when `lenient`, those no plugin provides
    /// other than the reference), asks its phases and checks its search space; then checks
    /// that the reference is one of them.
    fn strategies(
        &self,
        file: &SuiteFile,
        lenient: bool,
        trials: Option<u32>,
    ) -> Result<Strategies, Error> {
        let (text, origin, registry) = (self.text, self.origin, self.registry);
        let mut out = Strategies {
            list: vec![],
            phases: vec![],
            spaces: IndexMap::new(),
            search_lines: IndexMap::new(),
        };
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
                .map_err(|e| self.line(line, e))?;
            let k = phases_of(&strategy).map_err(|e| self.line(line, e))?;
            if let Some(search) = &spec.search {
                let search_line = line_of(text, search.span());
                let Some(trials) = trials else {
                    return Err(self.line(
                        search_line,
                        "`search` needs a [tuning] table with `trials = N`",
                    ));
                };
                let mut space = vec![];
                for (key, value) in search.get_ref() {
                    let at_key = |e: String| self.at(key.span(), e);
                    let settings = tuning::parse_entry(key.get_ref(), value).map_err(at_key)?;
                    tuning::check_settings(registry, component.get_ref(), &config, &settings)
                        .map_err(at_key)?;
                    space.extend(settings);
                }
                tuning::check_size(&space).map_err(|e| self.line(search_line, e))?;
                tuning::check_strategy(registry, component.get_ref(), &config, k, &space, trials)
                    .map_err(|e| self.line(search_line, format!("strategy `{label_name}`: {e}")))?;
                out.spaces.insert(label_name.clone(), space);
                out.search_lines.insert(label_name.clone(), search_line);
            }
            out.phases.push(k);
            out.list.push((
                label_name,
                ComponentRef {
                    name: component.get_ref().clone(),
                    config,
                },
            ));
        }
        if !out.list.iter().any(|(l, _)| l == file.reference.get_ref()) {
            return Err(self.at(
                file.reference.span(),
                format!(
                    "reference `{}` is not one of the strategies ({})",
                    file.reference.get_ref(),
                    out.list
                        .iter()
                        .map(|(l, _)| l.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        Ok(out)
    }

    /// Builds every workload's model and data set once and checks its training settings.
    fn workloads(&self, file: &SuiteFile) -> Result<Vec<PlannedWorkload>, Error> {
        let (text, origin, registry) = (self.text, self.origin, self.registry);
        let mut workloads = vec![];
        for (label, spec) in &file.workloads {
            let label_name = check_label(label, text, origin)?;
            let component = |c: &ComponentSpec| ComponentRef {
                name: c.name.get_ref().clone(),
                config: to_json(&c.config),
            };
            let model = component(&spec.model);
            let blamed = |c: &ComponentSpec, kind| blame(registry, kind, text, &c.name, &c.config);
            registry
                .model(&model.name, &model.config)
                .map_err(|e| self.line(blamed(&spec.model, Kind::Model), e))?;
            let dataset = component(&spec.dataset);
            registry
                .dataset(&dataset.name, &dataset.config)
                .map_err(|e| self.line(blamed(&spec.dataset, Kind::Dataset), e))?;
            let train = spec
                .train
                .as_ref()
                .map(|t| t.get_ref().clone())
                .unwrap_or_default();
            train.validate().map_err(|e| {
                let line = spec.train.as_ref().map_or(1, |t| line_of(text, t.span()));
                self.line(line, e)
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
        Ok(workloads)
    }

    /// The `[tuning]` table `t` with its checked `(trials, seeds)`: it needs a search space,
    /// every workload a holdout, and every tuned strategy trials that fit each workload.
    fn tuning(
        &self,
        file: &SuiteFile,
        t: &Spanned<TuningFile>,
        (trials, seeds): (u32, Vec<u64>),
        strategies: &Strategies,
        workloads: &[PlannedWorkload],
    ) -> Result<Tuning, Error> {
        if strategies.spaces.is_empty() {
            return Err(self.at(
                t.span(),
                "[tuning] but no strategy has a search space ([strategies.NAME.search])",
            ));
        }
        let tuning = Tuning {
            trials,
            seeds,
            spaces: strategies.spaces.clone(),
            budget: t.get_ref().budget,
        };
        for (w, (label, spec)) in workloads.iter().zip(&file.workloads) {
            let line = spec.train.as_ref().map_or(label.span(), |t| t.span());
            tuning::check_holdout(w).map_err(|e| self.at(line, e))?;
        }
        for (label, strategy) in &strategies.list {
            let Some(line) = strategies.search_lines.get(label) else {
                continue;
            };
            for w in workloads {
                tuning::check_trials(&tuning, label, strategy, w)
                    .map_err(|e| self.line(*line, format!("strategy `{label}`: {e}")))?;
            }
        }
        Ok(tuning)
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
