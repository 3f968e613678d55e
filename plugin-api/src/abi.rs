//! The raw ABI: the `#[repr(C)]` types that cross the `.so` boundary.
//!
//! Plugin authors rarely touch this module: [`crate::Strategy`], [`crate::Model`],
//! [`crate::Dataset`] and [`crate::Tensor`] wrap it. The rules that keep old plugins loading
//! into newer hosts: every struct and trait here is append-only (new prefix fields and trait
//! methods go after the ones already published), and tensor operations are named by `u32`
//! codes so that a new operation never changes a layout.

// `#[sabi_trait]` expands to impls inside constants.
#![allow(non_local_definitions)]

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec},
    StableAbi,
};

/// An opaque handle to a tensor owned by the host (a Burn tensor on the run's device).
pub type TensorId = u64;

/// Handle returned by an operation that failed; every operation on it fails too.
pub const POISON: TensorId = u64::MAX;

/// Severity of a log line a plugin sends to the host.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Shown with `--verbose`.
    Debug,
    /// Shown by default.
    Info,
    /// Shown by default, marked as a warning.
    Warn,
}

/// What the host lends a plugin when it loads it.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct HostInfo {
    /// Where the plugin's log lines go (each `.so` has its own statics, so it cannot share
    /// the host's logger).
    pub log: extern "C" fn(LogLevel, RStr<'_>),
}

