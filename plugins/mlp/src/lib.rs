//! `mlp`: fully connected networks. Covers the persistent-neurons paper's three-layer net
//! (`hidden = [h, h]`), LeNet-300-100 (`hidden = [300, 100]`), and the two-layer ReLU student
//! `f(x) = Σ_i relu(w_iᵀx)` of teacher-student studies (`output = "sum"`, `bias = false`: no
//! trained output layer). Parameters are named `layer{i}.weight` (`[in, out]`) and
//! `layer{i}.bias`, so strategies can select layers by glob.

use pn_plugin_api::{Component, Model, Ops, ParamSpec, Result, Tensor};
use pn_plugin_kit::layers::{check_poor_std, Activation, Init};
use serde::{Deserialize, Serialize};

/// How the network produces its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// A trained linear layer to the data set's outputs.
    Linear,
    /// The sum of the last hidden layer's activations (one output, nothing trained after it).
    Sum,
}

/// Network settings.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Widths of the hidden layers. Default `[10]`.
    pub hidden: Vec<usize>,
    /// Hidden non-linearity. Default `relu`.
    pub activation: Activation,
    /// `linear` or `sum`. Default `linear`.
    pub output: Output,
    /// Whether layers have biases. Default true.
    pub bias: bool,
    /// Weight initialisation. Default `kaiming_uniform`.
    pub init: Init,
    /// Standard deviation of the `poor` initialisation. Default 0.01.
    pub poor_std: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            hidden: vec![10],
            activation: Activation::Relu,
            output: Output::Linear,
            bias: true,
            init: Init::KaimingUniform,
            poor_std: 0.01,
        }
    }
}

/// A fully connected network.
pub struct Mlp(Config);

impl Component for Mlp {
    const NAME: &'static str = "mlp";
    const DESCRIPTION: &'static str =
        "fully connected network (hidden widths, activation, linear or sum output)";
    type Config = Config;
    fn new(c: Config) -> Result<Self> {
        if c.hidden.is_empty() && c.output == Output::Sum {
            return Err("config field `hidden` must not be empty with output = \"sum\"".into());
        }
        if c.hidden.contains(&0) {
            return Err("config field `hidden` must not contain 0".into());
        }
        check_poor_std(c.poor_std)?;
        Ok(Mlp(c))
    }
}

impl Model for Mlp {
    fn parameters(&self, input_shape: &[usize], outputs: usize) -> Result<Vec<ParamSpec>> {
        if self.0.output == Output::Sum && outputs != 1 {
            return Err(format!(
                "output = \"sum\" gives one output, but the data set has {outputs}: set model.output = \"linear\" (or name the model, `--model mlp`, for its own defaults)"
            )
            .into());
        }
        let mut widths = vec![input_shape.iter().product::<usize>()];
        widths.extend(&self.0.hidden);
        if self.0.output == Output::Linear {
            widths.push(outputs);
        }
        let bias = |n: usize| self.0.bias.then_some(n);
        let layer = |(i, w): (usize, &[usize])| {
            let name = format!("layer{i}");
            self.0.init.layer(
                &name,
                &[w[0], w[1]],
                w[0],
                w[1],
                bias(w[1]),
                self.0.poor_std,
            )
        };
        Ok(widths.windows(2).enumerate().flat_map(layer).collect())
    }

    fn forward<'a>(
        &self,
        ops: Ops<'a>,
        input: Tensor<'a>,
        params: &[Tensor<'a>],
        _train: bool,
    ) -> Result<Tensor<'a>> {
        let shape = input.shape();
        let mut x = if shape.len() == 2 {
            input
        } else {
            input.reshape(&[shape[0] as i64, -1])
        };
        let per_layer = if self.0.bias { 2 } else { 1 };
        let layers: Vec<&[Tensor<'a>]> = params.chunks(per_layer).collect();
        for (i, layer) in layers.iter().enumerate() {
            x = ops.linear(x, layer[0], layer.get(1).copied());
            if i + 1 < layers.len() || self.0.output == Output::Sum {
                x = self.0.activation.apply(x);
            }
        }
        Ok(match self.0.output {
            Output::Sum => x.sum_dim(1, true),
            Output::Linear => x,
        })
    }
}

pn_plugin_api::register_model!(Mlp);
pn_plugin_api::export_plugin!();
