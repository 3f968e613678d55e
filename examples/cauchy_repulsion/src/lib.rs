//! `cauchy_repulsion`: an example third-party strategy plugin.
//!
//! Like persistent neurons, every phase after the first restarts from θ0, but the repulsion
//! from earlier solutions θk* uses a heavy-tailed Cauchy kernel instead of a Gaussian:
//!
//! ```text
//! objective = loss + λ(t) Σ_k 1 / (1 + ‖θ − θk*‖² / s²),   s = width · ‖θ1* − θ0‖
//! ```
//!
//! The formula below runs inside pn-host's autodiff graph on the run's device: the host only
//! sees the tensor operations. Build with `cargo build --release` and load the `.so` with
//! `pn-host --plugin target/release/libcauchy_repulsion.so`.

use pn_plugin_api::{Component, Kept, Ops, PhaseStart, Progress, Result, Strategy, Tensor};
use serde::{Deserialize, Serialize};

/// Settings, with the defaults users see in `pn-host plugins list`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Number of phases. Default 3.
    pub phases: u32,
    /// Penalty weight λ. Default 1.
    pub lambda: f64,
    /// Kernel width as a fraction of ‖θ1* − θ0‖. Default 0.25.
    pub width: f64,
    /// Fraction of each phase over which λ falls to 0. Default 0.3.
    pub release_fraction: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self { phases: 3, lambda: 1.0, width: 0.25, release_fraction: 0.3 }
    }
}

/// The strategy's state: θ0, the anchors, and the kernel width.
pub struct CauchyRepulsion {
    config: Config,
    theta0: Option<Kept>,
    anchors: Vec<Kept>,
    s2: f64,
}

impl Component for CauchyRepulsion {
    const NAME: &'static str = "cauchy_repulsion";
    const DESCRIPTION: &'static str = "restart from θ0, Cauchy-kernel repulsion from earlier solutions";
    type Config = Config;

    fn new(config: Config) -> Result<Self> {
        if config.phases < 2 || config.lambda <= 0.0 || config.width <= 0.0 {
            return Err("need phases ≥ 2, lambda > 0 and width > 0".into());
        }
        Ok(Self { config, theta0: None, anchors: vec![], s2: 1.0 })
    }
}

/// The penalty: Σ_k 1 / (1 + ‖θ − θk*‖² / s²).
fn cauchy<'a>(theta: Tensor<'a>, anchor: Tensor<'a>, s2: f64) -> Tensor<'a> {
    let d2 = (theta - anchor).square().sum();
    (d2 / s2 + 1.0).recip()
}

impl Strategy for CauchyRepulsion {
    fn phases(&self) -> u32 {
        self.config.phases
    }

    fn phase_start(&self, _phase: u32) -> PhaseStart {
        PhaseStart::SameInit
    }

    fn begin_phase(&mut self, ops: Ops<'_>, phase: u32) -> Result<()> {
        let theta = ops.param_group(&["*"]);
        if phase == 0 {
            self.theta0 = Some(ops.keep("theta0", theta));
        } else if phase == 1 {
            let theta0 = ops.kept(self.theta0.ok_or("no θ0")?);
            let travelled2 = (ops.kept(self.anchors[0]) - theta0).square().sum().value();
            self.s2 = self.config.width.powi(2) * travelled2.max(1e-12);
        }
        Ok(())
    }

    fn objective<'a>(&mut self, ops: Ops<'a>, progress: Progress, loss: Tensor<'a>) -> Result<Tensor<'a>> {
        let t = progress.step as f64 / progress.steps_in_phase.max(1) as f64;
        let lambda = self.config.lambda * ((1.0 - t) / self.config.release_fraction).clamp(0.0, 1.0);
        if self.anchors.is_empty() || lambda == 0.0 {
            return Ok(loss);
        }
        let theta = ops.param_group(&["*"]);
        let mut penalty = cauchy(theta, ops.kept(self.anchors[0]), self.s2);
        for &anchor in &self.anchors[1..] {
            penalty = penalty + cauchy(theta, ops.kept(anchor), self.s2);
        }
        Ok(loss + penalty * lambda)
    }

    fn end_phase(&mut self, ops: Ops<'_>, phase: u32) -> Result<()> {
        let anchor = ops.keep(&format!("anchor{}", phase + 1), ops.param_group(&["*"]));
        self.anchors.push(anchor);
        Ok(())
    }
}

pn_plugin_api::register_strategy!(CauchyRepulsion);
pn_plugin_api::export_plugin!();
