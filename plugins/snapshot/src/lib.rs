//! `snapshot`: snapshot ensembles (Huang, Li, Pleiss, Liu, Hopcroft & Weinberger, 2017,
//! "Snapshot Ensembles: Train 1, Get M for Free", arXiv:1704.00109).
//!
//! One phase split into M cycles of ⌈T/M⌉ steps. In each cycle the learning rate follows a
//! cosine from the configured rate down to 0, `lr × ½ (1 + cos(π (t mod c) / c))`, and the
//! parameters at the cycle's end are kept as a snapshot. The result is the ensemble of the last
//! `ensemble` snapshots (all by default): the host evaluates the mean of their predicted class
//! probabilities (or outputs, for regression), each with its own batch-norm statistics. It
//! costs the steps of `baseline`; evaluating costs one forward per member.

use pn_plugin_api::{Component, Kept, Ops, Progress, Result, Strategy};
use serde::{Deserialize, Serialize};

/// Snapshot-ensemble settings.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Cycles M (one snapshot each). Default 5.
    pub snapshots: u32,
    /// Members of the ensemble: the last this many snapshots; 0 (default) for all.
    pub ensemble: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            snapshots: 5,
            ensemble: 0,
        }
    }
}

/// Snapshot ensembles.
pub struct Snapshot {
    config: Config,
    snapshots: Vec<Kept>,
}

impl Component for Snapshot {
    const NAME: &'static str = "snapshot";
    const DESCRIPTION: &'static str =
        "snapshot ensemble: M cosine learning-rate cycles, predictions averaged over the snapshots (Huang et al. 2017)";
    type Config = Config;
    fn new(config: Config) -> Result<Self> {
        if config.snapshots == 0 || config.ensemble > config.snapshots {
            return Err(format!(
                "config fields `snapshots` ≥ 1 and `ensemble` ≤ snapshots needed, got {} and {}",
                config.snapshots, config.ensemble
            )
            .into());
        }
        Ok(Self {
            config,
            snapshots: vec![],
        })
    }
}

impl Snapshot {
    /// Steps per cycle, ⌈T/M⌉.
    fn cycle(&self, p: Progress) -> u64 {
        p.steps_in_phase
            .div_ceil(u64::from(self.config.snapshots))
            .max(1)
    }
}

impl Strategy for Snapshot {
    fn begin_phase(&mut self, _ops: Ops<'_>, _phase: u32) -> Result<()> {
        self.snapshots.clear();
        Ok(())
    }

    fn lr_factor(&self, progress: Progress) -> f64 {
        let c = self.cycle(progress);
        let t = (progress.step % c) as f64 / c as f64;
        0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }

    fn after_step(&mut self, ops: Ops<'_>, progress: Progress, _end_of_epoch: bool) -> Result<()> {
        let done = progress.step + 1;
        if done.is_multiple_of(self.cycle(progress)) || done == progress.steps_in_phase {
            let name = format!("snapshot.{}", self.snapshots.len() + 1);
            let kept = ops.keep(&name, ops.param_group(&["*"]));
            self.snapshots.push(kept);
        }
        Ok(())
    }

    fn phase_result(&mut self, _ops: Ops<'_>, _phase: u32) -> Result<Vec<Kept>> {
        let m = match self.config.ensemble {
            0 => self.snapshots.len(),
            m => (m as usize).min(self.snapshots.len()),
        };
        Ok(self.snapshots[self.snapshots.len() - m..].to_vec())
    }
}

pn_plugin_api::register_strategy!(Snapshot);
pn_plugin_api::export_plugin!();
