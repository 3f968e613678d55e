//! What strategies do beyond building tensors (contract 0.1.2): write parameters, take
//! gradients, evaluate the loss a second time at shifted parameters, read the batch and draw
//! random numbers. Each checks that the callback in progress allows it (see [`Callback`]).

use abi_stable::std_types::RString;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use pn_plugin_api::abi::OptimizerState;
use pn_plugin_api::ops::Random;

use super::{Callback, GradReplay, OpResult, ParamWrite, Session};
use crate::device::B;
use crate::train::data::Targets;
use crate::train::dyn_tensor::DynTensor;
use crate::train::loss::task_loss;
use crate::train::seeds::mix;
use crate::{with_dyn, zip_dyn};

impl Session<'_> {
    fn allow(&self, what: &str, callbacks: &[Callback], where_: &str) -> Result<(), String> {
        if callbacks.contains(&self.callback.get()) {
            Ok(())
        } else {
            Err(format!("{what} is only available in {where_}"))
        }
    }

    /// The number of elements of each parameter in `indices`.
    fn numels(&self, indices: &[usize]) -> Result<Vec<usize>, String> {
        let params = self.params.borrow();
        indices
            .iter()
            .map(|&i| {
                params
                    .get(i)
                    .map(DynTensor::num_elements)
                    .ok_or_else(|| "parameters are not available in this callback".to_string())
            })
            .collect()
    }

    /// A flat vector of exactly `n` values for a parameter group.
    fn flat_for_group(&self, id: u64, n: usize, what: &str) -> Result<Tensor<B, 1>, String> {
        let t = self.get(id)?.flatten();
        let got = t.dims()[0];
        if got != n {
            return Err(format!(
                "{what}: a vector of {got} values for a parameter group of {n}"
            ));
        }
        Ok(t)
    }

    pub(super) fn draw(&self, dist: Random, shape: &[usize], a: f64, b: f64) -> OpResult {
        let distribution = match dist {
            Random::Normal if b >= 0.0 && a.is_finite() && b.is_finite() => {
                Distribution::Normal(a, b)
            }
            Random::Uniform if a < b && a.is_finite() && b.is_finite() => {
                Distribution::Uniform(a, b)
            }
            _ => return Err(format!("invalid parameters ({a}, {b}) for {dist:?}")),
        };
        let p = self.position.get();
        let draw = self.draws.replace(self.draws.get() + 1);
        let stream = [
            0x5EED_u64,
            u64::from(p.phase),
            p.step,
            self.callback.get() as u64,
            draw,
        ];
        let seed = stream.iter().fold(p.seed, |s, &salt| mix(s, salt));
        B::seed(&self.device, seed);
        let n = shape.iter().product::<usize>().max(1);
        let flat = Tensor::<B, 1>::random([n], distribution, &self.device);
        DynTensor::R1(flat).reshape(if shape.is_empty() { &[1] } else { shape })
    }

    pub(super) fn write_params(
        &self,
        patterns: &[RString],
        values: u64,
        optimizer: OptimizerState,
    ) -> Result<(), String> {
        self.allow(
            "set_params",
            &[Callback::BeginPhase, Callback::AfterStep],
            "begin_phase and after_step",
        )?;
        let indices = self.group_indices(patterns)?;
        let n = self.numels(&indices)?.iter().sum();
        let values = self.flat_for_group(values, n, "set_params")?.detach();
        self.writes.borrow_mut().push(ParamWrite {
            indices,
            values,
            optimizer,
        });
        Ok(())
    }

    pub(super) fn gradient(&self, t: u64, patterns: &[RString]) -> OpResult {
        self.allow("grad", &[Callback::Objective], "objective")?;
        let t = match self.get(t)? {
            DynTensor::R1(t) if t.dims()[0] == 1 => t,
            other => return Err(format!("grad needs a scalar, got shape {:?}", other.dims())),
        };
        let indices = self.group_indices(patterns)?;
        let numels = self.numels(&indices)?;
        if let GradReplay::Replay(recorded) = &mut *self.grad_replay.borrow_mut() {
            return recorded
                .pop_front()
                .ok_or_else(|| "grad called more often than in the recorded evaluation".into());
        }
        let grads = t.backward();
        self.count(0, 1);
        self.spent_below.set(self.arena.borrow().len());
        let params = self.params.borrow();
        let parts: Vec<Tensor<B, 1>> = indices
            .iter()
            .zip(numels)
            .map(|(&i, n)| {
                let g = with_dyn!(&params[i], |p| p
                    .grad(&grads)
                    .map(|g| Tensor::<B, 1>::from_inner(g.reshape([n]))));
                g.unwrap_or_else(|| Tensor::zeros([n], &self.device))
            })
            .collect();
        let gradient = DynTensor::R1(Tensor::cat(parts, 0));
        if let GradReplay::Record(recorded) = &mut *self.grad_replay.borrow_mut() {
            recorded.push(gradient.clone());
        }
        Ok(gradient)
    }

    pub(super) fn loss_at_shift(&self, patterns: &[RString], delta: u64) -> OpResult {
        self.allow("loss_at", &[Callback::Objective], "objective")?;
        let indices = self.group_indices(patterns)?;
        let numels = self.numels(&indices)?;
        let delta = self.flat_for_group(delta, numels.iter().sum(), "loss_at")?;
        let mut params = self.params.borrow().clone();
        let mut offset = 0;
        for (&i, n) in indices.iter().zip(numels) {
            let shift =
                DynTensor::R1(delta.clone().narrow(0, offset, n)).reshape(&params[i].dims())?;
            params[i] = zip_dyn!(params[i].clone(), shift, |a, b| a + b);
            offset += n;
        }
        let (inputs, targets) = self.batch().ok_or("no batch in this callback")?;
        let mode = self.stats_mode.replace(super::StatsMode::Frozen);
        let out = self.forward_model(params, inputs, true);
        self.stats_mode.set(mode);
        self.count(1, 0);
        Ok(DynTensor::R1(task_loss(out?, &targets)))
    }

    pub(super) fn batch_part(&self, inputs: bool) -> OpResult {
        let batch_callbacks = [Callback::PrepareBatch, Callback::Objective];
        self.allow("the batch", &batch_callbacks, "prepare_batch and objective")?;
        let (x, y) = self.batch().ok_or("no batch in this callback")?;
        Ok(match (inputs, y) {
            (true, _) => x,
            (false, Targets::Classes(labels)) => DynTensor::R1(labels.float()),
            (false, Targets::Values(values)) => DynTensor::R2(values),
        })
    }
}
