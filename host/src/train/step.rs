//! One model in one session: the forward pass through the model plugin, one optimizer step
//! with the strategy's callbacks, and evaluation on a split.
//!
//! A step, in order: the strategy may replace the batch (`prepare_batch`), the model runs
//! forward, the task loss goes to the strategy's `objective` (which may take gradients and
//! evaluate the loss again at shifted parameters), the objective is differentiated, the
//! optimizer updates the parameters at the strategy's learning-rate factor, and `after_step`
//! sees (and may write) the new parameters.

use abi_stable::std_types::{ROption, RResult, RSlice, RString};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use pn_plugin_api::abi::{Batch, HostOpsRef, ModelBox, OptimizerState, StrategyBox};
use pn_plugin_api::{ParamSpec, Progress};

use crate::device::{Device, B};
use crate::train::data::{Data, DeviceSplit, Targets};
use crate::train::dyn_tensor::DynTensor;
use crate::train::loss::task_loss;
use crate::train::metrics::MetricSum;
use crate::train::optim::Optim;
use crate::train::params::ParamStore;
use crate::train::session::{Callback, Position, Session};

/// What one optimizer step leaves.
pub struct StepOutput {
    /// The updated parameters.
    pub params: ParamStore<B>,
    /// The task loss of the batch (detached).
    pub loss: Tensor<B, 1>,
    /// The model's output on the batch (detached).
    pub output: Tensor<B, 2>,
    /// The targets the step trained on (the strategy's, if it replaced the batch).
    pub targets: Targets,
}

/// The strategy's objective at one step, before its backward pass.
pub struct Objective {
    /// The scalar the optimizer minimises.
    pub value: Tensor<B, 1>,
    /// The task loss of the batch.
    pub loss: Tensor<B, 1>,
    /// The model's output on the batch.
    pub output: Tensor<B, 2>,
    /// The targets (the strategy's, if it replaced the batch).
    pub targets: Targets,
}

/// Where a step is taken.
#[derive(Debug, Clone, Copy)]
pub struct StepAt {
    /// Phase and step, as strategies see them.
    pub progress: Progress,
    /// The configured learning rate (before the strategy's factor).
    pub lr: f64,
    /// Whether this is the last step of an epoch.
    pub end_of_epoch: bool,
}

/// One model plugin with its parameter specs and the session its operations run in.
pub struct ModelRunner<'a> {
    /// Its parameter specs.
    pub specs: Vec<ParamSpec>,
    /// The tensor-operation session plugins call into.
    pub session: Session<'a>,
    /// The data on the device.
    pub data: &'a Data,
}

