//! `partial_persistent`: persistent neurons over **chosen** parameters (Y. Min,
//! arXiv:2007.01419), by default the first layer (`params = ["layer0.*"]`, globs over the
//! model's parameter names). Unmatched parameters train without any penalty gradient.

use pn_plugin_kit::persistence::{Persistent, Preset};

/// Penalises the parameters matched by `params` (default: the first layer).
pub struct Partial;

impl Preset for Partial {
    const NAME: &'static str = "partial_persistent";
    const DESCRIPTION: &'static str =
        "persistent neurons on chosen layers (globs in `params`, default layer0.*)";
    const PARAMS: &'static [&'static str] = &["layer0.*"];
}

pn_plugin_api::register_strategy!(Persistent<Partial>);
pn_plugin_api::export_plugin!();
