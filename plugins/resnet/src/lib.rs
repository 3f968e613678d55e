//! `resnet`: residual networks with batch norm for small images (He et al., 2016).
//!
//! `arch = "resnet20"` (default; also `resnet32`, `resnet44`, `resnet56`) is the CIFAR-10
//! network of the paper's section 4.2: a 3x3 convolution with 16 maps, three stages of n basic
//! blocks (16, 32, 64 maps; the first block of stages 2 and 3 halves the resolution), global
//! average pooling and a linear layer; depth = 6n + 2. `arch = "resnet18"` is the common
//! CIFAR form of ResNet-18: a 3x3 stem with 64 maps and four stages of two blocks (64, 128, 256,
//! 512 maps). A basic block is conv3x3-BN-ReLU-conv3x3-BN plus the shortcut, then ReLU; when
//! the shape changes the shortcut is a 1x1 convolution with BN (option B). Convolutions have no
//! bias. Parameter names: `stem.conv.weight`, `stem.bn.{weight,bias}`,
//! `stage<i>.block<j>.{conv1,bn1,conv2,bn2,shortcut.conv,shortcut.bn}.*`, `fc.{weight,bias}`.

use pn_plugin_api::{Component, Conv2d, Model, Ops, ParamSpec, Result, Tensor};
use pn_plugin_kit::layers::{batch_norm, check_poor_std, image_shape, Init};
use serde::{Deserialize, Serialize};

/// Which network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// CIFAR ResNet, n = 3
    Resnet20,
    /// CIFAR ResNet, n = 5
    Resnet32,
    /// CIFAR ResNet, n = 7
    Resnet44,
    /// CIFAR ResNet, n = 9
    Resnet56,
    /// ResNet-18 with a 3x3 stem
    Resnet18,
}

/// Network settings.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Default `resnet20`.
    pub arch: Arch,
    /// Weight initialisation of convolutions and the linear layer. Default `kaiming_normal`.
    pub init: Init,
    /// Standard deviation of the `poor` initialisation. Default 0.01.
    pub poor_std: f64,
    /// Batch-norm momentum of the running statistics. Default 0.1.
    pub bn_momentum: f64,
    /// Batch-norm epsilon. Default 1e-5.
    pub bn_eps: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            arch: Arch::Resnet20,
            init: Init::KaimingNormal,
            poor_std: 0.01,
            bn_momentum: 0.1,
            bn_eps: 1e-5,
        }
    }
}

/// One basic block: channels in and out, and the stride of its first convolution.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Parameter name prefix, e.g. `stage2.block0`.
    pub name: String,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Stride of the first convolution (and of the projection).
    pub stride: usize,
}

impl Block {
    /// Whether the shortcut needs a projection.
    pub fn projects(&self) -> bool {
        self.stride != 1 || self.cin != self.cout
    }
}

/// A residual network.
pub struct Resnet(Config);

impl Component for Resnet {
    const NAME: &'static str = "resnet";
    const DESCRIPTION: &'static str =
        "ResNet-20/32/44/56 for CIFAR, or ResNet-18, with batch norm (`arch`)";
    type Config = Config;
    fn new(c: Config) -> Result<Self> {
        check_poor_std(c.poor_std)?;
        if !(0.0..=1.0).contains(&c.bn_momentum) || c.bn_eps <= 0.0 {
            return Err("bn_momentum must be in [0, 1] and bn_eps > 0".into());
        }
        Ok(Resnet(c))
    }
}

