//! Run configurations (TOML), executing runs, writing their results, and the comparison table.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::device::{parse_device, Device};
use crate::plugin::registry::{merge_config, Kind, PluginFile, Registry};
use crate::train::data::Data;
use crate::train::{self, Observer, Outcome, PhaseRecord, Status, TrainConfig};
use pn_plugin_api::DataSplits;

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
pub const DEFAULT_SUITE: &str = include_str!("../../suites/default.toml");

/// Parses TOML, reporting the first error on one line with its line number.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, origin: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        let message = e.message().lines().next().unwrap_or("").to_string();
        match line {
            Some(l) => format!("{origin}, line {l}: {message}"),
            None => format!("{origin}: {message}"),
        }
    })
}

/// Applies `--set section.key=value` overrides (value in TOML syntax, else a string).
pub fn apply_set(config: &mut RunConfig, assignment: &str) -> Result<(), String> {
    let (path, raw) = assignment
        .split_once('=')
        .ok_or_else(|| format!("--set `{assignment}`: expected section.key=value"))?;
    let parsed = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|t| t.get("v").cloned());
    // JSON has no NaN or infinity: serde_json would turn them into null, which an optional
    // setting reads as "unset". Refuse them instead.
    if parsed.as_ref().is_some_and(has_non_finite) {
        return Err(format!("--set {path}: `{raw}` is not a finite number"));
    }
    let value: Value = parsed
        .map(|v| serde_json::to_value(v).unwrap_or(Value::Null))
        .unwrap_or_else(|| Value::String(raw.to_string()));
    if !path.contains('.') {
        return Err(format!("--set `{assignment}`: expected section.key=value"));
    }
    set_value(config, path, value).map_err(|e| format!("--set {e}"))
}

/// Sets `section.key` of `config` to `value` (as `--set` does, and as a tuning trial does); a
/// train setting is checked against the training config's fields. Errors start with the path.
pub fn set_value(config: &mut RunConfig, path: &str, value: Value) -> Result<(), String> {
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
            ))
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

/// Final metrics of the selected phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalMetrics {
    /// Task loss on the training split.
    pub train_loss: f64,
    /// Task loss on the held-out split.
    pub valid_loss: f64,
    /// Accuracy on the held-out split (null for regression).
    pub valid_accuracy: Option<f64>,
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
pub fn assemble_config(choices: &RunChoices<'_>) -> Result<RunConfig, String> {
    let mut config = match choices.file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
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

/// Everything about one run, written as `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// pn-host version.
    pub pn_host_version: String,
    /// Strategy with its full config.
    pub strategy: ComponentRef,
    /// Model with its full config.
    pub model: ComponentRef,
    /// Data set with its full config.
    pub dataset: ComponentRef,
    /// Training settings.
    pub train: TrainConfig,
    /// Seed.
    pub seed: u64,
    /// Device name.
    pub device: String,
    /// completed, diverged or failed.
    pub status: Status,
    /// Why it did not complete.
    pub message: Option<String>,
    /// The phase whose model is the result.
    pub selected_phase: Option<u32>,
    /// Metrics of the selected phase.
    pub final_metrics: Option<FinalMetrics>,
    /// Every finished phase with per-epoch metrics.
    pub phases: Vec<PhaseRecord>,
    /// Optimizer steps over all phases.
    pub steps: u64,
    /// Examples consumed over all phases.
    pub examples: u64,
    /// Forward passes of the model in training steps (2 per step for a strategy that
    /// evaluates the loss twice).
    #[serde(default)]
    pub forward_passes: u64,
    /// Backward passes in training steps.
    #[serde(default)]
    pub backward_passes: u64,
    /// Wall time of training in seconds.
    pub wall_time_s: f64,
    /// The plugin files used, with their sha256.
    pub plugins: Vec<PluginFile>,
    /// Tensors the strategy kept (saved in `kept.safetensors`).
    pub kept: Vec<String>,
    /// Whether the run reported on the data set's test split (selecting on its held-out
    /// split): then `valid_*` metrics, per epoch and final, are test metrics.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test_split: bool,
}

/// Loads a data set (once per workload; runs share it).
pub fn load_data(
    registry: &Registry,
    dataset: &ComponentRef,
    device: &Device,
) -> Result<Data, String> {
    let splits = load_splits(registry, dataset)?;
    let (set, _) = registry.dataset(&dataset.name, &dataset.config)?;
    let test = set
        .load_test()
        .into_result()
        .map_err(|e| format!("data set `{}`: {e}", dataset.name))?;
    let data = Data::upload(splits, device);
    let data = match test.into_option() {
        Some(test) => data.and_then(|d| d.with_test(test, device)),
        None => data,
    };
    data.map_err(|e| format!("data set `{}`: {e}", dataset.name))
}

