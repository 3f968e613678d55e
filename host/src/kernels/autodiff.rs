//! The CPU kernels as custom operations of Burn's autodiff over `flex`: the forward pass runs
//! [`conv2d::forward`] and the recorded backward step runs the kernels' own input, weight and
//! bias gradients, instead of Burn's generic ones (a transposed convolution and a convolution
//! over swapped dimensions, ~3x the forward on `flex`).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::Autodiff;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};

use super::conv2d::{self, Conv2dShape};

/// The backend the kernels are recorded in.
pub type CpuAutodiff = Autodiff<Flex>;

/// The backward step of one convolution: the checkpointed input and weight and the shape.
#[derive(Debug)]
struct Conv2dBackward;

impl Backward<Flex, 3> for Conv2dBackward {
    type State = (NodeId, NodeId, Conv2dShape);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let dy = floats(&dy);
        let (x, weight, s) = ops.state;
        let x = contiguous(checkpointer.retrieve_node_output::<FlexTensor>(x));
        let weight = contiguous(checkpointer.retrieve_node_output::<FlexTensor>(weight));
        if let Some(node) = node_x {
            let dx = conv2d::backward_input(&s, floats(&weight), dy);
            grads.register::<Flex>(node.id, tensor(dx, [s.n, s.c, s.h, s.w]));
        }
        if let Some(node) = node_weight {
            let dw = conv2d::backward_weight(&s, floats(&x), dy);
            grads.register::<Flex>(node.id, tensor(dw, weight.layout().shape().clone()));
        }
        if let Some(node) = node_bias {
            grads.register::<Flex>(node.id, tensor(conv2d::backward_bias(&s, dy), [s.co]));
        }
    }
}

/// A contiguous copy of `t` (or `t` itself when it is one).
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.is_contiguous() {
        t
    } else {
        t.to_contiguous()
    }
}

/// The values of a contiguous `f32` tensor.
fn floats(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("the CPU kernels take contiguous f32 tensors")
}

/// A `flex` tensor of `shape` holding `values`.
fn tensor(values: Vec<f32>, shape: impl Into<burn::tensor::Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}

