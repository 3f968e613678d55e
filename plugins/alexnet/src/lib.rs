//! `alexnet`: AlexNet (Krizhevsky et al., 2012) in the form commonly trained on CIFAR-10's 32x32
//! images: conv 11x11/4 (64 maps, padding 5) → max-pool 2 → conv 5x5 (192, padding 2) →
//! max-pool 2 → conv 3x3 (384) → conv 3x3 (256) → conv 3x3 (256) → max-pool 2 → linear, with
//! ReLU after every convolution and optional dropout before the linear layer. Inputs are
//! `[channels, height, width]`. Parameters: `conv1.*` … `conv5.*`, `fc.*`.

use pn_plugin_api::{Component, Conv2d, Model, Ops, ParamSpec, Result, Tensor};
use pn_plugin_kit::layers::{check_poor_std, image_shape, Init};
use serde::{Deserialize, Serialize};

/// Network settings.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Default `kaiming_uniform`.
    pub init: Init,
    /// Standard deviation of the `poor` initialisation. Default 0.01.
    pub poor_std: f64,
    /// Dropout probability before the linear layer (training only). Default 0.
    pub dropout: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            init: Init::KaimingUniform,
            poor_std: 0.01,
            dropout: 0.0,
        }
    }
}

/// The convolutions: (name, maps, kernel, stride, padding, max-pool after).
pub const CONVS: [(&str, usize, usize, usize, usize, bool); 5] = [
    ("conv1", 64, 11, 4, 5, true),
    ("conv2", 192, 5, 1, 2, true),
    ("conv3", 384, 3, 1, 1, false),
    ("conv4", 256, 3, 1, 1, false),
    ("conv5", 256, 3, 1, 1, true),
];

/// AlexNet for small images.
pub struct Alexnet(Config);

impl Component for Alexnet {
    const NAME: &'static str = "alexnet";
    const DESCRIPTION: &'static str =
        "AlexNet for 32x32 images: five convolutions, one linear layer";
    type Config = Config;
    fn new(c: Config) -> Result<Self> {
        check_poor_std(c.poor_std)?;
        if !(0.0..1.0).contains(&c.dropout) {
            return Err(format!("dropout must be in [0, 1), got {}", c.dropout).into());
        }
        Ok(Alexnet(c))
    }
}

/// The side of the feature maps after the convolutions and pools, for an input of side `side`.
fn final_side(mut side: usize) -> usize {
    for (_, _, k, s, p, pool) in CONVS {
        side = (side + 2 * p).saturating_sub(k) / s + 1;
        if pool {
            side /= 2;
        }
    }
    side
}

impl Model for Alexnet {
    fn parameters(&self, input_shape: &[usize], outputs: usize) -> Result<Vec<ParamSpec>> {
        let [channels, height, width] = image_shape(Self::NAME, input_shape)?;
        let (h, w) = (final_side(height), final_side(width));
        if h == 0 || w == 0 {
            return Err(
                format!("alexnet needs inputs of at least 32x32, got {height}x{width}").into(),
            );
        }
        let c = &self.0;
        let mut cin = channels;
        let mut specs = vec![];
        for (name, maps, k, _, _, _) in CONVS {
            specs.extend(c.init.layer(
                name,
                &[maps, cin, k, k],
                cin * k * k,
                maps * k * k,
                Some(maps),
                c.poor_std,
            ));
            cin = maps;
        }
        let flat = cin * h * w;
        specs.extend(c.init.layer(
            "fc",
            &[flat, outputs],
            flat,
            outputs,
            Some(outputs),
            c.poor_std,
        ));
        Ok(specs)
    }

    fn forward<'a>(
        &self,
        ops: Ops<'a>,
        input: Tensor<'a>,
        p: &[Tensor<'a>],
        _train: bool,
    ) -> Result<Tensor<'a>> {
        let n = input.shape()[0] as i64;
        let mut x = input;
        for (i, (_, _, _, stride, padding, pool)) in CONVS.into_iter().enumerate() {
            let options = Conv2d {
                stride: [stride, stride],
                padding: [padding, padding],
                ..Conv2d::default()
            };
            x = ops.conv2d(x, p[2 * i], Some(p[2 * i + 1]), options).relu();
            if pool {
                x = ops.max_pool2d(x, [2, 2], [2, 2], [0, 0]);
            }
        }
        let x = ops.dropout(x.reshape(&[n, -1]), self.0.dropout);
        Ok(ops.linear(x, p[10], Some(p[11])))
    }
}

pn_plugin_api::register_model!(Alexnet);
pn_plugin_api::export_plugin!();
