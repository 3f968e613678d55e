//! Model plugins' forward passes, run through the plugin boundary, equal the same networks
//! written directly with Burn on the same weights.
// The device type is `Copy` only in CPU-only builds (see pn_host::device).
#![allow(clippy::clone_on_copy)]

use abi_stable::std_types::RSlice;
use burn::module::{Module, Param};
use burn::tensor::activation::{relu, tanh};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use pn_host::device::{parse_device, B};
use pn_host::train::dyn_tensor::DynTensor;
use pn_host::train::params::initial_values;
use pn_host::train::session::Session;
use serde_json::json;

/// A hand-written two-hidden-layer network.
#[derive(Module, Debug)]
struct Net<B: Backend> {
    weights: Vec<Param<Tensor<B, 2>>>,
    biases: Vec<Param<Tensor<B, 1>>>,
}

impl<B: Backend> Net<B> {
    fn forward(&self, x: Tensor<B, 2>, act: fn(Tensor<B, 2>) -> Tensor<B, 2>) -> Tensor<B, 2> {
        let last = self.weights.len() - 1;
        let mut h = x;
        for (i, (w, b)) in self.weights.iter().zip(&self.biases).enumerate() {
            h = h.matmul(w.val()) + b.val().unsqueeze::<2>();
            if i < last {
                h = act(h);
            }
        }
        h
    }
}

fn compare(activation: &str, act: fn(Tensor<B, 2>) -> Tensor<B, 2>) {
    let registry = pn_tests::registry(&["mlp"]);
    let device = parse_device("cpu").unwrap();
    let (model, _) = registry
        .model("mlp", &json!({"hidden": [7, 5], "activation": activation}))
        .unwrap();
    let specs = model
        .parameters(RSlice::from_slice(&[2, 3]), 4)
        .unwrap()
        .into_vec();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "layer0.weight",
            "layer0.bias",
            "layer1.weight",
            "layer1.bias",
            "layer2.weight",
            "layer2.bias"
        ]
    );
    let x = Tensor::<B, 3>::random([8, 2, 3], Distribution::Normal(0.0, 1.0), &device);
    let (tensors, plugin) = plugin_forward(&model, DynTensor::R3(x.clone()), &[2, 3], 4);

    let net = Net::<B> {
        weights: tensors
            .iter()
            .step_by(2)
            .map(|t| Param::from_tensor(t.clone().into_rank::<2>()))
            .collect(),
        biases: tensors
            .iter()
            .skip(1)
            .step_by(2)
            .map(|t| match t {
                DynTensor::R1(b) => Param::from_tensor(b.clone()),
                _ => panic!("bias has rank 1"),
            })
            .collect(),
    };
    let direct = net.forward(x.reshape([8, 6]), act);
    assert_eq!(plugin.dims(), [8, 4]);
    plugin
        .to_data()
        .assert_approx_eq::<f32>(&direct.to_data(), burn::tensor::Tolerance::absolute(1e-5));
}

#[test]
fn relu_mlp_matches_hand_written_burn() {
    compare("relu", relu);
}

#[test]
fn tanh_mlp_matches_hand_written_burn() {
    compare("tanh", tanh);
}

#[test]
fn student_sums_its_hidden_units() {
    let registry = pn_tests::registry(&["mlp"]);
    let device = parse_device("cpu").unwrap();
    let (model, _) = registry
        .model(
            "mlp",
            &json!({"hidden": [4], "output": "sum", "bias": false}),
        )
        .unwrap();
    let specs = model
        .parameters(RSlice::from_slice(&[3]), 1)
        .unwrap()
        .into_vec();
    assert_eq!(specs.len(), 1, "no trained output layer");
    let w = Tensor::<B, 2>::random([3, 4], Distribution::Normal(0.0, 1.0), &device);
    let x = Tensor::<B, 2>::random([5, 3], Distribution::Normal(0.0, 1.0), &device);
    let session = Session::new(device.clone(), vec!["layer0.weight".into()]);
    session.reset(vec![DynTensor::R2(w.clone())], false);
    let ids = [session.insert(DynTensor::R2(w.clone()))];
    let input = session.insert(DynTensor::R2(x.clone()));
    let out = model
        .forward(session.ops(), input, RSlice::from_slice(&ids), false)
        .unwrap();
    let plugin = session.get(out).unwrap().into_rank::<2>();
    let direct = relu(x.matmul(w)).sum_dim(1);
    plugin
        .to_data()
        .assert_approx_eq::<f32>(&direct.to_data(), burn::tensor::Tolerance::absolute(1e-5));
}

