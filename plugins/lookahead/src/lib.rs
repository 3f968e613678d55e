//! `lookahead`: the lookahead optimizer (Zhang, Lucas, Hinton & Ba, 2019, "Lookahead Optimizer:
//! k steps forward, 1 step back", arXiv:1907.08610) around the run's optimizer.
//!
//! The run's optimizer moves the fast weights θ; every `k` steps the slow weights move towards
//! them, φ ← φ + α (θ − φ), and the fast weights restart from there, θ ← φ. The inner
//! optimizer keeps its state across the reset (as in the paper's experiments). The slow
//! weights start at the phase's initial parameters and are kept with the run.

use pn_plugin_api::{Component, Kept, Ops, OptimizerState, Progress, Result, Strategy};
use serde::{Deserialize, Serialize};

/// Lookahead settings.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Fast steps per slow update, ≥ 1. Default 5.
    pub k: u64,
    /// Slow step size α in (0, 1]. Default 0.5.
    pub alpha: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self { k: 5, alpha: 0.5 }
    }
}

/// Lookahead.
pub struct Lookahead {
    config: Config,
    slow: Option<Kept>,
}

impl Component for Lookahead {
    const NAME: &'static str = "lookahead";
    const DESCRIPTION: &'static str =
        "lookahead: every k steps the slow weights move alpha of the way to the fast ones (Zhang et al. 2019)";
    type Config = Config;
    fn new(config: Config) -> Result<Self> {
        if config.k == 0 {
            return Err("config field `k` must be at least 1".into());
        }
        if !(config.alpha > 0.0 && config.alpha <= 1.0) {
            return Err(format!(
                "config field `alpha` must be in (0, 1], got {}",
                config.alpha
            )
            .into());
        }
        Ok(Self { config, slow: None })
    }
}

impl Strategy for Lookahead {
    fn begin_phase(&mut self, ops: Ops<'_>, _phase: u32) -> Result<()> {
        self.slow = Some(ops.keep("lookahead.slow", ops.param_group(&["*"])));
        Ok(())
    }

    fn after_step(&mut self, ops: Ops<'_>, progress: Progress, _end_of_epoch: bool) -> Result<()> {
        if !(progress.step + 1).is_multiple_of(self.config.k) {
            return Ok(());
        }
        let slow = ops.kept(
            self.slow
                .ok_or("lookahead: no slow weights (begin_phase not called)")?,
        );
        let fast = ops.param_group(&["*"]);
        let slow = slow + (fast - slow) * self.config.alpha;
        self.slow = Some(ops.keep("lookahead.slow", slow));
        ops.set_params(&["*"], slow, OptimizerState::Keep);
        Ok(())
    }
}

pn_plugin_api::register_strategy!(Lookahead);
pn_plugin_api::export_plugin!();
