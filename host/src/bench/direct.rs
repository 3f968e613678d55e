//! The benchmarked networks written directly in Burn (the "direct" column of `pn-host bench`):
//! the same MLP, LeNet-5 and ResNet-20 as the plugins, trained with Burn's modules, autodiff and
//! Adam and the same layer kernels as the host's sessions ([`crate::kernels`]), without the
//! plugin boundary. The difference between the two columns is the cost of the boundary.

use crate::kernels::relu;
use burn::module::AutodiffModule;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::module::adaptive_avg_pool2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::Tensor;

use super::{batch, Case, Net, Stepper, LR};
use crate::device::{Device, B};
use crate::train::data::{Data, Targets};
use crate::train::task_loss;

/// A Burn convolution's forward pass through the host's kernel, as the plugins' run.
fn conv(layer: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let padding = match layer.padding {
        PaddingConfig2d::Explicit(top, left, ..) => [top, left],
        _ => [0, 0],
    };
    let options = ConvOptions::new(layer.stride, padding, layer.dilation, layer.groups);
    let bias = layer.bias.as_ref().map(|b| b.val());
    crate::kernels::conv2d(x, layer.weight.val(), bias, options)
}

/// A Burn batch normalisation in training mode through the host's kernel, its running
/// statistics updated as Burn's module does.
fn norm(layer: &BatchNorm<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    let (y, mean, var) = crate::kernels::batch_norm_train(
        x.reshape([n, c, h * w]),
        layer.gamma.val(),
        layer.beta.val(),
        layer.epsilon,
    );
    let momentum = layer.momentum;
    let update = |state: &burn::module::RunningState<Tensor<B, 1>>, batch: Tensor<B, 1>| {
        let running = state.value_sync().mul_scalar(1.0 - momentum);
        state.update(running + batch.mul_scalar(momentum));
    };
    update(&layer.running_mean, mean);
    update(
        &layer.running_var,
        var * ((n * h * w) as f64 / (n * h * w - 1).max(1) as f64),
    );
    y.reshape([n, c, h, w])
}

/// The same MLP written directly with Burn modules.
#[derive(Module, Debug)]
struct DirectMlp<B: Backend> {
    layers: Vec<Linear<B>>,
}

/// The same LeNet-5 written directly with Burn modules.
#[derive(Module, Debug)]
struct DirectLenet5<B: Backend> {
    conv1: Conv2d<B>,
    conv2: Conv2d<B>,
    fc: Vec<Linear<B>>,
}

/// A ResNet basic block written directly with Burn modules.
#[derive(Module, Debug)]
struct DirectBlock<B: Backend> {
    conv1: Conv2d<B>,
    bn1: BatchNorm<B>,
    conv2: Conv2d<B>,
    bn2: BatchNorm<B>,
    shortcut_conv: Option<Conv2d<B>>,
    shortcut_bn: Option<BatchNorm<B>>,
}

/// The same ResNet-20 written directly with Burn modules.
#[derive(Module, Debug)]
struct DirectResnet<B: Backend> {
    stem: Conv2d<B>,
    stem_bn: BatchNorm<B>,
    blocks: Vec<DirectBlock<B>>,
    fc: Linear<B>,
}

