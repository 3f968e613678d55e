//! `swa`: stochastic weight averaging (Izmailov, Podoprikhin, Garipov, Vetrov & Wilson, 2018,
//! "Averaging Weights Leads to Wider Optima and Better Generalization", arXiv:1803.05407).
//!
//! One phase. Until `start` (a fraction of the phase) the host trains with the configured
//! learning rate; from there on with `lr_factor` times it, and the strategy keeps the running
//! mean of the parameters taken at the end of every epoch (or every `every` steps). The result
//! is that mean; the host recomputes the batch-norm statistics for it on the training split.
//! It costs the steps of `baseline` plus one forward pass over the training split.

use pn_plugin_api::{Component, Kept, LogLevel, Ops, Progress, Result, Strategy};
use serde::{Deserialize, Serialize};

/// SWA settings.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Fraction of the phase after which averaging starts, in [0, 1). Default 0.75.
    pub start: f64,
    /// Learning-rate factor while averaging (constant SWA schedule). Default 0.5.
    pub lr_factor: f64,
    /// Average every this many steps; 0 (default): at the end of every epoch.
    pub every: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            start: 0.75,
            lr_factor: 0.5,
            every: 0,
        }
    }
}

/// Stochastic weight averaging.
pub struct Swa {
    config: Config,
    average: Option<Kept>,
    count: u32,
}

impl Component for Swa {
    const NAME: &'static str = "swa";
    const DESCRIPTION: &'static str =
        "stochastic weight averaging over the last part of training (Izmailov et al. 2018)";
    type Config = Config;
    fn new(config: Config) -> Result<Self> {
        if !(0.0..1.0).contains(&config.start) {
            return Err(format!(
                "config field `start` must be in [0, 1), got {}",
                config.start
            )
            .into());
        }
        if !(config.lr_factor > 0.0 && config.lr_factor.is_finite()) {
            return Err(format!(
                "config field `lr_factor` must be > 0, got {}",
                config.lr_factor
            )
            .into());
        }
        Ok(Self {
            config,
            average: None,
            count: 0,
        })
    }
}

impl Swa {
    /// Whether the step `p.step` lies in the averaging window.
    fn averaging(&self, p: Progress) -> bool {
        p.step as f64 >= self.config.start * p.steps_in_phase as f64
    }
}

impl Strategy for Swa {
    fn begin_phase(&mut self, _ops: Ops<'_>, _phase: u32) -> Result<()> {
        self.average = None;
        self.count = 0;
        Ok(())
    }

    fn lr_factor(&self, progress: Progress) -> f64 {
        if self.averaging(progress) {
            self.config.lr_factor
        } else {
            1.0
        }
    }

    fn after_step(&mut self, ops: Ops<'_>, progress: Progress, end_of_epoch: bool) -> Result<()> {
        let due = match self.config.every {
            0 => end_of_epoch,
            n => (progress.step + 1).is_multiple_of(n),
        };
        if !(due && self.averaging(progress)) {
            return Ok(());
        }
        let theta = ops.param_group(&["*"]);
        // Running mean: ā ← ā + (θ − ā) / (n + 1).
        let mean = match self.average {
            None => theta,
            Some(kept) => {
                let a = ops.kept(kept);
                a + (theta - a) * (1.0 / f64::from(self.count + 1))
            }
        };
        self.average = Some(ops.keep("swa.average", mean));
        self.count += 1;
        Ok(())
    }

    fn phase_result(&mut self, _ops: Ops<'_>, phase: u32) -> Result<Vec<Kept>> {
        match self.average {
            Some(kept) => Ok(vec![kept]),
            None => {
                pn_plugin_api::log(
                    LogLevel::Warn,
                    &format!(
                        "swa: phase {} took no average; keeping the trained parameters",
                        phase + 1
                    ),
                );
                Ok(vec![])
            }
        }
    }
}

pn_plugin_api::register_strategy!(Swa);
pn_plugin_api::export_plugin!();
