//! A run's files: `run.json`, the safetensors files and `trajectory.csv`, each written
//! atomically, and the folders runs are written into.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::train::Outcome;

use super::{RunConfig, RunRecord};

/// Writes `bytes` to a temporary file beside `path`, then renames it into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    // A name of this process's own, so that two processes writing one file do not share it.
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| Error::io("write", path, e))
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
pub fn write_run(dir: &Path, record: &RunRecord, outcome: &Outcome) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
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

/// Creates a new folder for a job's results: `<out>/<label>-<unix seconds>[-N]`.
pub fn job_dir(out: &Path, label: &str) -> Result<PathBuf, Error> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    std::fs::create_dir_all(out).map_err(|e| Error::io("create", out, e))?;
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
            Err(e) => return Err(Error::io("create", &dir, e)),
        }
    }
}