/// Tensor operations the host performs for a plugin and records in its autodiff graph.
///
/// Every method returns a handle; a failed operation (bad shape, unknown handle, a panic in
/// the backend) returns [`POISON`] and the host remembers the first error, which fails the
/// callback that made it. Operation kinds are `u32` codes from [`crate::ops`].
#[sabi_trait]
pub trait HostOps {
    /// A new constant tensor from row-major `data` with the given `shape` (no gradient).
    fn constant(&self, data: RSlice<'_, f32>, shape: RSlice<'_, usize>) -> TensorId;
    /// A tensor of `shape` filled with `value`.
    fn full(&self, shape: RSlice<'_, usize>, value: f64) -> TensorId;
    /// The shape of a tensor (empty for a scalar).
    fn shape(&self, t: TensorId) -> RVec<usize>;
    /// Reads a tensor's values back to the plugin (synchronises the device: avoid per step).
    fn read(&self, t: TensorId) -> RVec<f32>;
    /// An element-wise unary operation ([`crate::ops::Unary`]).
    fn unary(&self, op: u32, t: TensorId) -> TensorId;
    /// An element-wise binary operation with broadcasting ([`crate::ops::Binary`]).
    fn binary(&self, op: u32, a: TensorId, b: TensorId) -> TensorId;
    /// An element-wise operation with a scalar ([`crate::ops::Scalar`]).
    fn scalar(&self, op: u32, t: TensorId, value: f64) -> TensorId;
    /// A reduction ([`crate::ops::Reduce`]) over `dim`, or over all elements when `dim` is
    /// `None` (result: a scalar).
    fn reduce(&self, op: u32, t: TensorId, dim: ROption<usize>, keep_dim: bool) -> TensorId;
    /// Same elements, new shape (one entry may be `-1`).
    fn reshape(&self, t: TensorId, shape: RSlice<'_, i64>) -> TensorId;
    /// Swaps two dimensions.
    fn transpose(&self, t: TensorId, dim0: usize, dim1: usize) -> TensorId;
    /// Matrix product over the last two dimensions.
    fn matmul(&self, a: TensorId, b: TensorId) -> TensorId;
    /// Concatenates tensors along `dim`.
    fn cat(&self, ts: RSlice<'_, TensorId>, dim: usize) -> TensorId;
    /// Elements `start..end` of dimension `dim`.
    fn narrow(&self, t: TensorId, dim: usize, start: usize, end: usize) -> TensorId;
    /// A copy outside the autodiff graph (no gradient flows through it).
    fn detach(&self, t: TensorId) -> TensorId;
    /// A layer operation ([`crate::ops::Layer`]) on `inputs` with integer `args`
    /// (documented per code) and float `fargs`.
    fn layer(
        &self,
        op: u32,
        inputs: RSlice<'_, TensorId>,
        args: RSlice<'_, i64>,
        fargs: RSlice<'_, f64>,
    ) -> TensorId;
    /// The current parameters whose names match any of `patterns` (globs, `*` for all),
    /// flattened and concatenated in declaration order into one vector. Inside a step the
    /// result carries gradients to the parameters.
    fn param_group(&self, patterns: RSlice<'_, RString>) -> TensorId;
    /// Keeps a detached copy of `t` beyond the current callback under `name`; the host saves
    /// kept tensors with the run (e.g. anchors). Returns a key for [`HostOps::kept`].
    fn keep(&self, name: RStr<'_>, t: TensorId) -> u64;
    /// A handle to a tensor kept earlier.
    fn kept(&self, key: u64) -> TensorId;
    /// Sends a log line to the host.
    #[sabi(last_prefix_field)]
    fn log(&self, level: LogLevel, message: RStr<'_>);

    // Appended in 0.1.2. A host refuses plugins built against a newer contract than its own,
    // so a plugin only calls these on a host that has them.

    /// The run's seed.
    fn run_seed(&self) -> u64;
    /// The learning rate of the current step (the configured rate times the strategy's
    /// `lr_factor`); NaN outside a step.
    fn learning_rate(&self) -> f64;
    /// A tensor of `shape` drawn from distribution `dist` ([`crate::ops::Random`]) with
    /// parameters `a` and `b`, by the device's own generator, seeded before each draw from (run
    /// seed, phase, step, callback, the number of draws so far in this callback): the same on
    /// every run of the same seed on the same kind of device (backends draw differently). The
    /// reseeding also sets where later dropout masks come from, equally on every such run.
    fn random(&self, dist: u32, shape: RSlice<'_, usize>, a: f64, b: f64) -> TensorId;
    /// Writes the parameters matching `patterns` from the flat vector `values` (declaration
    /// order, as `param_group` gives them; detached). Allowed in `begin_phase` and
    /// `after_step`; the write takes effect when the callback returns. `optimizer` says what
    /// happens to the optimizer's state (moments, momentum) of the whole model.
    fn set_params(
        &self,
        patterns: RSlice<'_, RString>,
        values: TensorId,
        optimizer: OptimizerState,
    ) -> bool;
    /// The gradient of the scalar `t` with respect to the parameters matching `patterns`, as one
    /// flat detached vector (declaration order). Only in `objective`; it runs a backward pass
    /// that uses up the graph behind `t`: handles created before the call cannot be used
    /// after it (compute what the objective needs afterwards).
    fn grad(&self, t: TensorId, patterns: RSlice<'_, RString>) -> TensorId;
    /// The task loss of the model on the current batch with the parameters matching
    /// `patterns` shifted by the flat vector `delta`: a second forward pass, whose gradient
    /// flows to the parameters (and to `delta`, if it carries a graph). Only in `objective`.
    /// Batch-norm layers normalise with the batch's statistics but do not update their
    /// running statistics in this pass.
    fn loss_at(&self, patterns: RSlice<'_, RString>, delta: TensorId) -> TensorId;
    /// The current batch's inputs (`[n, ...input shape]`). Only in `prepare_batch` and
    /// `objective`.
    fn batch_inputs(&self) -> TensorId;
    /// The current batch's targets: class indices as floats `[n]` for cross-entropy, values
    /// `[n, outputs]` for regression. Only in `prepare_batch` and `objective`.
    fn batch_targets(&self) -> TensorId;
}

/// The host's operations as a plugin callback receives them.
pub type HostOpsRef<'a> = HostOps_TO<'a, abi_stable::sabi_types::RRef<'a, ()>>;

/// How a training phase starts: [`crate::Strategy::phase_start`]'s answer for phases 1 and
/// later. Phase 0 always starts from θ0, the initialisation the host draws from the run's seed
/// (on the CPU, from each parameter's [`ParamSpec`] distribution: the same θ0 on every device).
///
/// | variant | the phase's starting parameters | batch-norm running statistics |
/// |---|---|---|
/// | `SameInit` | θ0 again, exactly as the host drew it | start afresh |
/// | `FreshInit` | a new draw from the [`ParamSpec`]s, seeded by (run seed, phase) | start afresh |
/// | `Continue` | the previous phase's result: its trained parameters, or the parameter vector its `phase_result` handed back (for an ensemble, the last) | carried over |
///
/// The optimizer's state is decided separately, by
/// [`crate::Strategy::optimizer_at_phase_start`]. Then [`crate::Strategy::begin_phase`] sees
/// these starting values and may replace them with [`crate::Ops::set_params`]; such a write does
/// not change θ0 (a later `SameInit` phase starts from the drawn θ0 again).
///
/// ```
/// # use pn_plugin_api::{Component, PhaseStart, Result, Strategy};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Default, Serialize, Deserialize)]
/// # pub struct Config { pub restart: Restart }
/// # pub struct Restarts(Config);
/// # impl Component for Restarts {
/// #     const NAME: &'static str = "restarts";
/// #     const DESCRIPTION: &'static str = "restarts of three kinds";
/// #     type Config = Config;
/// #     fn new(config: Config) -> Result<Self> { Ok(Self(config)) }
/// # }
/// #[derive(Default, Clone, Copy, Serialize, Deserialize)]
/// #[serde(rename_all = "snake_case")]
/// pub enum Restart {
///     #[default]
///     Persistence,
///     Random,
///     Warm,
/// }
///
/// impl Strategy for Restarts {
///     fn phases(&self) -> u32 {
///         3
///     }
///     fn phase_start(&self, _phase: u32) -> PhaseStart {
///         match self.0.restart {
///             // Every phase from the same θ0: phases differ only by what the strategy adds
///             // to the objective (persistence, deflation).
///             Restart::Persistence => PhaseStart::SameInit,
///             // Independent restarts: a new initialisation per phase (the same for a seed).
///             Restart::Random => PhaseStart::FreshInit,
///             // Carry on from the previous phase's result (warm restarts, shrink-perturb).
///             Restart::Warm => PhaseStart::Continue,
///         }
///     }
/// }
/// ```
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseStart {
    /// From θ0, the initial parameters of phase 0, as the host drew them (persistence).
    SameInit,
    /// From a fresh initialisation drawn with a new seed, derived from the run's seed and the
    /// phase (restarts).
    FreshInit,
    /// From the previous phase's result: where it ended, or the vector its `phase_result`
    /// handed back.
    Continue,
}

/// What happens to the optimizer's state (Adam's moments, SGD's momentum) when a phase starts
/// ([`crate::Strategy::optimizer_at_phase_start`]) or a strategy writes parameters
/// ([`crate::Ops::set_params`]). It is the state of the whole model's optimizer, whichever
/// parameters a write touches.
///
/// The state belongs to each parameter: a write keeps the parameter (only its values change),
/// and so does a phase start (`Continue` keeps the parameters as they are; `SameInit` and
/// `FreshInit` write the new starting values into them), so with `Keep` the moments built so
/// far act on the new values. When the previous phase's `phase_result` handed back parameter
/// vectors, the next phase's parameters take the values of the last one, and `Keep` keeps
/// their state too.
///
/// ```
/// # use pn_plugin_api::{Component, Ops, OptimizerState, PhaseStart, Progress, Result, Strategy};
/// # #[derive(Default, serde::Serialize, serde::Deserialize)]
/// # pub struct Config { pub every: u64, pub noise: f64 }
/// # pub struct NoisyRestarts(Config);
/// # impl Component for NoisyRestarts {
/// #     const NAME: &'static str = "noisy_restarts";
/// #     const DESCRIPTION: &'static str = "warm phases, noise injections";
/// #     type Config = Config;
/// #     fn new(config: Config) -> Result<Self> { Ok(Self(config)) }
/// # }
/// impl Strategy for NoisyRestarts {
///     fn phases(&self) -> u32 {
///         2
///     }
///     fn phase_start(&self, _phase: u32) -> PhaseStart {
///         PhaseStart::Continue
///     }
///     // Phase 1 carries on with the moments phase 0 built up.
///     fn optimizer_at_phase_start(&self, _phase: u32) -> OptimizerState {
///         OptimizerState::Keep
///     }
///     // Every `every` steps, a jump to θ + N(0, noise²): the moments built for the old
///     // neighbourhood no longer fit, so the write resets them.
///     fn after_step(&mut self, ops: Ops<'_>, p: Progress, _end_of_epoch: bool) -> Result<()> {
///         if (p.step + 1) % self.0.every.max(1) == 0 {
///             let theta = ops.param_group(&["*"]);
///             let noise = ops.random_normal(&theta.shape(), 0.0, self.0.noise);
///             ops.set_params(&["*"], theta + noise, OptimizerState::Reset);
///         }
///         Ok(())
///     }
/// }
/// ```
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerState {
    /// A fresh optimizer: its state starts from zero (what every phase did before 0.1.2).
    /// The default at a phase start. Resetting at a write takes effect when the callback
    /// returns, for the next step.
    Reset,
    /// The optimizer keeps its state across the change.
    Keep,
}

/// A batch a strategy hands back from `prepare_batch`: inputs and targets, in the shapes and
/// kinds of [`HostOps::batch_inputs`] and [`HostOps::batch_targets`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Inputs, `[n, ...input shape]`.
    pub inputs: TensorId,
    /// Targets: class indices (as floats) `[n]`, or values `[n, outputs]`.
    pub targets: TensorId,
}

/// Where the host is in training, passed to strategy callbacks.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Phase index, from 0.
    pub phase: u32,
    /// Optimizer step within the phase, from 0.
    pub step: u64,
    /// Number of steps the phase will take.
    pub steps_in_phase: u64,
    /// Epoch within the phase, from 0.
    pub epoch: u32,
}

/// What a phase achieved, as the host measured it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq)]
pub struct PhaseSummary {
    /// Task loss on the training split at the end of the phase.
    pub train_loss: f64,
    /// Task loss on the held-out split at the end of the phase.
    pub valid_loss: f64,
    /// Accuracy on the held-out split (NaN for regression).
    pub valid_accuracy: f64,
}

/// A training strategy as the host sees it.
#[sabi_trait]
pub trait AbiStrategy: Send {
    /// Number of training phases.
    fn phases(&self) -> RResult<u32, RString>;
    /// How phase `phase` (from 0) starts.
    fn phase_start(&self, phase: u32) -> RResult<PhaseStart, RString>;
    /// Called when a phase starts, with the parameters at their starting values (it may write
    /// them through [`HostOps::set_params`]).
    fn begin_phase(&mut self, ops: HostOpsRef<'_>, phase: u32) -> RResult<(), RString>;
    /// The objective to minimise at this step, given the task loss (a scalar handle).
    fn objective(
        &mut self,
        ops: HostOpsRef<'_>,
        progress: Progress,
        task_loss: TensorId,
    ) -> RResult<TensorId, RString>;
    /// Called when a phase ends, after `phase_result`, with the parameters at the phase's
    /// result (as trained, or the last vector `phase_result` handed back).
    fn end_phase(&mut self, ops: HostOpsRef<'_>, phase: u32) -> RResult<(), RString>;
    /// Which phase's model is the result.
    #[sabi(last_prefix_field)]
    fn select_result(&self, phases: RSlice<'_, PhaseSummary>) -> RResult<u32, RString>;

    // Appended in 0.1.1. A plugin built against 0.1.0 lacks these entries; the host then
    // calls the default bodies below (abi_stable's default fallback).

    /// The factor the host multiplies the configured learning rate by at this step.
    fn lr_factor(&self, _progress: Progress) -> RResult<f64, RString> {
        RResult::ROk(1.0)
    }
    /// Called after every optimizer step with the parameters at their updated values (it may
    /// write them through [`HostOps::set_params`]);
    /// `progress.step` is the step just taken and `end_of_epoch` marks an epoch's last step.
    fn after_step(
        &mut self,
        _ops: HostOpsRef<'_>,
        _progress: Progress,
        _end_of_epoch: bool,
    ) -> RResult<(), RString> {
        RResult::ROk(())
    }
    /// The result of phase `phase`, called after its last step: keys of kept flat parameter
    /// vectors (every parameter in declaration order, as `param_group(["*"])` gives them).
    /// None: the parameters as trained; one: these parameters (e.g. an average), batch-norm
    /// statistics recomputed on the training split; several: an ensemble whose averaged
    /// predictions the host evaluates.
    fn phase_result(&mut self, _ops: HostOpsRef<'_>, _phase: u32) -> RResult<RVec<u64>, RString> {
        RResult::ROk(RVec::new())
    }

    // Appended in 0.1.2, with default fallbacks for plugins built against 0.1.0 or 0.1.1.

    /// What happens to the optimizer's state when phase `phase` (from 1) starts.
    fn optimizer_at_phase_start(&self, _phase: u32) -> RResult<OptimizerState, RString> {
        RResult::ROk(OptimizerState::Reset)
    }
    /// Called before each step's forward pass; may hand back a replacement batch.
    fn prepare_batch(
        &mut self,
        _ops: HostOpsRef<'_>,
        _progress: Progress,
    ) -> RResult<ROption<Batch>, RString> {
        RResult::ROk(ROption::RNone)
    }
}

/// An owned strategy object.
pub type StrategyBox = AbiStrategy_TO<'static, RBox<()>>;

/// How the host initialises one parameter tensor.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq)]
pub enum InitKind {
    /// Uniform on `[a, b)`.
    Uniform,
    /// Normal with mean `a` and standard deviation `b`.
    Normal,
    /// Every element equal to `a`.
    Constant,
}

/// One parameter tensor a model asks the host to create and train.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Dotted name, matched by strategies' globs (e.g. `layer0.weight`).
    pub name: RString,
    /// Shape.
    pub shape: RVec<usize>,
    /// Distribution of the initial values.
    pub init: InitKind,
    /// First parameter of the distribution.
    pub a: f64,
    /// Second parameter of the distribution.
    pub b: f64,
}

/// A model as the host sees it.
#[sabi_trait]
pub trait AbiModel: Send {
    /// The parameters for inputs of `input_shape` (one example, no batch dimension) and
    /// `outputs` outputs.
    fn parameters(
        &self,
        input_shape: RSlice<'_, usize>,
        outputs: usize,
    ) -> RResult<RVec<ParamSpec>, RString>;
    /// The forward pass on a batch `input` with `params` in the order of
    /// [`AbiModel::parameters`]. `train` is false during evaluation.
    #[sabi(last_prefix_field)]
    fn forward(
        &self,
        ops: HostOpsRef<'_>,
        input: TensorId,
        params: RSlice<'_, TensorId>,
        train: bool,
    ) -> RResult<TensorId, RString>;
}

/// An owned model object.
pub type ModelBox = AbiModel_TO<'static, RBox<()>>;

/// The loss a data set is meant to be trained with.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossKind {
    /// Softmax cross-entropy; targets are class indices.
    CrossEntropy,
    /// Mean squared error; targets have the output's shape.
    MeanSquaredError,
}

/// One split of a data set, in memory, row-major.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct DataSplit {
    /// Inputs, `len * prod(input_shape)` values.
    pub inputs: RVec<f32>,
    /// Targets: one class index per example (as f32) or `len * outputs` values.
    pub targets: RVec<f32>,
    /// Number of examples.
    pub len: usize,
}

/// A data set's train and held-out splits.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct DataSplits {
    /// Shape of one input example.
    pub input_shape: RVec<usize>,
    /// Number of model outputs (classes for cross-entropy).
    pub outputs: usize,
    /// The loss to train with.
    pub loss: LossKind,
    /// The training split.
    pub train: DataSplit,
    /// The held-out split, evaluated each epoch.
    pub valid: DataSplit,
}

/// A data set as the host sees it.
#[sabi_trait]
pub trait AbiDataset: Send {
    /// Loads (or generates) both splits.
    #[sabi(last_prefix_field)]
    fn load(&self) -> RResult<DataSplits, RString>;

    // Appended in 0.1.4. A plugin built against an older contract lacks it; the host then
    // calls the default body (no test split).

    /// The test split (an official test set), in the layout of [`DataSplits`]'s splits, or
    /// none. With one, the host reports final metrics on it and strategies select on `valid`.
    fn load_test(&self) -> RResult<ROption<DataSplit>, RString> {
        RResult::ROk(ROption::RNone)
    }
}

/// An owned data-set object.
pub type DatasetBox = AbiDataset_TO<'static, RBox<()>>;

/// A component a plugin offers: name, description, default configuration and constructor.
#[repr(C)]
#[derive(StableAbi)]
pub struct ComponentDecl<T> {
    /// Unique name across all loaded plugins (e.g. `full_persistent`).
    pub name: RString,
    /// One line for `pn-host plugins list`.
    pub description: RString,
    /// The default configuration as a JSON object (also the schema users override).
    pub default_config: RString,
    /// Builds the component from a full JSON configuration.
    pub create: extern "C" fn(config_json: RStr<'_>) -> RResult<T, RString>,
}

/// Everything a plugin provides.
#[repr(C)]
#[derive(StableAbi)]
pub struct Components {
    /// Training strategies.
    pub strategies: RVec<ComponentDecl<StrategyBox>>,
    /// Models.
    pub models: RVec<ComponentDecl<ModelBox>>,
    /// Data sets.
    pub datasets: RVec<ComponentDecl<DatasetBox>>,
}

/// The root module every pn plugin exports (see [`crate::export_plugin`]).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginRef)))]
#[sabi(missing_field(panic))]
pub struct Plugin {
    /// Hands the plugin the host's callbacks; called once, before anything else.
    pub init: extern "C" fn(HostInfo),
    /// Lists what the plugin provides.
    #[sabi(last_prefix_field)]
    pub components: extern "C" fn() -> RResult<Components, RString>,
}

impl RootModule for PluginRef {
    declare_root_module_statics! {PluginRef}
    const BASE_NAME: &'static str = "pn_plugin";
    const NAME: &'static str = "pn_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
