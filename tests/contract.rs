//! The strategy contract's capabilities (pn-plugin-api 0.1.2), each through a plugin of this
//! repository checked against a hand computation: `sam` (gradients and a second loss
//! evaluation), `lookahead` (parameter writes after steps), `shrink_perturb` (writes at a
//! phase's start, random numbers), `ema` (an average as the phase's result); and in-process
//! strategies for batch replacement and for misuse, which fails the run with one message.
//!
//! The workload is linear regression without bias, y ≈ x·w on 8 examples in one batch, trained
//! with plain SGD, so every update is w ← w − η (2/n) Xᵀ(Xw − y), computed here in f64.

use pn_host::device::{parse_device, Device};
use pn_host::plugin::registry::Registry;
use pn_host::train::data::Data;
use pn_host::train::{self, OptimizerKind, Outcome, Silent, Status, TrainConfig};
use pn_plugin_api::component::strategy_box;
use pn_plugin_api::{
    Component, DataSplit, DataSplits, Kept, LossKind, Ops, OptimizerState, Progress, Result,
    Strategy, Tensor,
};
use serde_json::{json, Value};

const D: usize = 3;
const N: usize = 8;
const LR: f64 = 0.1;

fn examples() -> (Vec<[f64; D]>, Vec<f64>) {
    let x: Vec<[f64; D]> = (0..N)
        .map(|i| {
            let f = |k: usize| (((i * 7 + k * 5) % 11) as f64 / 11.0 - 0.5) * 2.0;
            [f(0), f(1), f(2)]
        })
        .collect();
    let y = x
        .iter()
        .map(|r| 0.7 * r[0] - 1.3 * r[1] + 0.4 * r[2] + 0.25)
        .collect();
    (x, y)
}

fn data(device: &Device) -> Data {
    let (x, y) = examples();
    let split = || DataSplit {
        inputs: x
            .iter()
            .flatten()
            .map(|&v| v as f32)
            .collect::<Vec<_>>()
            .into(),
        targets: y.iter().map(|&v| v as f32).collect::<Vec<_>>().into(),
        len: N,
    };
    let splits = DataSplits {
        input_shape: vec![D].into(),
        outputs: 1,
        loss: LossKind::MeanSquaredError,
        train: split(),
        valid: split(),
    };
    Data::upload(splits, device).unwrap()
}

fn config(epochs: u32) -> TrainConfig {
    TrainConfig {
        optimizer: OptimizerKind::Sgd,
        momentum: 0.0,
        lr: LR,
        batch_size: N,
        epochs,
        record_every: 1,
        ..TrainConfig::default()
    }
}

fn registry() -> Registry {
    pn_tests::registry(&[
        "mlp",
        "baseline",
        "sam",
        "lookahead",
        "shrink_perturb",
        "ema",
    ])
}

fn run_box(
    registry: &Registry,
    mut strategy: pn_plugin_api::abi::StrategyBox,
    epochs: u32,
    seed: u64,
) -> Outcome {
    let device = parse_device("cpu").unwrap();
    let linear = json!({"hidden": [], "output": "linear", "bias": false});
    let (model, _) = registry.model("mlp", &linear).unwrap();
    let data = data(&device);
    train::run(
        &mut strategy,
        &model,
        &data,
        &config(epochs),
        seed,
        &device,
        &mut Silent,
    )
}

fn run(registry: &Registry, name: &str, overrides: Value, epochs: u32, seed: u64) -> Outcome {
    let (strategy, _) = registry.strategy(name, &overrides).unwrap();
    let outcome = run_box(registry, strategy, epochs, seed);
    assert_eq!(
        outcome.result.status,
        Status::Completed,
        "{name}: {:?}",
        outcome.result.message
    );
    outcome
}

/// The parameters after `step` steps of phase `phase`.
fn at(o: &Outcome, phase: u32, step: u64) -> Vec<f64> {
    let point = o
        .trajectory
        .iter()
        .find(|p| p.phase == phase && p.step == step)
        .unwrap_or_else(|| panic!("no point at phase {phase} step {step}"));
    point.values.iter().map(|&v| f64::from(v)).collect()
}

