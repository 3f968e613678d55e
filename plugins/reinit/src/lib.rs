//! `reinit`: random restarts, the baseline of the persistent-neurons paper (arXiv:2007.01419).
//! K phases, each from a fresh initialisation drawn with a new seed; the result is the phase
//! with the lowest held-out loss. It costs K times the steps of `baseline`.

use pn_plugin_api::{Component, PhaseStart, Result, Strategy};
use serde::{Deserialize, Serialize};

/// Random-restart settings.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Number of phases (initialisations), ≥ 1. Default 3.
    pub phases: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self { phases: 3 }
    }
}

/// Random restarts.
pub struct Reinit(Config);

impl Component for Reinit {
    const NAME: &'static str = "reinit";
    const DESCRIPTION: &'static str =
        "random restarts: K fresh initialisations, best by validation loss";
    type Config = Config;
    fn new(config: Config) -> Result<Self> {
        if config.phases == 0 {
            return Err("config field `phases` must be at least 1, got 0".into());
        }
        Ok(Reinit(config))
    }
}

impl Strategy for Reinit {
    fn phases(&self) -> u32 {
        self.0.phases
    }
    fn phase_start(&self, _phase: u32) -> PhaseStart {
        PhaseStart::FreshInit
    }
}

pn_plugin_api::register_strategy!(Reinit);
pn_plugin_api::export_plugin!();
