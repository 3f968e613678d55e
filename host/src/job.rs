//! Run configurations (TOML), executing runs, writing their results, and the comparison table.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::Data;
use crate::device::{parse_device, Device};
use crate::engine::{self, Observer, Outcome, PhaseRecord, Status, TrainConfig};
use crate::registry::{merge_config, Kind, PluginFile, Registry};

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
    /// A run "reaches the target" when its final training loss is at most this.
    #[serde(default)]
    pub target_train_loss: Option<f64>,
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

/// The embedded default workload: a two-layer ReLU student learning a ReLU teacher of the
/// same width (Safran & Shamir, 2018), where plain training often stalls in a spurious minimum.
pub const DEFAULT_WORKLOAD: &str = include_str!("../workloads/teacher_student.toml");

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

/// The default workload.
pub fn default_workload() -> Workload {
    parse_toml(DEFAULT_WORKLOAD, "embedded workload").unwrap_or_else(|e| panic!("{e}"))
}

/// Applies `--set section.key=value` overrides (value in TOML syntax, else a string).
pub fn apply_set(config: &mut RunConfig, assignment: &str) -> Result<(), String> {
    let (path, raw) = assignment
        .split_once('=')
        .ok_or_else(|| format!("--set `{assignment}`: expected section.key=value"))?;
    let value: Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|t| t.get("v").cloned())
        .map(|v| serde_json::to_value(v).unwrap_or(Value::Null))
        .unwrap_or_else(|| Value::String(raw.to_string()));
    let (section, key) = path
        .split_once('.')
        .ok_or_else(|| format!("--set `{assignment}`: expected section.key=value"))?;
    let target = match section {
        "strategy" => &mut config.strategy.config,
        "model" => &mut config.model.config,
        "dataset" => &mut config.dataset.config,
        "train" => {
            let mut train = serde_json::to_value(&config.train).map_err(|e| e.to_string())?;
            train = merge_config(&train, &serde_json::json!({ key: value }), "train")?;
            config.train =
                serde_json::from_value(train).map_err(|e| format!("--set {path}: {e}"))?;
            return Ok(());
        }
        other => {
            return Err(format!(
                "--set `{assignment}`: unknown section `{other}` (strategy, model, dataset, train)"
            ))
        }
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    target[key] = value;
    Ok(())
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
    /// Wall time of training in seconds.
    pub wall_time_s: f64,
    /// The plugin files used, with their sha256.
    pub plugins: Vec<PluginFile>,
    /// Tensors the strategy kept (saved in `kept.safetensors`).
    pub kept: Vec<String>,
}

/// Loads a data set (once per workload; runs share it).
pub fn load_data(
    registry: &Registry,
    dataset: &ComponentRef,
    device: &Device,
) -> Result<Data, String> {
    let (set, _) = registry.dataset(&dataset.name, &dataset.config)?;
    let splits = set
        .load()
        .into_result()
        .map_err(|e| format!("data set `{}`: {e}", dataset.name))?;
    Data::upload(splits, device).map_err(|e| format!("data set `{}`: {e}", dataset.name))
}

