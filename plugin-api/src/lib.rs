//! The contract between `pn-host` and its plugins.
//!
//! A pn plugin is a `cdylib` crate that depends on this crate only. It defines any number of
//! **strategies** (how to train: phases, what is added to the objective), **models** (parameters
//! and a forward pass) and **data sets** (in-memory splits), registers them, and exports one
//! ABI-stable root module. Plugins never see Burn: their math is written with [`Tensor`], whose
//! operations the host records in Burn's autodiff graph on the run's device, so a penalty defined
//! in a plugin gets gradients on the GPU without the host knowing its formula.
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
//! `pn-host --plugin path/to/libmy_plugin.so`. Compatibility: a plugin loads into any host
//! built against the same `major.minor` of this crate (for 0.x, the same minor) and the same
//! or a later patch; the contract only grows by appending, and a host calls a method an older
//! plugin lacks through its default.
//!
//! Beyond penalties, a strategy can write parameters (`Ops::set_params`, in `begin_phase` and
//! `after_step`), take gradients and evaluate the loss again at shifted parameters
//! (`Ops::grad`, `Ops::loss_at`, in `objective`: SAM), read and replace the batch
//! (`Strategy::prepare_batch`), draw seeded noise (`Ops::random_normal`), choose the learning
//! rate (`Strategy::lr_factor`), keep or reset the optimizer's state
//! (`Strategy::optimizer_at_phase_start`) and return an average or an ensemble as a phase's
//! result (`Strategy::phase_result`).
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