/// A data set's splits in memory, as its plugin loads them (missing or malformed files fail
/// here, with the plugin's message).
pub fn load_splits(registry: &Registry, dataset: &ComponentRef) -> Result<DataSplits, String> {
    let (set, _) = registry.dataset(&dataset.name, &dataset.config)?;
    set.load().into_result().map_err(|e| {
        let e = e.to_string();
        let own = format!("{}: ", dataset.name);
        format!(
            "data set `{}`: {}",
            dataset.name,
            e.strip_prefix(&own).unwrap_or(&e)
        )
    })
}

/// Executes one run; plugin and configuration errors become a failed record, never a panic.
pub fn execute(
    registry: &Registry,
    config: &RunConfig,
    data: &Data,
    device_name: &str,
    observer: &mut dyn Observer,
) -> (RunRecord, Outcome) {
    let mut record = blank_record(registry, config, device_name);
    let built = (|| -> Result<_, String> {
        let device = parse_device(device_name)?;
        let (strategy, s_cfg) =
            registry.strategy(&config.strategy.name, &config.strategy.config)?;
        let (model, m_cfg) = registry.model(&config.model.name, &config.model.config)?;
        let (_, d_cfg) = registry.dataset(&config.dataset.name, &config.dataset.config)?;
        Ok((device, strategy, model, [s_cfg, m_cfg, d_cfg]))
    })();
    let (device, mut strategy, model, [s_cfg, m_cfg, d_cfg]) = match built {
        Ok(b) => b,
        Err(e) => return failed(registry, config, device_name, e),
    };
    record.dataset.config = d_cfg;
    record.test_split = data.test.is_some();
    record.strategy.config = s_cfg;
    record.model.config = m_cfg;
    let outcome = train::run(
        &mut strategy,
        &model,
        data,
        &config.train,
        config.seed,
        &device,
        observer,
    );
    record.status = outcome.status;
    record.message = outcome.message.clone();
    record.selected_phase = outcome.selected_phase;
    record.final_metrics = outcome
        .selected_phase
        .and_then(|p| outcome.phases.get(p as usize))
        .map(|p| FinalMetrics {
            train_loss: p.final_train_loss,
            valid_loss: p.final_valid_loss,
            valid_accuracy: p.final_valid_accuracy,
        });
    record.phases = outcome.phases.clone();
    record.steps = outcome.steps;
    record.examples = outcome.examples;
    record.forward_passes = outcome.forward_passes;
    record.backward_passes = outcome.backward_passes;
    record.wall_time_s = outcome.wall_time_s;
    record.kept = outcome.kept.iter().map(|(n, _, _)| n.clone()).collect();
    (record, outcome)
}

fn blank_record(registry: &Registry, config: &RunConfig, device_name: &str) -> RunRecord {
    let plugins: Vec<PluginFile> = [
        registry.plugin_of(Kind::Strategy, &config.strategy.name),
        registry.plugin_of(Kind::Model, &config.model.name),
        registry.plugin_of(Kind::Dataset, &config.dataset.name),
    ]
    .into_iter()
    .flatten()
    .collect();
    RunRecord {
        pn_host_version: env!("CARGO_PKG_VERSION").into(),
        strategy: config.strategy.clone(),
        model: config.model.clone(),
        dataset: config.dataset.clone(),
        train: config.train.clone(),
        seed: config.seed,
        device: device_name.into(),
        status: Status::Failed,
        message: None,
        selected_phase: None,
        final_metrics: None,
        phases: vec![],
        steps: 0,
        examples: 0,
        forward_passes: 0,
        backward_passes: 0,
        wall_time_s: 0.0,
        plugins,
        kept: vec![],
        test_split: false,
    }
}

/// The record and outcome of a run that failed before or outside training.
pub fn failed(
    registry: &Registry,
    config: &RunConfig,
    device_name: &str,
    message: String,
) -> (RunRecord, Outcome) {
    let mut record = blank_record(registry, config, device_name);
    record.message = Some(message.clone());
    (record, failed_outcome(message))
}