/// ∇ of the mean squared error at `w`.
fn grad(w: &[f64]) -> Vec<f64> {
    let (x, y) = examples();
    let mut g = vec![0.0; D];
    for (row, target) in x.iter().zip(&y) {
        let r: f64 = row.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() - target;
        for j in 0..D {
            g[j] += 2.0 * r * row[j] / N as f64;
        }
    }
    g
}

fn loss(w: &[f64]) -> f64 {
    let (x, y) = examples();
    x.iter()
        .zip(&y)
        .map(|(row, t)| (row.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() - t).powi(2))
        .sum::<f64>()
        / N as f64
}

fn sgd(w: &[f64], g: &[f64]) -> Vec<f64> {
    w.iter().zip(g).map(|(w, g)| w - LR * g).collect()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 2e-5, "{what}: got {got:?}, want {want:?}");
    }
}

#[test]
fn sam_takes_the_gradient_at_the_worst_nearby_point_and_counts_two_passes() {
    let registry = registry();
    for adaptive in [false, true] {
        let rho = 0.3;
        let sam = run(
            &registry,
            "sam",
            json!({"rho": rho, "adaptive": adaptive}),
            2,
            4,
        );
        let mut w = at(&sam, 0, 0);
        for step in 1..=2 {
            let g = grad(&w);
            let epsilon: Vec<f64> = if adaptive {
                let scaled: Vec<f64> = w.iter().zip(&g).map(|(w, g)| w * w * g).collect();
                let n = norm(
                    &w.iter()
                        .zip(&g)
                        .map(|(w, g)| w.abs() * g)
                        .collect::<Vec<_>>(),
                );
                scaled.iter().map(|s| rho * s / n).collect()
            } else {
                g.iter().map(|g| rho * g / norm(&grad(&w))).collect()
            };
            let shifted: Vec<f64> = w.iter().zip(&epsilon).map(|(w, e)| w + e).collect();
            w = sgd(&w, &grad(&shifted));
            assert_close(
                &at(&sam, 0, step),
                &w,
                &format!("sam (adaptive {adaptive}) step {step}"),
            );
        }
        assert_eq!(
            (sam.result.forward_passes, sam.result.backward_passes),
            (4, 4)
        );
    }
    let baseline = run(&registry, "baseline", json!({}), 2, 4);
    assert_eq!(
        (
            baseline.result.forward_passes,
            baseline.result.backward_passes
        ),
        (2, 2)
    );
    assert_close(
        &at(&baseline, 0, 1),
        &sgd(&at(&baseline, 0, 0), &grad(&at(&baseline, 0, 0))),
        "baseline",
    );
}

#[test]
fn lookahead_pulls_the_fast_weights_back_every_k_steps() {
    let registry = registry();
    let (k, alpha) = (2, 0.5);
    let outcome = run(
        &registry,
        "lookahead",
        json!({"k": k, "alpha": alpha}),
        6,
        1,
    );
    let mut slow = at(&outcome, 0, 0);
    let mut fast = slow.clone();
    for step in 1..=6u64 {
        fast = sgd(&fast, &grad(&fast));
        if step % k == 0 {
            slow = slow
                .iter()
                .zip(&fast)
                .map(|(s, f)| s + alpha * (f - s))
                .collect();
            fast = slow.clone();
        }
        assert_close(
            &at(&outcome, 0, step),
            &fast,
            &format!("lookahead step {step}"),
        );
    }
    let kept = outcome
        .kept
        .iter()
        .find(|k| k.0 == "lookahead.slow")
        .unwrap();
    let kept: Vec<f64> = kept.2.iter().map(|&v| f64::from(v)).collect();
    assert_close(&kept, &slow, "kept slow weights");
}