/// Runs a model plugin's forward pass on `x` with parameters drawn from a fixed seed.
fn plugin_forward(
    model: &pn_plugin_api::abi::ModelBox,
    x: DynTensor,
    input_shape: &[usize],
    outputs: usize,
) -> (Vec<DynTensor>, Tensor<B, 2>) {
    plugin_forward_mode(model, x, input_shape, outputs, false)
}

/// [`plugin_forward`] in training (`train = true`) or evaluation mode.
fn plugin_forward_mode(
    model: &pn_plugin_api::abi::ModelBox,
    x: DynTensor,
    input_shape: &[usize],
    outputs: usize,
    train: bool,
) -> (Vec<DynTensor>, Tensor<B, 2>) {
    let device = parse_device("cpu").unwrap();
    let specs = model
        .parameters(RSlice::from_slice(input_shape), outputs)
        .unwrap()
        .into_vec();
    let values = initial_values(&specs, 5).unwrap();
    let tensors: Vec<DynTensor> = specs
        .iter()
        .zip(&values)
        .map(|(s, v)| DynTensor::from_values(v.clone(), &s.shape, &device).unwrap())
        .collect();
    let session = Session::new(device, specs.iter().map(|s| s.name.to_string()).collect());
    session.reset(tensors.clone(), train);
    let ids: Vec<u64> = tensors.iter().map(|t| session.insert(t.clone())).collect();
    session.mark_params(ids.len());
    let input = session.insert(x);
    let out = model
        .forward(session.ops(), input, RSlice::from_slice(&ids), train)
        .unwrap();
    assert_eq!(session.take_error(), None);
    (tensors, session.get(out).unwrap().into_rank::<2>())
}

