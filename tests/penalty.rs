//! The persistence penalty's math, run through the host's autodiff: gradients match finite
//! differences, and partial persistence leaves unmatched parameters without penalty gradient.
// The device type is `Copy` only in CPU-only builds (see pn_host::device).
#![allow(clippy::clone_on_copy)]

use burn::tensor::{Tensor, TensorData};
use pn_host::device::{parse_device, Device, B};
use pn_host::train::dyn_tensor::DynTensor;
use pn_host::train::session::Session;
use pn_plugin_api::{Ops, Progress};
use pn_plugin_kit::persistence::{repulsion, Kernel};
use serde_json::json;

fn param(values: &[f32], device: &Device) -> Tensor<B, 1> {
    Tensor::<B, 1>::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
        .require_grad()
}

/// The penalty at `theta` and its gradient, through a host session.
fn penalty_and_grad(
    kernel: Kernel,
    theta: &[f32],
    anchors: &[f32],
    device: &Device,
) -> (f64, Vec<f32>) {
    let session = Session::new(device.clone(), vec!["theta".into()]);
    let p = param(theta, device);
    session.reset(vec![DynTensor::R1(p.clone())], true);
    let raw = session.ops();
    let ops = Ops::new(&raw);
    let k = anchors.len() / theta.len();
    let anchors = ops.constant(anchors, &[k, theta.len()]);
    let value = repulsion(kernel, ops.param_group(&["*"]), anchors, 0.5, 2.0, 0.01);
    assert_eq!(session.take_error(), None);
    let DynTensor::R1(out) = session.get(value.id()).unwrap() else {
        panic!("scalar expected")
    };
    let v = out.to_data().to_vec::<f32>().unwrap()[0] as f64;
    let grads = out.backward();
    let g = p
        .grad(&grads)
        .expect("gradient")
        .to_data()
        .to_vec::<f32>()
        .unwrap();
    (v, g)
}

fn check_gradient(kernel: Kernel) {
    let device = parse_device("cpu").unwrap();
    let theta = [0.3f32, -0.2, 0.5, 0.1];
    let anchors = [0.0f32, 0.0, 0.4, 0.2, 0.6, -0.4, 0.1, 0.3];
    let (_, grad) = penalty_and_grad(kernel, &theta, &anchors, &device);
    let h = 1e-2f32;
    for i in 0..theta.len() {
        let (mut plus, mut minus) = (theta, theta);
        plus[i] += h;
        minus[i] -= h;
        let numeric = (penalty_and_grad(kernel, &plus, &anchors, &device).0
            - penalty_and_grad(kernel, &minus, &anchors, &device).0)
            / (2.0 * h as f64);
        let analytic = grad[i] as f64;
        assert!(
            (numeric - analytic).abs() <= 2e-2 * numeric.abs().max(0.05),
            "{kernel:?} d/dθ{i}: autodiff {analytic}, finite differences {numeric}"
        );
    }
    assert!(
        grad.iter().any(|g| g.abs() > 1e-3),
        "{kernel:?}: gradient is not trivially zero: {grad:?}"
    );
}

#[test]
fn gaussian_penalty_gradient_matches_finite_differences() {
    check_gradient(Kernel::Gaussian);
}

#[test]
fn inverse_power_penalty_gradient_matches_finite_differences() {
    check_gradient(Kernel::InversePower);
}

#[test]
fn partial_persistence_leaves_unmatched_parameters_without_penalty_gradient() {
    let registry = pn_tests::registry(&["partial_persistent"]);
    let device = parse_device("cpu").unwrap();
    let (mut strategy, _) = registry
        .strategy("partial_persistent", &json!({"params": ["layer0.*"]}))
        .unwrap();
    let names = [
        "layer0.weight",
        "layer0.bias",
        "layer1.weight",
        "layer1.bias",
    ];
    let session = Session::new(
        device.clone(),
        names.iter().map(|s| s.to_string()).collect(),
    );
    let values = |shift: f32| -> Vec<Tensor<B, 1>> {
        (0..4)
            .map(|i| param(&[0.1 * i as f32 + shift, -0.2 + shift, 0.3], &device))
            .collect()
    };
    let detached = |ps: &[Tensor<B, 1>]| {
        ps.iter()
            .map(|p| DynTensor::R1(p.clone().detach()))
            .collect::<Vec<_>>()
    };
    // Phase 1 starts at θ0 and ends at a solution; phase 2 starts again at θ0.
    let theta0 = values(0.0);
    session.reset(detached(&theta0), false);
    strategy.begin_phase(session.ops(), 0).unwrap();
    session.reset(detached(&values(0.5)), false);
    strategy.end_phase(session.ops(), 0).unwrap();
    session.reset(detached(&theta0), false);
    strategy.begin_phase(session.ops(), 1).unwrap();
    // One step of phase 2 with a task loss that does not depend on the parameters.
    let params = values(0.1);
    session.reset(
        params.iter().map(|p| DynTensor::R1(p.clone())).collect(),
        true,
    );
    let zero = session.insert(DynTensor::R1(Tensor::<B, 1>::zeros([1], &device)));
    let progress = Progress {
        phase: 1,
        step: 0,
        steps_in_phase: 100,
        epoch: 0,
    };
    let objective = strategy.objective(session.ops(), progress, zero).unwrap();
    assert_eq!(session.take_error(), None);
    let DynTensor::R1(objective) = session.get(objective).unwrap() else {
        panic!("scalar expected")
    };
    let grads = objective.backward();
    let norm = |p: &Tensor<B, 1>| {
        p.grad(&grads)
            .map(|g| g.abs().sum().into_scalar())
            .unwrap_or(0.0)
    };
    assert!(
        norm(&params[0]) > 0.0 && norm(&params[1]) > 0.0,
        "layer0 is penalised"
    );
    assert_eq!(
        norm(&params[2]),
        0.0,
        "layer1.weight gets no penalty gradient"
    );
    assert_eq!(
        norm(&params[3]),
        0.0,
        "layer1.bias gets no penalty gradient"
    );
}
