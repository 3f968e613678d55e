//! The training engine: phases, steps and evaluation, with the strategy's objective added
//! through the plugin boundary.
//!
//! One run = one strategy x model x data set x seed. For each phase the strategy chooses the
//! start (θ0 again, a fresh draw, or continue), the host trains with a fresh optimizer for the
//! configured epochs, evaluates the held-out split every epoch, and the strategy may record
//! anchors at the phase's end. Every phase sees the same sequence of batches, so differences
//! between phases come from the start and the objective only. The result is the phase the
//! strategy selects.

use std::time::Instant;

use abi_stable::std_types::{RResult, RSlice};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer, Sgd, SgdConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use pn_plugin_api::abi::{ModelBox, StrategyBox};
use pn_plugin_api::{ParamSpec, PhaseStart, PhaseSummary, Progress};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::augment::{Augment, Prefetch};
use crate::data::{Data, Targets};
use crate::device::{Device, B};
use crate::dyn_tensor::DynTensor;
use crate::params::{initial_values, ParamStore, Values};
use crate::saturation::LayerSaturation;
use crate::session::Session;

/// The optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam (Kingma & Ba, 2015).
    Adam,
    /// SGD with momentum.
    Sgd,
}

/// How to train: optimizer, learning rate, batches, epochs per phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// `adam` or `sgd`.
    pub optimizer: OptimizerKind,
    /// Learning rate.
    pub lr: f64,
    /// SGD momentum (ignored by Adam).
    pub momentum: f64,
    /// Weight decay of the optimizer (0 for none).
    pub weight_decay: f64,
    /// Examples per step.
    pub batch_size: usize,
    /// Epochs per phase.
    pub epochs: u32,
    /// Record the parameters every this many steps (0: never), for trajectories of small
    /// models (at most [`MAX_TRAJECTORY_PARAMS`] parameters); written to `trajectory.csv`.
    pub record_every: u64,
    /// Random crop and flip of training images (`{ crop_padding = 4, flip = true }`); none by
    /// default. See [`crate::augment`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub augment: Option<Augment>,
}

/// The largest model whose trajectory can be recorded.
pub const MAX_TRAJECTORY_PARAMS: usize = 10_000;

/// The parameters at one step of a recorded trajectory.
#[derive(Debug, Clone, PartialEq)]
pub struct TrajectoryPoint {
    /// Phase, from 0.
    pub phase: u32,
    /// Optimizer steps since the phase started.
    pub step: u64,
    /// Every parameter, flattened in spec order.
    pub values: Vec<f32>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            optimizer: OptimizerKind::Adam,
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 0.0,
            batch_size: 128,
            epochs: 10,
            record_every: 0,
            augment: None,
        }
    }
}

impl TrainConfig {
    /// Rejects values training cannot run with.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!(
                "train.lr must be a positive number, got {}",
                self.lr
            ));
        }
        if self.batch_size == 0 {
            return Err("train.batch_size must be at least 1".into());
        }
        if self.epochs == 0 {
            return Err("train.epochs must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(format!(
                "train.momentum must be in [0, 1), got {}",
                self.momentum
            ));
        }
        if self.weight_decay < 0.0 {
            return Err(format!(
                "train.weight_decay must be ≥ 0, got {}",
                self.weight_decay
            ));
        }
        Ok(())
    }
}

/// Metrics of one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch within the phase, from 1.
    pub epoch: u32,
    /// Mean task loss over the epoch's batches.
    pub train_loss: f64,
    /// Accuracy over the epoch's batches (null for regression).
    pub train_accuracy: Option<f64>,
    /// Task loss on the held-out split after the epoch.
    pub valid_loss: f64,
    /// Accuracy on the held-out split (null for regression).
    pub valid_accuracy: Option<f64>,
    /// Seconds since the run started.
    pub elapsed_s: f64,
    /// Saturation of each activation layer on the held-out split (see [`crate::saturation`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub saturation: Vec<LayerSaturation>,
}

/// One phase of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRecord {
    /// How the phase started.
    pub start: String,
    /// Per-epoch metrics.
    pub epochs: Vec<EpochMetrics>,
    /// Task loss on the whole training split at the end (evaluation mode).
    pub final_train_loss: f64,
    /// Task loss on the held-out split at the end.
    pub final_valid_loss: f64,
    /// Accuracy on the held-out split at the end (null for regression).
    pub final_valid_accuracy: Option<f64>,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Models the final metrics average over: 1, or the size of the strategy's ensemble.
    #[serde(default = "one")]
    pub members: u32,
}

