//! What a phase hands back as its result (see `Strategy::phase_result` in the plugin API):
//! the parameters as trained, one parameter vector the strategy kept (e.g. a stochastic weight
//! average), or several (an ensemble, e.g. snapshots).
//!
//! Parameters that did not come out of training need batch-norm statistics that match them:
//! the host recomputes them with one pass of training-mode forwards over the training split,
//! averaging every batch equally (as `torch.optim.swa_utils.update_bn` does). An ensemble is
//! evaluated on the mean of its members' class probabilities (cross-entropy) or outputs
//! (regression); its cross-entropy is that of the mean probabilities.

use burn::tensor::activation::softmax;
use burn::tensor::Tensor;

use crate::device::B;
use crate::train::data::DeviceSplit;
use crate::train::dyn_tensor::DynTensor;
use crate::train::params::{split_flat, ParamStore};
use crate::train::session::{NormStats, StatsMode};
use crate::train::ModelRunner;

/// One model of a phase's result: parameters and their batch-norm statistics.
pub struct Member {
    /// The parameters.
    pub module: ParamStore<B>,
    /// Running statistics of the batch-norm layers (empty without any).
    pub stats: Vec<NormStats>,
}

impl ModelRunner<'_> {
    /// The phase's result: `trained` as it is when `kept` is empty, otherwise one member per
    /// kept flat parameter vector, with batch-norm statistics recomputed in batches of `batch`.
    /// The last member (the one that stands for the phase) takes over `trained`'s parameter
    /// identities, so that an optimizer kept into the next phase finds its state.
    pub fn members(
        &self,
        trained: ParamStore<B>,
        kept: &[u64],
        batch: usize,
    ) -> Result<Vec<Member>, String> {
        if kept.is_empty() {
            let stats = self.session.norm_stats();
            return Ok(vec![Member {
                module: trained,
                stats,
            }]);
        }
        let device = self.session.device().clone();
        let mut trained = Some(trained);
        kept.iter()
            .enumerate()
            .map(|(i, &key)| {
                let values =
                    split_flat(&self.specs, &self.session.kept_values(key)?).map_err(|e| {
                        format!("strategy phase_result: {e} (keep ops.param_group([\"*\"]))")
                    })?;
                let last = i + 1 == kept.len();
                let module = match trained.take_if(|_| last) {
                    Some(mut module) => {
                        module.assign(&self.specs, &values, &device)?;
                        module
                    }
                    None => ParamStore::new(&self.specs, &values, &device)?,
                };
                let stats = self.recompute_norm_stats(&module, &self.data.train, batch)?;
                Ok(Member { module, stats })
            })
            .collect()
    }

    /// Batch-norm statistics for `module`: the plain average over one pass of training-mode
    /// forwards on `split` in batches of `batch` (nothing when the model has no such layer).
    pub fn recompute_norm_stats(
        &self,
        module: &ParamStore<B>,
        split: &DeviceSplit,
        batch: usize,
    ) -> Result<Vec<NormStats>, String> {
        let s = &self.session;
        if !s.has_state() {
            return Ok(vec![]);
        }
        s.reset_state();
        s.set_stats_mode(StatsMode::Cumulative);
        let pass = || -> Result<(), String> {
            let mut start = 0;
            while start < split.len {
                let end = (start + batch.max(1)).min(split.len);
                let (x, _) = split.range(start, end);
                self.forward(module.tensors(&self.specs, true), x, true)?;
                start = end;
            }
            Ok(())
        };
        let result = pass();
        s.set_stats_mode(StatsMode::Moving);
        s.clear();
        result.map(|()| s.norm_stats())
    }

    /// Task loss and accuracy of the members' mean prediction on `split`.
    pub fn evaluate_members(
        &self,
        members: &[Member],
        split: &DeviceSplit,
        chunk: usize,
    ) -> Result<(f64, Option<f64>), String> {
        self.evaluate_by(split, chunk, |x, classes| {
            let output = |m: &Member, x: DynTensor| {
                self.session.set_norm_stats(m.stats.clone());
                self.forward(m.module.tensors(&self.specs, true), x, false)
            };
            if let [single] = members {
                return output(single, x);
            }
            let mut sum: Option<Tensor<B, 2>> = None;
            for m in members {
                let out = output(m, x.clone())?;
                let out = if classes { softmax(out, 1) } else { out };
                sum = Some(match sum {
                    Some(s) => s + out,
                    None => out,
                });
            }
            let mean = sum.ok_or("an empty ensemble")? / members.len() as f32;
            // Cross-entropy of logits log(p̄) is −log p̄_y, since Σ p̄ = 1.
            Ok(if classes {
                mean.clamp_min(f32::MIN_POSITIVE).log()
            } else {
                mean
            })
        })
    }
}
