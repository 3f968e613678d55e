//! The safe traits plugin authors implement, and the adapters that turn them into ABI objects.
//!
//! Implement [`Component`] plus one of [`Strategy`], [`Model`] or [`Dataset`], register the type
//! with [`crate::register_strategy!`] (or `register_model!` / `register_dataset!`), and call
//! [`crate::export_plugin!`] once in the crate. Every callback runs under `catch_unwind`: a panic
//! becomes an error the host reports as that run's failure instead of aborting the process.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::abi::{
    AbiDataset, AbiDataset_TO, AbiModel, AbiModel_TO, AbiStrategy, AbiStrategy_TO, Batch,
    ComponentDecl, Components, DataSplits, DatasetBox, HostInfo, HostOpsRef, LogLevel, ModelBox,
    OptimizerState, ParamSpec, PhaseStart, PhaseSummary, Plugin, PluginRef, Progress, StrategyBox,
    TensorId,
};
use crate::tensor::{Kept, Ops, Tensor};

/// Errors plugin callbacks return: anything that implements `std::error::Error`, or a
/// message (`"lambda must be positive".into()`).
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Result of plugin callbacks.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What every component (strategy, model, data set) declares.
pub trait Component: Sized + Send + 'static {
    /// Unique name users select the component by, e.g. `full_persistent`.
    const NAME: &'static str;
    /// One line shown by `pn-host plugins list`.
    const DESCRIPTION: &'static str;
    /// Configuration: serde, with `#[serde(default, deny_unknown_fields)]` and a `Default`
    /// that is a sensible setting, since the defaults are what users see and override.
    type Config: Serialize + DeserializeOwned + Default;
    /// Builds the component, rejecting invalid values with a message naming the field.
    fn new(config: Self::Config) -> Result<Self>;
}

/// A training strategy: how many phases, how each starts, what it adds to the objective.
pub trait Strategy: Component {
    /// Number of training phases (1 for plain training).
    fn phases(&self) -> u32 {
        1
    }
    /// How phase `phase` (from 0; phase 0 always starts from a fresh initialisation) starts.
    fn phase_start(&self, _phase: u32) -> PhaseStart {
        PhaseStart::SameInit
    }
    /// Called at the start of each phase, parameters at their starting values. It may write
    /// them ([`Ops::set_params`]: applied when it returns, before the first step), which is how
    /// a phase starts from values of the strategy's choosing; the optimizer state at that point
    /// is what [`Strategy::optimizer_at_phase_start`] chose, and a write's own
    /// [`OptimizerState`] may reset it.
    fn begin_phase(&mut self, _ops: Ops<'_>, _phase: u32) -> Result<()> {
        Ok(())
    }
    /// The objective the optimizer minimises at this step; the host reports `task_loss` alone.
    fn objective<'a>(
        &mut self,
        _ops: Ops<'a>,
        _progress: Progress,
        task_loss: Tensor<'a>,
    ) -> Result<Tensor<'a>> {
        Ok(task_loss)
    }
    /// Called at the end of each phase, parameters at their converged values.
    fn end_phase(&mut self, _ops: Ops<'_>, _phase: u32) -> Result<()> {
        Ok(())
    }
    /// Which phase's model is the result: by default the lowest held-out loss.
    fn select_result(&self, phases: &[PhaseSummary]) -> u32 {
        best_by_valid_loss(phases)
    }
    /// The factor the host multiplies the configured learning rate by at this step (a
    /// schedule); by default 1.
    fn lr_factor(&self, _progress: Progress) -> f64 {
        1.0
    }
    /// Called after every optimizer step, parameters at their updated values; `progress.step`
    /// is the step just taken and `end_of_epoch` marks the last step of an epoch. It may write
    /// the parameters ([`Ops::set_params`], applied when it returns, before the next step);
    /// each write keeps or resets the optimizer's state as its [`OptimizerState`] says.
    fn after_step(
        &mut self,
        _ops: Ops<'_>,
        _progress: Progress,
        _end_of_epoch: bool,
    ) -> Result<()> {
        Ok(())
    }
    /// What phase `phase` produced, called after its last step, as flat parameter vectors kept
    /// with [`Ops::keep`] (every parameter in declaration order: `ops.param_group(&["*"])`).
    /// Empty (the default): the parameters as trained. One: the host loads it (e.g. an
    /// average of the trajectory) and recomputes batch-norm statistics on the training split.
    /// Several: an ensemble; the host evaluates the average of their predictions (class
    /// probabilities, or outputs for regression).
    fn phase_result(&mut self, _ops: Ops<'_>, _phase: u32) -> Result<Vec<Kept>> {
        Ok(vec![])
    }
    /// What happens to the optimizer's state when phase `phase` (from 1) starts: by default
    /// [`OptimizerState::Reset`], a fresh optimizer per phase. [`OptimizerState::Keep`] carries
    /// Adam's moments or SGD's momentum over (useful with [`PhaseStart::Continue`]).
    fn optimizer_at_phase_start(&self, _phase: u32) -> OptimizerState {
        OptimizerState::Reset
    }
    /// Called before each step's forward pass, with the batch readable through
    /// [`Ops::batch_inputs`] and [`Ops::batch_targets`]; return `Some((inputs, targets))` to
    /// train this step on another batch of the same kinds (data-level strategies). Default:
    /// the batch as drawn. Parameters and the optimizer's state are not touched here.
    fn prepare_batch<'a>(
        &mut self,
        _ops: Ops<'a>,
        _progress: Progress,
    ) -> Result<Option<(Tensor<'a>, Tensor<'a>)>> {
        Ok(None)
    }
}

