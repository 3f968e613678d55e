//! One model in one session: the forward pass through the model plugin, the task loss, one
//! optimizer step with the strategy's objective, and evaluation on a split.

use abi_stable::std_types::{RResult, RSlice};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Int, Tensor};
use pn_plugin_api::abi::{ModelBox, StrategyBox};
use pn_plugin_api::{ParamSpec, Progress};

use crate::device::{Device, B};
use crate::train::data::{Data, Targets};
use crate::train::dyn_tensor::DynTensor;
use crate::train::optim::Optim;
use crate::train::params::ParamStore;
use crate::train::session::Session;

/// What one optimizer step leaves.
pub struct StepOutput {
    /// The updated parameters.
    pub params: ParamStore<B>,
    /// The task loss of the batch (detached).
    pub loss: Tensor<B, 1>,
    /// The model's output on the batch (detached).
    pub output: Tensor<B, 2>,
}

/// Runs a model plugin's forward pass and the task loss inside one session.
pub struct ModelRunner<'a> {
    /// The model plugin.
    pub model: &'a ModelBox,
    /// Its parameter specs.
    pub specs: Vec<ParamSpec>,
    /// The tensor-operation session plugins call into.
    pub session: Session,
    /// The data on the device.
    pub data: &'a Data,
}

pub(crate) fn checked<T>(
    what: &str,
    r: RResult<T, abi_stable::std_types::RString>,
    session: &Session,
) -> Result<T, String> {
    let value = r.into_result().map_err(|e| e.to_string());
    match (value, session.take_error()) {
        (Err(e), _) => Err(e),
        (Ok(_), Some(e)) => Err(format!("{what}: {e}")),
        (Ok(v), None) => Ok(v),
    }
}

impl<'a> ModelRunner<'a> {
    /// Asks the model for its parameters on `data`.
    pub fn new(model: &'a ModelBox, data: &'a Data, device: &Device) -> Result<Self, String> {
        let specs = model
            .parameters(RSlice::from_slice(&data.input_shape), data.outputs)
            .into_result()
            .map_err(|e| e.to_string())?
            .into_vec();
        if specs.is_empty() {
            return Err("the model declares no parameters".into());
        }
        if let Some(bad) = specs
            .iter()
            .find(|s| s.shape.is_empty() || s.shape.len() > 4 || s.numel() == 0)
        {
            return Err(format!(
                "parameter `{}` has unsupported shape {:?}",
                bad.name, bad.shape
            ));
        }
        let names: Vec<String> = specs.iter().map(|s| s.name.to_string()).collect();
        Ok(Self {
            model,
            specs,
            session: Session::new(device.clone(), names),
            data,
        })
    }

    /// The model's output `[n, outputs]` on `inputs`; the session keeps the scope open so a
    /// strategy can add to the objective afterwards.
    pub fn forward(
        &self,
        params: Vec<DynTensor>,
        inputs: DynTensor,
        train: bool,
    ) -> Result<Tensor<B, 2>, String> {
        let s = &self.session;
        s.reset(params.clone(), train);
        let ids: Vec<u64> = params.into_iter().map(|p| s.insert(p)).collect();
        s.mark_params(ids.len());
        let input = s.insert(inputs);
        let out = checked(
            "model forward",
            self.model
                .forward(s.ops(), input, RSlice::from_slice(&ids), train),
            s,
        )?;
        let out = s.get(out)?;
        let n = out.dims()[0];
        if out.dims().iter().product::<usize>() != n * self.data.outputs {
            return Err(format!(
                "model output has shape {:?}, expected [{n}, {}]",
                out.dims(),
                self.data.outputs
            ));
        }
        Ok(match out {
            DynTensor::R2(t) => t, // already [n, outputs]: no extra graph node
            other => crate::with_dyn!(other, |t| t.reshape([n, self.data.outputs])),
        })
    }

    /// The task loss (a one-element tensor) of `out` against `targets`.
    pub fn task_loss(&self, out: Tensor<B, 2>, targets: &Targets) -> Tensor<B, 1> {
        task_loss(out, targets)
    }