#[test]
fn shrink_perturb_starts_each_phase_from_the_shrunk_noisy_solution_and_reports_trained_phases() {
    let registry = registry();
    let cfg = json!({"phases": 2, "shrink": 0.5, "noise": 0.01});
    let outcome = run(&registry, "shrink_perturb", cfg.clone(), 3, 2);
    let end = at(&outcome, 0, 3);
    let start = at(&outcome, 1, 0);
    let noise: Vec<f64> = start.iter().zip(&end).map(|(s, e)| s - 0.5 * e).collect();
    assert!(noise.iter().all(|n| n.abs() < 0.05), "{noise:?}");
    assert!(
        noise.iter().any(|n| n.abs() > 1e-6),
        "noise was added: {noise:?}"
    );
    assert_eq!(outcome.result.phases[1].start, "continue");
    // Each phase's summary is of its trained parameters, not of the next phase's start.
    for (phase, record) in outcome.result.phases.iter().enumerate() {
        let trained = loss(&at(&outcome, phase as u32, 3));
        assert!(
            (record.final_train_loss - trained).abs() < 1e-5,
            "{phase}: {} vs {trained}",
            record.final_train_loss
        );
    }
    // The noise comes from the run's seeded stream: the same for a seed, another for another.
    let again = run(&registry, "shrink_perturb", cfg.clone(), 3, 2);
    assert_eq!(at(&again, 1, 0), start);
    let other = run(&registry, "shrink_perturb", cfg, 3, 3);
    let other_noise: Vec<f64> = at(&other, 1, 0)
        .iter()
        .zip(at(&other, 0, 3))
        .map(|(s, e)| s - 0.5 * e)
        .collect();
    assert_ne!(other_noise, noise);
}

#[test]
fn ema_reports_the_moving_average_of_the_weights() {
    let registry = registry();
    let beta = 0.8;
    let outcome = run(
        &registry,
        "ema",
        json!({"decay": beta, "warmup": false}),
        5,
        0,
    );
    let mut average = at(&outcome, 0, 0);
    for step in 1..=5 {
        let theta = at(&outcome, 0, step);
        average = average
            .iter()
            .zip(&theta)
            .map(|(a, t)| beta * a + (1.0 - beta) * t)
            .collect();
    }
    let result: Vec<f64> = outcome
        .result_values
        .clone()
        .unwrap()
        .concat()
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    assert_close(&result, &average, "ema result");
    assert_ne!(
        result,
        at(&outcome, 0, 5),
        "the average is not the last iterate"
    );
    assert!((outcome.result.phases[0].final_train_loss - loss(&average)).abs() < 1e-5);
}

/// An in-process strategy: trains on a zeroed batch (no gradient reaches w), or misuses the
/// contract in the way `mode` names.
struct Probe {
    mode: &'static str,
}

impl Component for Probe {
    const NAME: &'static str = "probe";
    const DESCRIPTION: &'static str = "test strategy";
    type Config = ();
    fn new(_: ()) -> Result<Self> {
        Ok(Probe { mode: "" })
    }
}

impl Strategy for Probe {
    fn prepare_batch<'a>(
        &mut self,
        ops: Ops<'a>,
        _p: Progress,
    ) -> Result<Option<(Tensor<'a>, Tensor<'a>)>> {
        Ok(match self.mode {
            "zero_inputs" => Some((ops.batch_inputs() * 0.0, ops.batch_targets())),
            "bad_batch" => Some((ops.constant(&[1.0; 4], &[1, 4]), ops.batch_targets())),
            _ => None,
        })
    }

    fn objective<'a>(
        &mut self,
        ops: Ops<'a>,
        _p: Progress,
        loss: Tensor<'a>,
    ) -> Result<Tensor<'a>> {
        match self.mode {
            "write_in_objective" => {
                ops.set_params(&["*"], ops.param_group(&["*"]), OptimizerState::Keep);
                Ok(loss)
            }
            "reuse_after_grad" => {
                let _ = ops.grad(loss, &["*"]);
                Ok(loss * 2.0)
            }
            _ => Ok(loss),
        }
    }
}

