//! The competitor strategies' defining properties, through the plugin boundary: the deflated
//! objective (both variants) and the weight-decay penalty equal their formulas, with matching
//! gradients.
// The device type is `Copy` only in CPU-only builds (see pn_host::device).
#![allow(clippy::clone_on_copy)]

use burn::tensor::{Tensor, TensorData};
use pn_host::device::{parse_device, Device, B};
use pn_host::train::dyn_tensor::DynTensor;
use pn_host::train::session::Session;
use pn_plugin_api::abi::StrategyBox;
use pn_plugin_api::Progress;
use serde_json::{json, Value};

fn param(values: &[f64], device: &Device) -> Tensor<B, 1> {
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    Tensor::<B, 1>::from_data(TensorData::new(v, [values.len()]), device).require_grad()
}

/// Runs `strategy` through phases that end at each of `anchors`, then returns its objective
/// at `theta` (with a task loss of `loss`, independent of θ) and the objective's gradient.
fn objective(
    strategy: &mut StrategyBox,
    anchors: &[&[f64]],
    theta: &[f64],
    loss: f64,
    device: &Device,
) -> (f64, Vec<f64>) {
    let session = Session::new(device.clone(), vec!["theta".into()]);
    let at = |v: &[f64]| vec![DynTensor::R1(param(v, device).detach())];
    for (k, a) in anchors.iter().enumerate() {
        session.reset(at(a), false);
        strategy.begin_phase(session.ops(), k as u32).unwrap();
        strategy.end_phase(session.ops(), k as u32).unwrap();
    }
    session.reset(at(theta), false);
    strategy
        .begin_phase(session.ops(), anchors.len() as u32)
        .unwrap();
    let p = param(theta, device);
    session.reset(vec![DynTensor::R1(p.clone())], true);
    let loss_id = session.insert(DynTensor::R1(param(&[loss], device).detach()));
    let progress = Progress {
        phase: anchors.len() as u32,
        step: 0,
        steps_in_phase: 100,
        epoch: 0,
    };
    let out = strategy
        .objective(session.ops(), progress, loss_id)
        .unwrap();
    assert_eq!(session.take_error(), None);
    let DynTensor::R1(out) = session.get(out).unwrap() else {
        panic!("scalar expected")
    };
    let value = out.to_data().to_vec::<f32>().unwrap()[0] as f64;
    let grad = p
        .grad(&out.backward())
        .map(|g| g.to_data().to_vec::<f32>().unwrap())
        .unwrap_or_default();
    (value, grad.into_iter().map(f64::from).collect())
}

fn strategy(name: &str, config: Value) -> StrategyBox {
    let registry = pn_tests::registry(&[name]);
    registry.strategy(name, &config).unwrap().0
}

fn assert_close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-3 * b.abs().max(1e-3),
        "{what}: {a} vs {b}"
    );
}

#[test]
fn deflation_objective_and_gradient_follow_the_formula() {
    let device = parse_device("cpu").unwrap();
    let anchors: [&[f64]; 2] = [&[0.5, -0.2, 0.1], &[-0.3, 0.4, 0.2]];
    let theta = [0.2, 0.1, -0.1];
    let loss = 0.7;
    let (p, alpha, lambda, eps) = (2.0, 1.0, 0.5, 1e-4);
    let inverse = |t: &[f64], a: &[f64]| {
        let d: f64 = t.iter().zip(a).map(|(x, y)| (x - y).powi(2)).sum();
        (d + eps).powf(-p / 2.0)
    };
    let multiplicative = |t: &[f64]| {
        loss * anchors
            .iter()
            .map(|a| inverse(t, a) + alpha)
            .product::<f64>()
    };
    let additive = |t: &[f64]| loss + lambda * anchors.iter().map(|a| inverse(t, a)).sum::<f64>();
    for (variant, formula) in [
        ("multiplicative", &multiplicative as &dyn Fn(&[f64]) -> f64),
        ("additive", &additive),
    ] {
        let config = json!({"variant": variant, "lambda": lambda, "epsilon": eps});
        let mut s = strategy("deflation", config.clone());
        let (value, grad) = objective(&mut s, &anchors, &theta, loss, &device);
        assert_close(value, formula(&theta), variant);
        for i in 0..3 {
            let h = 1e-5;
            let (mut plus, mut minus) = (theta, theta);
            plus[i] += h;
            minus[i] -= h;
            let numeric = (formula(&plus) - formula(&minus)) / (2.0 * h);
            assert_close(grad[i], numeric, &format!("{variant} d/dθ{i}"));
        }
    }
    // Before any anchor exists (phase 1) the objective is the task loss.
    let mut s = strategy("deflation", json!({}));
    let (value, _) = objective(&mut s, &[], &theta, loss, &device);
    assert_close(value, loss, "phase 1");
}

#[test]
fn weight_decay_adds_half_lambda_times_the_squared_norm() {
    let device = parse_device("cpu").unwrap();
    let theta = [0.4, -1.5, 2.0];
    let lambda = 0.01;
    let mut s = strategy("weight_decay", json!({"lambda": lambda}));
    let (value, grad) = objective(&mut s, &[], &theta, 0.3, &device);
    let norm2: f64 = theta.iter().map(|x| x * x).sum();
    assert_close(value, 0.3 + lambda / 2.0 * norm2, "value");
    for (g, t) in grad.iter().zip(theta) {
        assert_close(*g, lambda * t, "gradient = λθ");
    }
}

#[test]
fn unknown_keys_and_bad_values_are_refused() {
    let registry = pn_tests::registry(&["deflation", "weight_decay"]);
    let err = |name: &str, config: Value| registry.strategy(name, &config).err().unwrap();
    assert!(err("deflation", json!({"alfa": 1})).contains("unknown config key `alfa`"));
    assert!(err("deflation", json!({"power": -1.0})).contains("power"));
    assert!(err("weight_decay", json!({"lambda": -1.0})).contains("lambda"));
}
