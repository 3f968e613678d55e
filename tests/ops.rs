//! Host tensor operations as plugins call them, checked against the same Burn calls, and the
//! handle rules (a stale or poisoned handle fails with a message, not a crash).
// The device type is `Copy` only in CPU-only builds (see pn_host::device).
#![allow(clippy::clone_on_copy)]

use burn::tensor::module::{avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Distribution, Tensor, Tolerance};
use pn_host::device::{parse_device, B};
use pn_host::train::dyn_tensor::DynTensor;
use pn_host::train::session::Session;
use pn_plugin_api::{Conv2d, Ops};

fn session() -> Session<'static> {
    Session::new(parse_device("cpu").unwrap(), vec!["w".into()])
}

fn value(session: &Session, t: pn_plugin_api::Tensor<'_>) -> DynTensor {
    assert_eq!(session.take_error(), None);
    session.get(t.id()).unwrap()
}

#[test]
fn conv_and_pooling_match_burn() {
    let s = session();
    let device = s.device().clone();
    let x = Tensor::<B, 4>::random([2, 3, 8, 8], Distribution::Normal(0.0, 1.0), &device);
    let w = Tensor::<B, 4>::random([4, 3, 3, 3], Distribution::Normal(0.0, 1.0), &device);
    let b = Tensor::<B, 1>::random([4], Distribution::Normal(0.0, 1.0), &device);
    s.reset(vec![], false);
    let raw = s.ops();
    let ops = Ops::new(&raw);
    let (xi, wi, bi) = (
        s.insert(DynTensor::R4(x.clone())),
        s.insert(DynTensor::R4(w.clone())),
        s.insert(DynTensor::R1(b.clone())),
    );
    let options = Conv2d {
        stride: [2, 1],
        padding: [1, 0],
        ..Conv2d::default()
    };
    let y = ops.conv2d(
        ops.tensor(xi),
        ops.tensor(wi),
        Some(ops.tensor(bi)),
        options,
    );
    let expected = conv2d(
        x.clone(),
        w,
        Some(b),
        ConvOptions::new([2, 1], [1, 0], [1, 1], 1),
    );
    value(&s, y)
        .into_rank::<4>()
        .to_data()
        .assert_approx_eq::<f32>(&expected.to_data(), Tolerance::absolute(1e-5));

    let pooled = ops.max_pool2d(ops.tensor(xi), [2, 2], [2, 2], [0, 0]);
    let expected = max_pool2d(x.clone(), [2, 2], [2, 2], [0, 0], [1, 1], false);
    value(&s, pooled)
        .into_rank::<4>()
        .to_data()
        .assert_approx_eq::<f32>(&expected.to_data(), Tolerance::absolute(1e-6));
    let averaged = ops.avg_pool2d(ops.tensor(xi), [2, 2], [2, 2], [0, 0]);
    let expected = avg_pool2d(x, [2, 2], [2, 2], [0, 0], true, false);
    value(&s, averaged)
        .into_rank::<4>()
        .to_data()
        .assert_approx_eq::<f32>(&expected.to_data(), Tolerance::absolute(1e-6));
}