fn one() -> u32 {
    1
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// All phases finished.
    Completed,
    /// The loss became NaN or infinite.
    Diverged,
    /// A plugin or the host failed.
    Failed,
}

impl Status {
    /// Its snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::Diverged => "diverged",
            Status::Failed => "failed",
        }
    }
}

/// The outcome of a run (finished phases are kept whatever the status).
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How it ended.
    pub status: Status,
    /// Why it did not complete.
    pub message: Option<String>,
    /// Finished phases.
    pub phases: Vec<PhaseRecord>,
    /// The phase the strategy selected (when completed).
    pub selected_phase: Option<u32>,
    /// Optimizer steps over all phases.
    pub steps: u64,
    /// Examples consumed over all phases.
    pub examples: u64,
    /// Wall time in seconds.
    pub wall_time_s: f64,
    /// Parameter values of the selected phase.
    pub result_values: Option<Values>,
    /// Layer state of the selected phase (batch-norm running statistics), by name.
    pub result_state: Vec<(String, Vec<usize>, Vec<f32>)>,
    /// Tensors the strategy kept (θ0, anchors), by name.
    pub kept: Vec<(String, Vec<usize>, Vec<f32>)>,
    /// Names and shapes of the model's parameters.
    pub params: Vec<(String, Vec<usize>)>,
    /// Parameters every `record_every` steps and at the end of each phase, if asked for.
    pub trajectory: Vec<TrajectoryPoint>,
}

/// Named tensors of layer state (batch-norm running statistics).
type State = Vec<(String, Vec<usize>, Vec<f32>)>;

/// Receives progress while a run trains.
pub trait Observer {
    /// Called after every optimizer step.
    fn step(&mut self, _phase: u32, _steps_done: u64, _steps_total: u64) {}
    /// Called after every epoch.
    fn epoch(&mut self, _phase: u32, _metrics: &EpochMetrics) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

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

/// Why a step could not be taken.
#[derive(Debug)]
pub enum StepError {
    /// A plugin or host operation failed.
    Failed(String),
}

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
pub struct Trainer<'a> {
    /// The model plugin.
    pub model: &'a ModelBox,
    /// Its parameter specs.
    pub specs: Vec<ParamSpec>,
    /// The tensor-operation session plugins call into.
    pub session: Session,
    /// The data on the device.
    pub data: &'a Data,
}

fn mix(seed: u64, salt: u64) -> u64 {
    // SplitMix64: decorrelates the streams derived from one run seed.
    let mut z = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn checked<T>(
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

impl<'a> Trainer<'a> {
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
        split: &crate::data::DeviceSplit,
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
        split: &crate::data::DeviceSplit,
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

fn scalar(t: Tensor<B, 1>) -> f64 {
    t.into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f64::NAN)
}

fn int_scalar(t: Tensor<B, 1, Int>) -> f64 {
    t.into_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(0) as f64
}

fn start_name(start: PhaseStart) -> &'static str {
    match start {
        PhaseStart::SameInit => "same_init",
        PhaseStart::FreshInit => "fresh_init",
        PhaseStart::Continue => "continue",
    }
}

/// Trains `model` on `data` with `strategy` from `seed`.
pub fn run(
    strategy: &mut StrategyBox,
    model: &ModelBox,
    data: &Data,
    cfg: &TrainConfig,
    seed: u64,
    device: &Device,
    observer: &mut dyn Observer,
) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome {
        status: Status::Completed,
        message: None,
        phases: vec![],
        selected_phase: None,
        steps: 0,
        examples: 0,
        wall_time_s: 0.0,
        result_values: None,
        result_state: vec![],
        kept: vec![],
        params: vec![],
        trajectory: vec![],
    };
    let mut phase_values: Vec<(Values, State)> = vec![];
    let result = train_phases(
        strategy,
        model,
        data,
        cfg,
        seed,
        device,
        observer,
        &mut outcome,
        &mut phase_values,
        started,
    );
    match result {
        Ok(()) => {}
        Err(Stop::Diverged(m)) => {
            outcome.status = Status::Diverged;
            outcome.message = Some(m);
        }
        Err(Stop::Failed(m)) => {
            outcome.status = Status::Failed;
            outcome.message = Some(m);
        }
    }
    if let Some(p) = outcome.selected_phase {
        if let Some((values, state)) = phase_values.get(p as usize).cloned() {
            outcome.result_values = Some(values);
            outcome.result_state = state;
        }
    }
    outcome.wall_time_s = started.elapsed().as_secs_f64();
    outcome
}

enum Stop {
    Diverged(String),
    Failed(String),
}