fn failed_outcome(message: String) -> Outcome {
    Outcome {
        status: Status::Failed,
        message: Some(message),
        ..Outcome::default()
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    // A name of this process's own, so that two processes writing one file do not share it.
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn safetensors_bytes(tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<Vec<u8>, String> {
    let raw: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&raw)
        .map(|((name, shape, _), bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, &None::<HashMap<String, String>>).map_err(|e| e.to_string())
}

/// Writes `run.json`, `model.safetensors` (the selected phase's parameters),
/// `init.safetensors` (θ0, so that the run can be replayed elsewhere) and `kept.safetensors`
/// (what the strategy kept: anchors) into `dir`, each atomically.
pub fn write_run(dir: &Path, record: &RunRecord, outcome: &Outcome) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let named = |values: &crate::train::params::Values| -> Vec<(String, Vec<usize>, Vec<f32>)> {
        outcome
            .params
            .iter()
            .zip(values)
            .map(|((n, s), v)| (n.clone(), s.clone(), v.clone()))
            .collect()
    };
    if let Some(values) = &outcome.result_values {
        let mut tensors = named(values);
        tensors.extend(outcome.result_state.iter().cloned());
        write_atomic(
            &dir.join("model.safetensors"),
            &safetensors_bytes(&tensors)?,
        )?;
    }
    if let Some(theta0) = &outcome.theta0 {
        write_atomic(
            &dir.join("init.safetensors"),
            &safetensors_bytes(&named(theta0))?,
        )?;
    }
    if !outcome.kept.is_empty() {
        write_atomic(
            &dir.join("kept.safetensors"),
            &safetensors_bytes(&outcome.kept)?,
        )?;
    }
    if !outcome.trajectory.is_empty() {
        write_atomic(&dir.join("trajectory.csv"), &trajectory_csv(outcome)?)?;
    }
    let json = serde_json::to_vec_pretty(record).map_err(|e| e.to_string())?;
    write_atomic(&dir.join("run.json"), &json)
}

/// `trajectory.csv`: phase (from 1), step within the phase, then one column per parameter
/// element (`name` for one-element parameters, else `name[i]`).
fn trajectory_csv(outcome: &Outcome) -> Result<Vec<u8>, String> {
    let mut header = vec!["phase".to_string(), "step".to_string()];
    for (name, shape) in &outcome.params {
        let n: usize = shape.iter().product();
        header.extend((0..n).map(|i| {
            if n == 1 {
                name.clone()
            } else {
                format!("{name}[{i}]")
            }
        }));
    }
    let mut w = csv::Writer::from_writer(vec![]);
    w.write_record(&header).map_err(|e| e.to_string())?;
    for p in &outcome.trajectory {
        let row = [(p.phase + 1).to_string(), p.step.to_string()]
            .into_iter()
            .chain(p.values.iter().map(|v| v.to_string()));
        w.write_record(row).map_err(|e| e.to_string())?;
    }
    w.into_inner().map_err(|e| e.to_string())
}

/// The folder name of a run inside a results directory.
pub fn run_dir_name(config: &RunConfig) -> String {
    format!(
        "{}-{}-{}-seed{}",
        config.strategy.name, config.model.name, config.dataset.name, config.seed
    )
}

/// One line about a finished run: its final metrics, or why it did not complete.
pub fn describe(label: &str, record: &RunRecord) -> String {
    match (&record.status, &record.final_metrics) {
        (Status::Completed, Some(m)) => {
            let members = record
                .selected_phase
                .and_then(|p| record.phases.get(p as usize))
                .map_or(1, |p| p.members);
            format!(
                "{label}: train loss {:.3e}, valid loss {:.3e}{} ({}{} steps, {:.1}s)",
                m.train_loss,
                m.valid_loss,
                m.valid_accuracy
                    .map(|a| format!(", valid acc {:.2}%", 100.0 * a))
                    .unwrap_or_default(),
                if members > 1 {
                    format!("ensemble of {members}, ")
                } else {
                    String::new()
                },
                record.steps,
                record.wall_time_s
            )
        }
        (status, _) => format!(
            "{label}: {}: {}",
            status.name(),
            record.message.as_deref().unwrap_or("")
        ),
    }
}

/// Creates a new folder for a job's results: `<out>/<label>-<unix seconds>[-N]`.
pub fn job_dir(out: &Path, label: &str) -> Result<PathBuf, String> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut n = 1;
    loop {
        let name = if n == 1 {
            format!("{label}-{secs}")
        } else {
            format!("{label}-{secs}-{n}")
        };
        let dir = out.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
    }
}
