//! The CPU kernels as custom operations of Burn's autodiff over `flex`: the forward pass runs
//! the kernel and the recorded backward step runs the kernel's own gradients. For the
//! convolution ([`conv2d`]) these replace Burn's generic ones (a transposed convolution and a
//! convolution over swapped dimensions, ~3x the forward on `flex`); max pooling ([`max_pool2d`])
//! replaces `flex`'s, which took a fifth of a LeNet-5 step, and batch normalisation in training
//! mode ([`batch_norm_train`]) and the distances to anchors ([`squared_distances`]) a dozen
//! broadcasting operations each.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::Autodiff;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};

use super::batch_norm::{self, NormShape};
use super::conv2d::{self, Conv2dShape};
use super::distances;
use super::max_pool2d::{self, Pool2dShape};
use super::relu as relu_kernel;
use crate::train::dyn_tensor::DynTensor;

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

/// The backward step of one max pooling: the position of each maximum and the input's shape.
#[derive(Debug)]
struct MaxPool2dBackward;

impl Backward<Flex, 1> for MaxPool2dBackward {
    type State = (Arc<Vec<u32>>, Pool2dShape, [usize; 4]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (at, s, dims) = ops.state;
        if let Some(node) = node_x {
            let dx = max_pool2d::backward(&s, &at, floats(&dy));
            grads.register::<Flex>(node.id, tensor(dx, dims));
        }
    }
}

/// The backward step of one ReLU: its output.
#[derive(Debug)]
struct ReluBackward;

impl Backward<Flex, 1> for ReluBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        if let Some(node) = node_x {
            let y = ops.state;
            let dx = relu_kernel::backward(floats(&y), floats(&dy));
            grads.register::<Flex>(node.id, tensor(dx, y.layout().shape().clone()));
        }
    }
}

/// The backward step of one batch normalisation: the input, and per channel `gamma`, the
/// batch mean and `1 / √(var + ε)`.
#[derive(Debug)]
struct BatchNormBackward;

impl Backward<Flex, 3> for BatchNormBackward {
    type State = (FlexTensor, Vec<f32>, [Vec<f32>; 2], NormShape);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (x, gamma, [mean, inv_std], s) = ops.state;
        let (dx, d_gamma, d_beta) =
            batch_norm::backward(&s, floats(&dy), floats(&x), &gamma, [&mean, &inv_std]);
        for (node, grad, dims) in [
            (node_x, dx, vec![s.n, s.c, s.l]),
            (node_gamma, d_gamma, vec![s.c]),
            (node_beta, d_beta, vec![s.c]),
        ] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, tensor(grad, dims));
            }
        }
    }
}

/// The backward step of the squared distances to anchors: the checkpointed θ and anchors.
#[derive(Debug)]
struct DistancesBackward;

impl Backward<Flex, 2> for DistancesBackward {
    type State = (NodeId, NodeId, distances::Window);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_theta, node_anchors] = ops.parents;
        let dd = contiguous(grads.consume::<Flex>(&ops.node));
        let theta = contiguous(checkpointer.retrieve_node_output::<FlexTensor>(ops.state.0));
        let anchors = contiguous(checkpointer.retrieve_node_output::<FlexTensor>(ops.state.1));
        let window = ops.state.2;
        if let (Some(node), None) = (&node_theta, &node_anchors) {
            // θ's gradient from the rest of the graph, when it is already there, takes the
            // distances' gradient in place: no gradient of its own to write and add.
            let key = AutodiffTensor {
                primitive: theta.clone(),
                node: node.clone(),
                rc: Arc::new(node.id),
            };
            if let Some(mut grad) = take_grad(grads, &key) {
                if let Some(out) = grad.try_storage_mut::<f32>() {
                    distances::add_theta_gradient(
                        out,
                        floats(&theta),
                        floats(&anchors),
                        window,
                        floats(&dd),
                    );
                    grads.register::<Flex>(node.id, grad);
                    return;
                }
                grads.register::<Flex>(node.id, grad);
            }
        }
        let (d_theta, d_anchors) = distances::backward(
            floats(&theta),
            floats(&anchors),
            window,
            floats(&dd),
            node_anchors.is_some(),
        );
        if let Some(node) = node_theta {
            grads.register::<Flex>(node.id, tensor(d_theta, theta.layout().shape().clone()));
        }
        if let (Some(node), Some(d)) = (node_anchors, d_anchors) {
            grads.register::<Flex>(node.id, tensor(d, anchors.layout().shape().clone()));
        }
    }
}