impl Resnet {
    /// Stem width and the blocks in order.
    pub fn blocks(&self) -> (usize, Vec<Block>) {
        let (widths, per_stage): (&[usize], usize) = match self.0.arch {
            Arch::Resnet20 => (&[16, 32, 64], 3),
            Arch::Resnet32 => (&[16, 32, 64], 5),
            Arch::Resnet44 => (&[16, 32, 64], 7),
            Arch::Resnet56 => (&[16, 32, 64], 9),
            Arch::Resnet18 => (&[64, 128, 256, 512], 2),
        };
        let mut blocks = vec![];
        let mut cin = widths[0];
        for (i, &cout) in widths.iter().enumerate() {
            for j in 0..per_stage {
                let stride = if i > 0 && j == 0 { 2 } else { 1 };
                let name = format!("stage{}.block{j}", i + 1);
                blocks.push(Block {
                    name,
                    cin,
                    cout,
                    stride,
                });
                cin = cout;
            }
        }
        (widths[0], blocks)
    }

    fn conv(&self, name: &str, cin: usize, cout: usize, k: usize) -> Vec<ParamSpec> {
        let c = &self.0;
        c.init.layer(
            name,
            &[cout, cin, k, k],
            cin * k * k,
            cout * k * k,
            None,
            c.poor_std,
        )
    }

    fn conv_bn<'a>(
        &self,
        ops: Ops<'a>,
        x: Tensor<'a>,
        p: &mut impl Iterator<Item = Tensor<'a>>,
        stride: usize,
        padding: usize,
    ) -> Result<Tensor<'a>> {
        let mut next = || p.next().ok_or("resnet: fewer parameters than layers");
        let options = Conv2d {
            stride: [stride, stride],
            padding: [padding, padding],
            ..Conv2d::default()
        };
        let y = ops.conv2d(x, next()?, None, options);
        let (gamma, beta) = (next()?, next()?);
        Ok(ops.batch_norm(y, gamma, beta, self.0.bn_momentum, self.0.bn_eps))
    }
}

impl Model for Resnet {
    fn parameters(&self, input_shape: &[usize], outputs: usize) -> Result<Vec<ParamSpec>> {
        let [channels, _, _] = image_shape(Self::NAME, input_shape)?;
        let (stem, blocks) = self.blocks();
        let mut specs = [
            self.conv("stem.conv", channels, stem, 3),
            batch_norm("stem.bn", stem),
        ]
        .concat();
        for b in &blocks {
            let n = &b.name;
            specs.extend(self.conv(&format!("{n}.conv1"), b.cin, b.cout, 3));
            specs.extend(batch_norm(&format!("{n}.bn1"), b.cout));
            specs.extend(self.conv(&format!("{n}.conv2"), b.cout, b.cout, 3));
            specs.extend(batch_norm(&format!("{n}.bn2"), b.cout));
            if b.projects() {
                specs.extend(self.conv(&format!("{n}.shortcut.conv"), b.cin, b.cout, 1));
                specs.extend(batch_norm(&format!("{n}.shortcut.bn"), b.cout));
            }
        }
        let width = blocks.last().map_or(stem, |b| b.cout);
        specs.extend(self.0.init.layer(
            "fc",
            &[width, outputs],
            width,
            outputs,
            Some(outputs),
            self.0.poor_std,
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
        let mut p = p.iter().copied();
        let mut x = self.conv_bn(ops, input, &mut p, 1, 1)?.relu();
        for b in self.blocks().1 {
            let y = self.conv_bn(ops, x, &mut p, b.stride, 1)?.relu();
            let y = self.conv_bn(ops, y, &mut p, 1, 1)?;
            let shortcut = if b.projects() {
                self.conv_bn(ops, x, &mut p, b.stride, 0)?
            } else {
                x
            };
            x = (y + shortcut).relu();
        }
        let n = x.shape()[0] as i64;
        let pooled = ops.adaptive_avg_pool2d(x, [1, 1]).reshape(&[n, -1]);
        let (w, bias) = (p.next(), p.next());
        match (w, bias, p.next()) {
            (Some(w), Some(bias), None) => Ok(ops.linear(pooled, w, Some(bias))),
            _ => Err("resnet: parameters do not match the layers".into()),
        }
    }
}

pn_plugin_api::register_model!(Resnet);
pn_plugin_api::export_plugin!();
