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

enum Inner {
    Adam(AdamOptim),
    Sgd(SgdOptim),
}

/// Burn's optimizer as configured, with its state (moments, momentum).
pub struct Optim {
    cfg: TrainConfig,
    inner: Inner,
}

impl Optim {
    /// A fresh optimizer as configured.
    pub fn new(cfg: &TrainConfig) -> Self {
        Self {
            cfg: cfg.clone(),
            inner: Self::fresh(cfg),
        }
    }

    /// Forgets the optimizer's state, as a fresh optimizer.
    pub fn reset(&mut self) {
        self.inner = Self::fresh(&self.cfg);
    }

    fn fresh(cfg: &TrainConfig) -> Inner {
        let decay =
            (cfg.weight_decay > 0.0).then(|| WeightDecayConfig::new(cfg.weight_decay as f32));
        match cfg.optimizer {
            OptimizerKind::Adam => Inner::Adam(
                AdamConfig::new()
                    .with_beta_1(cfg.beta1 as f32)
                    .with_beta_2(cfg.beta2 as f32)
                    .with_epsilon(cfg.epsilon as f32)
                    .with_weight_decay(decay)
                    .init(),
            ),
            OptimizerKind::Sgd => {
                let momentum = (cfg.momentum > 0.0).then(|| {
                    MomentumConfig::new()
                        .with_momentum(cfg.momentum)
                        .with_dampening(cfg.dampening)
                        .with_nesterov(cfg.nesterov)
                });
                Inner::Sgd(
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
        match &mut self.inner {
            Inner::Adam(o) => o.step(lr, module, grads),
            Inner::Sgd(o) => o.step(lr, module, grads),
        }
    }
}
