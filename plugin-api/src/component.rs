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
    ComponentDecl, Components, DataSplit, DataSplits, DatasetBox, HostInfo, HostOpsRef, LogLevel,
    ModelBox, OptimizerState, ParamSpec, PhaseStart, PhaseSummary, Plugin, PluginRef, Progress,
    StrategyBox, TensorId,
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
///
/// Every hook has a default, so a strategy implements only what it changes. The host calls
/// them in this order (the [crate-level guide](crate#the-life-of-a-run) has the whole run):
///
/// - once, before anything else: [`phases`](Strategy::phases);
/// - when a phase starts: [`phase_start`](Strategy::phase_start) and
///   [`optimizer_at_phase_start`](Strategy::optimizer_at_phase_start) (neither for phase 0),
///   then [`begin_phase`](Strategy::begin_phase);
/// - each step: [`lr_factor`](Strategy::lr_factor), [`prepare_batch`](Strategy::prepare_batch),
///   the model's forward pass, [`objective`](Strategy::objective), the backward pass and the
///   optimizer's update at the configured learning rate × `lr_factor`, then
///   [`after_step`](Strategy::after_step);
/// - when a phase ends: [`phase_result`](Strategy::phase_result), the host's evaluation of that
///   result, then [`end_phase`](Strategy::end_phase);
/// - once, after the last phase: [`select_result`](Strategy::select_result).
///
/// What a hook with an [`Ops`] may do besides building tensors depends on the hook (see each,
/// and the [table](crate#what-each-callback-may-do)). A hook that returns an error, panics or
/// makes a tensor operation fail ends the run with that message.
pub trait Strategy: Component {
    /// Number of training phases, 1 to 1000 (1 for plain training). Asked once, before phase
    /// 0. Every phase trains for the run's configured epochs over the same sequence of batches,
    /// so phases differ only in how they start and in what the strategy does.
    ///
    /// ```
    /// # use pn_plugin_api::{Component, PhaseStart, Result, Strategy};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)]
    /// # pub struct Config { pub restarts: u32 }
    /// # pub struct Restarts(Config);
    /// # impl Component for Restarts {
    /// #     const NAME: &'static str = "restarts";
    /// #     const DESCRIPTION: &'static str = "random restarts";
    /// #     type Config = Config;
    /// #     fn new(config: Config) -> Result<Self> { Ok(Self(config)) }
    /// # }
    /// // Random restarts: K phases, each from its own initialisation; the default
    /// // `select_result` then picks the phase with the lowest held-out loss.
    /// impl Strategy for Restarts {
    ///     fn phases(&self) -> u32 {
    ///         self.0.restarts.max(1)
    ///     }
    ///     fn phase_start(&self, _phase: u32) -> PhaseStart {
    ///         PhaseStart::FreshInit
    ///     }
    /// }
    /// ```
    fn phases(&self) -> u32 {
        1
    }
    /// How phase `phase` starts; asked for phases 1 and later only: phase 0 always starts from
    /// θ0, the initialisation the host draws from the run's seed. Default
    /// [`PhaseStart::SameInit`]. [`PhaseStart`] says what each answer does with the parameters
    /// and the batch-norm statistics; the optimizer's state is
    /// [`Strategy::optimizer_at_phase_start`]'s, asked right after.
    ///
    /// ```
    /// # use pn_plugin_api::{Component, PhaseStart, Result, Strategy};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)]
    /// # pub struct Config { pub explore: u32 }
    /// # pub struct ExploreThenRefine(Config);
    /// # impl Component for ExploreThenRefine {
    /// #     const NAME: &'static str = "explore_then_refine";
    /// #     const DESCRIPTION: &'static str = "restarts, then refinement";
    /// #     type Config = Config;
    /// #     fn new(config: Config) -> Result<Self> { Ok(Self(config)) }
    /// # }
    /// // The first `explore` phases start from fresh initialisations; every later phase
    /// // carries on from where the phase before it ended.
    /// impl Strategy for ExploreThenRefine {
    ///     fn phases(&self) -> u32 {
    ///         self.0.explore + 2
    ///     }
    ///     fn phase_start(&self, phase: u32) -> PhaseStart {
    ///         if phase < self.0.explore {
    ///             PhaseStart::FreshInit
    ///         } else {
    ///             PhaseStart::Continue
    ///         }
    ///     }
    /// }
    /// ```
    fn phase_start(&self, _phase: u32) -> PhaseStart {
        PhaseStart::SameInit
    }
    /// Called at the start of each phase (phase 0 included), parameters at their starting
    /// values (those [`Strategy::phase_start`] chose). It may read them ([`Ops::param_group`]),
    /// keep them ([`Ops::keep`]) and write them ([`Ops::set_params`]: applied when it returns,
    /// before the first step; reads in this callback still see the old values), which is how a
    /// phase starts from values of the strategy's choosing; the optimizer state at that point
    /// is what [`Strategy::optimizer_at_phase_start`] chose, and a write's own
    /// [`OptimizerState`] may reset it. There is no batch here, and [`Ops::learning_rate`] is
    /// NaN.
    ///
    /// ```
    /// # use pn_plugin_api::{Component, Ops, OptimizerState, PhaseStart, Result, Strategy};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)]
    /// # pub struct Config { pub shrink: f64, pub noise: f64 }
    /// # pub struct ShrinkPerturb(Config);
    /// # impl Component for ShrinkPerturb {
    /// #     const NAME: &'static str = "shrink_perturb";
    /// #     const DESCRIPTION: &'static str = "shrink-and-perturb restarts";
    /// #     type Config = Config;
    /// #     fn new(config: Config) -> Result<Self> { Ok(Self(config)) }
    /// # }
    /// // Shrink and perturb (Ash & Adams 2020): every phase after the first continues from
    /// // shrink·θ + N(0, noise²) of the previous result, with a fresh optimizer.
    /// impl Strategy for ShrinkPerturb {
    ///     fn phases(&self) -> u32 {
    ///         3
    ///     }
    ///     fn phase_start(&self, _phase: u32) -> PhaseStart {
    ///         PhaseStart::Continue
    ///     }
    ///     fn begin_phase(&mut self, ops: Ops<'_>, phase: u32) -> Result<()> {
    ///         if phase > 0 {
    ///             let theta = ops.param_group(&["*"]);
    ///             let noise = ops.random_normal(&theta.shape(), 0.0, self.0.noise);
    ///             let start = theta * self.0.shrink + noise;
    ///             ops.set_params(&["*"], start, OptimizerState::Reset);
    ///         }
    ///         Ok(())
    ///     }
    /// }
    /// ```
    fn begin_phase(&mut self, _ops: Ops<'_>, _phase: u32) -> Result<()> {
        Ok(())
    }
    /// The objective the optimizer minimises at this step, given the batch's task loss (a
    /// scalar); the host reports `task_loss` alone. Called inside the step, after the forward
    /// pass: here [`Ops::param_group`] carries gradients to the parameters, the batch is
    /// readable ([`Ops::batch_inputs`], [`Ops::batch_targets`]), and [`Ops::grad`] and
    /// [`Ops::loss_at`] are allowed (only here). Parameters cannot be written here. The result
    /// must be a scalar.
    ///
    /// Its gradient is what the optimizer applies, with the results of [`Ops::grad`] held
    /// fixed (they are detached). `pn-host plugins test` checks this against finite
    /// differences, evaluating `prepare_batch` and `objective` again at shifted parameters in
    /// the same step: keep these two hooks free of state changes that later steps depend on
    /// (count steps with `progress`, not with a counter of calls).
    ///
    /// ```
    /// # use pn_plugin_api::{Component, Ops, Progress, Result, Strategy, Tensor};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)]
    /// # pub struct Config { pub rho: f64 }
    /// # pub struct Sam(Config);
    /// # impl Component for Sam {
    /// #     const NAME: &'static str = "my_sam";
    /// #     const DESCRIPTION: &'static str = "sharpness-aware minimisation";
    /// #     type Config = Config;
    /// #     fn new(config: Config) -> Result<Self> { Ok(Self(config)) }
    /// # }
    /// // Sharpness-aware minimisation (Foret et al. 2021): minimise the loss at the worst
    /// // point within radius rho, θ + ρ g/‖g‖. `grad` uses up the graph behind `loss`, so
    /// // what the objective returns is built from tensors made after it.
    /// impl Strategy for Sam {
    ///     fn objective<'a>(
    ///         &mut self,
    ///         ops: Ops<'a>,
    ///         _progress: Progress,
    ///         task_loss: Tensor<'a>,
    ///     ) -> Result<Tensor<'a>> {
    ///         let g = ops.grad(task_loss, &["*"]);
    ///         let epsilon = g * ((g.square().sum().sqrt() + 1e-12).recip() * self.0.rho);
    ///         Ok(ops.loss_at(&["*"], epsilon))
    ///     }
    /// }
    /// ```
    fn objective<'a>(
        &mut self,
        _ops: Ops<'a>,
        _progress: Progress,
        task_loss: Tensor<'a>,
    ) -> Result<Tensor<'a>> {
        Ok(task_loss)
    }
    /// Called at the end of each phase, after [`Strategy::phase_result`] and the host's
    /// evaluation of the phase's result, with the parameters at that result: the parameters as
    /// trained, or, when `phase_result` handed back parameter vectors, the last of them. Read
    /// only (no [`Ops::set_params`], no batch); the place to [`Ops::keep`] what later phases
    /// need, such as anchors.
    ///
    /// ```
    /// # use pn_plugin_api::{Component, Kept, Ops, Progress, Result, Strategy, Tensor};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)]
    /// # pub struct Config { pub lambda: f64, pub sigma2: f64 }
    /// # pub struct Repelled { config: Config, anchors: Option<Kept> }
    /// # impl Component for Repelled {
    /// #     const NAME: &'static str = "repelled";
    /// #     const DESCRIPTION: &'static str = "restarts repelled from earlier solutions";
    /// #     type Config = Config;
    /// #     fn new(config: Config) -> Result<Self> { Ok(Self { config, anchors: None }) }
    /// # }
    /// // Persistence-style: every phase restarts from θ0 (the default `SameInit`) and is
    /// // pushed away from the solutions of the phases before it, kept as one `[K, n]` tensor.
    /// impl Strategy for Repelled {
    ///     fn phases(&self) -> u32 {
    ///         3
    ///     }
    ///     fn end_phase(&mut self, ops: Ops<'_>, _phase: u32) -> Result<()> {
    ///         let solution = ops.param_group(&["*"]).reshape(&[1, -1]);
    ///         let anchors = match self.anchors {
    ///             None => solution,
    ///             Some(kept) => ops.cat(&[ops.kept(kept), solution], 0),
    ///         };
    ///         // Keeping under the same name replaces the earlier tensor.
    ///         self.anchors = Some(ops.keep("anchors", anchors));
    ///         Ok(())
    ///     }
    ///     fn objective<'a>(
    ///         &mut self,
    ///         ops: Ops<'a>,
    ///         _progress: Progress,
    ///         task_loss: Tensor<'a>,
    ///     ) -> Result<Tensor<'a>> {
    ///         let Some(anchors) = self.anchors else {
    ///             return Ok(task_loss);
    ///         };
    ///         // ‖θ − θk*‖² for every anchor k, as one host operation.
    ///         let d = ops.squared_distances(ops.param_group(&["*"]), ops.kept(anchors));
    ///         let penalty = (d * (-0.5 / self.config.sigma2)).exp().sum();
    ///         Ok(task_loss + penalty * self.config.lambda)
    ///     }
    /// }
    /// ```
    fn end_phase(&mut self, _ops: Ops<'_>, _phase: u32) -> Result<()> {
        Ok(())
    }
    /// Which phase's result is the run's result (its index), given one summary per phase in
    /// phase order; called once, after the last phase. Each summary measures that phase's
    /// result (see [`Strategy::phase_result`]); its `valid_loss` and `valid_accuracy` are on
    /// the part of the held-out split kept for selection when the run sets `train.holdout`,
    /// otherwise on the whole held-out split. By default the lowest held-out loss
    /// ([`best_by_valid_loss`]). An index past the last phase fails the run.
    ///
    /// ```
    /// # use pn_plugin_api::{Component, PhaseSummary, Result, Strategy};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)]
    /// # pub struct Config {}
    /// # pub struct ByAccuracy(Config);
    /// # impl Component for ByAccuracy {
    /// #     const NAME: &'static str = "by_accuracy";
    /// #     const DESCRIPTION: &'static str = "restarts selected by accuracy";
    /// #     type Config = Config;
    /// #     fn new(config: Config) -> Result<Self> { Ok(Self(config)) }
    /// # }
    /// // The highest held-out accuracy; the lowest loss for regression (accuracy NaN).
    /// impl Strategy for ByAccuracy {
    ///     fn phases(&self) -> u32 {
    ///         4
    ///     }
    ///     fn select_result(&self, phases: &[PhaseSummary]) -> u32 {
    ///         if phases.iter().any(|p| p.valid_accuracy.is_nan()) {
    ///             return pn_plugin_api::best_by_valid_loss(phases);
    ///         }
    ///         let accuracy = |i: &usize| phases[*i].valid_accuracy;
    ///         (0..phases.len())
    ///             .max_by(|a, b| accuracy(a).total_cmp(&accuracy(b)))
    ///             .unwrap_or(0) as u32
    ///     }
    /// }
    /// ```
    fn select_result(&self, phases: &[PhaseSummary]) -> u32 {
        best_by_valid_loss(phases)
    }
    /// The factor the host multiplies the configured learning rate by at this step (a
    /// schedule); by default 1. Asked first in every step, before
    /// [`Strategy::prepare_batch`]; it must be finite and ≥ 0, or the run fails. The step's
    /// rate is readable as [`Ops::learning_rate`] in that step's `prepare_batch`, `objective`
    /// and `after_step`.
    ///
    /// ```
    /// # use pn_plugin_api::{Component, Progress, Result, Strategy};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)]
    /// # pub struct Config { pub warmup: u64 }
    /// # pub struct Cosine(Config);
    /// # impl Component for Cosine {
    /// #     const NAME: &'static str = "cosine";
    /// #     const DESCRIPTION: &'static str = "cosine learning-rate schedule";
    /// #     type Config = Config;
    /// #     fn new(config: Config) -> Result<Self> { Ok(Self(config)) }
    /// # }
    /// // A linear warm-up over `warmup` steps, then a cosine from the configured rate down to
    /// // 0 at the end of each phase (Loshchilov & Hutter 2017, without restarts).
    /// impl Strategy for Cosine {
    ///     fn lr_factor(&self, p: Progress) -> f64 {
    ///         let warmup = self.0.warmup.min(p.steps_in_phase);
    ///         if p.step < warmup {
    ///             return (p.step + 1) as f64 / warmup as f64;
    ///         }
    ///         let t = (p.step - warmup) as f64 / (p.steps_in_phase - warmup).max(1) as f64;
    ///         0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    ///     }
    /// }
    /// ```
    fn lr_factor(&self, _progress: Progress) -> f64 {
        1.0
    }
    /// Called after every optimizer step, parameters at their updated values; `progress.step`
    /// is the step just taken and `end_of_epoch` marks the last step of an epoch. It may write
    /// the parameters ([`Ops::set_params`], applied when it returns, before the next step);
    /// each write keeps or resets the optimizer's state as its [`OptimizerState`] says. There
    /// is no batch here.
    ///
    /// ```
    /// # use pn_plugin_api::{Component, Kept, Ops, OptimizerState, Progress, Result, Strategy};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)]
    /// # pub struct Config { pub k: u64, pub alpha: f64 }
    /// # pub struct Lookahead { config: Config, slow: Option<Kept> }
    /// # impl Component for Lookahead {
    /// #     const NAME: &'static str = "my_lookahead";
    /// #     const DESCRIPTION: &'static str = "lookahead";
    /// #     type Config = Config;
    /// #     fn new(config: Config) -> Result<Self> { Ok(Self { config, slow: None }) }
    /// # }
    /// // Lookahead (Zhang et al. 2019): every k steps the slow weights φ move α of the way to
    /// // the fast weights θ, and θ restarts from φ; the inner optimizer keeps its moments.
    /// impl Strategy for Lookahead {
    ///     fn begin_phase(&mut self, ops: Ops<'_>, _phase: u32) -> Result<()> {
    ///         self.slow = Some(ops.keep("slow", ops.param_group(&["*"])));
    ///         Ok(())
    ///     }
    ///     fn after_step(&mut self, ops: Ops<'_>, p: Progress, _end_of_epoch: bool) -> Result<()> {
    ///         if (p.step + 1) % self.config.k.max(1) != 0 {
    ///             return Ok(());
    ///         }
    ///         let slow = ops.kept(self.slow.ok_or("begin_phase was not called")?);
    ///         let slow = slow + (ops.param_group(&["*"]) - slow) * self.config.alpha;
    ///         self.slow = Some(ops.keep("slow", slow));
    ///         ops.set_params(&["*"], slow, OptimizerState::Keep);
    ///         Ok(())
    ///     }
    /// }
    /// ```
    fn after_step(
        &mut self,
        _ops: Ops<'_>,
        _progress: Progress,
        _end_of_epoch: bool,
    ) -> Result<()> {
        Ok(())
    }
    /// What phase `phase` produced, called after its last step (before
    /// [`Strategy::end_phase`]) with the parameters as trained, as flat parameter vectors kept
    /// with [`Ops::keep`] (every parameter in declaration order: `ops.param_group(&["*"])`;
    /// a vector of another length fails the run). Read only, like `end_phase`.
    /// Empty (the default): the parameters as trained. One: the host loads it (e.g. an
    /// average of the trajectory) and recomputes batch-norm statistics on the training split.
    /// Several: an ensemble; the host evaluates the average of their predictions (class
    /// probabilities, or outputs for regression), each member with its own batch-norm
    /// statistics. The phase's summary is measured on this result, and a vector handed back
    /// here (for an ensemble, the last) also becomes the phase's parameters: what `end_phase`
    /// sees, what a following [`PhaseStart::Continue`] starts from, and the model saved if the
    /// phase is selected.
    ///
    /// ```
    /// # use pn_plugin_api::{Component, Kept, Ops, Progress, Result, Strategy};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)]
    /// # pub struct Config { pub start: f64 }
    /// # pub struct Swa { config: Config, average: Option<Kept>, count: u32 }
    /// # impl Component for Swa {
    /// #     const NAME: &'static str = "my_swa";
    /// #     const DESCRIPTION: &'static str = "stochastic weight averaging";
    /// #     type Config = Config;
    /// #     fn new(config: Config) -> Result<Self> { Ok(Self { config, average: None, count: 0 }) }
    /// # }
    /// // Stochastic weight averaging (Izmailov et al. 2018): the running mean of the parameters
    /// // at the end of each epoch of the last part of the phase is the phase's result.
    /// impl Strategy for Swa {
    ///     fn begin_phase(&mut self, _ops: Ops<'_>, _phase: u32) -> Result<()> {
    ///         (self.average, self.count) = (None, 0);
    ///         Ok(())
    ///     }
    ///     fn after_step(&mut self, ops: Ops<'_>, p: Progress, end_of_epoch: bool) -> Result<()> {
    ///         if !end_of_epoch || (p.step as f64) < self.config.start * p.steps_in_phase as f64 {
    ///             return Ok(());
    ///         }
    ///         let theta = ops.param_group(&["*"]);
    ///         let mean = match self.average {
    ///             None => theta,
    ///             Some(kept) => {
    ///                 let a = ops.kept(kept);
    ///                 a + (theta - a) * (1.0 / f64::from(self.count + 1))
    ///             }
    ///         };
    ///         self.average = Some(ops.keep("swa.average", mean));
    ///         self.count += 1;
    ///         Ok(())
    ///     }
    ///     fn phase_result(&mut self, _ops: Ops<'_>, _phase: u32) -> Result<Vec<Kept>> {
    ///         // No average yet (a phase too short): the parameters as trained.
    ///         Ok(self.average.into_iter().collect())
    ///     }
    /// }
    /// ```
    fn phase_result(&mut self, _ops: Ops<'_>, _phase: u32) -> Result<Vec<Kept>> {
        Ok(vec![])
    }
    /// What happens to the optimizer's state (Adam's moments, SGD's momentum) when phase
    /// `phase` starts; asked for phases 1 and later, right after [`Strategy::phase_start`]
    /// (phase 0 starts with a fresh optimizer). By default [`OptimizerState::Reset`], a fresh
    /// optimizer per phase. [`OptimizerState::Keep`] carries the state over, most useful with
    /// [`PhaseStart::Continue`]; with `SameInit` or `FreshInit` the new starting values are
    /// written into the same parameters, which keep their state. A write in
    /// [`Strategy::begin_phase`] with [`OptimizerState::Reset`] still resets it.
    ///
    /// ```
    /// # use pn_plugin_api::{Component, OptimizerState, PhaseStart, Progress, Result, Strategy};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)]
    /// # pub struct Config { pub cycles: u32 }
    /// # pub struct WarmRestarts(Config);
    /// # impl Component for WarmRestarts {
    /// #     const NAME: &'static str = "warm_restarts";
    /// #     const DESCRIPTION: &'static str = "cosine cycles with warm restarts";
    /// #     type Config = Config;
    /// #     fn new(config: Config) -> Result<Self> { Ok(Self(config)) }
    /// # }
    /// // SGDR-style warm restarts (Loshchilov & Hutter 2017): each phase is one cosine cycle
    /// // that carries on from the previous one, momentum included.
    /// impl Strategy for WarmRestarts {
    ///     fn phases(&self) -> u32 {
    ///         self.0.cycles.max(1)
    ///     }
    ///     fn phase_start(&self, _phase: u32) -> PhaseStart {
    ///         PhaseStart::Continue
    ///     }
    ///     fn optimizer_at_phase_start(&self, _phase: u32) -> OptimizerState {
    ///         OptimizerState::Keep
    ///     }
    ///     fn lr_factor(&self, p: Progress) -> f64 {
    ///         let t = p.step as f64 / p.steps_in_phase.max(1) as f64;
    ///         0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    ///     }
    ///     // The default `select_result` picks the cycle with the lowest held-out loss.
    /// }
    /// ```
    fn optimizer_at_phase_start(&self, _phase: u32) -> OptimizerState {
        OptimizerState::Reset
    }
    /// Called before each step's forward pass (after [`Strategy::lr_factor`]), with the batch
    /// readable through [`Ops::batch_inputs`] and [`Ops::batch_targets`]; return
    /// `Some((inputs, targets))` to train this step on another batch of the same kinds
    /// (data-level strategies): inputs `[m, ...input shape]` and targets for the same `m`
    /// examples, class indices as floats `[m]` or values `[m, outputs]` as the data set has
    /// them (`m` may differ from the drawn batch's size; the step's training metrics are those
    /// of the returned batch). Default: the batch as drawn. Parameters and the optimizer's
    /// state are not touched here (no [`Ops::set_params`], [`Ops::grad`] or
    /// [`Ops::loss_at`]).
    ///
    /// ```
    /// # use pn_plugin_api::{Component, Ops, Progress, Result, Strategy, Tensor};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)]
    /// # pub struct Config {}
    /// # pub struct Mixup(Config);
    /// # impl Component for Mixup {
    /// #     const NAME: &'static str = "mixup";
    /// #     const DESCRIPTION: &'static str = "mixup for regression";
    /// #     type Config = Config;
    /// #     fn new(config: Config) -> Result<Self> { Ok(Self(config)) }
    /// # }
    /// // Mixup (Zhang et al. 2018) for regression: every example is blended with its
    /// // neighbour in the batch, inputs and targets alike, by one λ ~ U(0, 1) per step drawn
    /// // from the run's seeded stream. Class targets are indices and cannot be blended:
    /// // such batches are left as drawn.
    /// impl Strategy for Mixup {
    ///     fn prepare_batch<'a>(
    ///         &mut self,
    ///         ops: Ops<'a>,
    ///         _progress: Progress,
    ///     ) -> Result<Option<(Tensor<'a>, Tensor<'a>)>> {
    ///         let (x, y) = (ops.batch_inputs(), ops.batch_targets());
    ///         let n = x.shape()[0];
    ///         if y.shape().len() != 2 || n < 2 {
    ///             return Ok(None);
    ///         }
    ///         let lambda = ops.random_uniform(&[1], 0.0, 1.0);
    ///         // λ t + (1 − λ) t', t' the batch rolled by one example.
    ///         let mix = |t: Tensor<'a>| {
    ///             let rolled = ops.cat(&[t.narrow(0, 1, n), t.narrow(0, 0, 1)], 0);
    ///             rolled + (t - rolled) * lambda
    ///         };
    ///         Ok(Some((mix(x), mix(y))))
    ///     }
    /// }
    /// ```
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
    /// A test split (an official test set), kept apart from `load`'s two: with one, runs
    /// report their final metrics on it, and everything that selects (phases, ensembles,
    /// tuning) sees `valid` only. Default: none (runs report on `valid`, or on the part of it
    /// that `train.holdout` does not keep for selection). It touches no parameters and no
    /// optimizer state: the host calls it once, when it loads the data set. Contract 0.1.4.
    ///
    /// ```
    /// # use pn_plugin_api::{Component, DataSplit, DataSplits, Dataset, LossKind, Result};
    /// # #[derive(Default, serde::Serialize, serde::Deserialize)]
    /// # pub struct Config {}
    /// # pub struct Tiny;
    /// # impl Component for Tiny {
    /// #     const NAME: &'static str = "tiny";
    /// #     const DESCRIPTION: &'static str = "a tiny data set";
    /// #     type Config = Config;
    /// #     fn new(_: Config) -> Result<Self> { Ok(Tiny) }
    /// # }
    /// fn split(values: &[f32]) -> DataSplit {
    ///     DataSplit {
    ///         inputs: values.iter().copied().collect(),
    ///         targets: values.iter().map(|&x| if x > 0.0 { 1.0 } else { 0.0 }).collect(),
    ///         len: values.len(),
    ///     }
    /// }
    ///
    /// impl Dataset for Tiny {
    ///     fn load(&self) -> Result<DataSplits> {
    ///         Ok(DataSplits {
    ///             input_shape: vec![1].into(),
    ///             outputs: 2,
    ///             loss: LossKind::CrossEntropy,
    ///             train: split(&[-2.0, -1.0, 1.0, 2.0]),
    ///             valid: split(&[-1.5, 1.5]),
    ///         })
    ///     }
    ///     // The examples no run selects on: final metrics are reported here.
    ///     fn load_test(&self) -> Result<Option<DataSplit>> {
    ///         Ok(Some(split(&[-0.5, 0.5])))
    ///     }
    /// }
    /// ```
    fn load_test(&self) -> Result<Option<DataSplit>> {
        Ok(None)
    }
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
    fn load_test(&self) -> RResult<ROption<DataSplit>, RString> {
        guard(D::NAME, "load_test", || self.0.load_test()).map(ROption::from)
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
