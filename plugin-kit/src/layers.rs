//! Building blocks shared by model plugins: initialisation schemes and activations, with the
//! names users write in configs (`init = "xavier_normal"`, `activation = "tanh"`).

use serde::{Deserialize, Serialize};

use pn_plugin_api::abi::ParamSpec;
use pn_plugin_api::tensor::Tensor;

/// How a layer's weights (and biases) start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// PyTorch's and Burn's default for linear and convolution layers:
    /// U(−1/√fan_in, 1/√fan_in) for weights and biases.
    KaimingUniform,
    /// N(0, 2/(fan_in + fan_out)) (Glorot & Bengio, 2010), zero biases.
    XavierNormal,
    /// N(0, 2/fan_in) (He et al., 2015), zero biases: the usual start of ReLU residual networks.
    KaimingNormal,
    /// N(0, poor_std²), zero biases: a deliberately poor, small-variance start.
    Poor,
}

impl Init {
    /// Specs of `name.weight` (shape `weight_shape`) and, with `bias = Some(len)`, `name.bias`.
    /// `fan_in`/`fan_out` count the connections of one output/input unit.
    pub fn layer(
        self,
        name: &str,
        weight_shape: &[usize],
        fan_in: usize,
        fan_out: usize,
        bias: Option<usize>,
        poor_std: f64,
    ) -> Vec<ParamSpec> {
        let (w, b) = (format!("{name}.weight"), format!("{name}.bias"));
        let bound = 1.0 / (fan_in as f64).sqrt();
        let weight = match self {
            Init::KaimingUniform => ParamSpec::uniform(&w, weight_shape, -bound, bound),
            Init::XavierNormal => ParamSpec::normal(
                &w,
                weight_shape,
                0.0,
                (2.0 / (fan_in + fan_out) as f64).sqrt(),
            ),
            Init::KaimingNormal => {
                ParamSpec::normal(&w, weight_shape, 0.0, (2.0 / fan_in as f64).sqrt())
            }
            Init::Poor => ParamSpec::normal(&w, weight_shape, 0.0, poor_std),
        };
        let bias = bias.map(|len| match self {
            Init::KaimingUniform => ParamSpec::uniform(&b, &[len], -bound, bound),
            _ => ParamSpec::constant(&b, &[len], 0.0),
        });
        std::iter::once(weight).chain(bias).collect()
    }
}

/// Specs of a batch-norm layer's `name.weight` (γ, ones) and `name.bias` (β, zeros) over
/// `channels`; its running statistics belong to the host (see `Ops::batch_norm`).
pub fn batch_norm(name: &str, channels: usize) -> Vec<ParamSpec> {
    vec![
        ParamSpec::constant(&format!("{name}.weight"), &[channels], 1.0),
        ParamSpec::constant(&format!("{name}.bias"), &[channels], 0.0),
    ]
}

/// Element-wise non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// max(x, 0)
    Relu,
    /// hyperbolic tangent
    Tanh,
    /// logistic sigmoid
    Sigmoid,
}

impl Activation {
    /// Applies the non-linearity.
    pub fn apply(self, x: Tensor<'_>) -> Tensor<'_> {
        match self {
            Activation::Relu => x.relu(),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => x.sigmoid(),
        }
    }
}

/// `[channels, height, width]` of an image model's `input_shape`, or an error naming `model`.
pub fn image_shape(model: &str, input_shape: &[usize]) -> pn_plugin_api::Result<[usize; 3]> {
    match input_shape {
        &[c, h, w] => Ok([c, h, w]),
        other => {
            Err(format!("{model} needs [channels, height, width] inputs, got {other:?}").into())
        }
    }
}

/// Rejects a non-positive or NaN `poor_std`.
pub fn check_poor_std(poor_std: f64) -> pn_plugin_api::Result<()> {
    if poor_std.is_nan() || poor_std <= 0.0 {
        return Err(format!("config field `poor_std` must be > 0, got {poor_std}").into());
    }
    Ok(())
}