/// Inputs of one [`GroupDistancesBackward`]: the distances so far (or a placeholder) and up
/// to `GROUP_PARENTS - 1` members.
const GROUP_PARENTS: usize = 16;

/// The backward step of a parameter group's distances to anchors, computed from its members
/// at once: the distances so far (parent 0, when there are) get the output's gradient, each
/// member its own in one pass over all of them.
#[derive(Debug)]
struct GroupDistancesBackward;

/// What [`GroupDistancesBackward`] keeps: the members' values and columns, the anchors and
/// their row width.
#[derive(Debug, Clone)]
struct GroupState {
    members: Vec<(FlexTensor, usize)>,
    anchors: FlexTensor,
    width: usize,
}

impl Backward<Flex, GROUP_PARENTS> for GroupDistancesBackward {
    type State = GroupState;

    fn backward(
        self,
        ops: Ops<Self::State, GROUP_PARENTS>,
        grads: &mut Gradients,
        _: &mut Checkpointer,
    ) {
        let [node_start, members @ ..] = ops.parents;
        let dd = contiguous(grads.consume::<Flex>(&ops.node));
        if let Some(node) = node_start {
            grads.register::<Flex>(node.id, dd.clone());
        }
        let GroupState {
            members: values,
            anchors,
            width,
        } = ops.state;
        // Each member that needs a gradient: the one registered so far when it can take the
        // distances' gradient in place, else a new buffer (which Burn adds to the others).
        let (mut nodes, mut thetas, mut bufs) = (vec![], vec![], vec![]);
        for (node, (theta, offset)) in members.into_iter().zip(values) {
            let Some(node) = node else { continue };
            let key = AutodiffTensor {
                primitive: theta.clone(),
                node: node.clone(),
                rc: Arc::new(node.id),
            };
            let owned = take_grad(grads, &key).and_then(|mut grad| {
                if grad.try_storage_mut::<f32>().is_some() {
                    return Some(grad);
                }
                grads.register::<Flex>(node.id, grad);
                None
            });
            bufs.push(match owned {
                Some(grad) => (grad, distances::Write::Add),
                None => {
                    let zeros = vec![0.0; theta.layout().num_elements()];
                    let shape = theta.layout().shape().clone();
                    (tensor(zeros, shape), distances::Write::Set)
                }
            });
            nodes.push(node);
            thetas.push((theta, offset));
        }
        let members: Vec<distances::Member<'_>> = thetas
            .iter()
            .map(|(theta, offset)| distances::Member {
                theta: floats(theta),
                offset: *offset,
            })
            .collect();
        let mut outs: Vec<(&mut [f32], distances::Write)> = bufs
            .iter_mut()
            .zip(&members)
            .map(|((grad, write), member)| {
                let out = grad
                    .try_storage_mut::<f32>()
                    .expect("a gradient buffer owned here");
                (&mut out[..member.theta.len()], *write)
            })
            .collect();
        distances::backward_group(&mut outs, &members, floats(&anchors), width, floats(&dd));
        drop(outs);
        for (node, (grad, _)) in nodes.into_iter().zip(bufs) {
            grads.register::<Flex>(node.id, grad);
        }
    }
}

/// A tensor of the autodiff backend (whose type Burn names only through the backend).
type AutodiffTensor = burn::tensor::ops::FloatTensor<CpuAutodiff>;

