//! `deflation`: deflated restarts (Farrell, Birkisson & Funke, 2015, "Deflation techniques for
//! finding distinct solutions of nonlinear partial differential equations"), the closest
//! competitor of persistent neurons. Every phase restarts from θ0; after each phase its
//! solution θk* is kept, and later phases minimise the deflated loss
//!
//! - `multiplicative` (default): `loss × Π_k (‖θ − θk*‖^(−p) + α)`, which keeps every zero of
//!   the loss a minimum but makes the found ones unattractive;
//! - `additive`: `loss + λ Σ_k ‖θ − θk*‖^(−p)`,
//!
//! with `‖·‖^(−p)` computed as `(‖θ − θk*‖² + ε)^(−p/2)`. The result is the phase with the
//! lowest held-out loss.

use pn_plugin_api::{Component, Ops, PhaseStart, Progress, Result, Strategy, Tensor};
use pn_plugin_kit::anchors::{squared_distances, Anchors};
use serde::{Deserialize, Serialize};

/// How the deflation enters the objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// `loss × Π_k (‖θ − θk*‖^(−p) + α)`
    Multiplicative,
    /// `loss + λ Σ_k ‖θ − θk*‖^(−p)`
    Additive,
}

/// Deflation settings.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Phases (restarts + 1). Default 3.
    pub phases: u32,
    /// Globs of the deflated parameters. Default all.
    pub params: Vec<String>,
    /// Default `multiplicative`.
    pub variant: Variant,
    /// The power p. Default 2.
    pub power: f64,
    /// The shift α of the multiplicative variant. Default 1.
    pub alpha: f64,
    /// The weight λ of the additive variant. Default 1.
    pub lambda: f64,
    /// ε in `(‖θ − θk*‖² + ε)^(−p/2)`, keeping the deflation finite at an anchor. Default 1e-4.
    pub epsilon: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            phases: 3,
            params: vec!["*".into()],
            variant: Variant::Multiplicative,
            power: 2.0,
            alpha: 1.0,
            lambda: 1.0,
            epsilon: 1e-4,
        }
    }
}

/// Deflated restarts.
pub struct Deflation {
    config: Config,
    anchors: Anchors,
}

impl Component for Deflation {
    const NAME: &'static str = "deflation";
    const DESCRIPTION: &'static str =
        "deflated restarts from θ0: loss × Π_k (‖θ − θk*‖^(−p) + α) (Farrell et al. 2015)";
    type Config = Config;
    fn new(config: Config) -> Result<Self> {
        let c = &config;
        if c.phases < 2 || c.params.is_empty() {
            return Err("phases must be at least 2 and params non-empty".into());
        }
        if !(c.power > 0.0 && c.alpha >= 0.0 && c.lambda > 0.0 && c.epsilon > 0.0) {
            return Err("power, lambda and epsilon must be > 0 and alpha ≥ 0".into());
        }
        Ok(Self {
            config,
            anchors: Anchors::default(),
        })
    }
}

impl Deflation {
    /// The objective for `theta` given the stacked anchors (exposed for tests).
    pub fn deflate<'a>(
        &self,
        loss: Tensor<'a>,
        theta: Tensor<'a>,
        anchors: Tensor<'a>,
    ) -> Tensor<'a> {
        let c = &self.config;
        let inverse = (squared_distances(theta, anchors) + c.epsilon).powf(-c.power / 2.0);
        match c.variant {
            // Π_k m_k = exp(Σ_k ln m_k), m_k > 0.
            Variant::Multiplicative => loss * (inverse + c.alpha).log().sum().exp(),
            Variant::Additive => loss + inverse.sum() * c.lambda,
        }
    }
}

impl Strategy for Deflation {
    fn phases(&self) -> u32 {
        self.config.phases
    }

    fn phase_start(&self, _phase: u32) -> PhaseStart {
        PhaseStart::SameInit
    }

    fn objective<'a>(
        &mut self,
        ops: Ops<'a>,
        _p: Progress,
        loss: Tensor<'a>,
    ) -> Result<Tensor<'a>> {
        match self.anchors.stacked(ops) {
            Some(anchors) => Ok(self.deflate(loss, ops.param_group(&self.config.params), anchors)),
            None => Ok(loss),
        }
    }

    fn end_phase(&mut self, ops: Ops<'_>, _phase: u32) -> Result<()> {
        self.anchors.push(ops, ops.param_group(&self.config.params));
        Ok(())
    }
}

pn_plugin_api::register_strategy!(Deflation);
pn_plugin_api::export_plugin!();
