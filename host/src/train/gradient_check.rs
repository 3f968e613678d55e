//! The conformance kit's gradient check: the gradient a training step applies, against central
//! finite differences of the strategy's objective along one direction.
//!
//! With f the objective of one step's batch, autodiff gives ∇f(θ)·v and finite differences
//! give (f(θ + εv) − f(θ − εv)) / 2ε. The direction v mixes the gradient's own direction with a
//! random one (drawn from the run's seed), so that ∇f·v is large enough to measure in f32 even
//! for models with many parameters, while a term missing from the gradient still shows. The
//! three evaluations see the same batch, the same random numbers (the strategy's draws and
//! dropout masks) and the same `Ops::grad` results, which are held fixed because they are
//! detached constants of the objective by contract (SAM's ascent direction); they leave the
//! batch-norm statistics and the run's pass counts as they were.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use pn_plugin_api::abi::StrategyBox;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use crate::device::B;
use crate::train::data::Targets;
use crate::train::dyn_tensor::DynTensor;
use crate::train::params::{ParamStore, Values};
use crate::train::seeds::mix;
use crate::train::session::{GradReplay, StatsMode};
use crate::train::step::{ModelRunner, StepAt};
use crate::with_dyn;

/// The step sizes tried, largest first.
const EPSILONS: [f64; 3] = [1e-2, 3e-3, 1e-3];
/// The relative disagreement accepted.
const RELATIVE: f64 = 0.02;
/// The rounding error of one f32 evaluation of the objective, relative to its size.
const ROUNDING: f64 = 1e-5;

/// The directional derivative at one step size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Difference {
    /// The step size ε.
    pub eps: f64,
    /// (f(θ + εv) − f(θ − εv)) / 2ε.
    pub finite: f64,
    /// ∇f(θ)·v by autodiff, along the shift the f32 parameters really make.
    pub autodiff: f64,
}

/// What one gradient check measured.
#[derive(Debug, Clone, PartialEq)]
pub struct GradientCheck {
    /// f(θ).
    pub objective: f64,
    /// One per step size, largest first.
    pub differences: Vec<Difference>,
}

impl GradientCheck {
    /// Whether finite differences agree with autodiff at some step size: within 2% of the
    /// larger of the two, plus the rounding error of f32 evaluations divided by 2ε.
    pub fn agrees(&self) -> bool {
        self.differences.iter().any(|d| {
            let scale = d.finite.abs().max(d.autodiff.abs());
            let rounding = ROUNDING * (1.0 + self.objective.abs()) / d.eps;
            (d.finite - d.autodiff).abs() <= RELATIVE * scale + rounding
        })
    }

    /// What was measured, in one line.
    pub fn describe(&self) -> String {
        let at: Vec<String> = self
            .differences
            .iter()
            .map(|d| format!("{:.4e} vs {:.4e} at ε = {:e}", d.autodiff, d.finite, d.eps))
            .collect();
        format!(
            "directional derivative by autodiff vs finite differences: {}",
            at.join(", ")
        )
    }
}

impl ModelRunner<'_> {
    /// Checks the gradient of the strategy's objective at the step `at` on `batch`, with the
    /// parameters of `module` (left unchanged); `seed` draws the direction.
    pub fn check_gradient(
        &self,
        module: &ParamStore<B>,
        strategy: &mut StrategyBox,
        batch: (DynTensor, &Targets),
        at: StepAt,
        seed: u64,
    ) -> Result<GradientCheck, String> {
        let s = &self.session;
        let passes = s.passes();
        let mode = s.set_stats_mode(StatsMode::Frozen);
        let result = self.measure(module, strategy, batch, at, seed);
        s.set_grad_replay(GradReplay::Off);
        s.set_stats_mode(mode);
        s.set_passes(passes);
        result
    }

    fn measure(
        &self,
        module: &ParamStore<B>,
        strategy: &mut StrategyBox,
        (inputs, targets): (DynTensor, &Targets),
        at: StepAt,
        seed: u64,
    ) -> Result<GradientCheck, String> {
        let (s, specs) = (&self.session, &self.specs);
        let device = s.device();
        let masks = mix(
            seed,
            0x6AD ^ at.progress.step ^ (u64::from(at.progress.phase) << 40),
        );
        self.enter_step(strategy, at)?;

        // f(θ) and its gradient, recording what `grad` returns.
        let params = module.tensors(specs, false);
        B::seed(device, masks);
        s.set_grad_replay(GradReplay::Record(vec![]));
        let base = self.objective(
            params.clone(),
            strategy,
            (inputs.clone(), targets),
            at.progress,
        );
        let GradReplay::Record(recorded) = s.set_grad_replay(GradReplay::Off) else {
            unreachable!("set to Record above")
        };
        let base = base?;
        let objective = scalar(base.value.clone());
        let grads = base.value.backward();
        let gradient: Values = params
            .iter()
            .map(|p| {
                let n = p.num_elements();
                with_dyn!(p, |p| p.grad(&grads).map(|g| DynTensor::R1(
                    Tensor::<B, 1>::from_inner(g.reshape([n]))
                )
                .to_values()))
                .unwrap_or_else(|| vec![0.0; n])
            })
            .collect();

        let theta = module.values(specs);
        let direction = direction(&gradient, mix(seed, 0xD1F));
        let mut differences = vec![];
        for eps in EPSILONS {
            let shifted = |sign: f64| -> Values {
                theta
                    .iter()
                    .zip(&direction)
                    .map(|(t, v)| {
                        t.iter()
                            .zip(v)
                            .map(|(&t, &v)| (f64::from(t) + sign * eps * v) as f32)
                            .collect()
                    })
                    .collect()
            };
            let (plus, minus) = (shifted(1.0), shifted(-1.0));
            let mut at_values = |values: &Values| -> Result<f64, String> {
                let params = ParamStore::new(specs, values, device)?.tensors(specs, true);
                B::seed(device, masks);
                s.set_grad_replay(GradReplay::Replay(recorded.iter().cloned().collect()));
                let value =
                    self.objective(params, strategy, (inputs.clone(), targets), at.progress);
                s.set_grad_replay(GradReplay::Off);
                Ok(scalar(value?.value))
            };
            let finite = (at_values(&plus)? - at_values(&minus)?) / (2.0 * eps);
            let autodiff = dot(&gradient, &plus, &minus) / (2.0 * eps);
            differences.push(Difference {
                eps,
                finite,
                autodiff,
            });
        }
        Ok(GradientCheck {
            objective,
            differences,
        })
    }
}

