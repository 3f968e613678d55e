//! A toolkit for pn plugin authors, on top of the contract (`pn-plugin-api`). Like the
//! contract, it does not depend on Burn: everything here is written with the contract's tensor
//! operations, so a plugin that uses it still builds in seconds and loads into an unchanged
//! `pn-host`. The contract's own guide (`cargo doc -p pn-plugin-api --open`) explains hooks,
//! phases and operations; this crate only saves code.
//!
//! - [`persistence`]: the persistent-neurons strategy (Y. Min, arXiv:2007.01419) as a generic
//!   [`persistence::Persistent`]`<P>`, a whole strategy once a [`persistence::Preset`] names it
//!   and chooses the penalised parameters, plus its pieces: the kernels
//!   ([`persistence::repulsion`]) and the λ release schedule ([`persistence::release_factor`]).
//! - [`anchors`]: the solutions θk* a restart strategy keeps across phases, stacked as one
//!   `[K, n]` kept tensor ([`anchors::Anchors`]), and [`anchors::squared_distances`] to all of
//!   them as one host operation.
//! - [`layers`]: for models, initialisation schemes ([`layers::Init`]) and activations
//!   ([`layers::Activation`]) under the names users write in configs, batch-norm parameter
//!   specs and shape checks.
//! - [`data`]: for data sets, the directory check every file-based data set shares and the
//!   splits of generated regression problems.
//!
//! The plugin's `Cargo.toml` names it next to the contract. Neither crate is on crates.io yet,
//! so both point at the `plugin-api` and `plugin-kit` folders of a pn checkout (or at its
//! repository with `git = ...`):
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! pn-plugin-api = { version = "0.1.4", path = "../pn/plugin-api" }
//! pn-plugin-kit = { version = "0.1.4", path = "../pn/plugin-kit" }
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! A whole plugin: persistence on the convolution layers only (its configuration, `phases`,
//! `lambda`, `kernel`, …, is [`persistence::PersistenceConfig`]):
//!
//! ```no_run
//! use pn_plugin_kit::persistence::{Persistent, Preset};
//!
//! pub struct ConvOnly;
//!
//! impl Preset for ConvOnly {
//!     const NAME: &'static str = "conv_persistent";
//!     const DESCRIPTION: &'static str = "persistent neurons on the convolution layers";
//!     const PARAMS: &'static [&'static str] = &["conv*"];
//! }
//!
//! pn_plugin_api::register_strategy!(Persistent<ConvOnly>);
//! pn_plugin_api::export_plugin!();
//! ```
//!
//! Or only the anchors, for a penalty of one's own: additive deflation (as the `deflation`
//! plugin's `additive` variant with p = 2), restarts from θ0 (the default `SameInit`) that pay
//! `λ Σ_k 1/(‖θ − θk*‖² + ε)` near every solution found before.
//!
//! ```
//! use pn_plugin_api::{Component, Ops, Progress, Result, Strategy, Tensor};
//! use pn_plugin_kit::anchors::{squared_distances, Anchors};
//! # #[derive(Default, serde::Serialize, serde::Deserialize)]
//! # pub struct Config { pub lambda: f64 }
//!
//! pub struct Deflated {
//!     config: Config,
//!     anchors: Anchors,
//! }
//! # impl Component for Deflated {
//! #     const NAME: &'static str = "deflated";
//! #     const DESCRIPTION: &'static str = "restarts deflated at earlier solutions";
//! #     type Config = Config;
//! #     fn new(config: Config) -> Result<Self> { Ok(Self { config, anchors: Anchors::default() }) }
//! # }
//!
//! impl Strategy for Deflated {
//!     fn phases(&self) -> u32 {
//!         4
//!     }
//!     fn end_phase(&mut self, ops: Ops<'_>, _phase: u32) -> Result<()> {
//!         // Kept as `anchor<k>`, and all of them stacked as `anchors`.
//!         self.anchors.push(ops, ops.param_group(&["*"]));
//!         Ok(())
//!     }
//!     fn objective<'a>(&mut self, ops: Ops<'a>, _p: Progress, loss: Tensor<'a>) -> Result<Tensor<'a>> {
//!         let Some(anchors) = self.anchors.stacked(ops) else {
//!             return Ok(loss); // phase 0: no solution yet
//!         };
//!         let d = squared_distances(ops.param_group(&["*"]), anchors);
//!         Ok(loss + (d + 1e-3).recip().sum() * self.config.lambda)
//!     }
//! }
//! ```
#![warn(missing_docs)]

pub mod anchors;
pub mod data;
pub mod layers;
pub mod persistence;

#[cfg(test)]
mod tests {
    #[test]
    fn config_errors_name_the_field() {
        use crate::persistence::{PersistenceConfig, Preset};
        struct P;
        impl Preset for P {
            const NAME: &'static str = "p";
            const DESCRIPTION: &'static str = "";
            const PARAMS: &'static [&'static str] = &["*"];
        }
        let err =
            pn_plugin_api::component::parse_config::<PersistenceConfig<P>>(r#"{"lambda": "big"}"#)
                .err()
                .unwrap();
        assert!(err.contains("`lambda`"), "{err}");
        let err =
            pn_plugin_api::component::parse_config::<PersistenceConfig<P>>(r#"{"lamda": 1.0}"#)
                .err()
                .unwrap();
        assert!(err.contains("lamda"), "{err}");
    }

    #[test]
    fn release_factor_falls_to_zero_over_the_last_part() {
        use crate::persistence::release_factor;
        let at = |step| pn_plugin_api::Progress {
            phase: 1,
            step,
            steps_in_phase: 100,
            epoch: 0,
        };
        assert_eq!(release_factor(at(0), 0.3), 1.0);
        assert_eq!(release_factor(at(70), 0.3), 1.0);
        assert!((release_factor(at(85), 0.3) - 0.5).abs() < 1e-9);
        assert_eq!(release_factor(at(100), 0.3), 0.0);
    }
}
