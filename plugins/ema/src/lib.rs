//! `ema`: an exponential moving average of the weights (Polyak averaging with a constant
//! decay; as in Polyak & Juditsky 1992 and the EMA of modern training recipes).
//!
//! One phase. After every step the average moves towards the parameters,
//! θ̄ ← β θ̄ + (1 − β) θ, starting from the phase's initial parameters (with `warmup`, β is
//! min(β, (1 + t) / (10 + t)) at step t, so the start is forgotten early). The result is the
//! average; the host recomputes the batch-norm statistics for it on the training split.

use pn_plugin_api::{Component, Kept, Ops, Progress, Result, Strategy};
use serde::{Deserialize, Serialize};

/// EMA settings.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Decay β in [0, 1). Default 0.99.
    pub decay: f64,
    /// Lower the decay over the first steps, min(β, (1 + t) / (10 + t)). Default true.
    pub warmup: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            decay: 0.99,
            warmup: true,
        }
    }
}

/// Exponential moving average of the weights.
pub struct Ema {
    config: Config,
    average: Option<Kept>,
}

impl Component for Ema {
    const NAME: &'static str = "ema";
    const DESCRIPTION: &'static str =
        "exponential moving average of the weights, reported as the result (Polyak averaging)";
    type Config = Config;
    fn new(config: Config) -> Result<Self> {
        if !(0.0..1.0).contains(&config.decay) {
            return Err(format!(
                "config field `decay` must be in [0, 1), got {}",
                config.decay
            )
            .into());
        }
        Ok(Self {
            config,
            average: None,
        })
    }
}

impl Ema {
    /// The decay used after step `t` (from 0).
    pub fn decay_at(&self, t: u64) -> f64 {
        let warm = (1.0 + t as f64) / (10.0 + t as f64);
        if self.config.warmup {
            self.config.decay.min(warm)
        } else {
            self.config.decay
        }
    }
}

impl Strategy for Ema {
    fn begin_phase(&mut self, ops: Ops<'_>, _phase: u32) -> Result<()> {
        self.average = Some(ops.keep("ema.average", ops.param_group(&["*"])));
        Ok(())
    }

    fn after_step(&mut self, ops: Ops<'_>, progress: Progress, _end_of_epoch: bool) -> Result<()> {
        let average = ops.kept(
            self.average
                .ok_or("ema: no average (begin_phase not called)")?,
        );
        let beta = self.decay_at(progress.step);
        let theta = ops.param_group(&["*"]);
        self.average = Some(ops.keep("ema.average", average * beta + theta * (1.0 - beta)));
        Ok(())
    }

    fn phase_result(&mut self, _ops: Ops<'_>, _phase: u32) -> Result<Vec<Kept>> {
        Ok(self.average.into_iter().collect())
    }
}

pn_plugin_api::register_strategy!(Ema);
pn_plugin_api::export_plugin!();
