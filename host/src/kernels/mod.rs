//! The host's own CPU kernels for layer operations, used where Burn's are slow: 2-D
//! convolution, forward and both backward passes ([`conv2d`]), max pooling ([`max_pool2d`]),
//! ReLU ([`relu`]), batch normalisation in training mode ([`batch_norm`]) and the squared distances from a
//! parameter vector to anchors ([`distances`], the persistence and deflation penalties),
//! recorded in Burn's autodiff graph as custom operations with their own backward
//! ([`autodiff`]).
//!
//! They run in CPU-only builds, whose backend is Burn's autodiff over `flex` (see
//! [`crate::device`]); builds with a GPU feature use Burn's `dispatch` backend, whose tensors
//! admit no custom operation, and Burn's kernels on every device.

pub mod batch_norm;
pub mod conv2d;
pub mod distances;
pub mod max_pool2d;
pub mod relu;

#[cfg(not(any(feature = "cuda", feature = "vulkan")))]
pub mod autodiff;

use std::mem::MaybeUninit;

use burn::tensor::backend::Backend;
use burn::tensor::ops::ConvOptions;
use burn::tensor::Tensor;

use crate::device::B;
use crate::train::dyn_tensor::DynTensor;

/// A 2-D convolution on the build's backend: the host's kernels in CPU-only builds, Burn's
/// otherwise.
pub fn conv2d(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvOptions<2>,
) -> Tensor<B, 4> {
    #[cfg(not(any(feature = "cuda", feature = "vulkan")))]
    return autodiff::conv2d(x, weight, bias, options);
    #[cfg(any(feature = "cuda", feature = "vulkan"))]
    return burn::tensor::module::conv2d(x, weight, bias, options);
}

/// `max(x, 0)` element-wise on the build's backend: the host's kernel in CPU-only builds,
/// Burn's otherwise.
pub fn relu<const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    #[cfg(not(any(feature = "cuda", feature = "vulkan")))]
    return autodiff::relu(x);
    #[cfg(any(feature = "cuda", feature = "vulkan"))]
    return burn::tensor::activation::relu(x);
}

/// 2-D max pooling (floor mode) on the build's backend: the host's kernel in CPU-only builds,
/// Burn's otherwise.
pub fn max_pool2d(
    x: Tensor<B, 4>,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
) -> Tensor<B, 4> {
    #[cfg(not(any(feature = "cuda", feature = "vulkan")))]
    return autodiff::max_pool2d(x, kernel, stride, padding, dilation);
    #[cfg(any(feature = "cuda", feature = "vulkan"))]
    return burn::tensor::module::max_pool2d(x, kernel, stride, padding, dilation, false);
}

/// A batch normalisation's output `[n, c, l]` and its batch's per-channel mean and biased
/// variance (constants).
pub type NormOutput<Bk> = (Tensor<Bk, 3>, Tensor<Bk, 1>, Tensor<Bk, 1>);

/// Batch normalisation of `x` (`[n, c, l]`) in training mode on the build's backend: the
/// host's kernel in CPU-only builds, Burn's tensor operations otherwise.
pub fn batch_norm_train(
    x: Tensor<B, 3>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    eps: f64,
) -> NormOutput<B> {
    #[cfg(not(any(feature = "cuda", feature = "vulkan")))]
    return autodiff::batch_norm_train(x, gamma, beta, eps);
    #[cfg(any(feature = "cuda", feature = "vulkan"))]
    return batch_norm_train_burn(x, gamma, beta, eps);
}

/// The math of the batch-norm kernel as Burn tensor operations (the fallback for tensors that
/// are not `f32`, and the kernel's reference in tests).
pub fn batch_norm_train_burn<Bk: Backend>(
    x: Tensor<Bk, 3>,
    gamma: Tensor<Bk, 1>,
    beta: Tensor<Bk, 1>,
    eps: f64,
) -> NormOutput<Bk> {
    let c = gamma.dims()[0];
    let per_channel = |t: Tensor<Bk, 3>| t.mean_dim(0).mean_dim(2);
    let mean = per_channel(x.clone());
    let var = per_channel((x.clone() - mean.clone()).square());
    let scale = gamma.reshape([1, c, 1]) / (var.clone() + eps).sqrt();
    let shift = beta.reshape([1, c, 1]) - mean.clone() * scale.clone();
    let constant = |t: Tensor<Bk, 3>| t.detach().reshape([c]);
    (x * scale + shift, constant(mean), constant(var))
}