/// The index of the phase with the lowest held-out loss (NaN counts as worst).
pub fn best_by_valid_loss(phases: &[PhaseSummary]) -> u32 {
    let key = |p: &PhaseSummary| {
        if p.valid_loss.is_nan() {
            f64::INFINITY
        } else {
            p.valid_loss
        }
    };
    (0..phases.len())
        .min_by(|&a, &b| key(&phases[a]).total_cmp(&key(&phases[b])))
        .unwrap_or(0) as u32
}

/// A model: which parameters it needs and its forward pass, written with host operations.
pub trait Model: Component {
    /// The parameters for one example of shape `input_shape` and `outputs` outputs.
    fn parameters(&self, input_shape: &[usize], outputs: usize) -> Result<Vec<ParamSpec>>;
    /// The forward pass on a batch; `params` in the order of [`Model::parameters`].
    fn forward<'a>(
        &self,
        ops: Ops<'a>,
        input: Tensor<'a>,
        params: &[Tensor<'a>],
        train: bool,
    ) -> Result<Tensor<'a>>;
}

/// A data set: both splits in memory.
pub trait Dataset: Component {
    /// Loads or generates the data, with a clear error for missing or malformed files.
    fn load(&self) -> Result<DataSplits>;
}

impl ParamSpec {
    fn with(name: &str, shape: &[usize], init: crate::abi::InitKind, a: f64, b: f64) -> Self {
        Self {
            name: name.into(),
            shape: RVec::from_slice(shape),
            init,
            a,
            b,
        }
    }
    /// Uniform on `[low, high)`.
    pub fn uniform(name: &str, shape: &[usize], low: f64, high: f64) -> Self {
        Self::with(name, shape, crate::abi::InitKind::Uniform, low, high)
    }
    /// Normal with `mean` and `std`.
    pub fn normal(name: &str, shape: &[usize], mean: f64, std: f64) -> Self {
        Self::with(name, shape, crate::abi::InitKind::Normal, mean, std)
    }
    /// Every element `value`.
    pub fn constant(name: &str, shape: &[usize], value: f64) -> Self {
        Self::with(name, shape, crate::abi::InitKind::Constant, value, 0.0)
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

// ---------------------------------------------------------------------------------------------
// Panic capture

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    // This `.so` has its own copy of std and so its own hook: record the message and location
    // for the error we return instead of printing a trace.
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()));
        let message = payload_message(info.payload());
        LAST_PANIC
            .with(|p| *p.borrow_mut() = Some(format!("{message}{}", location.unwrap_or_default())));
    }));
}

/// The message inside a panic payload (`&str` or `String`).
pub fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Runs a plugin callback, turning errors and panics into the ABI's `RResult`.
pub fn guard<T>(
    component: &str,
    callback: &str,
    f: impl FnOnce() -> Result<T>,
) -> RResult<T, RString> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(e)) => RResult::RErr(format!("{component}: {e}").into()),
        Err(payload) => {
            let message = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| payload_message(payload.as_ref()));
            RResult::RErr(format!("{component} panicked in {callback}: {message}").into())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Logging through the host

static HOST: OnceLock<HostInfo> = OnceLock::new();