    /// One optimizer step: forward, task loss, strategy objective, backward, update.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &self,
        module: ParamStore<B>,
        optim: &mut Optim,
        strategy: &mut StrategyBox,
        inputs: DynTensor,
        targets: &Targets,
        progress: Progress,
        lr: f64,
    ) -> Result<StepOutput, String> {
        let out = self.forward(module.tensors(&self.specs, false), inputs, true)?;
        let loss = self.task_loss(out.clone(), targets);
        let s = &self.session;
        let loss_id = s.insert(DynTensor::R1(loss.clone()));
        let objective = checked(
            "strategy objective",
            strategy.objective(s.ops(), progress, loss_id),
            s,
        )?;
        let objective = match s.get(objective)? {
            DynTensor::R1(t) if t.dims()[0] == 1 => t,
            other => {
                return Err(format!(
                    "strategy objective must be a scalar, got shape {:?}",
                    other.dims()
                ))
            }
        };
        s.clear();
        let grads = GradientsParams::from_grads::<B, _>(objective.backward(), &module);
        let module = optim.step(lr, module, grads);
        Ok(StepOutput {
            params: module,
            loss: loss.detach(),
            output: out.detach(),
        })
    }

    /// One step as training takes it: at `lr` times the strategy's `lr_factor`, then the
    /// strategy's `after_step` with the updated parameters.
    #[allow(clippy::too_many_arguments)]
    pub fn strategy_step(
        &self,
        module: ParamStore<B>,
        optim: &mut Optim,
        strategy: &mut StrategyBox,
        (inputs, targets): (DynTensor, &Targets),
        progress: Progress,
        lr: f64,
        end_of_epoch: bool,
    ) -> Result<StepOutput, String> {
        let s = &self.session;
        let factor = checked("strategy lr_factor", strategy.lr_factor(progress), s)?;
        if !(factor.is_finite() && factor >= 0.0) {
            return Err(format!(
                "strategy lr_factor must be finite and ≥ 0, got {factor}"
            ));
        }
        let out = self.step(
            module,
            optim,
            strategy,
            inputs,
            targets,
            progress,
            lr * factor,
        )?;
        s.reset(out.params.tensors(&self.specs, true), false);
        let after = checked(
            "strategy after_step",
            strategy.after_step(s.ops(), progress, end_of_epoch),
            s,
        );
        s.clear();
        after.map(|()| out)
    }

    /// Task loss and accuracy (None for regression) on a whole split, in evaluation mode.
    pub fn evaluate(
        &self,
        module: &ParamStore<B>,
        split: &crate::train::data::DeviceSplit,
        chunk: usize,
    ) -> Result<(f64, Option<f64>), String> {
        self.evaluate_by(split, chunk, |x, _| {
            self.forward(module.tensors(&self.specs, true), x, false)
        })
    }

    /// Task loss and accuracy of the outputs `predict` gives for each chunk of `split`
    /// (`predict` is told whether the targets are classes).
    pub fn evaluate_by(
        &self,
        split: &crate::train::data::DeviceSplit,
        chunk: usize,
        predict: impl Fn(DynTensor, bool) -> Result<Tensor<B, 2>, String>,
    ) -> Result<(f64, Option<f64>), String> {
        let mut loss_sum: Option<Tensor<B, 1>> = None;
        let mut correct: Option<Tensor<B, 1, Int>> = None;
        let mut start = 0;
        while start < split.len {
            let end = (start + chunk).min(split.len);
            let (x, y) = split.range(start, end);
            let out = predict(x, matches!(y, Targets::Classes(_)))?;
            let loss = self.task_loss(out.clone(), &y) * ((end - start) as f32);
            loss_sum = Some(match loss_sum {
                Some(s) => s + loss,
                None => loss,
            });
            if let Targets::Classes(labels) = &y {
                let c = count_correct(out, labels);
                correct = Some(match correct {
                    Some(s) => s + c,
                    None => c,
                });
            }
            start = end;
        }
        let n = split.len as f64;
        let loss = scalar(loss_sum.ok_or("empty split")?) / n;
        Ok((loss, correct.map(|c| int_scalar(c) / n)))
    }
}

/// The task loss: cross-entropy for class targets, mean squared error for values.
pub fn task_loss(out: Tensor<B, 2>, targets: &Targets) -> Tensor<B, 1> {
    match targets {
        Targets::Classes(t) => CrossEntropyLossConfig::new()
            .init(&out.device())
            .forward(out, t.clone()),
        Targets::Values(t) => (out - t.clone()).square().mean(),
    }
}

/// Number of rows whose arg-max equals the label.
pub fn count_correct(out: Tensor<B, 2>, labels: &Tensor<B, 1, Int>) -> Tensor<B, 1, Int> {
    let n = labels.dims()[0];
    out.argmax(1).reshape([n]).equal(labels.clone()).int().sum()
}

pub(crate) fn scalar(t: Tensor<B, 1>) -> f64 {
    t.into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f64::NAN)
}

pub(crate) fn int_scalar(t: Tensor<B, 1, Int>) -> f64 {
    t.into_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(0) as f64
}
