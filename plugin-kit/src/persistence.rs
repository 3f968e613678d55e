//! Persistent neurons (Y. Min, "Persistent Neurons", arXiv:2007.01419): the shared math of the
//! `full_persistent` and `partial_persistent` strategy plugins.
//!
//! Phase 1 trains from θ0 to θ1*. Every later phase restarts from the **same** θ0 and minimises
//! `loss + λ(t) Σ_k φ(‖θ − θk*‖²)` over a parameter group, which pushes the new trajectory away
//! from the solutions already found. φ is a Gaussian `exp(−d / 2σ²)` or an inverse power
//! `(d + ε)^(−p/2)`. The Gaussian width defaults to a scale of the distance phase 1 travelled,
//! `σ = sigma_scale · ‖θ1* − θ0‖` (σ² = ‖θ1* − θ0‖²/16 by default), so the penalty is a barrier
//! around each θk* rather than vanishingly small or dragging the model everywhere; and λ is
//! released linearly to 0 over the last `release_fraction` of each phase so that training settles
//! into a true minimum of the task loss, not a biased point. There is no PyTorch equivalent.

use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::anchors::{squared_distances, Anchors};
use pn_plugin_api::abi::{PhaseStart, Progress};
use pn_plugin_api::component::{Component, Result, Strategy};
use pn_plugin_api::tensor::{Kept, Ops, Tensor};

/// The repulsion kernel φ applied to the squared distance `d = ‖θ − θk*‖²`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kernel {
    /// `exp(−d / 2σ²)`.
    Gaussian,
    /// `(d + ε)^(−p/2)`.
    InversePower,
}

/// What distinguishes the persistence plugins: their name and default parameter group.
pub trait Preset: Send + Sync + 'static {
    /// Component name.
    const NAME: &'static str;
    /// One-line description.
    const DESCRIPTION: &'static str;
    /// Default globs of the penalised parameters.
    const PARAMS: &'static [&'static str];
}

/// Configuration of a persistence strategy.
#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, bound = "")]
pub struct PersistenceConfig<P: Preset> {
    /// Number of phases K (≥ 2: phase 1 finds θ1*, later phases are repelled). Default 3.
    pub phases: u32,
    /// Globs of the penalised parameter names (`*` for all).
    pub params: Vec<String>,
    /// The kernel φ. Default `gaussian`.
    pub kernel: Kernel,
    /// Penalty weight λ (> 0). Default 1.
    pub lambda: f64,
    /// σ as a multiple of ‖θ1* − θ0‖ over the group (> 0). Default 0.25.
    pub sigma_scale: f64,
    /// A fixed σ instead of `sigma_scale` (> 0 when set).
    pub sigma: Option<f64>,
    /// Inverse-power exponent p (> 0). Default 2.
    pub power: f64,
    /// Inverse-power offset ε (> 0). Default 0.01.
    pub epsilon: f64,
    /// Fraction of each phase over which λ falls linearly to 0, in [0, 1]. Default 0.3.
    pub release_fraction: f64,
    #[serde(skip)]
    preset: PhantomData<P>,
}

impl<P: Preset> Default for PersistenceConfig<P> {
    fn default() -> Self {
        Self {
            phases: 3,
            params: P::PARAMS.iter().map(|s| s.to_string()).collect(),
            kernel: Kernel::Gaussian,
            lambda: 1.0,
            sigma_scale: 0.25,
            sigma: None,
            power: 2.0,
            epsilon: 0.01,
            release_fraction: 0.3,
            preset: PhantomData,
        }
    }
}

/// The persistence strategy; `P` names it and chooses the default parameter group.
pub struct Persistent<P: Preset> {
    config: PersistenceConfig<P>,
    theta0: Option<Kept>,
    anchors: Anchors,
    sigma2: f64,
}

fn check(ok: bool, field: &str, rule: &str, value: impl std::fmt::Display) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(format!("config field `{field}` must be {rule}, got {value}").into())
    }
}

impl<P: Preset> Component for Persistent<P> {
    const NAME: &'static str = P::NAME;
    const DESCRIPTION: &'static str = P::DESCRIPTION;
    type Config = PersistenceConfig<P>;

    fn new(c: Self::Config) -> Result<Self> {
        check(c.phases >= 2, "phases", "at least 2", c.phases)?;
        check(
            !c.params.is_empty(),
            "params",
            "a non-empty list of globs",
            "[]",
        )?;
        check(c.lambda > 0.0, "lambda", "> 0", c.lambda)?;
        check(c.sigma_scale > 0.0, "sigma_scale", "> 0", c.sigma_scale)?;
        check(
            c.sigma.is_none_or(|s| s > 0.0),
            "sigma",
            "> 0",
            c.sigma.unwrap_or_default(),
        )?;
        check(c.power > 0.0, "power", "> 0", c.power)?;
        check(c.epsilon > 0.0, "epsilon", "> 0", c.epsilon)?;
        let r = c.release_fraction;
        check((0.0..=1.0).contains(&r), "release_fraction", "in [0, 1]", r)?;
        Ok(Self {
            config: c,
            theta0: None,
            anchors: Anchors::default(),
            sigma2: 1.0,
        })
    }
}