/// Sends a log line to the host (stderr if the plugin is used outside a host).
pub fn log(level: LogLevel, message: &str) {
    match HOST.get() {
        Some(host) => (host.log)(level, message.into()),
        None => eprintln!("{message}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// Parses a component's JSON configuration; errors name the offending field.
pub fn parse_config<C: DeserializeOwned>(json: &str) -> std::result::Result<C, String> {
    let de = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            format!("invalid config: {inner}")
        } else {
            format!("config field `{path}`: {inner}")
        }
    })
}

fn build<C: Component>(json: RStr<'_>) -> RResult<C, RString> {
    guard(C::NAME, "new", || {
        let config: C::Config = parse_config(json.as_str())?;
        C::new(config)
    })
}

fn decl<C: Component, T>(
    create: extern "C" fn(RStr<'_>) -> RResult<T, RString>,
) -> ComponentDecl<T> {
    let default = serde_json::to_string(&C::Config::default())
        .unwrap_or_else(|e| panic!("{}: default config does not serialise: {e}", C::NAME));
    ComponentDecl {
        name: C::NAME.into(),
        description: C::DESCRIPTION.into(),
        default_config: default.into(),
        create,
    }
}

// ---------------------------------------------------------------------------------------------
// Adapters: safe traits -> ABI trait objects

struct Adapter<C>(C);

fn with_ops<'a, T>(ops: &'a HostOpsRef<'_>, f: impl FnOnce(Ops<'a>) -> T) -> T {
    f(Ops::new(ops))
}

impl<S: Strategy> AbiStrategy for Adapter<S> {
    fn phases(&self) -> RResult<u32, RString> {
        guard(S::NAME, "phases", || Ok(self.0.phases()))
    }
    fn phase_start(&self, phase: u32) -> RResult<PhaseStart, RString> {
        guard(S::NAME, "phase_start", || Ok(self.0.phase_start(phase)))
    }
    fn begin_phase(&mut self, ops: HostOpsRef<'_>, phase: u32) -> RResult<(), RString> {
        guard(S::NAME, "begin_phase", || {
            with_ops(&ops, |o| self.0.begin_phase(o, phase))
        })
    }
    fn objective(
        &mut self,
        ops: HostOpsRef<'_>,
        progress: Progress,
        task_loss: TensorId,
    ) -> RResult<TensorId, RString> {
        guard(S::NAME, "objective", || {
            with_ops(&ops, |o| {
                Ok(self.0.objective(o, progress, o.tensor(task_loss))?.id())
            })
        })
    }
    fn end_phase(&mut self, ops: HostOpsRef<'_>, phase: u32) -> RResult<(), RString> {
        guard(S::NAME, "end_phase", || {
            with_ops(&ops, |o| self.0.end_phase(o, phase))
        })
    }
    fn select_result(&self, phases: RSlice<'_, PhaseSummary>) -> RResult<u32, RString> {
        guard(S::NAME, "select_result", || {
            Ok(self.0.select_result(phases.as_slice()))
        })
    }
    fn lr_factor(&self, progress: Progress) -> RResult<f64, RString> {
        guard(S::NAME, "lr_factor", || Ok(self.0.lr_factor(progress)))
    }
    fn after_step(
        &mut self,
        ops: HostOpsRef<'_>,
        progress: Progress,
        end_of_epoch: bool,
    ) -> RResult<(), RString> {
        guard(S::NAME, "after_step", || {
            with_ops(&ops, |o| self.0.after_step(o, progress, end_of_epoch))
        })
    }
    fn optimizer_at_phase_start(&self, phase: u32) -> RResult<OptimizerState, RString> {
        guard(S::NAME, "optimizer_at_phase_start", || {
            Ok(self.0.optimizer_at_phase_start(phase))
        })
    }
    fn prepare_batch(
        &mut self,
        ops: HostOpsRef<'_>,
        progress: Progress,
    ) -> RResult<ROption<Batch>, RString> {
        guard(S::NAME, "prepare_batch", || {
            with_ops(&ops, |o| {
                let batch = self.0.prepare_batch(o, progress)?;
                Ok(batch
                    .map(|(inputs, targets)| Batch {
                        inputs: inputs.id(),
                        targets: targets.id(),
                    })
                    .into())
            })
        })
    }
    fn phase_result(&mut self, ops: HostOpsRef<'_>, phase: u32) -> RResult<RVec<u64>, RString> {
        guard(S::NAME, "phase_result", || {
            with_ops(&ops, |o| {
                let kept = self.0.phase_result(o, phase)?;
                Ok(kept.into_iter().map(Kept::key).collect())
            })
        })
    }
}

