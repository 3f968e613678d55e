//! Layer operations (`ops::Layer`): linear, convolution, pooling, dropout, softmax, and batch
//! normalisation with host-owned running statistics.

use burn::tensor::{activation, module, Distribution, Slice, Tensor};
use pn_plugin_api::abi::TensorId;
use pn_plugin_api::ops::Layer;

use super::{NormStats, OpResult, Session, StatsMode};
use crate::device::B;
use crate::train::dyn_tensor::DynTensor;
use crate::{map_dyn, zip_dyn};

impl Session<'_> {
    /// Batch normalisation with running statistics kept per `gamma` (see `Layer::BatchNorm`).
    pub(super) fn batch_norm(&self, inputs: &[TensorId], fargs: &[f64]) -> OpResult {
        let [x, gamma, beta] = inputs else {
            return Err("batch_norm needs inputs [x, gamma, beta]".into());
        };
        let (momentum, eps) = match fargs {
            [m, e] if (0.0..=1.0).contains(m) && *e > 0.0 => (*m, *e),
            _ => return Err("batch_norm needs fargs [momentum in [0, 1], eps > 0]".into()),
        };
        let key = self
            .param_index(*gamma)
            .ok_or("batch_norm: gamma must be one of the model's parameters")?;
        let one_d = |t: DynTensor, what: &str| match t {
            DynTensor::R1(t) => Ok(t),
            other => Err(format!(
                "batch_norm: {what} must have rank 1, got {:?}",
                other.dims()
            )),
        };
        let (gamma, beta) = (
            one_d(self.get(*gamma)?, "gamma")?,
            one_d(self.get(*beta)?, "beta")?,
        );
        let x = self.get(*x)?;
        let dims = x.dims();
        let c = gamma.dims()[0];
        if dims.len() != 2 && dims.len() != 4 || dims[1] != c || beta.dims()[0] != c {
            return Err(format!(
                "batch_norm: x must be [n, {c}] or [n, {c}, h, w] with gamma and beta [{c}], got x {dims:?}"
            ));
        }
        #[cfg(not(any(feature = "cuda", feature = "vulkan")))]
        if self.train.get() {
            // Statistics per channel over every other dimension, by the host's kernel: `x` as
            // `[n, c, h·w]`.
            let n = dims[0];
            let x3 = match x {
                DynTensor::R2(t) => t.reshape([n, c, 1]),
                DynTensor::R4(t) => t.reshape([n, c, dims[2] * dims[3]]),
                _ => unreachable!("rank checked above"),
            };
            let (y, mean, var) = crate::kernels::batch_norm_train(x3, gamma.clone(), beta, eps);
            if self.stats_mode.get() != StatsMode::Frozen {
                let m = (dims.iter().product::<usize>() / c) as f64;
                let unbiased = var * (m / (m - 1.0).max(1.0));
                self.update_stats(key, &gamma, mean, unbiased, momentum);
            }
            return Ok(if dims.len() == 2 {
                DynTensor::R2(y.reshape([n, c]))
            } else {
                DynTensor::R4(y.reshape([n, c, dims[2], dims[3]]))
            });
        }
        // GPU builds: per-channel statistics over every dimension but the channel's, as Burn
        // tensor operations.
        let per_channel = |t: DynTensor| -> Tensor<B, 1> {
            match t {
                DynTensor::R2(t) => t.mean_dim(0).reshape([c]),
                DynTensor::R4(t) => t.mean_dim(0).mean_dim(2).mean_dim(3).reshape([c]),
                _ => unreachable!("rank checked above"),
            }
        };
        let broadcast = |v: Tensor<B, 1>| -> DynTensor {
            if dims.len() == 2 {
                DynTensor::R2(v.reshape([1, c]))
            } else {
                DynTensor::R4(v.reshape([1, c, 1, 1]))
            }
        };
        let (mean, var) = if self.train.get() {
            let mean = per_channel(x.clone());
            let centred = zip_dyn!(x.clone(), broadcast(mean.clone()), |a, b| a - b);
            let var = per_channel(map_dyn!(centred, |t| t.square()));
            let m = (dims.iter().product::<usize>() / c) as f64;
            let unbiased = var.clone().detach() * (m / (m - 1.0).max(1.0));
            if self.stats_mode.get() != StatsMode::Frozen {
                self.update_stats(key, &gamma, mean.clone().detach(), unbiased, momentum);
            }
            (mean, var)
        } else {
            match self.norm_stats.borrow().iter().find(|n| n.key == key) {
                Some(n) => (n.mean.clone(), n.var.clone()),
                None => (gamma.zeros_like().detach(), gamma.ones_like().detach()),
            }
        };
        let scale = gamma / (var + eps).sqrt();
        let shift = beta - mean * scale.clone();
        Ok(zip_dyn!(
            zip_dyn!(x, broadcast(scale), |a, b| a * b),
            broadcast(shift),
            |a, b| a + b
        ))
    }

    /// `squared_distances` of a parameter group made by `param_group` in this scope and not
    /// concatenated since, computed from its members (no copy of the parameters forward, no
    /// slicing backward, each member's gradient straight on it; on the CPU one operation over
    /// all members), or `None` when `group` is not such a group or the anchors do not fit it
    /// (the general operation then reports the shapes).
    pub(super) fn distances_of_group(
        &self,
        group: TensorId,
        anchors: TensorId,
    ) -> Result<Option<DynTensor>, String> {
        let Some(members) = self.group_members(group)?.filter(|m| !m.is_empty()) else {
            return Ok(None);
        };
        let n: usize = members.iter().map(DynTensor::num_elements).sum();
        let DynTensor::R2(anchors) = self.get(anchors)? else {
            return Ok(None);
        };
        if anchors.dims()[1] != n {
            return Ok(None);
        }
        Ok(Some(DynTensor::R1(
            crate::kernels::group_squared_distances(&members, anchors),
        )))
    }

    pub(super) fn layer_op(
        &self,
        op: Layer,
        x: Vec<DynTensor>,
        args: &[i64],
        fargs: &[f64],
    ) -> OpResult {
        let arg = |i: usize| -> Result<usize, String> {
            args.get(i)
                .map(|&v| v as usize)
                .ok_or_else(|| format!("{op:?} needs {} integer arguments", i + 1))
        };
        let pair = |i: usize| -> Result<[usize; 2], String> { Ok([arg(i)?, arg(i + 1)?]) };
        let rank4 = |t: &DynTensor| match t {
            DynTensor::R4(t) => Ok(t.clone()),
            other => Err(format!(
                "{op:?} needs a rank-4 input [n, c, h, w], got shape {:?}",
                other.dims()
            )),
        };
        let bias = |i: usize| -> Result<Option<Tensor<B, 1>>, String> {
            match x.get(i) {
                None => Ok(None),
                Some(DynTensor::R1(b)) => Ok(Some(b.clone())),
                Some(other) => Err(format!(
                    "bias must have rank 1, got shape {:?}",
                    other.dims()
                )),
            }
        };
        let first = x.first().cloned().ok_or("missing input")?;
        Ok(match op {
            Layer::Linear => {
                let w = match x.get(1) {
                    Some(DynTensor::R2(w)) => w.clone(),
                    _ => return Err("linear needs a rank-2 weight [in, out]".into()),
                };
                let b = bias(2)?;
                map_dyn!(first, |t| module::linear(t, w, b))
            }
            Layer::Conv2d => {
                let w = rank4(x.get(1).ok_or("conv2d needs a weight")?)?;
                let padding = pair(2)?;
                let (input, stride) = strided_1x1(rank4(&first)?, &w, pair(0)?, padding);
                let options =
                    burn::tensor::ops::ConvOptions::new(stride, padding, pair(4)?, arg(6)?);
                DynTensor::R4(crate::kernels::conv2d(input, w, bias(2)?, options))
            }
            Layer::MaxPool2d => DynTensor::R4(crate::kernels::max_pool2d(
                rank4(&first)?,
                pair(0)?,
                pair(2)?,
                pair(4)?,
                [1, 1],
            )),
            Layer::AvgPool2d => DynTensor::R4(module::avg_pool2d(
                rank4(&first)?,
                pair(0)?,
                pair(2)?,
                pair(4)?,
                true,
                false,
            )),
            Layer::AdaptiveAvgPool2d => {
                DynTensor::R4(module::adaptive_avg_pool2d(rank4(&first)?, pair(0)?))
            }
            Layer::Dropout => {
                let p = fargs.first().copied().ok_or("dropout needs p")?;
                if !(0.0..1.0).contains(&p) {
                    return Err(format!("dropout p must be in [0, 1), got {p}"));
                }
                if !self.train.get() || p == 0.0 {
                    first
                } else {
                    map_dyn!(first, |t| {
                        let mask = t.random_like(Distribution::Bernoulli(1.0 - p));
                        t * mask / (1.0 - p)
                    })
                }
            }
            Layer::Softmax => map_dyn!(first, |t| activation::softmax(t, arg(0)?)),
            Layer::LogSoftmax => map_dyn!(first, |t| activation::log_softmax(t, arg(0)?)),
            Layer::SquaredDistances => match (first, x.get(1)) {
                (DynTensor::R1(theta), Some(DynTensor::R2(anchors)))
                    if anchors.dims()[1] == theta.dims()[0] =>
                {
                    DynTensor::R1(crate::kernels::squared_distances(theta, anchors.clone()))
                }
                (theta, anchors) => {
                    return Err(format!(
                        "squared_distances needs theta [n] and anchors [K, n], got {:?} and {:?}",
                        theta.dims(),
                        anchors.map(|a| a.dims())
                    ))
                }
            },
            Layer::BatchNorm => return Err("batch_norm is handled by Session::batch_norm".into()),
        })
    }

    /// Moves the running statistics of the layer whose gamma is parameter `key` towards a
    /// batch's `mean` and unbiased `var` (see [`StatsMode`]).
    fn update_stats(
        &self,
        key: usize,
        gamma: &Tensor<B, 1>,
        mean: Tensor<B, 1>,
        var: Tensor<B, 1>,
        momentum: f64,
    ) {
        let mut stats = self.norm_stats.borrow_mut();
        let i = match stats.iter().position(|n| n.key == key) {
            Some(i) => i,
            None => {
                stats.push(NormStats {
                    key,
                    mean: gamma.zeros_like().detach(),
                    var: gamma.ones_like().detach(),
                    batches: 0,
                });
                stats.len() - 1
            }
        };
        let n = &mut stats[i];
        let momentum = match self.stats_mode.get() {
            StatsMode::Cumulative => 1.0 / (n.batches + 1) as f64,
            _ => momentum,
        };
        n.mean = n.mean.clone() * (1.0 - momentum) + mean * momentum;
        n.var = n.var.clone() * (1.0 - momentum) + var * momentum;
        n.batches += 1;
    }
}