/// Executes one run; plugin and configuration errors become a failed record, never a panic.
pub fn execute(
    registry: &Registry,
    config: &RunConfig,
    data: &Data,
    device_name: &str,
    observer: &mut dyn Observer,
) -> (RunRecord, Outcome) {
    let plugins: Vec<PluginFile> = [
        registry.plugin_of(Kind::Strategy, &config.strategy.name),
        registry.plugin_of(Kind::Model, &config.model.name),
        registry.plugin_of(Kind::Dataset, &config.dataset.name),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut record = RunRecord {
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
        wall_time_s: 0.0,
        plugins,
        kept: vec![],
    };
    let built = (|| -> Result<_, String> {
        let device = parse_device(device_name)?;
        let (strategy, s_cfg) =
            registry.strategy(&config.strategy.name, &config.strategy.config)?;
        let (model, m_cfg) = registry.model(&config.model.name, &config.model.config)?;
        Ok((device, strategy, s_cfg, model, m_cfg))
    })();
    let (device, mut strategy, s_cfg, model, m_cfg) = match built {
        Ok(b) => b,
        Err(e) => {
            record.message = Some(e.clone());
            return (record, failed_outcome(e));
        }
    };
    record.strategy.config = s_cfg;
    record.model.config = m_cfg;
    let outcome = engine::run(
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
    record.wall_time_s = outcome.wall_time_s;
    record.kept = outcome.kept.iter().map(|(n, _, _)| n.clone()).collect();
    (record, outcome)
}

fn failed_outcome(message: String) -> Outcome {
    Outcome {
        status: Status::Failed,
        message: Some(message),
        phases: vec![],
        selected_phase: None,
        steps: 0,
        examples: 0,
        wall_time_s: 0.0,
        result_values: None,
        kept: vec![],
        params: vec![],
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
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

/// Writes `run.json`, `model.safetensors` (the selected phase's parameters) and
/// `kept.safetensors` (θ0, anchors) into `dir`, each atomically.
pub fn write_run(dir: &Path, record: &RunRecord, outcome: &Outcome) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if let Some(values) = &outcome.result_values {
        let tensors: Vec<_> = outcome
            .params
            .iter()
            .zip(values)
            .map(|((n, s), v)| (n.clone(), s.clone(), v.clone()))
            .collect();
        write_atomic(
            &dir.join("model.safetensors"),
            &safetensors_bytes(&tensors)?,
        )?;
    }
    if !outcome.kept.is_empty() {
        write_atomic(
            &dir.join("kept.safetensors"),
            &safetensors_bytes(&outcome.kept)?,
        )?;
    }
    let json = serde_json::to_vec_pretty(record).map_err(|e| e.to_string())?;
    write_atomic(&dir.join("run.json"), &json)
}

/// The folder name of a run inside a results directory.
pub fn run_dir_name(config: &RunConfig) -> String {
    format!(
        "{}-{}-{}-seed{}",
        config.strategy.name, config.model.name, config.dataset.name, config.seed
    )
}

/// Summary of one strategy's runs in a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Strategy name.
    pub strategy: String,
    /// Runs that completed / all runs.
    pub completed: usize,
    /// All runs.
    pub runs: usize,
    /// Mean and standard deviation of the final training loss over completed runs.
    pub train_loss: (f64, f64),
    /// Mean final held-out loss.
    pub valid_loss: f64,
    /// Runs whose final training loss reached the target.
    pub reached: usize,
    /// Mean optimizer steps per run (all phases).
    pub steps: f64,
    /// Mean wall time per run.
    pub seconds: f64,
}

/// Mean and sample standard deviation.
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Summarises runs per strategy, in first-seen order.
pub fn summarise(records: &[RunRecord], target: Option<f64>) -> Vec<Row> {
    let mut order: Vec<&str> = vec![];
    for r in records {
        if !order.contains(&r.strategy.name.as_str()) {
            order.push(&r.strategy.name);
        }
    }
    order
        .into_iter()
        .map(|name| {
            let runs: Vec<&RunRecord> =
                records.iter().filter(|r| r.strategy.name == name).collect();
            let done: Vec<&FinalMetrics> = runs
                .iter()
                .filter(|r| r.status == Status::Completed)
                .filter_map(|r| r.final_metrics.as_ref())
                .collect();
            let train: Vec<f64> = done.iter().map(|m| m.train_loss).collect();
            Row {
                strategy: name.to_string(),
                completed: done.len(),
                runs: runs.len(),
                train_loss: mean_std(&train),
                valid_loss: mean_std(&done.iter().map(|m| m.valid_loss).collect::<Vec<_>>()).0,
                reached: target.map_or(0, |t| train.iter().filter(|&&l| l <= t).count()),
                steps: mean_std(&runs.iter().map(|r| r.steps as f64).collect::<Vec<_>>()).0,
                seconds: mean_std(&runs.iter().map(|r| r.wall_time_s).collect::<Vec<_>>()).0,
            }
        })
        .collect()
}

/// The comparison table as text.
pub fn format_table(rows: &[Row], target: Option<f64>) -> String {
    let target_head = target.map_or("reached target".to_string(), |t| {
        format!("train loss ≤ {t:.0e}")
    });
    let mut out = format!(
        "{:<22} {:>6} {:>24} {:>12} {:>17} {:>9} {:>9}\n",
        "strategy", "runs", "final train loss", "valid loss", target_head, "steps", "time (s)"
    );
    for r in rows {
        let reached = if target.is_some() && r.completed > 0 {
            format!(
                "{}/{} ({:.0}%)",
                r.reached,
                r.completed,
                100.0 * r.reached as f64 / r.completed as f64
            )
        } else {
            "-".into()
        };
        out += &format!(
            "{:<22} {:>6} {:>24} {:>12.3e} {:>17} {:>9.0} {:>9.2}\n",
            r.strategy,
            format!("{}/{}", r.completed, r.runs),
            format!("{:.3e} ± {:.1e}", r.train_loss.0, r.train_loss.1),
            r.valid_loss,
            reached,
            r.steps,
            r.seconds
        );
    }
    out
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