/// The gradient registered so far for `key`'s node, taken out of `grads` when it is a
/// contiguous `f32` tensor of `key`'s shape.
fn take_grad(grads: &mut Gradients, key: &AutodiffTensor) -> Option<FlexTensor> {
    let grad = grads.remove::<Flex>(key)?;
    let fits = grad.dtype() == DType::F32
        && grad.is_contiguous()
        && grad.layout().start_offset() == 0
        && grad.layout().shape() == key.primitive.layout().shape();
    if fits {
        Some(grad)
    } else {
        grads.register::<Flex>(key.node.id, grad);
        None
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
    // A bias that is absent is a constant zero, which no gradient reaches and the forward pass
    // does not add.
    let has_bias = bias.is_some();
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
            conv2d::forward(&s, floats(&xs), floats(&ws), has_bias.then(|| floats(&bs))),
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

/// `max(x, 0)` element-wise with the host's kernel when `x` is `f32` (else Burn's).
pub fn relu<const D: usize>(x: Tensor<CpuAutodiff, D>) -> Tensor<CpuAutodiff, D> {
    if x.dtype() != DType::F32 {
        return burn::tensor::activation::relu(x);
    }
    let x = x.into_primitive().tensor();
    let values = contiguous(x.primitive.clone());
    let y = tensor(
        relu_kernel::forward(floats(&values)),
        values.layout().shape().clone(),
    );
    let out = match ReluBackward
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(y.clone(), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// `max_pool2d(x)` (floor mode) with the host's kernel when `x` is `f32` (else Burn's).
pub fn max_pool2d(
    x: Tensor<CpuAutodiff, 4>,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
) -> Tensor<CpuAutodiff, 4> {
    if x.dtype() != DType::F32 {
        return burn::tensor::module::max_pool2d(x, kernel, stride, padding, dilation, false);
    }
    let [n, c, h, w] = x.dims();
    let s = Pool2dShape {
        planes: n * c,
        h,
        w,
        kernel,
        stride,
        padding,
        dilation,
    };
    let [oh, ow] = s.out();
    let x = x.into_primitive().tensor();
    let (y, at) = max_pool2d::forward(&s, floats(&contiguous(x.primitive.clone())));
    let y = tensor(y, [n, c, oh, ow]);
    let out = match MaxPool2dBackward
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((Arc::new(at), s, [n, c, h, w]), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// Batch normalisation of `x` (`[n, c, l]`) in training mode with the host's kernel when every
/// tensor is `f32` (else with Burn's operations): the output, and the batch's per-channel mean
/// and biased variance (constants, for the running statistics).
pub fn batch_norm_train(
    x: Tensor<CpuAutodiff, 3>,
    gamma: Tensor<CpuAutodiff, 1>,
    beta: Tensor<CpuAutodiff, 1>,
    eps: f64,
) -> super::NormOutput<CpuAutodiff> {
    if [x.dtype(), gamma.dtype(), beta.dtype()] != [DType::F32; 3] {
        return super::batch_norm_train_burn(x, gamma, beta, eps);
    }
    let [n, c, l] = x.dims();
    let s = NormShape { n, c, l };
    let device = x.device();
    let (x, gamma, beta) = (
        x.into_primitive().tensor(),
        gamma.into_primitive().tensor(),
        beta.into_primitive().tensor(),
    );
    let gamma_values = floats(&contiguous(gamma.primitive.clone())).to_vec();
    let x_values = contiguous(x.primitive.clone());
    let out = batch_norm::forward(
        &s,
        floats(&x_values),
        &gamma_values,
        floats(&contiguous(beta.primitive.clone())),
        eps,
    );
    let y = tensor(out.y, [n, c, l]);
    let y = match BatchNormBackward
        .prepare::<NoCheckpointing>([x.node.clone(), gamma.node.clone(), beta.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let stats = [out.mean.clone(), out.inv_std];
            prep.finish((x_values, gamma_values, stats, s), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    let constant = |v: Vec<f32>| Tensor::from_data(TensorData::new(v, [c]), &device);
    (
        Tensor::from_primitive(TensorPrimitive::Float(y)),
        constant(out.mean),
        constant(out.var),
    )
}

/// `‖theta − anchors[k]‖²` for each row of `anchors` (`[K, n]`, `theta` `[n]`).
pub fn squared_distances(
    theta: Tensor<CpuAutodiff, 1>,
    anchors: Tensor<CpuAutodiff, 2>,
) -> Tensor<CpuAutodiff, 1> {
    squared_distances_at(theta, anchors, 0)
}

/// `‖theta − anchors[k, offset..offset + n]‖²` for each row of `anchors`, `theta` flattened
/// (`n` values, any shape): one member of a parameter group, recorded on the member itself (no
/// flattening node), so that its gradient lands straight on it.
pub fn squared_distances_at<const D: usize>(
    theta: Tensor<CpuAutodiff, D>,
    anchors: Tensor<CpuAutodiff, 2>,
    offset: usize,
) -> Tensor<CpuAutodiff, 1> {
    let (n, [k, width]) = (theta.shape().num_elements(), anchors.dims());
    let window = distances::Window { width, offset };
    if [theta.dtype(), anchors.dtype()] != [DType::F32; 2]
        || anchors.is_require_grad() && window != distances::Window::whole(n)
    {
        return super::squared_distances_burn_at(theta, anchors, offset);
    }
    let (theta, anchors) = (
        theta.into_primitive().tensor(),
        anchors.into_primitive().tensor(),
    );
    let d = distances::forward(
        floats(&contiguous(theta.primitive.clone())),
        floats(&contiguous(anchors.primitive.clone())),
        window,
    );
    let d = tensor(d, [k]);
    let out = match DistancesBackward
        .prepare::<NoCheckpointing>([theta.node.clone(), anchors.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let state = (prep.checkpoint(&theta), prep.checkpoint(&anchors), window);
            prep.finish(state, d)
        }
        OpsKind::UnTracked(prep) => prep.finish(d),
    };
    Tensor::from_primitive(TensorPrimitive::Float(out))
}

/// A parameter group's `‖θ − anchors[k]‖²` from its `members` (each flattened, at its columns
/// of the anchors' rows, in order) with the host's kernel: one recorded operation per
/// `GROUP_PARENTS - 1` members, each taking the distances so far, so that their values are
/// those of adding the members' [`squared_distances_at`] one at a time. `None` when the
/// kernel does not apply (a tensor not `f32`, anchors that need a gradient, members that do
/// not fit the rows).
pub fn group_squared_distances(
    members: &[DynTensor],
    anchors: &Tensor<CpuAutodiff, 2>,
) -> Option<Tensor<CpuAutodiff, 1>> {
    let [k, width] = anchors.dims();
    let n: usize = members.iter().map(DynTensor::num_elements).sum();
    if members.is_empty()
        || n > width
        || anchors.dtype() != DType::F32
        || anchors.is_require_grad()
        || members
            .iter()
            .any(|m| crate::with_dyn!(m, |t| t.dtype()) != DType::F32)
    {
        return None;
    }
    let anchors = contiguous(anchors.clone().into_primitive().tensor().primitive);
    let mut offset = 0;
    let members: Vec<(AutodiffTensor, usize)> = members
        .iter()
        .map(|m| {
            let at = offset;
            offset += m.num_elements();
            let t = crate::with_dyn!(m.clone(), |t| t.into_primitive().tensor());
            (t, at)
        })
        .collect();
    let mut sum = None;
    for part in members.chunks(GROUP_PARENTS - 1) {
        sum = Some(group_part(sum, part, &anchors, [k, width]));
    }
    sum.map(|d| Tensor::from_primitive(TensorPrimitive::Float(d)))
}

/// `start` (the distances so far, `[k]`) plus the distances of `members` (at most
/// `GROUP_PARENTS - 1`), as one recorded operation.
fn group_part(
    start: Option<AutodiffTensor>,
    members: &[(AutodiffTensor, usize)],
    anchors: &FlexTensor,
    [k, width]: [usize; 2],
) -> AutodiffTensor {
    let values: Vec<(FlexTensor, usize)> = members
        .iter()
        .map(|(t, offset)| (contiguous(t.primitive.clone()), *offset))
        .collect();
    let start_values = start.as_ref().map(|s| contiguous(s.primitive.clone()));
    let d = distances::forward_group(
        &values
            .iter()
            .map(|(theta, offset)| distances::Member {
                theta: floats(theta),
                offset: *offset,
            })
            .collect::<Vec<_>>(),
        floats(anchors),
        width,
        start_values.as_ref().map(floats),
    );
    let d = tensor(d, [k]);
    // Slots without an input hold an untracked placeholder, which gets no gradient.
    let placeholder = AutodiffTensor::new(tensor(vec![], [0]));
    let node_of = |t: Option<&AutodiffTensor>| t.unwrap_or(&placeholder).node.clone();
    let nodes = std::array::from_fn(|i| match i {
        0 => node_of(start.as_ref()),
        i => node_of(members.get(i - 1).map(|(t, _)| t)),
    });
    match GroupDistancesBackward
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = GroupState {
                members: values,
                anchors: anchors.clone(),
                width,
            };
            prep.finish(state, d)
        }
        OpsKind::UnTracked(prep) => prep.finish(d),
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tensor};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    type Grads = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

    /// A convolution with Burn's `conv2d` signature.
    type Conv = fn(
        Tensor<CpuAutodiff, 4>,
        Tensor<CpuAutodiff, 4>,
        Option<Tensor<CpuAutodiff, 1>>,
        ConvOptions<2>,
    ) -> Tensor<CpuAutodiff, 4>;

    /// Output and the gradients of x, weight and bias of `<conv(x, w, b), dy>` through `conv`.
    fn run(
        conv: Conv,
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
            let (mut kh, mut kw) = (rng.random_range(1..4), rng.random_range(1..4));
            let mut stride = [rng.random_range(1..3), rng.random_range(1..3)];
            let dilation = [rng.random_range(1..3), rng.random_range(1..3)];
            let mut padding = [rng.random_range(0..3), rng.random_range(0..3)];
            let mut c = groups * rng.random_range(1..4);
            // Every third case is a "same" convolution with 8-11 input channels per group: the
            // input gradient then runs as the flipped convolution.
            if case % 3 == 0 {
                (kh, kw, stride) = (3, [1, 3][(case % 2) as usize], [1, 1]);
                padding = [dilation[0] * (kh - 1) / 2, dilation[1] * (kw - 1) / 2];
                c = groups * rng.random_range(8..12);
            }
            let co = groups * rng.random_range(1..4);
            let h = dilation[0] * (kh - 1) + 1 + rng.random_range(0..6);
            let w = dilation[1] * (kw - 1) + 1 + rng.random_range(0..6);
            // Up to 13 samples: small shapes put several samples in a chunk, and the last
            // chunk is often shorter.
            let n = rng.random_range(1..14);
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

    /// The max-pooling kernel against Burn's over 60 random shapes, windows, strides,
    /// paddings and dilations: the same output and input gradient (random inputs: no ties).
    #[test]
    fn the_max_pooling_kernel_matches_burns() {
        let device = Default::default();
        let mut rng = StdRng::seed_from_u64(11);
        for case in 0..60u64 {
            let kernel = [rng.random_range(1..4), rng.random_range(1..4)];
            let stride = [rng.random_range(1..4), rng.random_range(1..4)];
            let dilation = [rng.random_range(1..3), rng.random_range(1..3)];
            let padding = [
                rng.random_range(0..=kernel[0] / 2),
                rng.random_range(0..=kernel[1] / 2),
            ];
            let h = dilation[0] * (kernel[0] - 1) + 1 + rng.random_range(0..6);
            let w = dilation[1] * (kernel[1] - 1) + 1 + rng.random_range(0..6);
            let dims = [rng.random_range(1..4), rng.random_range(1..4), h, w];
            let x = Tensor::<CpuAutodiff, 4>::random(dims, Distribution::Normal(0.0, 1.0), &device);
            let pool = |ours: bool| {
                let x = x.clone().require_grad();
                let y = if ours {
                    max_pool2d(x.clone(), kernel, stride, padding, dilation)
                } else {
                    burn::tensor::module::max_pool2d(
                        x.clone(),
                        kernel,
                        stride,
                        padding,
                        dilation,
                        false,
                    )
                };
                let len = y.dims().iter().product::<usize>() as u64;
                let dy = (0..len).map(|i| ((i * 7919 + case * 104729) % 1000) as f32 / 500.0);
                let dy = Tensor::from_data(TensorData::new(dy.collect(), y.dims()), &device);
                let out = y.clone().inner().into_data().to_vec::<f32>().unwrap();
                let grads = (y * dy).sum().backward();
                let dx = x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
                (out, dx)
            };
            let what =
                format!("case {case}: {dims:?} {kernel:?} {stride:?} {padding:?} {dilation:?}");
            assert_eq!(pool(true), pool(false), "{what}");
        }
    }

    /// The ReLU kernel against Burn's, bit for bit, over lengths below, at and past a task's
    /// block, with zeros, a NaN and an infinity among the inputs: output and input gradient.
    #[test]
    fn the_relu_kernel_matches_burns() {
        let device = Default::default();
        let mut rng = StdRng::seed_from_u64(23);
        for len in [1, 7, 1000, relu_kernel::BLOCK, 2 * relu_kernel::BLOCK + 5] {
            let mut values: Vec<f32> = (0..len).map(|_| rng.random_range(-2.0..2.0)).collect();
            for (i, special) in [0.0, f32::NAN, f32::INFINITY, -0.0].into_iter().enumerate() {
                if let Some(v) = values.get_mut(i * 3) {
                    *v = special;
                }
            }
            let x = Tensor::<CpuAutodiff, 2>::from_data(TensorData::new(values, [1, len]), &device);
            let run = |ours: bool| {
                let x = x.clone().require_grad();
                let y = if ours {
                    relu(x.clone())
                } else {
                    burn::tensor::activation::relu(x.clone())
                };
                let dy = (0..len).map(|i| (i % 13) as f32 - 6.0).collect::<Vec<_>>();
                let dy = Tensor::from_data(TensorData::new(dy, [1, len]), &device);
                let bits = |t: Tensor<Flex, 2>| -> Vec<u32> {
                    let values = t.into_data().to_vec::<f32>().unwrap();
                    values.iter().map(|v| v.to_bits()).collect()
                };
                let out = bits(y.clone().inner());
                let grads = (y * dy).sum().backward();
                (out, bits(x.grad(&grads).unwrap()))
            };
            assert_eq!(run(true), run(false), "length {len}");
        }
    }

    /// The batch-normalisation kernel against the same math in Burn's operations over 30
    /// random shapes and scales: output, batch mean and variance, and the gradients of x, gamma
    /// and beta within 1e-4 of the largest value.
    #[test]
    fn the_batch_norm_kernel_matches_burns_operations() {
        let device = Default::default();
        let mut rng = StdRng::seed_from_u64(13);
        for case in 0..30u64 {
            let (n, c, l) = (
                rng.random_range(2..6),
                rng.random_range(1..5),
                rng.random_range(1..30),
            );
            let normal = |scale: f64| Distribution::Normal(0.0, scale);
            let x = Tensor::<CpuAutodiff, 3>::random(
                [n, c, l],
                normal(rng.random_range(0.1..10.0)),
                &device,
            );
            let gamma = Tensor::<CpuAutodiff, 1>::random([c], normal(1.0), &device);
            let beta = Tensor::<CpuAutodiff, 1>::random([c], normal(1.0), &device);
            let values = |t: Tensor<Flex, 1>| t.into_data().to_vec::<f32>().unwrap();
            let norm = |ours: bool| {
                let (x, gamma, beta) = (
                    x.clone().require_grad(),
                    gamma.clone().require_grad(),
                    beta.clone().require_grad(),
                );
                let (y, mean, var) = if ours {
                    batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-5)
                } else {
                    crate::kernels::batch_norm_train_burn(
                        x.clone(),
                        gamma.clone(),
                        beta.clone(),
                        1e-5,
                    )
                };
                let len = (n * c * l) as u64;
                let dy = (0..len).map(|i| ((i * 7919 + case * 104729) % 1000) as f32 / 500.0 - 1.0);
                let dy = Tensor::from_data(TensorData::new(dy.collect(), [n, c, l]), &device);
                let out = values(y.clone().inner().flatten(0, 2));
                let grads = (y * dy).sum().backward();
                [
                    out,
                    values(mean.inner()),
                    values(var.inner()),
                    values(x.grad(&grads).unwrap().flatten(0, 2)),
                    values(gamma.grad(&grads).unwrap()),
                    values(beta.grad(&grads).unwrap()),
                ]
            };
            let (ours, burns) = (norm(true), norm(false));
            for (name, (a, b)) in [
                "output",
                "mean",
                "variance",
                "x grad",
                "gamma grad",
                "beta grad",
            ]
            .iter()
            .zip(ours.iter().zip(&burns))
            {
                let error = relative_error(a, b);
                assert!(
                    error < 1e-4,
                    "case {case} [{n}, {c}, {l}]: {name} differs by {error}"
                );
            }
        }
    }

    /// The distances kernel against the same math in Burn's operations over 20 random sizes
    /// (across the chunk boundary; the first past the one-thread limit) and anchor counts:
    /// distances and both gradients within 1e-4 (the distances over a million values within
    /// 1e-3).
    #[test]
    fn the_distances_kernel_matches_burns_operations() {
        let device = Default::default();
        let mut rng = StdRng::seed_from_u64(17);
        for case in 0..20u64 {
            let (k, mut n) = (rng.random_range(1..5), rng.random_range(1..120_000));
            if case == 0 {
                n = distances::PARALLEL_CHUNKS * distances::CHUNK + 3;
            }
            let normal = Distribution::Normal(0.0, 1.0);
            let theta = Tensor::<CpuAutodiff, 1>::random([n], normal, &device);
            let anchors = Tensor::<CpuAutodiff, 2>::random([k, n], normal, &device);
            let values = |t: Tensor<Flex, 1>| t.into_data().to_vec::<f32>().unwrap();
            let run = |ours: bool| {
                let (theta, anchors) =
                    (theta.clone().require_grad(), anchors.clone().require_grad());
                let d = if ours {
                    squared_distances(theta.clone(), anchors.clone())
                } else {
                    crate::kernels::squared_distances_burn(theta.clone(), anchors.clone())
                };
                let weights =
                    (0..k).map(|i| (i as f32 + 1.0) * if case % 2 == 0 { 1.0 } else { -0.5 });
                let weights = Tensor::from_data(TensorData::new(weights.collect(), [k]), &device);
                let out = values(d.clone().inner());
                let grads = (d * weights).sum().backward();
                [
                    out,
                    values(theta.grad(&grads).unwrap()),
                    values(anchors.grad(&grads).unwrap().flatten(0, 1)),
                ]
            };
            let (ours, burns) = (run(true), run(false));
            for (name, (a, b)) in ["distances", "theta grad", "anchors grad"]
                .iter()
                .zip(ours.iter().zip(&burns))
            {
                // Both sides sum the squares in `f32` (the kernel within each chunk, Burn
                // throughout), whose rounding grows with `n`: over a million values the two
                // differ by about 5e-4.
                let tolerance = if *name == "distances" && n > 200_000 {
                    1e-3
                } else {
                    1e-4
                };
                let error = relative_error(a, b);
                assert!(
                    error < tolerance,
                    "case {case} K {k} n {n}: {name} differs by {error}"
                );
            }
        }
    }

    /// A parameter group's distances from its members (no concatenation), each member also
    /// used by another term (whose gradient the distances' gradient is added to, before or
    /// after it is registered), three ways: the host's kernel over all members at once
    /// ([`group_squared_distances`]), the sum of each member's [`squared_distances_at`], and
    /// the distances of the concatenation, over 24 random groups of 1-4 members of rank 1 or 2
    /// (sizes across the chunk boundary and the parallel threshold) or of 12-40 small members
    /// (several recorded operations), some members without gradient: the first two give the
    /// same distances and gradients to the bit, the concatenation's within 1e-5.
    #[test]
    fn a_groups_distances_from_its_members_match_those_of_the_concatenation() {
        let device = Default::default();
        let mut rng = StdRng::seed_from_u64(19);
        for case in 0..24 {
            let many = case % 3 == 2;
            let (members, largest) = if many {
                (rng.random_range(12..41), 3_000)
            } else {
                (rng.random_range(1..5), 50_000)
            };
            let sizes: Vec<usize> = (0..members)
                .map(|_| 2 * rng.random_range(1..largest))
                .collect();
            let frozen: Vec<bool> = (0..members)
                .map(|m| m > 0 && rng.random_range(0..4) == 0)
                .collect();
            let (k, n) = (rng.random_range(1..4), sizes.iter().sum::<usize>());
            let normal = Distribution::Normal(0.0, 1.0);
            let data: Vec<TensorData> = sizes
                .iter()
                .map(|&len| Tensor::<Flex, 2>::random([2, len / 2], normal, &device).into_data())
                .collect();
            let anchors = Tensor::<CpuAutodiff, 2>::random([k, n], normal, &device);
            let values = |t: Tensor<Flex, 1>| t.into_data().to_vec::<f32>().unwrap();
            let run = |how: usize| {
                // Fresh leaves for each run, holding the same values.
                let parts: Vec<Tensor<CpuAutodiff, 2>> = data
                    .iter()
                    .zip(&frozen)
                    .map(|(d, &frozen)| {
                        let t = Tensor::from_data(d.clone(), &device);
                        if frozen {
                            t
                        } else {
                            t.require_grad()
                        }
                    })
                    .collect();
                let d = match how {
                    0 => {
                        let members: Vec<DynTensor> =
                            parts.iter().map(|p| DynTensor::R2(p.clone())).collect();
                        group_squared_distances(&members, &anchors).unwrap()
                    }
                    1 => {
                        let mut offset = 0;
                        let at = parts.iter().map(|p| {
                            let start = offset;
                            offset += p.shape().num_elements();
                            squared_distances_at(p.clone(), anchors.clone(), start)
                        });
                        at.reduce(|sum, d| sum + d).unwrap()
                    }
                    _ => {
                        let flat = parts.iter().map(|p| p.clone().flatten::<1>(0, 1));
                        squared_distances(Tensor::cat(flat.collect(), 0), anchors.clone())
                    }
                };
                let weights = (0..k).map(|i| 1.0 - i as f32);
                let weights = Tensor::from_data(TensorData::new(weights.collect(), [k]), &device);
                let mut out = vec![values(d.clone().inner())];
                let penalty = (d * weights).sum();
                let other = parts
                    .iter()
                    .map(|p| (p.clone().powf_scalar(3.0) * 0.1).sum())
                    .reduce(|a, b| a + b)
                    .unwrap();
                let objective = if case % 2 == 0 {
                    penalty + other
                } else {
                    other + penalty
                };
                let grads = objective.backward();
                for (p, &frozen) in parts.iter().zip(&frozen) {
                    let g = p.grad(&grads);
                    assert_eq!(
                        g.is_none(),
                        frozen,
                        "case {case}: a gradient where one is due"
                    );
                    out.extend(g.map(|g| values(g.flatten(0, 1))));
                }
                out
            };
            let (fused, summed, concatenated) = (run(0), run(1), run(2));
            assert_eq!(fused, summed, "case {case} sizes {sizes:?}");
            for (i, (a, b)) in fused.iter().zip(&concatenated).enumerate() {
                let error = relative_error(a, b);
                assert!(
                    error < 1e-5,
                    "case {case} sizes {sizes:?}: output {i} differs by {error}"
                );
            }
        }
    }
}
