//! `lenet5`: the LeNet-5 convolutional network (LeCun et al., 1998) in its common modern form,
//! the persistent-neurons paper's MNIST model: conv 5x5 (6 maps, padding 2) → pool 2 → conv 5x5
//! (16 maps) → pool 2 → fc 120 → fc 84 → fc outputs, with ReLU or tanh and max or average
//! pooling. Inputs are `[channels, height, width]` (28x28 MNIST; 32x32 CIFAR works too).
//! Parameters: `conv1.*`, `conv2.*`, `fc1.*`, `fc2.*`, `fc3.*` (`weight` and `bias`).

use pn_plugin_api::{Component, Conv2d, Model, Ops, ParamSpec, Result, Tensor};
use pn_plugin_kit::layers::{check_poor_std, image_shape, Activation, Init};
use serde::{Deserialize, Serialize};

/// Sub-sampling after each convolution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pool {
    /// 2x2 max pooling
    Max,
    /// 2x2 average pooling, as in the original network
    Avg,
}

/// Network settings.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `relu` (default), `tanh` (the original) or `sigmoid`.
    pub activation: Activation,
    /// Default `max`.
    pub pool: Pool,
    /// Default `kaiming_uniform`.
    pub init: Init,
    /// Standard deviation of the `poor` initialisation. Default 0.01.
    pub poor_std: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            activation: Activation::Relu,
            pool: Pool::Max,
            init: Init::KaimingUniform,
            poor_std: 0.01,
        }
    }
}

/// LeNet-5.
pub struct Lenet5(Config);

impl Component for Lenet5 {
    const NAME: &'static str = "lenet5";
    const DESCRIPTION: &'static str =
        "LeNet-5: two 5x5 convolutions with pooling, three fully connected layers";
    type Config = Config;
    fn new(c: Config) -> Result<Self> {
        check_poor_std(c.poor_std)?;
        Ok(Lenet5(c))
    }
}

impl Lenet5 {
    fn layer(
        &self,
        name: &str,
        weight_shape: &[usize],
        fan_in: usize,
        fan_out: usize,
        outputs: usize,
    ) -> Vec<ParamSpec> {
        self.0.init.layer(
            name,
            weight_shape,
            fan_in,
            fan_out,
            Some(outputs),
            self.0.poor_std,
        )
    }

    fn activate<'a>(&self, x: Tensor<'a>) -> Tensor<'a> {
        self.0.activation.apply(x)
    }

    fn pool<'a>(&self, ops: Ops<'a>, x: Tensor<'a>) -> Tensor<'a> {
        match self.0.pool {
            Pool::Max => ops.max_pool2d(x, [2, 2], [2, 2], [0, 0]),
            Pool::Avg => ops.avg_pool2d(x, [2, 2], [2, 2], [0, 0]),
        }
    }
}

/// Side of the feature maps entering `fc1` for an input of side `side`.
fn final_side(side: usize) -> Option<usize> {
    let after_conv2 = (side / 2).checked_sub(4)?;
    (after_conv2 >= 2).then_some(after_conv2 / 2)
}

impl Model for Lenet5 {
    fn parameters(&self, input_shape: &[usize], outputs: usize) -> Result<Vec<ParamSpec>> {
        let [channels, height, width] = image_shape(Self::NAME, input_shape)?;
        let (Some(h), Some(w)) = (final_side(height), final_side(width)) else {
            return Err(
                format!("lenet5 needs inputs of at least 12x12, got {height}x{width}").into(),
            );
        };
        let flat = 16 * h * w;
        Ok([
            self.layer("conv1", &[6, channels, 5, 5], channels * 25, 6 * 25, 6),
            self.layer("conv2", &[16, 6, 5, 5], 6 * 25, 16 * 25, 16),
            self.layer("fc1", &[flat, 120], flat, 120, 120),
            self.layer("fc2", &[120, 84], 120, 84, 84),
            self.layer("fc3", &[84, outputs], 84, outputs, outputs),
        ]
        .concat())
    }

    fn forward<'a>(
        &self,
        ops: Ops<'a>,
        input: Tensor<'a>,
        p: &[Tensor<'a>],
        _train: bool,
    ) -> Result<Tensor<'a>> {
        let n = input.shape()[0] as i64;
        let padded = Conv2d {
            padding: [2, 2],
            ..Conv2d::default()
        };
        let x = self.pool(
            ops,
            self.activate(ops.conv2d(input, p[0], Some(p[1]), padded)),
        );
        let x = self.pool(
            ops,
            self.activate(ops.conv2d(x, p[2], Some(p[3]), Conv2d::default())),
        );
        let x = self.activate(ops.linear(x.reshape(&[n, -1]), p[4], Some(p[5])));
        let x = self.activate(ops.linear(x, p[6], Some(p[7])));
        Ok(ops.linear(x, p[8], Some(p[9])))
    }
}

pn_plugin_api::register_model!(Lenet5);
pn_plugin_api::export_plugin!();
