//! The contract between `pn-host` and its plugins.
//!
//! A pn plugin is a `cdylib` crate that depends on this crate only. It defines any number of
//! **strategies** (how to train: phases, what is added to the objective), **models** (parameters
//! and a forward pass) and **data sets** (in-memory splits), registers them, and exports one
//! ABI-stable root module. Plugins never see Burn: their math is written with [`Tensor`], whose
//! operations the host records in Burn's autodiff graph on the run's device, so a penalty defined
//! in a plugin gets gradients on the GPU without the host knowing its formula.
//!
//! This page is the guide: [writing a plugin](#writing-a-plugin), [the life of a
//! run](#the-life-of-a-run), [phase rules](#phase-rules), [what each callback may
//! do](#what-each-callback-may-do), [random numbers](#random-numbers),
//! [versioning](#versioning) and [performance](#performance). Every hook of [`Strategy`], and
//! every variant of [`PhaseStart`] and [`OptimizerState`], has an example of its own.
//!
//! # Writing a plugin
//!
//! The plugin's `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "my_plugin"
//! version = "0.1.0"
//! edition = "2021"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! pn-plugin-api = "0.1.4"
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! `pn-plugin-api` is not on crates.io yet, so for now the dependency points at a pn checkout
//! instead, with the same version: `pn-plugin-api = { version = "0.1.4", path =
//! "../pn/plugin-api" }` (the checkout's `plugin-api` folder, which builds on its own), or
//! `pn-plugin-api = { git = "<URL of the pn repository>" }` (Cargo finds the crate in the
//! repository by its name). `pn-host new strategy NAME` (or `new model`, `new dataset`) writes
//! such a crate against the checkout `pn-host` was built in. The optional toolkit
//! `pn-plugin-kit` (persistence kernels, anchors, layer helpers) is added the same way, from
//! the checkout's `plugin-kit` folder.
//!
//! A complete strategy plugin:
//!
//! ```no_run
//! use pn_plugin_api::{Component, Ops, Progress, Result, Strategy, Tensor};
//! use serde::{Deserialize, Serialize};
//!
//! /// L2 pull towards zero on the first layer.
//! #[derive(Default, Serialize, Deserialize)]
//! #[serde(default, deny_unknown_fields)]
//! pub struct Config { pub weight: f64 }
//!
//! pub struct FirstLayerDecay(Config);
//!
//! impl Component for FirstLayerDecay {
//!     const NAME: &'static str = "first_layer_decay";
//!     const DESCRIPTION: &'static str = "L2 penalty on layer0 parameters";
//!     type Config = Config;
//!     fn new(config: Config) -> Result<Self> { Ok(Self(config)) }
//! }
//!
//! impl Strategy for FirstLayerDecay {
//!     fn objective<'a>(&mut self, ops: Ops<'a>, _p: Progress, loss: Tensor<'a>) -> Result<Tensor<'a>> {
//!         let theta = ops.param_group(&["layer0.*"]);
//!         Ok(loss + theta.square().sum() * self.0.weight)
//!     }
//! }
//!
//! pn_plugin_api::register_strategy!(FirstLayerDecay);
//! pn_plugin_api::export_plugin!();
//! ```
//!
//! Build it with `cargo build --release` (`crate-type = ["cdylib"]`) and load the `.so` with
//! `pn-host --plugin path/to/libmy_plugin.so`; `pn-host plugins test FILE` runs the conformance
//! checks on it.
//!
//! Beyond penalties, a strategy can write parameters (`Ops::set_params`, in `begin_phase` and
//! `after_step`), take gradients and evaluate the loss again at shifted parameters
//! (`Ops::grad`, `Ops::loss_at`, in `objective`: SAM), read and replace the batch
//! (`Strategy::prepare_batch`), draw seeded noise (`Ops::random_normal`), choose the learning
//! rate (`Strategy::lr_factor`), keep or reset the optimizer's state
//! (`Strategy::optimizer_at_phase_start`) and return an average or an ensemble as a phase's
//! result (`Strategy::phase_result`).
//!
//! # The life of a run
//!
//! A run is one strategy × model × data set × seed. The host
//!
//! 1. asks the model for its parameters ([`Model::parameters`]) and draws θ0 from their
//!    [`ParamSpec`] distributions with the run's seed;
//! 2. asks [`Strategy::phases`] once;
//! 3. for each phase `p` (from 0):
//!    1. for `p ≥ 1`, asks [`Strategy::phase_start`] and then
//!       [`Strategy::optimizer_at_phase_start`] (phase 0 starts from θ0 with a fresh
//!       optimizer, without asking), and sets the parameters up accordingly;
//!    2. calls [`Strategy::begin_phase`] and applies the parameter writes it made;
//!    3. trains for the configured epochs, the batches in the same order in every phase. Each
//!       step, in this order:
//!       1. [`Strategy::lr_factor`]: the step's learning rate is the configured rate × this
//!          factor;
//!       2. [`Strategy::prepare_batch`]: the batch as drawn, or a replacement;
//!       3. the model's forward pass ([`Model::forward`]) and the task loss;
//!       4. [`Strategy::objective`]: the scalar the optimizer minimises;
//!       5. its backward pass, and the optimizer's update (Adam or SGD, as the run
//!          configures) at the step's learning rate;
//!       6. [`Strategy::after_step`], with the updated parameters; its writes are applied
//!          before the next step.
//!
//!       After each epoch the host evaluates the held-out split;
//!    4. calls [`Strategy::phase_result`] (the parameters as trained, one kept vector, or an
//!       ensemble) and evaluates that result on the training and held-out splits: the phase's
//!       [`PhaseSummary`];
//!    5. calls [`Strategy::end_phase`], with the parameters at that result;
//! 4. calls [`Strategy::select_result`] with the summaries of every phase; the phase it names
//!    is the run's result, saved as the run's model.
//!
//! [`Progress`] tells the per-step hooks where they are: `phase`, `step` within the phase (from
//! 0), `steps_in_phase` (batches per epoch × epochs) and `epoch`.
//!
//! # Phase rules
//!
//! - **Where a phase starts.** Phase 0 from θ0. Later phases as [`Strategy::phase_start`] says:
//!   [`PhaseStart::SameInit`] from θ0 again (exactly as drawn), [`PhaseStart::FreshInit`] from
//!   a new initialisation drawn from the [`ParamSpec`]s with a seed derived from (run seed,
//!   phase), [`PhaseStart::Continue`] from the previous phase's result. `SameInit` and
//!   `FreshInit` also start the batch-norm running statistics afresh; `Continue` carries them
//!   over.
//! - **`Continue` after a phase whose `phase_result` handed back vectors** starts from that
//!   result, not from the trained parameters: from the one vector (an average, say), or from
//!   the last member of an ensemble, with the batch-norm statistics recomputed for it. The same
//!   values are what that phase's `end_phase` sees and what the run saves if that phase is
//!   selected.
//! - **Starting from values of the strategy's choosing**: write them in
//!   [`Strategy::begin_phase`] with [`Ops::set_params`]; the write is applied when
//!   `begin_phase` returns, before the first step (see the example on `begin_phase`). It does
//!   not change θ0: a later `SameInit` phase starts from the drawn θ0.
//! - **The optimizer's state at a phase start**: [`Strategy::optimizer_at_phase_start`] says
//!   [`OptimizerState::Reset`] (the default: a fresh optimizer, as in phase 0) or
//!   [`OptimizerState::Keep`] (Adam's moments or SGD's momentum carry over; with `SameInit` or
//!   `FreshInit` they then act on the new starting values). A `begin_phase` write with
//!   `Reset` resets it again. `Keep` also holds after a phase whose `phase_result` handed
//!   back vectors: the last one takes over the trained parameters and their state.
//! - **Kept tensors** ([`Ops::keep`]) are detached copies that live until the run ends, across
//!   phases; the host saves them with the run, by name. Keeping again under a name already used
//!   replaces the earlier tensor and returns the same [`Kept`] key, so every copy of that key
//!   sees the new value; use distinct names (`anchor1`, `anchor2`, …) to keep several.
//! - **Seeds and random numbers**: see [random numbers](#random-numbers).
//!
//! # What each callback may do
//!
//! `phases`, `phase_start`, `optimizer_at_phase_start`, `lr_factor` and `select_result` get no
//! [`Ops`]: they answer from the strategy's own state and their arguments. The others may build
//! tensors, and:
//!
//! | operation | allowed in | what |
//! |---|---|---|
//! | [`Ops::param_group`] | every hook with `Ops` | the parameters as one flat vector; it carries gradients in `objective` |
//! | [`Ops::set_params`] | `begin_phase`, `after_step` | write parameters, applied when the callback returns; [`OptimizerState`] per write |
//! | [`Ops::grad`], [`Ops::loss_at`] | `objective` | a gradient as a flat detached vector (its backward pass uses up the graph behind its argument); the task loss at shifted parameters (a second forward pass) |
//! | [`Ops::batch_inputs`], [`Ops::batch_targets`] | `prepare_batch`, `objective` | the step's batch (class indices as floats) |
//! | [`Ops::random_normal`], [`Ops::random_uniform`] | every hook with `Ops` | seeded noise on the run's device |
//! | [`Ops::run_seed`], [`Ops::learning_rate`] | every hook with `Ops` | the run's seed; the step's learning rate (NaN in `begin_phase`) |
//! | [`Ops::keep`], [`Ops::kept`] | every hook with `Ops` | tensors that outlive the callback, saved with the run |
//! | [`Ops::squared_distances`] | every hook with `Ops` | `‖θ − a_k‖²` to every row of an anchor matrix, one operation |
//!
//! `phase_result` and `end_phase` are read only. An operation outside its hooks (a write in
//! `objective`, the batch in `after_step`) or a handle used after [`Ops::grad`] made it stale
//! fails the run with one message naming what went wrong. A [`Tensor`] handle is valid until
//! the callback that made it returns; hold values longer with [`Ops::keep`].
//!
//! # Random numbers
//!
//! The run's seed is [`Ops::run_seed`]. Random tensors come from [`Ops::random_normal`] and
//! [`Ops::random_uniform`], drawn on the run's device by its generator, which the host seeds
//! before each draw from (run seed, phase, step, callback, number of draws so far in the
//! callback): the same numbers on every run of the same seed on the same kind of device
//! (backends draw differently), and different numbers in different callbacks of one step
//! (`begin_phase` and the `after_step` of step 0 draw differently, as do `phase_result` and
//! `end_phase`). The draws also reseed where
//! later dropout masks come from, equally on every such run. Decisions made on the CPU should
//! be derived from `run_seed()` and [`Progress`], never from the clock or an unseeded
//! generator: `pn-host plugins test` checks that a seed gives bit-identical losses.
//!
//! # Versioning
//!
//! [`API_VERSION`] is this contract's version. A plugin built against `0.1.x` loads into a host
//! built against `0.1.y` with `y ≥ x` (the same minor and the same or a later patch; from 1.0,
//! the same major and a host version at least the plugin's). The contract only grows by
//! appending: new trait methods go after the ones published (a host calls a hook an older
//! plugin lacks through its default), new operations get new codes ([`ops`]), and no layout
//! changes. Any other plugin is refused when it loads, in one line: `FILE was built against
//! pn-plugin-api 0.1.5, but this pn-host uses 0.1.4: rebuild the plugin against pn-plugin-api
//! 0.1.4`. What came when: 0.1.1 `lr_factor`, `after_step`, `phase_result`; 0.1.2
//! `optimizer_at_phase_start`, `prepare_batch`, `run_seed`, `learning_rate`, `random_*`,
//! `set_params`, `grad`, `loss_at`, the batch; 0.1.3 `squared_distances`; 0.1.4
//! `Dataset::load_test` (a test split). Build against the
//! oldest patch that has what the plugin uses, to load into the most hosts.
//!
//! # Performance
//!
//! Every [`Tensor`] operation is one call into the host and one node in its autodiff graph, so
//! a few operations on large tensors beat many on small ones: take the parameters as one
//! vector ([`Ops::param_group`]`(&["*"])`) rather than tensor by tensor, and keep anchors
//! stacked as one `[K, n]` tensor. [`Ops::squared_distances`] computes the distances from a
//! parameter vector to every anchor as one host operation with its own backward (one pass over
//! the anchors each way), instead of `K` differences, squares and sums each the size of the
//! model; `pn_plugin_kit`'s persistence and deflation penalties use it
//! (`pn_plugin_kit::anchors::Anchors` keeps the stacked anchors):
//!
//! ```
//! use pn_plugin_api::{Kept, Ops, Tensor};
//!
//! /// Σ_k exp(−‖θ − θk*‖² / 2σ²) over the anchors kept as one `[K, n]` tensor.
//! fn repulsion<'a>(ops: Ops<'a>, anchors: Kept, sigma2: f64) -> Tensor<'a> {
//!     let d = ops.squared_distances(ops.param_group(&["*"]), ops.kept(anchors));
//!     (d * (-0.5 / sigma2)).exp().sum()
//! }
//! ```
//!
//! Reading values back ([`Tensor::to_vec`], [`Tensor::value`]) synchronises the device: do it
//! in `begin_phase` or `end_phase`, not every step. [`Ops::grad`] and [`Ops::loss_at`] cost a
//! backward and a forward pass each; every run records its passes (`forward_passes`,
//! `backward_passes` in `run.json`).
#![warn(missing_docs)]