impl From<String> for Stop {
    fn from(m: String) -> Self {
        Stop::Failed(m)
    }
}

#[allow(clippy::too_many_arguments)]
fn train_phases(
    strategy: &mut StrategyBox,
    model: &ModelBox,
    data: &Data,
    cfg: &TrainConfig,
    seed: u64,
    device: &Device,
    observer: &mut dyn Observer,
    outcome: &mut Outcome,
    phase_values: &mut Vec<(Values, State)>,
    started: Instant,
) -> Result<(), Stop> {
    cfg.validate()?;
    B::seed(device, seed);
    let trainer = Trainer::new(model, data, device)?;
    let specs = &trainer.specs;
    outcome.params = specs
        .iter()
        .map(|s| (s.name.to_string(), s.shape.to_vec()))
        .collect();
    let session = &trainer.session;
    let phases = strategy.phases().into_result().map_err(|e| e.to_string())?;
    if phases == 0 {
        return Err(Stop::Failed("strategy declares 0 phases".into()));
    }
    let theta0 = initial_values(specs, seed)?;
    let image_shape = match (&cfg.augment, &data.input_shape[..]) {
        (None, _) => None,
        (Some(_), &[c, h, w]) => Some([c, h, w]),
        (Some(_), other) => {
            return Err(Stop::Failed(format!(
                "train.augment needs image inputs [channels, height, width], got {other:?}"
            )))
        }
    };
    let numel: usize = specs.iter().map(|s| s.numel()).sum();
    if cfg.record_every > 0 && numel > MAX_TRAJECTORY_PARAMS {
        return Err(Stop::Failed(format!(
            "train.record_every: the model has {numel} parameters; trajectories are recorded for at most {MAX_TRAJECTORY_PARAMS}"
        )));
    }
    let snapshot = |outcome: &mut Outcome, phase: u32, step: u64, module: &ParamStore<B>| {
        if cfg.record_every > 0 {
            let values = module.values(specs).concat();
            outcome.trajectory.push(TrajectoryPoint {
                phase,
                step,
                values,
            });
        }
    };
    let n = data.train.len;
    let steps_per_epoch = n.div_ceil(cfg.batch_size) as u64;
    let steps_in_phase = steps_per_epoch * u64::from(cfg.epochs);
    let steps_total = steps_in_phase * u64::from(phases);
    let chunk = cfg.batch_size.max(1024);
    let mut current = theta0.clone();
    let mut summaries: Vec<PhaseSummary> = vec![];

    for phase in 0..phases {
        let start = if phase == 0 {
            PhaseStart::FreshInit
        } else {
            strategy
                .phase_start(phase)
                .into_result()
                .map_err(|e| e.to_string())?
        };
        let values = match start {
            PhaseStart::SameInit => theta0.clone(),
            PhaseStart::FreshInit if phase == 0 => theta0.clone(),
            PhaseStart::FreshInit => initial_values(specs, mix(seed, u64::from(phase)))?,
            PhaseStart::Continue => current.clone(),
        };
        if start != PhaseStart::Continue {
            session.reset_state();
        }
        let mut module = ParamStore::new(specs, &values, device)?;
        let mut optim = Optim::new(cfg);
        session.reset(module.tensors(specs, true), false);
        checked(
            "strategy begin_phase",
            strategy.begin_phase(session.ops(), phase),
            session,
        )?;

        // The same batch order in every phase (see the module docs).
        let mut rng = StdRng::seed_from_u64(mix(seed, 0xBA7C4));
        let mut order: Vec<i64> = (0..n as i64).collect();
        let mut record = PhaseRecord {
            start: start_name(start).into(),
            epochs: vec![],
            final_train_loss: f64::NAN,
            final_valid_loss: f64::NAN,
            final_valid_accuracy: None,
            steps: 0,
            members: 1,
        };
        let mut step = 0u64;
        snapshot(outcome, phase, step, &module);
        for epoch in 0..cfg.epochs {
            order.shuffle(&mut rng);
            let prefetch = cfg
                .augment
                .clone()
                .zip(image_shape)
                .map(|(augment, shape)| {
                    let batches = order.chunks(cfg.batch_size).map(<[i64]>::to_vec).collect();
                    let seed = mix(seed, 0xA06 + u64::from(epoch));
                    Prefetch::start(data.train_host(), shape, batches, augment, seed)
                });
            let mut loss_sum: Option<Tensor<B, 1>> = None;
            let mut correct: Option<Tensor<B, 1, Int>> = None;
            for (b, batch) in order.chunks(cfg.batch_size).enumerate() {
                let indices = Tensor::<B, 1, Int>::from_data(
                    TensorData::new(batch.to_vec(), [batch.len()]),
                    device,
                );
                let (x, y) = match (&prefetch, image_shape) {
                    (Some(p), Some([c, h, w])) => {
                        let values = p
                            .next_batch()
                            .ok_or_else(|| "the augmentation thread stopped".to_string())?;
                        let x = DynTensor::from_values(values, &[batch.len(), c, h, w], device)?;
                        (x, data.train.targets_at(indices))
                    }
                    _ => data.train.batch(indices),
                };
                let progress = Progress {
                    phase,
                    step,
                    steps_in_phase,
                    epoch,
                };
                let end_of_epoch = b as u64 + 1 == steps_per_epoch;
                let step_out = trainer.strategy_step(
                    module,
                    &mut optim,
                    strategy,
                    (x, &y),
                    progress,
                    cfg.lr,
                    end_of_epoch,
                )?;
                module = step_out.params;
                let weighted = step_out.loss * (batch.len() as f32);
                loss_sum = Some(match loss_sum {
                    Some(s) => s + weighted,
                    None => weighted,
                });
                if let Targets::Classes(labels) = &y {
                    let c = count_correct(step_out.output, labels);
                    correct = Some(match correct {
                        Some(s) => s + c,
                        None => c,
                    });
                }
                step += 1;
                if cfg.record_every > 0 && step.is_multiple_of(cfg.record_every) {
                    snapshot(outcome, phase, step, &module);
                }
                outcome.steps += 1;
                outcome.examples += batch.len() as u64;
                observer.step(phase, outcome.steps, steps_total);
            }
            let train_loss = loss_sum.map(scalar).unwrap_or(f64::NAN) / n as f64;
            if !train_loss.is_finite() {
                return Err(Stop::Diverged(format!(
                    "training loss became {train_loss} in phase {} epoch {} (try a smaller learning rate)",
                    phase + 1,
                    epoch + 1
                )));
            }
            session.track_saturation();
            let (valid_loss, valid_accuracy) = trainer.evaluate(&module, &data.valid, chunk)?;
            let saturation = session.take_saturation();
            let metrics = EpochMetrics {
                epoch: epoch + 1,
                train_loss,
                train_accuracy: correct.map(|c| int_scalar(c) / n as f64),
                valid_loss,
                valid_accuracy,
                elapsed_s: started.elapsed().as_secs_f64(),
                saturation,
            };
            observer.epoch(phase, &metrics);
            record.epochs.push(metrics);
        }
        if cfg.record_every > 0 && !step.is_multiple_of(cfg.record_every) {
            snapshot(outcome, phase, step, &module);
        }
        session.reset(module.tensors(specs, true), false);
        let kept = checked(
            "strategy phase_result",
            strategy.phase_result(session.ops(), phase),
            session,
        )?;
        let mut members = trainer.members(module, &kept, cfg.batch_size)?;
        let (train_loss, _) = trainer.evaluate_members(&members, &data.train, chunk)?;
        let (valid_loss, valid_accuracy) =
            trainer.evaluate_members(&members, &data.valid, chunk)?;
        // The last member stands for the phase (its parameters are saved as the run's model;
        // an ensemble's members are among the kept tensors).
        let last = members
            .pop()
            .ok_or("a phase without a result".to_string())?;
        session.set_norm_stats(last.stats);
        module = last.module;
        record.members = kept.len().max(1) as u32;
        record.final_train_loss = train_loss;
        record.final_valid_loss = valid_loss;
        record.final_valid_accuracy = valid_accuracy;
        record.steps = step;
        session.reset(module.tensors(specs, true), false);
        checked(
            "strategy end_phase",
            strategy.end_phase(session.ops(), phase),
            session,
        )?;
        summaries.push(PhaseSummary {
            train_loss,
            valid_loss,
            valid_accuracy: valid_accuracy.unwrap_or(f64::NAN),
        });
        current = module.values(specs);
        phase_values.push((current.clone(), session.state()));
        outcome.phases.push(record);
        outcome.kept = session
            .kept()
            .into_iter()
            .map(|(name, t)| (name, t.dims(), t.to_values()))
            .collect();
    }
    let selected = strategy
        .select_result(RSlice::from_slice(&summaries))
        .into_result()
        .map_err(|e| e.to_string())?;
    if selected >= phases {
        return Err(Stop::Failed(format!(
            "strategy selected phase {selected} of {phases}"
        )));
    }
    outcome.selected_phase = Some(selected);
    Ok(())
}
