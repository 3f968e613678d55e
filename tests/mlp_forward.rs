//! The `mlp` plugin's forward pass, run through the plugin boundary, equals the same network
//! written directly as a Burn module with the same weights.

use abi_stable::std_types::RSlice;
use burn::module::{Module, Param};
use burn::tensor::activation::{relu, tanh};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use pn_host::device::{parse_device, B};
use pn_host::dyn_tensor::DynTensor;
use pn_host::params::initial_values;
use pn_host::session::Session;
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
    let names: Vec<String> = specs.iter().map(|s| s.name.to_string()).collect();
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
    let values = initial_values(&specs, 11).unwrap();
    let tensors: Vec<DynTensor> = specs
        .iter()
        .zip(&values)
        .map(|(s, v)| DynTensor::from_values(v.clone(), &s.shape, &device).unwrap())
        .collect();
    let x = Tensor::<B, 3>::random([8, 2, 3], Distribution::Normal(0.0, 1.0), &device);

    let session = Session::new(device.clone(), names);
    session.reset(tensors.clone(), false);
    let ids: Vec<u64> = tensors.iter().map(|t| session.insert(t.clone())).collect();
    let input = session.insert(DynTensor::R3(x.clone()));
    let out = model
        .forward(session.ops(), input, RSlice::from_slice(&ids), false)
        .unwrap();
    assert_eq!(session.take_error(), None);
    let plugin = session.get(out).unwrap().into_rank::<2>();

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