impl DirectResnet<B> {
    fn new(classes: usize, device: &Device) -> Self {
        let conv = |i: usize, o: usize, k: usize, stride: usize| {
            let pad = k / 2;
            Conv2dConfig::new([i, o], [k, k])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_bias(false)
                .init(device)
        };
        let bn = |c: usize| BatchNormConfig::new(c).init(device);
        let mut blocks = vec![];
        let mut cin = 16;
        for (stage, cout) in [16, 32, 64].into_iter().enumerate() {
            for j in 0..3 {
                let stride = if stage > 0 && j == 0 { 2 } else { 1 };
                let project = stride != 1 || cin != cout;
                blocks.push(DirectBlock {
                    conv1: conv(cin, cout, 3, stride),
                    bn1: bn(cout),
                    conv2: conv(cout, cout, 3, 1),
                    bn2: bn(cout),
                    shortcut_conv: project.then(|| conv(cin, cout, 1, stride)),
                    shortcut_bn: project.then(|| bn(cout)),
                });
                cin = cout;
            }
        }
        Self {
            stem: conv(3, 16, 3, 1),
            stem_bn: bn(16),
            blocks,
            fc: LinearConfig::new(64, classes).init(device),
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let mut h = relu(norm(&self.stem_bn, conv(&self.stem, x)));
        for b in &self.blocks {
            let y = relu(norm(&b.bn1, conv(&b.conv1, h.clone())));
            let y = norm(&b.bn2, conv(&b.conv2, y));
            let shortcut = match (&b.shortcut_conv, &b.shortcut_bn) {
                (Some(c), Some(n)) => norm(n, conv(c, h)),
                _ => h,
            };
            h = relu(y + shortcut);
        }
        let n = h.dims()[0];
        self.fc
            .forward(adaptive_avg_pool2d(h, [1, 1]).reshape([n, 64]))
    }
}

/// Steps of a Burn module whose forward pass is `forward`.
fn direct_stepper<'a, M: AutodiffModule<B> + 'a>(
    model: M,
    forward: impl Fn(&M) -> Tensor<B, 2> + 'a,
    targets: Targets,
) -> Stepper<'a> {
    let mut model = Some(model);
    let mut optim = AdamConfig::new().init::<B, M>();
    Box::new(move || {
        let m = model.take().ok_or("an earlier step failed")?;
        let loss = task_loss(forward(&m), &targets);
        let grads = GradientsParams::from_grads::<B, _>(loss.backward(), &m);
        model = Some(optim.step(LR, m, grads));
        Ok(())
    })
}

pub(super) fn direct_case<'a>(case: &Case, data: &'a Data, device: &Device) -> Stepper<'a> {
    let (x, y) = batch(data, case.batch, device);
    let linear =
        |i: usize, o: usize, bias: bool| LinearConfig::new(i, o).with_bias(bias).init(device);
    match &case.net {
        Net::Mlp(hidden, output) => {
            let sum_output = *output == "sum";
            let mut widths = case.input_shape.clone();
            widths.extend(hidden);
            if !sum_output {
                widths.push(case.classes.max(1));
            }
            let layers = widths
                .windows(2)
                .map(|w| linear(w[0], w[1], !sum_output))
                .collect();
            let x = x.into_rank::<2>();
            direct_stepper(
                DirectMlp::<B> { layers },
                move |m| {
                    let mut h = x.clone();
                    let last = m.layers.len() - 1;
                    for (i, layer) in m.layers.iter().enumerate() {
                        h = layer.forward(h);
                        if i < last || sum_output {
                            h = relu(h);
                        }
                    }
                    if sum_output {
                        h.sum_dim(1)
                    } else {
                        h
                    }
                },
                y,
            )
        }
        Net::Lenet5 => {
            let net = DirectLenet5::<B> {
                conv1: Conv2dConfig::new([1, 6], [5, 5])
                    .with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2))
                    .init(device),
                conv2: Conv2dConfig::new([6, 16], [5, 5]).init(device),
                fc: vec![
                    linear(400, 120, true),
                    linear(120, 84, true),
                    linear(84, case.classes, true),
                ],
            };
            let x = x.into_rank::<4>();
            let n = case.batch;
            direct_stepper(
                net,
                move |m| {
                    let pool = |t| crate::kernels::max_pool2d(t, [2, 2], [2, 2], [0, 0], [1, 1]);
                    let h = pool(relu(conv(&m.conv1, x.clone())));
                    let h = pool(relu(conv(&m.conv2, h)));
                    let h = relu(m.fc[0].forward(h.reshape([n, 400])));
                    let h = relu(m.fc[1].forward(h));
                    m.fc[2].forward(h)
                },
                y,
            )
        }
        Net::Resnet20 => {
            let x = x.into_rank::<4>();
            direct_stepper(
                DirectResnet::new(case.classes, device),
                move |m| m.forward(x.clone()),
                y,
            )
        }
    }
}
