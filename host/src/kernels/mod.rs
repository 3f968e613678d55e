//! The host's own CPU kernels for layer operations, used where Burn's are slow: 2-D
//! convolution, forward and both backward passes ([`conv2d`]), recorded in Burn's autodiff
//! graph as custom operations with their own backward ([`autodiff`]).
//!
//! They run in CPU-only builds, whose backend is Burn's autodiff over `flex` (see
//! [`crate::device`]); builds with a GPU feature use Burn's `dispatch` backend, whose tensors
//! admit no custom operation, and Burn's kernels on every device.

pub mod conv2d;

#[cfg(not(any(feature = "cuda", feature = "vulkan")))]
pub mod autodiff;

use burn::tensor::ops::ConvOptions;
use burn::tensor::Tensor;

use crate::device::B;

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
