//! `shrink_perturb`: shrink-and-perturb restarts (Ash & Adams, 2020, "On Warm-Starting Neural
//! Network Training", arXiv:1910.08475).
//!
//! `phases` phases. Each phase after the first continues from where the previous one ended,
//! shrunk and perturbed: θ ← `shrink` · θ + N(0, `noise`²), with a fresh optimizer. The noise
//! comes from the host's seeded stream on the run's device, so a seed gives the same run. Phase
//! summaries are those of the trained parameters; the result is the phase with the lowest
//! held-out loss.

use pn_plugin_api::{Component, Ops, PhaseStart, Result, Strategy};
use serde::{Deserialize, Serialize};

/// Shrink-and-perturb settings.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Number of phases, ≥ 1. Default 3.
    pub phases: u32,
    /// Factor the parameters are multiplied by, in [0, 1]. Default 0.5.
    pub shrink: f64,
    /// Standard deviation of the added noise, ≥ 0. Default 0.01.
    pub noise: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            phases: 3,
            shrink: 0.5,
            noise: 0.01,
        }
    }
}

/// Shrink-and-perturb restarts.
pub struct ShrinkPerturb(Config);

impl Component for ShrinkPerturb {
    const NAME: &'static str = "shrink_perturb";
    const DESCRIPTION: &'static str =
        "restarts from shrink*theta + noise of the previous phase's solution (Ash & Adams 2020)";
    type Config = Config;
    fn new(config: Config) -> Result<Self> {
        if config.phases == 0 {
            return Err("config field `phases` must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&config.shrink) {
            return Err(format!(
                "config field `shrink` must be in [0, 1], got {}",
                config.shrink
            )
            .into());
        }
        if !(config.noise >= 0.0 && config.noise.is_finite()) {
            return Err(format!("config field `noise` must be ≥ 0, got {}", config.noise).into());
        }
        Ok(Self(config))
    }
}

impl Strategy for ShrinkPerturb {
    fn phases(&self) -> u32 {
        self.0.phases
    }

    fn phase_start(&self, _phase: u32) -> PhaseStart {
        PhaseStart::Continue
    }

    fn begin_phase(&mut self, ops: Ops<'_>, phase: u32) -> Result<()> {
        if phase == 0 {
            return Ok(());
        }
        let theta = ops.param_group(&["*"]);
        let noise = ops.random_normal(&theta.shape(), 0.0, self.0.noise);
        let start = theta * self.0.shrink + noise;
        ops.set_params(&["*"], start, pn_plugin_api::OptimizerState::Reset);
        Ok(())
    }
}

pn_plugin_api::register_strategy!(ShrinkPerturb);
pn_plugin_api::export_plugin!();