fn scalar(t: Tensor<B, 1>) -> f64 {
    DynTensor::R1(t.detach()).to_values()[0].into()
}

/// A unit direction halfway between the gradient's and a random one (the random one alone
/// where the gradient is zero).
fn direction(gradient: &Values, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let norm = |v: &[Vec<f64>]| v.iter().flatten().map(|x| x * x).sum::<f64>().sqrt();
    let random: Vec<Vec<f64>> = gradient
        .iter()
        .map(|g| g.iter().map(|_| StandardNormal.sample(&mut rng)).collect())
        .collect();
    let along: Vec<Vec<f64>> = gradient
        .iter()
        .map(|g| g.iter().map(|&x| f64::from(x)).collect())
        .collect();
    let (nr, ng) = (norm(&random), norm(&along));
    let mixed: Vec<Vec<f64>> = random
        .iter()
        .zip(&along)
        .map(|(r, g)| {
            r.iter()
                .zip(g)
                .map(|(r, g)| r / nr + if ng > 0.0 { g / ng } else { 0.0 })
                .collect()
        })
        .collect();
    let n = norm(&mixed);
    mixed
        .into_iter()
        .map(|v| v.into_iter().map(|x| x / n).collect())
        .collect()
}

/// ∇f · (plus − minus), in f64.
fn dot(gradient: &Values, plus: &Values, minus: &Values) -> f64 {
    gradient
        .iter()
        .zip(plus.iter().zip(minus))
        .flat_map(|(g, (p, m))| g.iter().zip(p.iter().zip(m)))
        .map(|(&g, (&p, &m))| f64::from(g) * (f64::from(p) - f64::from(m)))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(autodiff: f64, finite: f64) -> GradientCheck {
        GradientCheck {
            objective: 1.0,
            differences: vec![Difference {
                eps: 1e-2,
                finite,
                autodiff,
            }],
        }
    }

    #[test]
    fn agreement_allows_two_percent_and_rounding_but_not_a_missing_term() {
        assert!(check(2.0, 2.03).agrees());
        assert!(check(1e-4, 1e-3).agrees(), "below f32 rounding at ε = 1e-2");
        assert!(!check(2.89, 2.37).agrees());
        assert!(!check(1.0, -1.0).agrees());
        assert!(!check(f64::NAN, 1.0).agrees());
    }

    #[test]
    fn the_direction_is_a_unit_vector_with_a_component_along_the_gradient() {
        let gradient: Values = vec![vec![3.0, 0.0], vec![4.0]];
        let v = direction(&gradient, 7);
        let norm: f64 = v.iter().flatten().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-12);
        let along: f64 = v
            .iter()
            .flatten()
            .zip(gradient.iter().flatten())
            .map(|(v, &g)| v * f64::from(g) / 5.0)
            .sum();
        // sqrt((1 + cos) / 2) for the cosine between the gradient and the random direction
        assert!(along > 0.0, "{along}");
        let zero = direction(&vec![vec![0.0; 3]], 7);
        let norm: f64 = zero.iter().flatten().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-12);
    }
}