/// The input and stride of a convolution, with a strided 1x1 convolution without padding (a
/// ResNet projection shortcut) turned into one with stride 1 on the strided pixels: the same
/// result, but Burn 0.21's CubeCL backends (wgpu, and so Vulkan and likely CUDA) compute the
/// input gradient of a strided 1x1 convolution wrongly (up to 85% off in a test against a
/// hand-written reference; `flex` is right), which made ResNet train differently on `vulkan`.
fn strided_1x1(
    x: Tensor<B, 4>,
    w: &Tensor<B, 4>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> (Tensor<B, 4>, [usize; 2]) {
    let [_, _, kh, kw] = w.dims();
    if [kh, kw] != [1, 1] || padding != [0, 0] || stride == [1, 1] {
        return (x, stride);
    }
    let every = |s: usize| Slice::new(0, None, s as isize);
    (
        x.slice([every(1), every(1), every(stride[0]), every(stride[1])]),
        [1, 1],
    )
}

#[cfg(test)]
mod tests {
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::TensorData;

    use super::*;
    use crate::device::parse_device;

    /// Output and input gradient of a 1x1 convolution of a 2x3x`h`x`w` input with `stride`,
    /// through [`strided_1x1`] or straight through Burn.
    fn conv(h: usize, w: usize, stride: [usize; 2], rewrite: bool) -> (Vec<f32>, Vec<f32>) {
        let device = parse_device("cpu").unwrap();
        let values = |n: usize, salt: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * 37 + salt) % 29) as f32 / 29.0 - 0.5)
                .collect()
        };
        let x =
            Tensor::<B, 4>::from_data(TensorData::new(values(6 * h * w, 1), [2, 3, h, w]), &device)
                .require_grad();
        let weight =
            Tensor::<B, 4>::from_data(TensorData::new(values(12, 2), [4, 3, 1, 1]), &device);
        let (input, stride) = if rewrite {
            strided_1x1(x.clone(), &weight, stride, [0, 0])
        } else {
            (x.clone(), stride)
        };
        let y = conv2d(
            input,
            weight,
            None,
            ConvOptions::new(stride, [0, 0], [1, 1], 1),
        );
        let c = Tensor::<B, 4>::from_data(
            TensorData::new(values(y.dims().iter().product(), 3), y.dims()),
            &device,
        );
        let out = y.to_data().to_vec::<f32>().unwrap();
        let grads = (y * c).sum().backward();
        let gx = x.grad(&grads).unwrap().to_data().to_vec::<f32>().unwrap();
        (out, gx)
    }

    #[test]
    fn a_strided_1x1_convolution_on_the_strided_pixels_is_the_same_convolution() {
        for (h, w, stride) in [(8, 8, [2, 2]), (9, 7, [2, 3]), (5, 6, [3, 1])] {
            let (y, gx) = conv(h, w, stride, true);
            let (y_burn, gx_burn) = conv(h, w, stride, false);
            assert_eq!(y.len(), y_burn.len(), "{h}x{w} {stride:?}");
            for (a, b) in y.iter().zip(&y_burn).chain(gx.iter().zip(&gx_burn)) {
                assert!((a - b).abs() < 1e-5, "{h}x{w} {stride:?}: {a} vs {b}");
            }
            assert!(gx.iter().any(|g| *g != 0.0));
        }
    }
}
