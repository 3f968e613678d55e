//! What training produces: per-epoch metrics, phase records, a run's outcome, and the
//! observer that sees progress while a run trains.

use pn_plugin_api::Progress;
use serde::{Deserialize, Serialize};

use crate::train::gradient_check::GradientCheck;
use crate::train::params::Values;
use crate::train::saturation::LayerSaturation;

/// The parameters at one step of a recorded trajectory.
#[derive(Debug, Clone, PartialEq)]
pub struct TrajectoryPoint {
    /// Phase, from 0.
    pub phase: u32,
    /// Optimizer steps since the phase started.
    pub step: u64,
    /// Every parameter, flattened in spec order.
    pub values: Vec<f32>,
}

/// Metrics of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch within the phase, from 1.
    pub epoch: u32,
    /// Mean task loss over the epoch's batches.
    pub train_loss: f64,
    /// Accuracy over the epoch's batches (null for regression).
    pub train_accuracy: Option<f64>,
    /// Task loss on the held-out split after the epoch.
    pub valid_loss: f64,
    /// Accuracy on the held-out split (null for regression).
    pub valid_accuracy: Option<f64>,
    /// Seconds since the run started.
    pub elapsed_s: f64,
    /// Saturation of each activation layer on the held-out split (see [`crate::train::saturation`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub saturation: Vec<LayerSaturation>,
}

/// One phase of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// How the phase started.
    pub start: String,
    /// Per-epoch metrics.
    pub epochs: Vec<EpochMetrics>,
    /// Task loss on the whole training split at the end (evaluation mode).
    pub final_train_loss: f64,
    /// Task loss on the held-out split at the end.
    pub final_valid_loss: f64,
    /// Accuracy on the held-out split at the end (null for regression).
    pub final_valid_accuracy: Option<f64>,
    /// Task loss on the part of the held-out split kept for selection (`train.holdout`), which
    /// the strategy chose phases by; absent without a holdout (selection on the reported split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_select_loss: Option<f64>,
    /// Accuracy on that part (classification with a holdout only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_select_accuracy: Option<f64>,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Models the final metrics average over: 1, or the size of the strategy's ensemble.
    #[serde(default = "one")]
    pub members: u32,
}

fn one() -> u32 {
    1
}

/// How a run ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// All phases finished.
    #[default]
    Completed,
    /// The loss became NaN or infinite.
    Diverged,
    /// A plugin or the host failed.
    Failed,
}

impl Status {
    /// Its snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::Diverged => "diverged",
            Status::Failed => "failed",
        }
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

/// How a run ended and what it measured: the part of `run.json` that training writes
/// (`crate::run::RunRecord` holds it in place, between the configuration and the files).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// completed, diverged or failed.
    pub status: Status,
    /// Why it did not complete.
    pub message: Option<String>,
    /// The phase whose model is the result (when completed).
    pub selected_phase: Option<u32>,
    /// Metrics of the selected phase.
    pub final_metrics: Option<FinalMetrics>,
    /// Every finished phase with per-epoch metrics (kept whatever the status).
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
}

/// The outcome of a run: its result, and the tensors a run's files hold.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// How it ended and what it measured.
    pub result: RunResult,
    /// θ0: the parameters phase 0 started from (drawn from the run's seed), in spec order.
    pub theta0: Option<Values>,
    /// Parameter values of the selected phase.
    pub result_values: Option<Values>,
    /// Layer state of the selected phase (batch-norm running statistics), by name.
    pub result_state: Vec<(String, Vec<usize>, Vec<f32>)>,
    /// Tensors the strategy kept (θ0, anchors), by name.
    pub kept: Vec<(String, Vec<usize>, Vec<f32>)>,
    /// Names and shapes of the model's parameters.
    pub params: Vec<(String, Vec<usize>)>,
    /// Parameters every `record_every` steps and at the end of each phase, if asked for.
    pub trajectory: Vec<TrajectoryPoint>,
}

/// Named tensors of layer state (batch-norm running statistics).
pub type State = Vec<(String, Vec<usize>, Vec<f32>)>;

/// Receives progress while a run trains.
pub trait Observer {
    /// Called after every optimizer step.
    fn step(&mut self, _phase: u32, _steps_done: u64, _steps_total: u64) {}
    /// Called after every epoch.
    fn epoch(&mut self, _phase: u32, _metrics: &EpochMetrics) {}
    /// Whether to check the gradient of the strategy's objective before the step at
    /// `progress` (the conformance kit; training itself never asks).
    fn wants_gradient_check(&mut self, _progress: Progress) -> bool {
        false
    }
    /// The gradient check asked for at `progress`.
    fn gradient_checked(&mut self, _progress: Progress, _check: Result<GradientCheck, String>) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}