/// An in-process strategy for the optimizer-state policy: `phases` phases that continue where
/// the last ended, with `at_phase_start` for the optimizer; with `rewrite`, every step writes
/// the parameters back unchanged with that policy; with `hand_back`, each phase's result is
/// the trained parameters kept as a vector (the host loads it as the phase's parameters).
struct Carry {
    phases: u32,
    at_phase_start: OptimizerState,
    rewrite: Option<OptimizerState>,
    hand_back: bool,
}

impl Component for Carry {
    const NAME: &'static str = "carry";
    const DESCRIPTION: &'static str = "test strategy";
    type Config = ();
    fn new(_: ()) -> Result<Self> {
        Err("built in the test".into())
    }
}

impl Strategy for Carry {
    fn phases(&self) -> u32 {
        self.phases
    }
    fn phase_start(&self, _phase: u32) -> pn_plugin_api::PhaseStart {
        pn_plugin_api::PhaseStart::Continue
    }
    fn optimizer_at_phase_start(&self, _phase: u32) -> OptimizerState {
        self.at_phase_start
    }
    fn after_step(&mut self, ops: Ops<'_>, _p: Progress, _end: bool) -> Result<()> {
        if let Some(policy) = self.rewrite {
            ops.set_params(&["*"], ops.param_group(&["*"]), policy);
        }
        Ok(())
    }
    fn phase_result(&mut self, ops: Ops<'_>, _phase: u32) -> Result<Vec<Kept>> {
        Ok(match self.hand_back {
            true => vec![ops.keep("result", ops.param_group(&["*"]))],
            false => vec![],
        })
    }
}

/// The parameters after every step of every phase, in order, for `strategy` trained with SGD
/// with momentum (whose state the policies keep or drop).
fn momentum_path(registry: &Registry, strategy: Carry, epochs: u32) -> Vec<Vec<f64>> {
    let device = parse_device("cpu").unwrap();
    let linear = json!({"hidden": [], "output": "linear", "bias": false});
    let (model, _) = registry.model("mlp", &linear).unwrap();
    let cfg = TrainConfig {
        momentum: 0.9,
        ..config(epochs)
    };
    let mut strategy = strategy_box(strategy);
    let o = train::run(
        &mut strategy,
        &model,
        &data(&device),
        &cfg,
        5,
        &device,
        &mut Silent,
    );
    assert_eq!(o.result.status, Status::Completed, "{:?}", o.result.message);
    o.trajectory
        .iter()
        .filter(|p| p.step > 0)
        .map(|p| p.values.iter().map(|&v| f64::from(v)).collect())
        .collect()
}

#[test]
fn the_optimizer_state_is_kept_or_reset_as_the_strategy_says() {
    let registry = registry();
    let carry = |phases, at_phase_start, rewrite| Carry {
        phases,
        at_phase_start,
        rewrite,
        hand_back: false,
    };
    let (keep, reset) = (OptimizerState::Keep, OptimizerState::Reset);
    let one_phase = momentum_path(&registry, carry(1, reset, None), 6);
    // Two continuing phases that keep the momentum are one phase of twice the length.
    assert_eq!(momentum_path(&registry, carry(2, keep, None), 3), one_phase);
    assert_ne!(
        momentum_path(&registry, carry(2, reset, None), 3),
        one_phase
    );
    // Also when the phase's result is a kept vector (the same values) that the host loads.
    let handing_back = |at_phase_start| Carry {
        hand_back: true,
        ..carry(2, at_phase_start, None)
    };
    assert_eq!(momentum_path(&registry, handing_back(keep), 3), one_phase);
    assert_ne!(momentum_path(&registry, handing_back(reset), 3), one_phase);
    // Writing the parameters back unchanged: with Keep nothing changes, with Reset the
    // momentum is lost at every step.
    assert_eq!(
        momentum_path(&registry, carry(1, reset, Some(keep)), 6),
        one_phase
    );
    assert_ne!(
        momentum_path(&registry, carry(1, reset, Some(reset)), 6),
        one_phase
    );
}