#[test]
fn lenet5_matches_hand_written_burn() {
    use burn::tensor::module::{conv2d, linear, max_pool2d};
    use burn::tensor::ops::ConvOptions;
    let registry = pn_tests::registry(&["lenet5"]);
    let device = parse_device("cpu").unwrap();
    let (model, _) = registry.model("lenet5", &json!({})).unwrap();
    let x = Tensor::<B, 4>::random([3, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
    let (p, plugin) = plugin_forward(&model, DynTensor::R4(x.clone()), &[1, 28, 28], 10);
    let r1 = |i: usize| p[i].clone().into_rank::<1>();
    let r2 = |i: usize| p[i].clone().into_rank::<2>();
    let r4 = |i: usize| p[i].clone().into_rank::<4>();
    let pool = |t| max_pool2d(t, [2, 2], [2, 2], [0, 0], [1, 1], false);
    let h = pool(relu(conv2d(
        x,
        r4(0),
        Some(r1(1)),
        ConvOptions::new([1, 1], [2, 2], [1, 1], 1),
    )));
    let h = pool(relu(conv2d(
        h,
        r4(2),
        Some(r1(3)),
        ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
    )));
    assert_eq!(h.dims(), [3, 16, 5, 5]);
    let h = relu(linear(h.reshape([3, 400]), r2(4), Some(r1(5))));
    let h = relu(linear(h, r2(6), Some(r1(7))));
    let direct = linear(h, r2(8), Some(r1(9)));
    assert_eq!(plugin.dims(), [3, 10]);
    plugin
        .to_data()
        .assert_approx_eq::<f32>(&direct.to_data(), burn::tensor::Tolerance::absolute(1e-4));
}

#[test]
fn lenet5_refuses_inputs_it_cannot_take() {
    let registry = pn_tests::registry(&["lenet5"]);
    let (model, _) = registry.model("lenet5", &json!({})).unwrap();
    let err = model
        .parameters(RSlice::from_slice(&[784]), 10)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[channels, height, width]"), "{err}");
    let err = model
        .parameters(RSlice::from_slice(&[1, 8, 8]), 10)
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least 12x12"), "{err}");
    let specs = model
        .parameters(RSlice::from_slice(&[3, 32, 32]), 10)
        .unwrap();
    assert_eq!(
        specs[4].shape.as_slice(),
        [16 * 6 * 6, 120],
        "CIFAR-sized inputs"
    );
}

#[test]
fn alexnet_matches_hand_written_burn() {
    use burn::tensor::module::{conv2d, linear, max_pool2d};
    use burn::tensor::ops::ConvOptions;
    let registry = pn_tests::registry(&["alexnet"]);
    let device = parse_device("cpu").unwrap();
    let (model, _) = registry.model("alexnet", &json!({})).unwrap();
    let x = Tensor::<B, 4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let (p, plugin) = plugin_forward(&model, DynTensor::R4(x.clone()), &[3, 32, 32], 10);
    let r1 = |i: usize| p[i].clone().into_rank::<1>();
    let r4 = |i: usize| p[i].clone().into_rank::<4>();
    let pool = |t| max_pool2d(t, [2, 2], [2, 2], [0, 0], [1, 1], false);
    let conv = |t, i: usize, stride: usize, pad: usize| {
        let options = ConvOptions::new([stride; 2], [pad; 2], [1, 1], 1);
        relu(conv2d(t, r4(i), Some(r1(i + 1)), options))
    };
    let h = pool(conv(x, 0, 4, 5));
    assert_eq!(h.dims(), [2, 64, 4, 4]);
    let h = pool(conv(h, 2, 1, 2));
    let h = conv(conv(conv(h, 4, 1, 1), 6, 1, 1), 8, 1, 1);
    let h = pool(h);
    assert_eq!(h.dims(), [2, 256, 1, 1]);
    let direct = linear(
        h.reshape([2, 256]),
        p[10].clone().into_rank::<2>(),
        Some(r1(11)),
    );
    plugin
        .to_data()
        .assert_approx_eq::<f32>(&direct.to_data(), burn::tensor::Tolerance::absolute(1e-4));
}

#[test]
fn resnet20_matches_hand_written_burn_with_batch_norm() {
    use burn::module::Param;
    use burn::nn::BatchNormConfig;
    use burn::tensor::module::{adaptive_avg_pool2d, conv2d, linear};
    use burn::tensor::ops::ConvOptions;
    let registry = pn_tests::registry(&["resnet"]);
    let device = parse_device("cpu").unwrap();
    let (model, _) = registry.model("resnet", &json!({})).unwrap();
    let x = Tensor::<B, 4>::random([4, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    // Training mode: batch norm uses the batch's statistics, as Burn's BatchNorm does.
    let (p, plugin) = plugin_forward_mode(&model, DynTensor::R4(x.clone()), &[3, 32, 32], 10, true);
    // 19 convolutions with batch norm (2 of them projections) and the linear layer.
    assert_eq!(p.len(), 3 * 19 + 2 * 3 + 2);
    let mut next = p.iter().cloned();
    let mut conv_bn = |t: Tensor<B, 4>, stride: usize, pad: usize| {
        let w = next.next().unwrap().into_rank::<4>();
        let t = conv2d(
            t,
            w,
            None,
            ConvOptions::new([stride; 2], [pad; 2], [1, 1], 1),
        );
        let mut bn = BatchNormConfig::new(t.dims()[1]).init(&device);
        bn.gamma = Param::from_tensor(next.next().unwrap().into_rank::<1>());
        bn.beta = Param::from_tensor(next.next().unwrap().into_rank::<1>());
        bn.forward(t)
    };
    let mut h = relu(conv_bn(x, 1, 1));
    let mut width = 16;
    for (stage, out) in [16, 32, 64].into_iter().enumerate() {
        for block in 0..3 {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            let y = relu(conv_bn(h.clone(), stride, 1));
            let y = conv_bn(y, 1, 1);
            let shortcut = if stride != 1 || width != out {
                conv_bn(h, stride, 0)
            } else {
                h
            };
            h = relu(y + shortcut);
            width = out;
        }
    }
    assert_eq!(h.dims(), [4, 64, 8, 8]);
    let pooled = adaptive_avg_pool2d(h, [1, 1]).reshape([4, 64]);
    let (w, b) = (next.next().unwrap(), next.next().unwrap());
    assert!(next.next().is_none());
    let direct = linear(pooled, w.into_rank::<2>(), Some(b.into_rank::<1>()));
    plugin
        .to_data()
        .assert_approx_eq::<f32>(&direct.to_data(), burn::tensor::Tolerance::absolute(1e-3));
}

#[test]
fn resnet18_has_the_usual_shape() {
    let registry = pn_tests::registry(&["resnet"]);
    let (model, _) = registry
        .model("resnet", &json!({"arch": "resnet18"}))
        .unwrap();
    let specs = model
        .parameters(RSlice::from_slice(&[3, 32, 32]), 10)
        .unwrap()
        .into_vec();
    let count: usize = specs.iter().map(|s| s.numel()).sum();
    // ResNet-18 for CIFAR-10 has 11,173,962 parameters (the figure reported for PyTorch's).
    assert_eq!(count, 11_173_962);
}
