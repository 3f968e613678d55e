//! Burn's optimizers (Adam, SGD with momentum) over the host-owned parameters.

use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer, Sgd, SgdConfig};

use crate::device::B;
use crate::train::config::{OptimizerKind, TrainConfig};
use crate::train::params::ParamStore;

type AdamOptim = OptimizerAdaptor<Adam, ParamStore<B>, B>;
type SgdOptim = OptimizerAdaptor<
    Sgd<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend>,
    ParamStore<B>,
    B,
>;

/// Burn's optimizer for a phase.
pub enum Optim {
    /// Adam.
    Adam(AdamOptim),
    /// SGD with momentum.
    Sgd(SgdOptim),
}

impl Optim {
    /// A fresh optimizer as configured.
    pub fn new(cfg: &TrainConfig) -> Self {
        let decay =
            (cfg.weight_decay > 0.0).then(|| WeightDecayConfig::new(cfg.weight_decay as f32));
        match cfg.optimizer {
            OptimizerKind::Adam => Optim::Adam(AdamConfig::new().with_weight_decay(decay).init()),
            OptimizerKind::Sgd => {
                let momentum =
                    (cfg.momentum > 0.0).then(|| MomentumConfig::new().with_momentum(cfg.momentum));
                Optim::Sgd(
                    SgdConfig::new()
                        .with_weight_decay(decay)
                        .with_momentum(momentum)
                        .init(),
                )
            }
        }
    }

    /// One update of `module` with `grads`.
    pub fn step(
        &mut self,
        lr: f64,
        module: ParamStore<B>,
        grads: GradientsParams,
    ) -> ParamStore<B> {
        match self {
            Optim::Adam(o) => o.step(lr, module, grads),
            Optim::Sgd(o) => o.step(lr, module, grads),
        }
    }
}