#[test]
fn a_replaced_batch_is_what_the_step_trains_on() {
    let registry = registry();
    let outcome = run_box(
        &registry,
        strategy_box(Probe {
            mode: "zero_inputs",
        }),
        3,
        0,
    );
    assert_eq!(
        outcome.result.status,
        Status::Completed,
        "{:?}",
        outcome.result.message
    );
    assert_eq!(
        at(&outcome, 0, 3),
        at(&outcome, 0, 0),
        "zero inputs give a zero gradient"
    );
}

#[test]
fn misusing_the_contract_fails_the_run_with_one_message() {
    let registry = registry();
    for (mode, message) in [
        (
            "write_in_objective",
            "set_params is only available in begin_phase and after_step",
        ),
        ("reuse_after_grad", "tensor handle made before Ops::grad"),
        (
            "bad_batch",
            "strategy prepare_batch: inputs of shape [1, 4], expected [n, [3]]",
        ),
    ] {
        let outcome = run_box(&registry, strategy_box(Probe { mode }), 1, 0);
        assert_eq!(outcome.result.status, Status::Failed, "{mode}");
        let got = outcome.result.message.unwrap();
        assert!(got.contains(message), "{mode}: {got}");
    }
}

/// Draws four numbers in every callback of a one-phase run and records them by callback; fails
/// the run unless `after_step` sees the step's learning rate and `phase_result` none.
#[derive(Default)]
struct Draws(std::sync::Arc<std::sync::Mutex<Vec<Draw>>>);

/// The callback and what it drew.
type Draw = (&'static str, Vec<f32>);

impl Draws {
    fn draw(&self, ops: Ops<'_>, callback: &'static str) {
        let values = ops.random_normal(&[4], 0.0, 1.0).to_vec();
        self.0.lock().unwrap().push((callback, values));
    }
}

impl Component for Draws {
    const NAME: &'static str = "draws";
    const DESCRIPTION: &'static str = "test strategy";
    type Config = ();
    fn new(_: ()) -> Result<Self> {
        Ok(Draws::default())
    }
}

impl Strategy for Draws {
    fn begin_phase(&mut self, ops: Ops<'_>, _phase: u32) -> Result<()> {
        self.draw(ops, "begin_phase");
        Ok(())
    }
    fn after_step(&mut self, ops: Ops<'_>, p: Progress, _end: bool) -> Result<()> {
        if p.step == 0 {
            self.draw(ops, "after_step");
        }
        if ops.learning_rate() != LR {
            return Err(format!("after_step sees learning rate {}", ops.learning_rate()).into());
        }
        Ok(())
    }
    fn phase_result(&mut self, ops: Ops<'_>, _phase: u32) -> Result<Vec<Kept>> {
        self.draw(ops, "phase_result");
        if !ops.learning_rate().is_nan() {
            return Err("a learning rate outside a step".into());
        }
        Ok(vec![])
    }
    fn end_phase(&mut self, ops: Ops<'_>, _phase: u32) -> Result<()> {
        self.draw(ops, "end_phase");
        Ok(())
    }
}

#[test]
fn every_callback_draws_its_own_random_numbers_and_a_seed_repeats_them() {
    let registry = registry();
    let draws = |seed| {
        let strategy = Draws::default();
        let seen = strategy.0.clone();
        let outcome = run_box(&registry, strategy_box(strategy), 1, seed);
        assert_eq!(
            outcome.result.status,
            Status::Completed,
            "{:?}",
            outcome.result.message
        );
        let seen = seen.lock().unwrap().clone();
        seen
    };
    let first = draws(3);
    let names: Vec<&str> = first.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        ["begin_phase", "after_step", "phase_result", "end_phase"]
    );
    // begin_phase and after_step at step 0, phase_result and end_phase at the last step
    for (i, (a, x)) in first.iter().enumerate() {
        for (b, y) in &first[i + 1..] {
            assert_ne!(x, y, "{a} and {b} drew the same numbers");
        }
    }
    assert_eq!(draws(3), first);
    assert_ne!(draws(4), first);
}