/// λ's multiplier at `progress`: 1, then linear to 0 over the last `release` of the phase.
pub fn release_factor(progress: Progress, release: f64) -> f64 {
    if progress.steps_in_phase == 0 || release <= 0.0 {
        return 1.0;
    }
    let t = progress.step as f64 / progress.steps_in_phase as f64;
    ((1.0 - t) / release).clamp(0.0, 1.0)
}

/// `Σ_k φ(‖θ − θk*‖²)` for `theta` `[n]` and `anchors` `[K, n]`.
pub fn repulsion<'a>(
    kernel: Kernel,
    theta: Tensor<'a>,
    anchors: Tensor<'a>,
    sigma2: f64,
    power: f64,
    epsilon: f64,
) -> Tensor<'a> {
    let d = squared_distances(theta, anchors);
    let phi = match kernel {
        Kernel::Gaussian => (d * (-0.5 / sigma2)).exp(),
        Kernel::InversePower => (d + epsilon).powf(-power / 2.0),
    };
    phi.sum()
}

impl<P: Preset> Persistent<P> {
    /// σ² in use (after phase 1).
    pub fn sigma2(&self) -> f64 {
        self.sigma2
    }

    /// The penalty `Σ_k φ(‖θ − θk*‖²)` at `theta` (without λ), or `None` before any anchor.
    pub fn penalty<'a>(&self, ops: Ops<'a>, theta: Tensor<'a>) -> Option<Tensor<'a>> {
        let anchors = self.anchors.stacked(ops)?;
        let c = &self.config;
        Some(repulsion(
            c.kernel,
            theta,
            anchors,
            self.sigma2,
            c.power,
            c.epsilon,
        ))
    }
}

impl<P: Preset> Strategy for Persistent<P> {
    fn phases(&self) -> u32 {
        self.config.phases
    }

    fn phase_start(&self, _phase: u32) -> PhaseStart {
        PhaseStart::SameInit
    }

    fn begin_phase(&mut self, ops: Ops<'_>, phase: u32) -> Result<()> {
        if phase == 0 {
            self.theta0 = Some(ops.keep("theta0", ops.param_group(&self.config.params)));
        } else if phase == 1 {
            let (theta0, first) = (
                self.theta0.ok_or("phase 0 did not start")?,
                self.anchors.first().ok_or("phase 0 did not end")?,
            );
            let travelled2 = (ops.kept(first) - ops.kept(theta0)).square().sum().value();
            self.sigma2 = match self.config.sigma {
                Some(s) => s * s,
                None if travelled2 > 0.0 => self.config.sigma_scale.powi(2) * travelled2,
                None => {
                    // E.g. dead ReLU units: the anchor is θ0 itself, where the penalty's
                    // gradient vanishes, so the later phases repeat phase 1. Say so and go on
                    // (the run's result is still a valid, if unhelped, one).
                    pn_plugin_api::component::log(
                        pn_plugin_api::abi::LogLevel::Warn,
                        &format!(
                            "{}: phase 1 did not move the penalised parameters (‖θ1* − θ0‖ = 0), so the penalty cannot push them from θ0; later phases repeat phase 1",
                            P::NAME
                        ),
                    );
                    self.config.sigma_scale.powi(2)
                }
            };
            pn_plugin_api::component::log(
                pn_plugin_api::abi::LogLevel::Debug,
                &format!(
                    "{}: ‖θ1* − θ0‖² = {travelled2:.4e}, σ² = {:.4e}",
                    P::NAME,
                    self.sigma2
                ),
            );
        }
        Ok(())
    }

    fn objective<'a>(
        &mut self,
        ops: Ops<'a>,
        progress: Progress,
        task_loss: Tensor<'a>,
    ) -> Result<Tensor<'a>> {
        let weight = self.config.lambda * release_factor(progress, self.config.release_fraction);
        if weight == 0.0 {
            return Ok(task_loss);
        }
        match self.penalty(ops, ops.param_group(&self.config.params)) {
            Some(penalty) => Ok(task_loss + penalty * weight),
            None => Ok(task_loss),
        }
    }

    fn end_phase(&mut self, ops: Ops<'_>, _phase: u32) -> Result<()> {
        self.anchors.push(ops, ops.param_group(&self.config.params));
        Ok(())
    }
}
