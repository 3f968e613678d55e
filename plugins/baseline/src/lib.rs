//! `baseline`: plain training. One phase from the seed's initialisation, minimising the task
//! loss alone; the reference every other strategy is compared with.

use pn_plugin_api::{Component, Result, Strategy};
use serde::{Deserialize, Serialize};

/// No settings: the optimizer and epochs belong to the workload.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

/// Plain training.
pub struct Baseline;

impl Component for Baseline {
    const NAME: &'static str = "baseline";
    const DESCRIPTION: &'static str = "plain training: one phase, task loss only";
    type Config = Config;
    fn new(_: Config) -> Result<Self> {
        Ok(Baseline)
    }
}

impl Strategy for Baseline {}

pn_plugin_api::register_strategy!(Baseline);
pn_plugin_api::export_plugin!();
