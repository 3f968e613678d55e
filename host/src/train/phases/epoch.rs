//! One epoch of the phase loop: its batches (augmented on a thread of their own when asked
//! for), a step each, then the held-out evaluation that ends it.

use burn::tensor::{Int, Tensor, TensorData};
use pn_plugin_api::abi::StrategyBox;
use pn_plugin_api::Progress;

use crate::device::B;
use crate::error::Error;
use crate::train::augment::Prefetch;
use crate::train::dyn_tensor::DynTensor;
use crate::train::metrics::MetricSum;
use crate::train::params::ParamStore;
use crate::train::record::{EpochMetrics, Observer, Outcome};
use crate::train::seeds::mix;
use crate::train::step::StepAt;

use super::{PhaseLoop, Training};

impl PhaseLoop<'_> {
    /// One epoch of steps over the batches of `order`; its metrics after evaluating the
    /// held-out split.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn train_epoch(
        &self,
        strategy: &mut StrategyBox,
        t: &mut Training,
        order: &[i64],
        first: Progress,
        outcome: &mut Outcome,
        observer: &mut dyn Observer,
        steps_total: u64,
    ) -> Result<EpochMetrics, Error> {
        let (cfg, data) = (self.cfg, self.data);
        let order = match cfg.max_batches {
            0 => order,
            m => &order[..order.len().min(m * cfg.batch_size)],
        };
        let prefetch = cfg
            .augment
            .clone()
            .zip(self.image_shape)
            .map(|(augment, shape)| {
                let batches = order.chunks(cfg.batch_size).map(<[i64]>::to_vec).collect();
                let seed = mix(self.seed, 0xA06 + u64::from(first.epoch));
                Prefetch::start(data.train_host(), shape, batches, augment, seed)
            });
        let mut sum = MetricSum::default();
        for (b, batch) in order.chunks(cfg.batch_size).enumerate() {
            let indices = Tensor::<B, 1, Int>::from_data(
                TensorData::new(batch.to_vec(), [batch.len()]),
                self.device,
            );
            let (x, y) = match (&prefetch, self.image_shape) {
                (Some(p), Some([c, h, w])) => {
                    let values = p
                        .next_batch()
                        .ok_or_else(|| "the augmentation thread stopped".to_string())?;
                    let x = DynTensor::from_values(values, &[batch.len(), c, h, w], self.device)?;
                    (x, data.train.targets_at(indices))
                }
                _ => data.train.batch(indices),
            };
            let at = StepAt {
                progress: Progress {
                    step: first.step + b as u64,
                    ..first
                },
                lr: cfg.lr,
                end_of_epoch: b as u64 + 1 == self.steps_per_epoch,
            };
            if observer.wants_gradient_check(at.progress) {
                let batch = (x.clone(), &y);
                let check = self
                    .runner
                    .check_gradient(&t.module, strategy, batch, at, self.seed);
                observer.gradient_checked(at.progress, check);
            }
            let module = std::mem::replace(&mut t.module, ParamStore::empty());
            let out = self
                .runner
                .strategy_step(module, &mut t.optim, strategy, (x, &y), at)?;
            t.module = out.params;
            sum.add(out.loss, out.output.dims()[0], out.output, &out.targets);
            let step = at.progress.step + 1;
            if cfg.record_every > 0 && step.is_multiple_of(cfg.record_every) {
                self.record_point(outcome, first.phase, step, &t.module);
            }
            outcome.result.steps += 1;
            outcome.result.examples += batch.len() as u64;
            observer.step(first.phase, outcome.result.steps, steps_total);
        }
        let (train_loss, train_accuracy) = sum.finish(order.len());
        if !train_loss.is_finite() {
            return Err(Error::Diverged(format!(
                "training loss became {train_loss} in phase {} epoch {} (try a smaller learning rate)",
                first.phase + 1,
                first.epoch + 1
            )));
        }
        let session = &self.runner.session;
        session.track_saturation();
        let (valid_loss, valid_accuracy) =
            self.runner
                .evaluate(&t.module, &self.report, self.eval_chunk())?;
        Ok(EpochMetrics {
            epoch: first.epoch + 1,
            train_loss,
            train_accuracy,
            valid_loss,
            valid_accuracy,
            elapsed_s: self.started.elapsed().as_secs_f64(),
            saturation: session.take_saturation(),
        })
    }
}