impl<M: Model> AbiModel for Adapter<M> {
    fn parameters(
        &self,
        input_shape: RSlice<'_, usize>,
        outputs: usize,
    ) -> RResult<RVec<ParamSpec>, RString> {
        guard(M::NAME, "parameters", || {
            Ok(self.0.parameters(input_shape.as_slice(), outputs)?.into())
        })
    }
    fn forward(
        &self,
        ops: HostOpsRef<'_>,
        input: TensorId,
        params: RSlice<'_, TensorId>,
        train: bool,
    ) -> RResult<TensorId, RString> {
        guard(M::NAME, "forward", || {
            with_ops(&ops, |o| {
                let params: Vec<Tensor<'_>> = params.iter().map(|&p| o.tensor(p)).collect();
                Ok(self.0.forward(o, o.tensor(input), &params, train)?.id())
            })
        })
    }
}

impl<D: Dataset> AbiDataset for Adapter<D> {
    fn load(&self) -> RResult<DataSplits, RString> {
        guard(D::NAME, "load", || self.0.load())
    }
}

extern "C" fn create_strategy<S: Strategy>(json: RStr<'_>) -> RResult<StrategyBox, RString> {
    build::<S>(json).map(|s| AbiStrategy_TO::from_value(Adapter(s), TD_Opaque))
}

extern "C" fn create_model<M: Model>(json: RStr<'_>) -> RResult<ModelBox, RString> {
    build::<M>(json).map(|m| AbiModel_TO::from_value(Adapter(m), TD_Opaque))
}

extern "C" fn create_dataset<D: Dataset>(json: RStr<'_>) -> RResult<DatasetBox, RString> {
    build::<D>(json).map(|d| AbiDataset_TO::from_value(Adapter(d), TD_Opaque))
}

// ---------------------------------------------------------------------------------------------
// Registration (inventory) and the root module

/// One registered component; created by the `register_*!` macros.
pub enum Registration {
    /// A strategy.
    Strategy(fn() -> ComponentDecl<StrategyBox>),
    /// A model.
    Model(fn() -> ComponentDecl<ModelBox>),
    /// A data set.
    Dataset(fn() -> ComponentDecl<DatasetBox>),
}

inventory::collect!(Registration);

/// The declaration of strategy `S` (used by [`crate::register_strategy!`]).
pub fn strategy_decl<S: Strategy>() -> ComponentDecl<StrategyBox> {
    decl::<S, _>(create_strategy::<S>)
}

/// The declaration of model `M` (used by [`crate::register_model!`]).
pub fn model_decl<M: Model>() -> ComponentDecl<ModelBox> {
    decl::<M, _>(create_model::<M>)
}

/// The declaration of data set `D` (used by [`crate::register_dataset!`]).
pub fn dataset_decl<D: Dataset>() -> ComponentDecl<DatasetBox> {
    decl::<D, _>(create_dataset::<D>)
}

extern "C" fn init(host: HostInfo) {
    install_panic_hook();
    let _ = HOST.set(host);
}

extern "C" fn components() -> RResult<Components, RString> {
    guard("plugin", "components", || {
        let mut all = Components {
            strategies: RVec::new(),
            models: RVec::new(),
            datasets: RVec::new(),
        };
        for registration in inventory::iter::<Registration> {
            match registration {
                Registration::Strategy(f) => all.strategies.push(f()),
                Registration::Model(f) => all.models.push(f()),
                Registration::Dataset(f) => all.datasets.push(f()),
            }
        }
        Ok(all)
    })
}

/// The root module of this plugin (used by [`crate::export_plugin!`]).
pub fn root_module() -> PluginRef {
    use abi_stable::prefix_type::PrefixTypeTrait;
    Plugin { init, components }.leak_into_prefix()
}

/// Boxes a strategy as the host would receive it (for tests that drive a strategy directly).
pub fn strategy_box<S: Strategy>(strategy: S) -> StrategyBox {
    AbiStrategy_TO::from_value(Adapter(strategy), TD_Opaque)
}

/// Boxes a model as the host would receive it (for tests that drive a model directly).
pub fn model_box<M: Model>(model: M) -> ModelBox {
    AbiModel_TO::from_value(Adapter(model), TD_Opaque)
}
