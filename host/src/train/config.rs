//! How to train: the `[train]` table of a run (optimizer, learning rate, batches, epochs).

use serde::{Deserialize, Serialize};

use crate::train::augment::Augment;

/// The optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam (Kingma & Ba, 2015).
    Adam,
    /// SGD with momentum.
    Sgd,
}

/// How to train: optimizer, learning rate, batches, epochs per phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// `adam` or `sgd`.
    pub optimizer: OptimizerKind,
    /// Learning rate.
    pub lr: f64,
    /// SGD momentum (ignored by Adam).
    pub momentum: f64,
    /// SGD momentum's dampening: the momentum buffer adds (1 − dampening) × gradient. Burn's
    /// default 0.1 is kept as the default; PyTorch's is 0.
    pub dampening: f64,
    /// Nesterov momentum for SGD.
    pub nesterov: bool,
    /// Adam's β1.
    pub beta1: f64,
    /// Adam's β2.
    pub beta2: f64,
    /// Adam's ε: 1e-8 by default, as PyTorch and the papers use (Burn's own default is 1e-5,
    /// which changes updates where gradients are small).
    pub epsilon: f64,
    /// Weight decay of the optimizer (0 for none).
    pub weight_decay: f64,
    /// Examples per step.
    pub batch_size: usize,
    /// Epochs per phase.
    pub epochs: u32,
    /// Record the parameters every this many steps (0: never), for trajectories of small
    /// models (at most [`MAX_TRAJECTORY_PARAMS`] parameters); written to `trajectory.csv`.
    pub record_every: u64,
    /// The fraction of the held-out split kept apart for strategies to select phases on, so
    /// that no strategy selects on the examples the run reports (0, the default: strategies
    /// select on the reported split, as before). The division is random and the same for
    /// every run of a data set.
    #[serde(skip_serializing_if = "is_zero")]
    pub holdout: f64,
    /// Random crop and flip of training images (`{ crop_padding = 4, flip = true }`); none by
    /// default. See [`crate::train::augment`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub augment: Option<Augment>,
    /// Seconds a run may take before it is stopped and recorded as failed (`timed out`);
    /// 0, the default, for no limit of its own (a suite's `--timeout` then applies).
    #[serde(skip_serializing_if = "is_zero")]
    pub timeout: f64,
    /// Train on at most this many batches per epoch (0, the default: every batch): a quick
    /// smoke test, and how a suite measures what a strategy's step costs.
    #[serde(skip_serializing_if = "is_zero_count")]
    pub max_batches: usize,
}

/// The largest model whose trajectory can be recorded.
pub const MAX_TRAJECTORY_PARAMS: usize = 10_000;
impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            optimizer: OptimizerKind::Adam,
            lr: 0.01,
            momentum: 0.9,
            dampening: 0.1,
            nesterov: false,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
            batch_size: 128,
            epochs: 10,
            record_every: 0,
            holdout: 0.0,
            augment: None,
            timeout: 0.0,
            max_batches: 0,
        }
    }
}

/// The most epochs per phase: with at most `MAX_PHASES` phases an equal-steps budget
/// (epochs × phases) still fits in a `u32`.
pub const MAX_EPOCHS: u32 = 1_000_000;

impl TrainConfig {
    /// Rejects values training cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!(
                "train.lr must be a positive number, got {}",
                self.lr
            ));
        }
        if self.batch_size == 0 {
            return Err("train.batch_size must be at least 1".into());
        }
        if !(1..=MAX_EPOCHS).contains(&self.epochs) {
            return Err(format!(
                "train.epochs must be 1 to {MAX_EPOCHS}, got {}",
                self.epochs
            ));
        }
        let unit = [
            ("momentum", self.momentum),
            ("beta1", self.beta1),
            ("beta2", self.beta2),
            ("holdout", self.holdout),
        ];
        for (key, value) in unit {
            if !(0.0..1.0).contains(&value) {
                return Err(format!("train.{key} must be in [0, 1), got {value}"));
            }
        }
        if !(0.0..=1.0).contains(&self.dampening) {
            return Err(format!(
                "train.dampening must be in [0, 1], got {}",
                self.dampening
            ));
        }
        if !(self.epsilon > 0.0 && self.epsilon.is_finite()) {
            return Err(format!(
                "train.epsilon must be a positive number, got {}",
                self.epsilon
            ));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(format!(
                "train.weight_decay must be a finite number ≥ 0, got {}",
                self.weight_decay
            ));
        }
        if !(self.timeout >= 0.0 && self.timeout.is_finite()) {
            return Err(format!(
                "train.timeout must be a number of seconds ≥ 0 (0: no limit), got {}",
                self.timeout
            ));
        }
        Ok(())
    }
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

fn is_zero_count(n: &usize) -> bool {
    *n == 0
}
