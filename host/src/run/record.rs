//! What `run.json` holds about one run, and the one line printed about it.

use serde::{Deserialize, Serialize};

use crate::plugin::registry::PluginFile;
use crate::train::{RunResult, Status, TrainConfig};

use super::ComponentRef;

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
    /// How it ended and what it measured, its fields in place (`status` to `wall_time_s`).
    #[serde(flatten)]
    pub result: RunResult,
    /// The plugin files used, with their sha256.
    pub plugins: Vec<PluginFile>,
    /// Tensors the strategy kept (saved in `kept.safetensors`).
    pub kept: Vec<String>,
    /// Whether the run reported on the data set's test split (selecting on its held-out
    /// split): then `valid_*` metrics, per epoch and final, are test metrics.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test_split: bool,
}

/// One line about a finished run: its final metrics, or why it did not complete.
pub fn describe(label: &str, record: &RunRecord) -> String {
    let record = &record.result;
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
