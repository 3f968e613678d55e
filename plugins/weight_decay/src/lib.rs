//! `weight_decay`: an L2 baseline written as a penalty, `loss + (λ/2) ‖θ‖²` over the parameters
//! matching `params`, kept separate from the optimizer's own `train.weight_decay` so that it
//! goes through the same objective path as the other strategies. One phase.

use pn_plugin_api::{Component, Ops, Progress, Result, Strategy, Tensor};
use serde::{Deserialize, Serialize};

/// Weight-decay settings.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// λ. Default 5e-4.
    pub lambda: f64,
    /// Globs of the penalised parameters. Default all.
    pub params: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            lambda: 5e-4,
            params: vec!["*".into()],
        }
    }
}

/// L2 penalty.
pub struct WeightDecay(Config);

impl Component for WeightDecay {
    const NAME: &'static str = "weight_decay";
    const DESCRIPTION: &'static str =
        "one phase with an L2 penalty (λ/2)‖θ‖² (not the optimizer's decay)";
    type Config = Config;
    fn new(c: Config) -> Result<Self> {
        if c.lambda.is_nan() || c.lambda < 0.0 || c.params.is_empty() {
            return Err(
                format!("lambda must be ≥ 0 and params non-empty, got {}", c.lambda).into(),
            );
        }
        Ok(Self(c))
    }
}

impl Strategy for WeightDecay {
    fn objective<'a>(
        &mut self,
        ops: Ops<'a>,
        _p: Progress,
        loss: Tensor<'a>,
    ) -> Result<Tensor<'a>> {
        let theta = ops.param_group(&self.0.params);
        Ok(loss + theta.square().sum() * (self.0.lambda / 2.0))
    }
}

pn_plugin_api::register_strategy!(WeightDecay);
pn_plugin_api::export_plugin!();
