//! `pn-host surface RUN_DIR`: for a run of a model with exactly two parameters (such as
//! `toy2d`) trained with `train.record_every`, the training loss over the plane around its
//! trajectory, each phase's path, and the anchors the strategy kept, as `surface.png` and
//! `surface.svg` in the run folder.

use std::path::{Path, PathBuf};

use crate::device::Device;
use crate::plugin::registry::Registry;
use crate::report::plots::{self, Surface};
use crate::run::{self, RunRecord};
use crate::train::params::ParamStore;
use crate::train::ModelRunner;

/// Reads `trajectory.csv`: per phase (in order), its (x, y) points.
fn read_trajectory(dir: &Path) -> Result<Vec<Vec<(f64, f64)>>, String> {
    let path = dir.join("trajectory.csv");
    let mut reader = csv::Reader::from_path(&path).map_err(|e| {
        format!(
            "{}: {e} (run with --set train.record_every=N to record one)",
            path.display()
        )
    })?;
    let mut phases: Vec<Vec<(f64, f64)>> = vec![];
    for row in reader.records() {
        let row = row.map_err(|e| format!("{}: {e}", path.display()))?;
        let num = |i: usize| -> Result<f64, String> {
            row.get(i)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{}: bad row {row:?}", path.display()))
        };
        if row.len() != 4 {
            return Err(format!(
                "{}: needs a model with exactly two parameters, this one has {}",
                path.display(),
                row.len().saturating_sub(2)
            ));
        }
        let phase = num(0)? as usize;
        if phases.len() < phase {
            phases.resize(phase, vec![]);
        }
        phases[phase - 1].push((num(2)?, num(3)?));
    }
    Ok(phases)
}

/// The anchors (`anchor1`, `anchor2`, …) in `kept.safetensors`, if any.
fn read_anchors(dir: &Path) -> Result<Vec<(f64, f64)>, String> {
    let path = dir.join("kept.safetensors");
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(vec![]);
    };
    let tensors = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut anchors = vec![];
    for k in 1.. {
        let Ok(t) = tensors.tensor(&format!("anchor{k}")) else {
            break;
        };
        let v: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let [x, y] = v[..] {
            anchors.push((x as f64, y as f64));
        }
    }
    Ok(anchors)
}

/// Draws the surface plot of the run in `dir` on a `grid` x `grid` lattice; returns the PNG.
pub fn draw(
    registry: &Registry,
    dir: &Path,
    device: &Device,
    grid: usize,
) -> Result<PathBuf, String> {
    let path = dir.join("run.json");
    let record: RunRecord = std::fs::read(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", path.display())))?;
    let phases = read_trajectory(dir)?;
    let anchors = read_anchors(dir)?;
    let (model, _) = registry.model(&record.model.name, &record.model.config)?;
    let data = run::load_data(registry, &record.dataset, device)?;
    let trainer = ModelRunner::new(&model, &data, device)?;
    let points: Vec<(f64, f64)> = phases.iter().flatten().chain(&anchors).copied().collect();
    let span = |f: fn(&(f64, f64)) -> f64| {
        let (lo, hi) = points
            .iter()
            .map(f)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        let pad = ((hi - lo) * 0.25).max(0.5);
        (lo - pad, hi + pad)
    };
    let ((x0, x1), (y0, y1)) = (span(|p| p.0), span(|p| p.1));
    let grid = grid.max(2);
    let axis = |lo: f64, hi: f64| -> Vec<f64> {
        (0..grid)
            .map(|i| lo + (hi - lo) * i as f64 / (grid - 1) as f64)
            .collect()
    };
    let (xs, ys) = (axis(x0, x1), axis(y0, y1));
    let mut z = vec![];
    for &y in &ys {
        let mut row = vec![];
        for &x in &xs {
            // Split (x, y) over the model's parameters in spec order.
            let mut flat = [x as f32, y as f32].into_iter();
            let values = trainer
                .specs
                .iter()
                .map(|s| flat.by_ref().take(s.numel()).collect())
                .collect();
            let module = ParamStore::new(&trainer.specs, &values, device)?;
            row.push(trainer.evaluate(&module, &data.train, 4096)?.0);
        }
        z.push(row);
    }
    let names: Vec<String> = trainer.specs.iter().map(|s| s.name.to_string()).collect();
    let labels = match &names[..] {
        [a, b] => (a.clone(), b.clone()),
        [a] => (format!("{a}[0]"), format!("{a}[1]")),
        _ => ("θ₁".into(), "θ₂".into()),
    };
    let paths: Vec<(String, Vec<(f64, f64)>)> = phases
        .into_iter()
        .enumerate()
        .map(|(k, p)| (format!("phase {}", k + 1), p))
        .collect();
    let stem = dir.join("surface");
    plots::surface(
        &stem,
        &format!(
            "{} on {}: training loss, paths per phase, anchors ×",
            record.strategy.name, record.model.name
        ),
        (&labels.0, &labels.1),
        &Surface { x: xs, y: ys, z },
        &paths,
        &anchors,
    )?;
    Ok(stem.with_extension("png"))
}