pub mod abi;
pub mod component;
pub mod ops;
pub mod tensor;

pub use abi::{
    DataSplit, DataSplits, LogLevel, LossKind, OptimizerState, ParamSpec, PhaseStart, PhaseSummary,
    Progress,
};
pub use component::{
    best_by_valid_loss, log, Component, Dataset, Error, Model, Registration, Result, Strategy,
};
pub use tensor::{Conv2d, Kept, Ops, Tensor};

#[doc(hidden)]
pub use abi_stable;
#[doc(hidden)]
pub use inventory;

/// The version of this contract, `major.minor.patch`.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Registers a [`Strategy`] type in this plugin.
#[macro_export]
macro_rules! register_strategy {
    ($t:ty) => {
        $crate::inventory::submit! {
            $crate::Registration::Strategy($crate::component::strategy_decl::<$t>)
        }
    };
}

/// Registers a [`Model`] type in this plugin.
#[macro_export]
macro_rules! register_model {
    ($t:ty) => {
        $crate::inventory::submit! {
            $crate::Registration::Model($crate::component::model_decl::<$t>)
        }
    };
}

/// Registers a [`Dataset`] type in this plugin.
#[macro_export]
macro_rules! register_dataset {
    ($t:ty) => {
        $crate::inventory::submit! {
            $crate::Registration::Dataset($crate::component::dataset_decl::<$t>)
        }
    };
}

/// Exports the plugin's root module, listing everything registered in the crate. Call it once,
/// at the crate root.
#[macro_export]
macro_rules! export_plugin {
    () => {
        // The symbol name abi_stable's loader looks for (checked by a test in pn-plugin-api).
        #[no_mangle]
        #[allow(non_upper_case_globals)]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::abi_stable::library::LibHeader = {
            extern "C" fn pn_root_module() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(
                    $crate::component::root_module,
                )
            }
            // SAFETY: the constructor returns the root module of type `PluginRef`.
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<$crate::abi::PluginRef>(
                    pn_root_module,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn export_symbol_matches_abi_stable() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }
}