/// `conv2d(x, weight, bias)` with the host's kernels when every tensor is `f32` (else Burn's).
pub fn conv2d(
    x: Tensor<CpuAutodiff, 4>,
    weight: Tensor<CpuAutodiff, 4>,
    bias: Option<Tensor<CpuAutodiff, 1>>,
    options: ConvOptions<2>,
) -> Tensor<CpuAutodiff, 4> {
    let all_f32 = x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && bias.as_ref().is_none_or(|b| b.dtype() == DType::F32);
    if !all_f32 {
        return burn::tensor::module::conv2d(x, weight, bias, options);
    }
    let [n, c, h, w] = x.dims();
    let [co, _, kh, kw] = weight.dims();
    let s = Conv2dShape {
        n,
        c,
        h,
        w,
        co,
        kh,
        kw,
        stride: options.stride,
        padding: options.padding,
        dilation: options.dilation,
        groups: options.groups,
    };
    let [oh, ow] = s.out();
    // A bias that is absent is a constant zero, which no gradient reaches.
    let bias = bias.unwrap_or_else(|| Tensor::zeros([co], &x.device()));
    let (x, weight, bias) = (
        x.into_primitive().tensor(),
        weight.into_primitive().tensor(),
        bias.into_primitive().tensor(),
    );
    let y = {
        let (xs, ws, bs) = (
            contiguous(x.primitive.clone()),
            contiguous(weight.primitive.clone()),
            contiguous(bias.primitive.clone()),
        );
        tensor(
            conv2d::forward(&s, floats(&xs), floats(&ws), Some(floats(&bs))),
            [n, co, oh, ow],
        )
    };
    let out = match Conv2dBackward
        .prepare::<NoCheckpointing>([x.node.clone(), weight.node.clone(), bias.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let state = (prep.checkpoint(&x), prep.checkpoint(&weight), s);
            prep.finish(state, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tensor};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    type Grads = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

    /// Output and the gradients of x, weight and bias of `<conv(x, w, b), dy>` through `conv`.
    fn run(
        conv: fn(
            Tensor<CpuAutodiff, 4>,
            Tensor<CpuAutodiff, 4>,
            Option<Tensor<CpuAutodiff, 1>>,
            ConvOptions<2>,
        ) -> Tensor<CpuAutodiff, 4>,
        [x, w, b]: [&Tensor<CpuAutodiff, 4>; 3],
        options: &ConvOptions<2>,
        seed: u64,
    ) -> Grads {
        let (x, w) = (x.clone().require_grad(), w.clone().require_grad());
        let b = b.clone().flatten::<1>(0, 3).require_grad();
        let y = conv(x.clone(), w.clone(), Some(b.clone()), options.clone());
        let dy = {
            let len = y.dims().iter().product::<usize>() as u64;
            let values = (0..len).map(|i| ((i * 7919 + seed * 104729) % 1000) as f32 / 500.0 - 1.0);
            Tensor::from_data(TensorData::new(values.collect(), y.dims()), &y.device())
        };
        let values = |t: Tensor<Flex, 1>| t.into_data().to_vec::<f32>().unwrap();
        let out = values(y.clone().inner().flatten(0, 3));
        let grads = (y * dy).sum().backward();
        let grad4 = |t: Tensor<CpuAutodiff, 4>| values(t.grad(&grads).unwrap().flatten(0, 3));
        (out, grad4(x), grad4(w), values(b.grad(&grads).unwrap()))
    }

    /// Largest difference between `a` and `b` relative to `b`'s largest magnitude.
    fn relative_error(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        a.iter()
            .zip(b)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
            / scale
    }

    /// The host's kernels against Burn's `conv2d` over 60 random shapes, strides, paddings,
    /// dilations, groups and batch sizes: forward output and every gradient within 1e-4 of the
    /// largest value (f32 sums in a different order).
    #[test]
    fn the_kernels_match_burns_convolution_forward_and_backward() {
        let device = Default::default();
        let mut rng = StdRng::seed_from_u64(7);
        for case in 0..60 {
            let groups = [1, 1, 2, 3][rng.random_range(0..4)];
            let (kh, kw) = (rng.random_range(1..4), rng.random_range(1..4));
            let stride = [rng.random_range(1..3), rng.random_range(1..3)];
            let dilation = [rng.random_range(1..3), rng.random_range(1..3)];
            let padding = [rng.random_range(0..3), rng.random_range(0..3)];
            let (c, co) = (
                groups * rng.random_range(1..4),
                groups * rng.random_range(1..4),
            );
            let h = dilation[0] * (kh - 1) + 1 + rng.random_range(0..6);
            let w = dilation[1] * (kw - 1) + 1 + rng.random_range(0..6);
            let n = rng.random_range(1..5);
            let options = ConvOptions::new(stride, padding, dilation, groups);
            let normal = Distribution::Normal(0.0, 1.0);
            let x = Tensor::<CpuAutodiff, 4>::random([n, c, h, w], normal, &device);
            let wt = Tensor::<CpuAutodiff, 4>::random([co, c / groups, kh, kw], normal, &device);
            let b = Tensor::<CpuAutodiff, 4>::random([co, 1, 1, 1], normal, &device);
            let ours = run(conv2d, [&x, &wt, &b], &options, case);
            let burns = run(burn::tensor::module::conv2d, [&x, &wt, &b], &options, case);
            let what = format!(
                "case {case}: x {:?} w {:?} {options:?}",
                x.dims(),
                wt.dims()
            );
            for (name, a, b) in [
                ("output", &ours.0, &burns.0),
                ("x grad", &ours.1, &burns.1),
                ("weight grad", &ours.2, &burns.2),
                ("bias grad", &ours.3, &burns.3),
            ] {
                let error = relative_error(a, b);
                assert!(error < 1e-4, "{what}: {name} differs by {error}");
            }
        }
    }
}
