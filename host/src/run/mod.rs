//! One run: its configuration (TOML, `--set`, the choices of `pn-host run`) here; executing it
//! (`execute`), its record (`record`) and its files (`files`) beside.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;
use crate::plugin::registry::merge_config;
use crate::train::TrainConfig;

mod execute;
mod files;
mod record;

pub use execute::{execute, failed, load_data, load_splits};
pub use files::{job_dir, run_dir_name, write_atomic, write_run};
pub use record::{describe, RunRecord};

/// A component chosen by name with overrides of its default config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentRef {
    /// The component's name.
    pub name: String,
    /// Overrides of its default configuration.
    #[serde(default)]
    pub config: Value,
}

/// A workload: model, data set and training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// The model.
    pub model: ComponentRef,
    /// The data set.
    pub dataset: ComponentRef,
    /// How to train.
    #[serde(default)]
    pub train: TrainConfig,
}

/// One run: a strategy on a workload with a seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The strategy.
    pub strategy: ComponentRef,
    /// The model.
    pub model: ComponentRef,
    /// The data set.
    pub dataset: ComponentRef,
    /// How to train.
    #[serde(default)]
    pub train: TrainConfig,
    /// Seed of θ0 and of the batch order.
    #[serde(default)]
    pub seed: u64,
}

impl RunConfig {
    /// `strategy` on `workload` with `seed`.
    pub fn new(strategy: ComponentRef, workload: &Workload, seed: u64) -> Self {
        Self {
            strategy,
            model: workload.model.clone(),
            dataset: workload.dataset.clone(),
            train: workload.train.clone(),
            seed,
        }
    }
}

/// The embedded default suite: the teacher-student workload (a two-layer ReLU student learning
/// a ReLU teacher of the same width, Safran & Shamir 2018, where plain training often stalls in a
/// spurious minimum) with every strategy of this repository.
pub const DEFAULT_SUITE: &str = include_str!("../../../suites/default.toml");

/// Parses TOML, reporting the first error on one line with its line number.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, origin: &str) -> Result<T, Error> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        let message = e.message().lines().next().unwrap_or("").to_string();
        Error::config(origin, line, message)
    })
}

/// Applies `--set section.key=value` overrides (value in TOML syntax, else a string).
pub fn apply_set(config: &mut RunConfig, assignment: &str) -> Result<(), Error> {
    let (path, raw) = assignment
        .split_once('=')
        .ok_or_else(|| format!("--set `{assignment}`: expected section.key=value"))?;
    let parsed = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|t| t.get("v").cloned());
    // JSON has no NaN or infinity: serde_json would turn them into null, which an optional
    // setting reads as "unset". Refuse them instead.
    if parsed.as_ref().is_some_and(has_non_finite) {
        return Err(format!("--set {path}: `{raw}` is not a finite number").into());
    }
    let value: Value = parsed
        .map(|v| serde_json::to_value(v).unwrap_or(Value::Null))
        .unwrap_or_else(|| Value::String(raw.to_string()));
    if !path.contains('.') {
        return Err(format!("--set `{assignment}`: expected section.key=value").into());
    }
    set_value(config, path, value).map_err(|e| format!("--set {e}").into())
}

/// Sets `section.key` of `config` to `value` (as `--set` does, and as a tuning trial does); a
/// train setting is checked against the training config's fields. Errors start with the path.
pub fn set_value(config: &mut RunConfig, path: &str, value: Value) -> Result<(), Error> {
    let (section, key) = path
        .split_once('.')
        .ok_or_else(|| format!("`{path}`: expected section.key"))?;
    let target = match section {
        "strategy" => &mut config.strategy.config,
        "model" => &mut config.model.config,
        "dataset" => &mut config.dataset.config,
        "train" => {
            let mut train = serde_json::to_value(&config.train).map_err(|e| e.to_string())?;
            // Settings left out of the serialized form while unset are settable too.
            if let Some(table) = train.as_object_mut() {
                table.entry("holdout").or_insert(Value::from(0.0));
                table.entry("augment").or_insert(Value::Null);
                table.entry("timeout").or_insert(Value::from(0.0));
            }
            train = merge_config(&train, &serde_json::json!({ key: value }), "train")
                .map_err(|e| format!("{path}: {e}"))?;
            config.train = serde_json::from_value(train).map_err(|e| format!("{path}: {e}"))?;
            return Ok(());
        }
        other => {
            return Err(format!(
                "`{path}`: unknown section `{other}` (strategy, model, dataset, train)"
            )
            .into())
        }
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    target[key] = value;
    Ok(())
}

/// Whether a TOML value holds a NaN or an infinite float anywhere.
fn has_non_finite(value: &toml::Value) -> bool {
    match value {
        toml::Value::Float(x) => !x.is_finite(),
        toml::Value::Array(items) => items.iter().any(has_non_finite),
        toml::Value::Table(table) => table.values().any(has_non_finite),
        _ => false,
    }
}

/// What a user chose for one run (`pn-host run`): a run file, component names that replace
/// its (or the default workload's) components, a seed, and `--set` overrides.
pub struct RunChoices<'a> {
    /// A run file (TOML), if any.
    pub file: Option<&'a Path>,
    /// Strategy name.
    pub strategy: Option<&'a str>,
    /// Model name.
    pub model: Option<&'a str>,
    /// Data set name.
    pub dataset: Option<&'a str>,
    /// Seed.
    pub seed: Option<u64>,
    /// `SECTION.KEY=VALUE` overrides, in order.
    pub set: &'a [String],
}

/// The run configuration `choices` describe: the run file's, or `baseline` on the default
/// workload; a component given by name starts from its own defaults.
pub fn assemble_config(choices: &RunChoices<'_>) -> Result<RunConfig, Error> {
    let mut config = match choices.file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
            parse_toml::<RunConfig>(&text, &path.display().to_string())?
        }
        None => RunConfig::new(
            ComponentRef {
                name: "baseline".into(),
                config: serde_json::Value::Null,
            },
            &crate::suite::default_workload(),
            0,
        ),
    };
    // A component named on the command line starts from its own defaults, unless the run file
    // already configures that same component.
    let rename = |c: &mut ComponentRef, name: Option<&str>| {
        if let Some(n) = name {
            if n != c.name || choices.file.is_none() {
                *c = ComponentRef {
                    name: n.to_string(),
                    config: serde_json::Value::Null,
                };
            }
        }
    };
    rename(&mut config.strategy, choices.strategy);
    rename(&mut config.model, choices.model);
    rename(&mut config.dataset, choices.dataset);
    if let Some(seed) = choices.seed {
        config.seed = seed;
    }
    for s in choices.set {
        apply_set(&mut config, s)?;
    }
    Ok(config)
}
