//! `sam`: sharpness-aware minimisation (Foret, Kleiner, Mobahi & Neyshabur, 2021,
//! "Sharpness-Aware Minimization for Efficiently Improving Generalization", arXiv:2010.01412).
//!
//! Each step takes the gradient g of the batch loss at θ, moves to the worst point nearby,
//! ε = ρ g / ‖g‖ (adaptive: ε = ρ θ² g / ‖θ g‖, Kwon et al. 2021), and minimises the loss
//! there: the objective is L(θ + ε), whose gradient (with ε held fixed) the run's optimizer
//! applies at θ. Two forward and two backward passes per step; the host counts both.

use pn_plugin_api::{Component, Ops, Progress, Result, Strategy, Tensor};
use serde::{Deserialize, Serialize};

/// SAM settings.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Radius of the neighbourhood, > 0. Default 0.05.
    pub rho: f64,
    /// Adaptive SAM: scale the neighbourhood per parameter by |θ|. Default false.
    pub adaptive: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            rho: 0.05,
            adaptive: false,
        }
    }
}

/// Sharpness-aware minimisation.
pub struct Sam(Config);

impl Component for Sam {
    const NAME: &'static str = "sam";
    const DESCRIPTION: &'static str =
        "sharpness-aware minimisation: descend from the worst point within radius rho (Foret et al. 2021)";
    type Config = Config;
    fn new(config: Config) -> Result<Self> {
        if !(config.rho > 0.0 && config.rho.is_finite()) {
            return Err(format!("config field `rho` must be > 0, got {}", config.rho).into());
        }
        Ok(Self(config))
    }
}

/// Keeps the norm away from zero (a zero gradient gives ε = 0).
const EPS: f64 = 1e-12;

impl Strategy for Sam {
    fn objective<'a>(
        &mut self,
        ops: Ops<'a>,
        _p: Progress,
        loss: Tensor<'a>,
    ) -> Result<Tensor<'a>> {
        let all = ["*"];
        // The backward pass of `grad` uses up the graph: everything else is made after it.
        let g = ops.grad(loss, &all);
        let epsilon = if self.0.adaptive {
            let theta = ops.param_group(&all).detach();
            let scaled = theta.square() * g;
            let norm = (theta.abs() * g).square().sum().sqrt() + EPS;
            scaled * (norm.recip() * self.0.rho)
        } else {
            g * ((g.square().sum().sqrt() + EPS).recip() * self.0.rho)
        };
        Ok(ops.loss_at(&all, epsilon))
    }
}

pn_plugin_api::register_strategy!(Sam);
pn_plugin_api::export_plugin!();
