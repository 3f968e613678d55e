//! `full_persistent`: persistent neurons over **all** parameters (Y. Min, arXiv:2007.01419).
//! Every phase after the first restarts from θ0 with a penalty λ Σ_k φ(‖θ − θk*‖²) pushing
//! the parameters away from the earlier solutions; the math is in
//! [`pn_plugin_kit::persistence`], shared with `partial_persistent`.

use pn_plugin_kit::persistence::{Persistent, Preset};

/// Penalises every parameter.
pub struct Full;

impl Preset for Full {
    const NAME: &'static str = "full_persistent";
    const DESCRIPTION: &'static str =
        "persistent neurons: restart from θ0, repelled from earlier solutions (all parameters)";
    const PARAMS: &'static [&'static str] = &["*"];
}

pn_plugin_api::register_strategy!(Persistent<Full>);
pn_plugin_api::export_plugin!();