/// A callback's value, or its error, or the first error of a tensor operation it made.
pub(crate) fn checked<T>(
    what: &str,
    r: RResult<T, RString>,
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
        let session = Session::with_model(device.clone(), names, model, data.outputs);
        Ok(Self {
            specs,
            session,
            data,
        })
    }

    /// Runs one plugin callback of kind `kind` in a fresh scope where `params` are the
    /// parameters, and returns its value or the first error (the callback's own or that of a
    /// tensor operation it made).
    pub fn callback<T>(
        &self,
        what: &str,
        kind: Callback,
        params: Vec<DynTensor>,
        f: impl FnOnce(HostOpsRef<'_>) -> RResult<T, RString>,
    ) -> Result<T, String> {
        let s = &self.session;
        s.reset(params, false);
        s.set_callback(kind);
        let r = f(s.ops());
        s.set_callback(Callback::None);
        let r = checked(what, r, s);
        s.clear();
        r
    }

    /// Applies the parameter writes the strategy asked for in its last callbacks.
    pub fn apply_writes(
        &self,
        module: &mut ParamStore<B>,
        optim: &mut Optim,
    ) -> Result<(), String> {
        for write in self.session.take_writes() {
            let mut offset = 0;
            for &i in &write.indices {
                let n = self.specs[i].numel();
                module.set(&self.specs, i, write.values.clone().narrow(0, offset, n))?;
                offset += n;
            }
            if write.optimizer == OptimizerState::Reset {
                optim.reset();
            }
        }
        Ok(())
    }

    /// The model's output `[n, outputs]` on `inputs`, in a fresh scope.
    pub fn forward(
        &self,
        params: Vec<DynTensor>,
        inputs: DynTensor,
        train: bool,
    ) -> Result<Tensor<B, 2>, String> {
        let s = &self.session;
        s.reset(params.clone(), train);
        s.set_callback(Callback::None);
        let out = s.forward_model(params, inputs, train);
        s.take_error(); // reported through `out`
        out
    }

    /// The batch the strategy's `prepare_batch` hands back, checked against the drawn one.
    fn replacement(
        &self,
        batch: Batch,
        drawn: &(DynTensor, Targets),
    ) -> Result<(DynTensor, Targets), String> {
        let s = &self.session;
        let (x, y) = (s.get(batch.inputs)?, s.get(batch.targets)?);
        let (dx, n) = (drawn.0.dims(), x.dims()[0]);
        if x.dims()[1..] != dx[1..] {
            return Err(format!(
                "strategy prepare_batch: inputs of shape {:?}, expected [n, {:?}]",
                x.dims(),
                &dx[1..]
            ));
        }
        let targets = match (&drawn.1, y) {
            (Targets::Classes(_), DynTensor::R1(t)) if t.dims()[0] == n => Targets::Classes(t.int()),
            (Targets::Values(v), DynTensor::R2(t)) if t.dims() == [n, v.dims()[1]] => Targets::Values(t),
            (_, y) => {
                return Err(format!(
                    "strategy prepare_batch: targets of shape {:?} do not fit {n} inputs of this data set",
                    y.dims()
                ))
            }
        };
        Ok((x, targets))
    }

    /// The strategy's objective on a batch at `params` (spec order, tracked by autodiff):
    /// batch, forward, task loss, strategy objective. Counts one forward pass (and whatever
    /// the objective adds); the scope is cleared, so only the returned tensors hold the graph.
    pub fn objective(
        &self,
        params: Vec<DynTensor>,
        strategy: &mut StrategyBox,
        (inputs, targets): (DynTensor, &Targets),
        progress: Progress,
    ) -> Result<Objective, String> {
        let s = &self.session;
        s.reset(params.clone(), true);
        let drawn = (inputs, targets.clone());
        s.set_batch(Some(drawn.clone()));
        s.set_callback(Callback::PrepareBatch);
        let batch = checked(
            "strategy prepare_batch",
            strategy.prepare_batch(s.ops(), progress),
            s,
        );
        let (x, y) = match batch? {
            ROption::RSome(batch) => {
                let replaced = self.replacement(batch, &drawn)?;
                s.set_batch(Some(replaced.clone()));
                replaced
            }
            ROption::RNone => drawn,
        };
        s.set_callback(Callback::None);
        let out = s.forward_model(params, x, true);
        s.take_error();
        let out = out?;
        s.count(1, 0);
        let loss = task_loss(out.clone(), &y);
        let loss_id = s.insert(DynTensor::R1(loss.clone()));
        s.set_callback(Callback::Objective);
        let objective = checked(
            "strategy objective",
            strategy.objective(s.ops(), progress, loss_id),
            s,
        );
        s.set_callback(Callback::None);
        let objective = match s.get(objective?)? {
            DynTensor::R1(t) if t.dims()[0] == 1 => t,
            other => {
                return Err(format!(
                    "strategy objective must be a scalar, got shape {:?}",
                    other.dims()
                ))
            }
        };
        s.set_batch(None);
        s.clear();
        Ok(Objective {
            value: objective,
            loss,
            output: out,
            targets: y,
        })
    }

    /// One optimizer step at learning rate `lr`: the objective, its backward pass, the update.
    pub fn step(
        &self,
        module: ParamStore<B>,
        optim: &mut Optim,
        strategy: &mut StrategyBox,
        batch: (DynTensor, &Targets),
        progress: Progress,
        lr: f64,
    ) -> Result<StepOutput, String> {
        let params = module.tensors(&self.specs, false);
        let objective = self.objective(params, strategy, batch, progress)?;
        let grads = GradientsParams::from_grads::<B, _>(objective.value.backward(), &module);
        self.session.count(0, 1);
        let module = optim.step(lr, module, grads);
        Ok(StepOutput {
            params: module,
            loss: objective.loss.detach(),
            output: objective.output.detach(),
            targets: objective.targets,
        })
    }

    /// The learning rate of the step at `at` (the configured rate times the strategy's
    /// `lr_factor`), and the session positioned there for the strategy's callbacks.
    pub fn enter_step(&self, strategy: &StrategyBox, at: StepAt) -> Result<f64, String> {
        let s = &self.session;
        let progress = at.progress;
        let factor = checked("strategy lr_factor", strategy.lr_factor(progress), s)?;
        if !(factor.is_finite() && factor >= 0.0) {
            return Err(format!(
                "strategy lr_factor must be finite and ≥ 0, got {factor}"
            ));
        }
        let lr = at.lr * factor;
        s.set_position(Position {
            phase: progress.phase,
            step: progress.step,
            lr,
            ..s.position()
        });
        Ok(lr)
    }

    /// One step as training takes it: at the configured rate times the strategy's
    /// `lr_factor`, then the strategy's `after_step` with the updated parameters (and its
    /// parameter writes applied).
    pub fn strategy_step(
        &self,
        module: ParamStore<B>,
        optim: &mut Optim,
        strategy: &mut StrategyBox,
        batch: (DynTensor, &Targets),
        at: StepAt,
    ) -> Result<StepOutput, String> {
        let progress = at.progress;
        let lr = self.enter_step(strategy, at)?;
        let mut out = self.step(module, optim, strategy, batch, progress, lr)?;
        let params = out.params.tensors(&self.specs, true);
        self.callback("strategy after_step", Callback::AfterStep, params, |ops| {
            strategy.after_step(ops, progress, at.end_of_epoch)
        })?;
        self.apply_writes(&mut out.params, optim)?;
        Ok(out)
    }

    /// Task loss and accuracy (None for regression) on a whole split, in evaluation mode.
    pub fn evaluate(
        &self,
        module: &ParamStore<B>,
        split: &DeviceSplit,
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
        split: &DeviceSplit,
        chunk: usize,
        predict: impl Fn(DynTensor, bool) -> Result<Tensor<B, 2>, String>,
    ) -> Result<(f64, Option<f64>), String> {
        if split.len == 0 {
            return Err("empty split".into());
        }
        let mut sum = MetricSum::default();
        let mut start = 0;
        while start < split.len {
            let end = (start + chunk).min(split.len);
            let (x, y) = split.range(start, end);
            let out = predict(x, matches!(y, Targets::Classes(_)))?;
            sum.add_outputs(out, &y);
            start = end;
        }
        Ok(sum.finish(split.len))
    }
}