/// `‖theta − anchors[k]‖²` for each row of `anchors` (`[K, n]`; `theta` `[n]`), on the build's
/// backend: the host's kernel in CPU-only builds, Burn's operations otherwise.
pub fn squared_distances(theta: Tensor<B, 1>, anchors: Tensor<B, 2>) -> Tensor<B, 1> {
    #[cfg(not(any(feature = "cuda", feature = "vulkan")))]
    return autodiff::squared_distances(theta, anchors);
    #[cfg(any(feature = "cuda", feature = "vulkan"))]
    return squared_distances_burn(theta, anchors);
}

/// [`squared_distances`] from `theta` (flattened, any shape) to columns `offset..offset + n`
/// of the anchors: one member of a parameter group, so that the host's kernel computes a
/// group's distances member by member without concatenating them.
pub fn squared_distances_at<const D: usize>(
    theta: Tensor<B, D>,
    anchors: Tensor<B, 2>,
    offset: usize,
) -> Tensor<B, 1> {
    #[cfg(not(any(feature = "cuda", feature = "vulkan")))]
    return autodiff::squared_distances_at(theta, anchors, offset);
    #[cfg(any(feature = "cuda", feature = "vulkan"))]
    return squared_distances_burn_at(theta, anchors, offset);
}

/// A parameter group's [`squared_distances`] from its `members` (each flattened, at its
/// columns of the anchors' rows, in order), never concatenated: the host's kernel over all
/// members at once in CPU-only builds, else the sum of [`squared_distances_at`] member by
/// member (the same values).
pub fn group_squared_distances(members: &[DynTensor], anchors: Tensor<B, 2>) -> Tensor<B, 1> {
    #[cfg(not(any(feature = "cuda", feature = "vulkan")))]
    if let Some(d) = autodiff::group_squared_distances(members, &anchors) {
        return d;
    }
    let mut offset = 0;
    let distances = members.iter().map(|m| {
        let at = offset;
        offset += m.num_elements();
        crate::with_dyn!(m.clone(), |t| squared_distances_at(t, anchors.clone(), at))
    });
    distances
        .reduce(|sum, d| sum + d)
        .expect("a parameter group has members")
}

/// [`squared_distances_at`] as Burn tensor operations: `theta` flattened against its columns
/// of the anchors.
pub fn squared_distances_burn_at<Bk: Backend, const D: usize>(
    theta: Tensor<Bk, D>,
    anchors: Tensor<Bk, 2>,
    offset: usize,
) -> Tensor<Bk, 1> {
    let n = theta.shape().num_elements();
    squared_distances_burn(theta.reshape([n]), anchors.narrow(1, offset, n))
}

/// [`squared_distances`] as Burn tensor operations.
pub fn squared_distances_burn<Bk: Backend>(
    theta: Tensor<Bk, 1>,
    anchors: Tensor<Bk, 2>,
) -> Tensor<Bk, 1> {
    let k = anchors.dims()[0];
    (theta.unsqueeze::<2>() - anchors)
        .square()
        .sum_dim(1)
        .reshape([k])
}

/// A vector of `len` floats whose every element `fill` writes, left uninitialised until then
/// (zeroing it first would cost a pass over memory that is overwritten anyway).
///
/// # Safety
/// `fill` must write every element of the slice it is given.
unsafe fn written(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut values = Vec::<f32>::with_capacity(len);
    fill(&mut values.spare_capacity_mut()[..len]);
    // SAFETY: `fill` initialised the first `len` elements (the caller's promise).
    unsafe { values.set_len(len) };
    values
}

/// A vector of `len` floats written in chunks of `chunk` spread over the cores: `fill(i, part)`
/// gets the `i`-th chunk. A single chunk is written on the calling thread, without waking the
/// pool.
///
/// # Safety
/// `fill` must write every element of the chunk it is given.
unsafe fn written_in_chunks(
    len: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    use rayon::prelude::*;
    let chunk = chunk.max(1);
    let write = |out: &mut [MaybeUninit<f32>]| {
        if out.len() <= chunk {
            return fill(0, out);
        }
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, part)| fill(i, part));
    };
    // SAFETY: the chunks cover the vector, and `fill` writes each whole (the caller's promise).
    unsafe { written(len, write) }
}