#[test]
fn shapes_reductions_and_broadcasting() {
    let s = session();
    s.reset(vec![], true);
    let raw = s.ops();
    let ops = Ops::new(&raw);
    let t = ops.constant(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    assert_eq!(t.reshape(&[3, -1]).shape(), [3, 2]);
    assert_eq!(t.sum_dim(1, false).to_vec(), [6.0, 15.0]);
    assert_eq!(t.sum_dim(0, true).shape(), [1, 3]);
    assert_eq!(t.mean().value(), 3.5);
    assert_eq!(t.max().value(), 6.0);
    let row = ops.constant(&[10.0, 20.0, 30.0], &[3]);
    assert_eq!((t + row).to_vec(), [11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
    assert_eq!((t * 2.0 - 1.0).to_vec(), [1.0, 3.0, 5.0, 7.0, 9.0, 11.0]);
    assert_eq!(t.transpose(0, 1).matmul(t).shape(), [3, 3]);
    assert_eq!(ops.cat(&[t, t], 0).shape(), [4, 3]);
    assert_eq!(t.narrow(1, 1, 3).to_vec(), [2.0, 3.0, 5.0, 6.0]);
    let p = ops.softmax(t, 1).sum_dim(1, false).to_vec();
    assert!(p.iter().all(|v| (v - 1.0).abs() < 1e-6), "{p:?}");
    assert_eq!(ops.dropout(t, 0.0).to_vec(), t.to_vec());
    assert_eq!(s.take_error(), None);
}

#[test]
fn dropout_is_the_identity_in_evaluation() {
    let s = session();
    s.reset(vec![], false);
    let raw = s.ops();
    let ops = Ops::new(&raw);
    let t = ops.full(&[100], 1.0);
    assert_eq!(ops.dropout(t, 0.5).to_vec(), vec![1.0; 100]);
    s.reset(vec![], true);
    let t = ops.full(&[1000], 1.0);
    let kept = ops.dropout(t, 0.5).to_vec();
    let zeros = kept.iter().filter(|&&v| v == 0.0).count();
    assert!(
        kept.iter().all(|&v| v == 0.0 || v == 2.0),
        "kept values are scaled by 1/(1-p)"
    );
    assert!((300..700).contains(&zeros), "{zeros} of 1000 dropped");
}

/// A parameter group is concatenated only when an operation reads it as a tensor: its shape
/// and its distances to anchors come from the members, and every route gives the same
/// distances and member gradients as the concatenation.
#[test]
fn a_parameter_group_is_concatenated_only_when_read_as_a_tensor() {
    let device = parse_device("cpu").unwrap();
    let s = Session::new(device.clone(), vec!["a".into(), "b".into()]);
    let normal = Distribution::Normal(0.0, 1.0);
    let a = Tensor::<B, 2>::random([3, 4], normal, &device).require_grad();
    let b = Tensor::<B, 1>::random([5], normal, &device).require_grad();
    let anchors = Tensor::<B, 2>::random([2, 17], normal, &device);
    let flat = |t: DynTensor| t.to_values();
    let run = |read_first: bool| {
        s.reset(
            vec![DynTensor::R2(a.clone()), DynTensor::R1(b.clone())],
            true,
        );
        let raw = s.ops();
        let ops = Ops::new(&raw);
        let group = ops.param_group(&["*"]);
        assert_eq!(group.shape(), [17]);
        let concatenated = if read_first {
            Some(flat(value(&s, group)))
        } else {
            None
        };
        let anchors = s.insert(DynTensor::R2(anchors.clone()));
        let d = ops.squared_distances(group, ops.tensor(anchors));
        let DynTensor::R1(d) = value(&s, d) else {
            panic!("distances have rank 1")
        };
        let grads = (d.clone() * d.clone()).sum().backward();
        (
            flat(DynTensor::R1(d)),
            a.grad(&grads).unwrap().to_data().to_vec::<f32>().unwrap(),
            b.grad(&grads).unwrap().to_data().to_vec::<f32>().unwrap(),
            concatenated,
        )
    };
    let (lazy, read) = (run(false), run(true));
    let whole: Vec<f32> = flat(DynTensor::R2(a.clone()))
        .into_iter()
        .chain(flat(DynTensor::R1(b.clone())))
        .collect();
    assert_eq!(
        read.3.as_deref(),
        Some(&whole[..]),
        "read as the concatenation"
    );
    for (x, y) in [(&lazy.0, &read.0), (&lazy.1, &read.1), (&lazy.2, &read.2)] {
        assert_eq!(x.len(), y.len());
        for (x, y) in x.iter().zip(y) {
            assert!((x - y).abs() <= 1e-4 * y.abs().max(1.0), "{x} vs {y}");
        }
    }
    assert!(lazy.1.iter().chain(&lazy.2).any(|g| *g != 0.0));
}

#[test]
fn failures_poison_the_rest_and_name_the_operation() {
    let s = session();
    s.reset(vec![], true);
    let raw = s.ops();
    let ops = Ops::new(&raw);
    let a = ops.constant(&[1.0; 6], &[2, 3]);
    let bad = a.matmul(a);
    let after = (bad + 1.0).exp();
    assert_eq!(after.id(), pn_plugin_api::abi::POISON);
    let error = s.take_error().expect("an error is recorded");
    assert!(
        error.starts_with("tensor operation `matmul` failed"),
        "{error}"
    );

    let stale = ops.full(&[2], 1.0).id();
    s.reset(vec![], true);
    let raw = s.ops();
    let ops = Ops::new(&raw);
    let _ = ops.tensor(stale).exp();
    assert!(s.take_error().unwrap().contains("earlier step"));
    let _ = ops.param_group(&["nothing.*"]);
    assert!(s.take_error().unwrap().contains("no parameter matches"));
}

#[test]
fn batch_norm_matches_burn_and_keeps_running_statistics() {
    use burn::nn::{BatchNorm, BatchNormConfig};
    let names = vec!["bn.weight".to_string(), "bn.bias".to_string()];
    let s = Session::new(parse_device("cpu").unwrap(), names);
    let device = s.device().clone();
    let gamma = Tensor::<B, 1>::random([3], Distribution::Normal(1.0, 0.3), &device);
    let beta = Tensor::<B, 1>::random([3], Distribution::Normal(0.0, 0.3), &device);
    let mut burn_bn: BatchNorm<B> = BatchNormConfig::new(3).init(&device);
    burn_bn.gamma = burn::module::Param::from_tensor(gamma.clone());
    burn_bn.beta = burn::module::Param::from_tensor(beta.clone());
    let (momentum, eps) = (0.1, 1e-5);
    // Our running variance is unbiased (as PyTorch's); Burn's is biased: track it by hand.
    let (mut mean, mut var) = (
        Tensor::<B, 1>::zeros([3], &device),
        Tensor::<B, 1>::ones([3], &device),
    );
    let forward = |x: &Tensor<B, 4>, train: bool| {
        s.reset(vec![], train);
        let raw = s.ops();
        let ops = Ops::new(&raw);
        let g = s.insert(DynTensor::R1(gamma.clone()));
        let b = s.insert(DynTensor::R1(beta.clone()));
        s.mark_params(2);
        let xi = s.insert(DynTensor::R4(x.clone()));
        let y = ops.batch_norm(ops.tensor(xi), ops.tensor(g), ops.tensor(b), momentum, eps);
        value(&s, y).into_rank::<4>()
    };
    for step in 0..3 {
        let x = Tensor::<B, 4>::random(
            [4, 3, 5, 5],
            Distribution::Normal(step as f64, 2.0),
            &device,
        );
        let ours = forward(&x, true);
        let expected = burn_bn.forward(x.clone());
        ours.to_data()
            .assert_approx_eq::<f32>(&expected.to_data(), Tolerance::absolute(1e-4));
        let flat = x.swap_dims(0, 1).reshape([3, 100]);
        let m = flat.clone().mean_dim(1).reshape([3]);
        let v = (flat - m.clone().reshape([3, 1]))
            .square()
            .sum_dim(1)
            .reshape([3])
            / 99.0;
        mean = mean * (1.0 - momentum) + m * momentum;
        var = var * (1.0 - momentum) + v * momentum;
    }
    let state = s.state();
    let names: Vec<&str> = state.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["bn.running_mean", "bn.running_var"]);
    let x = Tensor::<B, 4>::random([2, 3, 5, 5], Distribution::Normal(0.0, 1.0), &device);
    let scale = (gamma.clone() / (var + eps).sqrt()).reshape([1, 3, 1, 1]);
    let shift = beta.clone().reshape([1, 3, 1, 1]);
    let expected = (x.clone() - mean.reshape([1, 3, 1, 1])) * scale + shift;
    forward(&x, false)
        .to_data()
        .assert_approx_eq::<f32>(&expected.to_data(), Tolerance::absolute(1e-4));

    // gamma must be a parameter of the forward pass, so the host knows whose statistics these are.
    s.reset(vec![], true);
    let raw = s.ops();
    let ops = Ops::new(&raw);
    let g = ops.tensor(s.insert(DynTensor::R1(gamma.clone())));
    let xi = ops.tensor(s.insert(DynTensor::R4(x)));
    let _ = ops.batch_norm(xi, g, g, momentum, eps);
    let error = s.take_error().expect("refused");
    assert!(
        error.contains("gamma must be one of the model's parameters"),
        "{error}"
    );
}

#[test]
fn saturation_counts_dead_relu_units_and_saturated_tanh_inputs() {
    let s = session();
    let device = s.device().clone();
    let pass = |relu_in: [[f32; 3]; 2], tanh_in: [[f32; 2]; 2]| {
        s.reset(vec![], false);
        let raw = s.ops();
        let ops = Ops::new(&raw);
        let r = s.insert(DynTensor::R2(Tensor::from_data(relu_in, &device)));
        let t = s.insert(DynTensor::R2(Tensor::from_data(tanh_in, &device)));
        let _ = (ops.tensor(r).relu(), ops.tensor(t).tanh());
        assert_eq!(s.take_error(), None);
    };
    s.track_saturation();
    // Unit 0 is never positive: one of three ReLU units is dead. Two of four tanh inputs have
    // |x| > 1.832.
    pass(
        [[-1.0, 2.0, -3.0], [-1.0, -2.0, 4.0]],
        [[0.5, 3.0], [-2.5, 0.1]],
    );
    let first = s.take_saturation();
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].layer, "act1.relu");
    assert!((first[0].fraction - 1.0 / 3.0).abs() < 1e-9, "{first:?}");
    assert_eq!(first[1].layer, "act2.tanh");
    assert!((first[1].fraction - 0.5).abs() < 1e-9, "{first:?}");
    // Over two batches, a unit positive in either is alive; tanh counts add up.
    s.track_saturation();
    pass(
        [[-1.0, 2.0, -3.0], [-1.0, -2.0, 4.0]],
        [[0.5, 3.0], [-2.5, 0.1]],
    );
    pass(
        [[1.0, -1.0, -1.0], [-1.0, -1.0, -1.0]],
        [[0.0, 0.0], [0.0, 0.0]],
    );
    let both = s.take_saturation();
    assert_eq!(both[0].fraction, 0.0, "{both:?}");
    assert!((both[1].fraction - 0.25).abs() < 1e-9, "{both:?}");
    // Not measuring: nothing is recorded.
    pass([[-1.0; 3]; 2], [[9.0; 2]; 2]);
    assert!(s.take_saturation().is_empty());
}
