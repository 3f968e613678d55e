//! The safe tensor API plugins write their math with.
//!
//! A [`Tensor`] is a copyable handle to a tensor that lives in the host, on the run's device,
//! inside Burn's autodiff graph: `(theta - anchor).square().sum()` written in a plugin records
//! three operations in the host's graph, and gradients flow back through them. Operations do not
//! return `Result`: a failing operation yields a poisoned handle, the host remembers the first
//! error, and the callback that made it fails with that message.

use std::ops::{Add, Div, Mul, Neg, Sub};

use abi_stable::std_types::{ROption, RSlice, RString};

use crate::abi::{HostOpsRef, LogLevel, OptimizerState, TensorId};
use crate::ops::{Binary, Layer, Random, Reduce, Scalar, Unary};

/// The host's tensor operations, as lent to one plugin callback.
#[derive(Clone, Copy)]
pub struct Ops<'a> {
    // The inner lifetime is erased: only `&self` methods returning owned values are called.
    raw: &'a HostOpsRef<'static>,
}

/// A tensor owned by the host. Valid until the callback that produced it returns; use
/// [`Ops::keep`] to hold values (e.g. anchors) across steps.
#[derive(Clone, Copy)]
pub struct Tensor<'a> {
    id: TensorId,
    ops: Ops<'a>,
}

/// A tensor kept by the host across steps and phases (see [`Ops::keep`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kept(u64);

impl Kept {
    /// The key the host knows this tensor by.
    pub fn key(self) -> u64 {
        self.0
    }
}

/// Options of a 2-D convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2d {
    /// Stride `[h, w]`.
    pub stride: [usize; 2],
    /// Zero padding `[h, w]`.
    pub padding: [usize; 2],
    /// Dilation `[h, w]`.
    pub dilation: [usize; 2],
    /// Groups.
    pub groups: usize,
}

impl Default for Conv2d {
    fn default() -> Self {
        Self {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

impl<'a> Ops<'a> {
    /// Wraps the raw host object (done for you by the component adapters).
    pub fn new(raw: &'a HostOpsRef<'_>) -> Self {
        // SAFETY: only the lifetime parameter changes; `Ops<'a>` cannot outlive `raw`, and no
        // method hands out anything borrowed from the object.
        let raw =
            unsafe { std::mem::transmute::<&'a HostOpsRef<'_>, &'a HostOpsRef<'static>>(raw) };
        Self { raw }
    }

    fn wrap(self, id: TensorId) -> Tensor<'a> {
        Tensor { id, ops: self }
    }

    /// Wraps a raw handle received from the host.
    pub fn tensor(self, id: TensorId) -> Tensor<'a> {
        self.wrap(id)
    }

    /// A constant tensor from row-major `data`.
    pub fn constant(self, data: &[f32], shape: &[usize]) -> Tensor<'a> {
        self.wrap(
            self.raw
                .constant(RSlice::from_slice(data), RSlice::from_slice(shape)),
        )
    }

    /// A tensor of `shape` filled with `value`.
    pub fn full(self, shape: &[usize], value: f64) -> Tensor<'a> {
        self.wrap(self.raw.full(RSlice::from_slice(shape), value))
    }

    /// A scalar constant.
    pub fn scalar(self, value: f64) -> Tensor<'a> {
        self.full(&[], value)
    }

    /// Concatenates tensors along `dim`.
    pub fn cat(self, tensors: &[Tensor<'a>], dim: usize) -> Tensor<'a> {
        let ids: Vec<TensorId> = tensors.iter().map(|t| t.id).collect();
        self.wrap(self.raw.cat(RSlice::from_slice(&ids), dim))
    }

    fn layer(self, op: Layer, inputs: &[TensorId], args: &[i64], fargs: &[f64]) -> Tensor<'a> {
        self.wrap(self.raw.layer(
            op as u32,
            RSlice::from_slice(inputs),
            RSlice::from_slice(args),
            RSlice::from_slice(fargs),
        ))
    }

    /// `x @ weight + bias`, weight of shape `[in, out]` (Burn's layout).
    pub fn linear(self, x: Tensor<'a>, weight: Tensor<'a>, bias: Option<Tensor<'a>>) -> Tensor<'a> {
        let mut inputs = vec![x.id, weight.id];
        inputs.extend(bias.map(|b| b.id));
        self.layer(Layer::Linear, &inputs, &[], &[])
    }

    /// 2-D convolution of `x` `[n, c, h, w]` with `weight` `[out, c/groups, kh, kw]`.
    pub fn conv2d(
        self,
        x: Tensor<'a>,
        weight: Tensor<'a>,
        bias: Option<Tensor<'a>>,
        options: Conv2d,
    ) -> Tensor<'a> {
        let mut inputs = vec![x.id, weight.id];
        inputs.extend(bias.map(|b| b.id));
        let o = options;
        let args = [
            o.stride[0],
            o.stride[1],
            o.padding[0],
            o.padding[1],
            o.dilation[0],
            o.dilation[1],
            o.groups,
        ];
        self.layer(Layer::Conv2d, &inputs, &args.map(|v| v as i64), &[])
    }

    /// 2-D max pooling.
    pub fn max_pool2d(
        self,
        x: Tensor<'a>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Tensor<'a> {
        let args = [
            kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1],
        ];
        self.layer(Layer::MaxPool2d, &[x.id], &args.map(|v| v as i64), &[])
    }

    /// 2-D average pooling.
    pub fn avg_pool2d(
        self,
        x: Tensor<'a>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Tensor<'a> {
        let args = [
            kernel[0], kernel[1], stride[0], stride[1], padding[0], padding[1],
        ];
        self.layer(Layer::AvgPool2d, &[x.id], &args.map(|v| v as i64), &[])
    }

    /// Adaptive 2-D average pooling to `output` `[h, w]`.
    pub fn adaptive_avg_pool2d(self, x: Tensor<'a>, output: [usize; 2]) -> Tensor<'a> {
        self.layer(
            Layer::AdaptiveAvgPool2d,
            &[x.id],
            &[output[0] as i64, output[1] as i64],
            &[],
        )
    }

    /// Dropout with probability `p` (identity during evaluation).
    pub fn dropout(self, x: Tensor<'a>, p: f64) -> Tensor<'a> {
        self.layer(Layer::Dropout, &[x.id], &[], &[p])
    }

    /// Batch normalisation of `x` (`[n, c]` or `[n, c, h, w]`) with the model parameters
    /// `gamma` and `beta` (`[c]`); the host keeps the running statistics (see
    /// [`Layer::BatchNorm`]). PyTorch's defaults are `momentum = 0.1`, `eps = 1e-5`.
    pub fn batch_norm(
        self,
        x: Tensor<'a>,
        gamma: Tensor<'a>,
        beta: Tensor<'a>,
        momentum: f64,
        eps: f64,
    ) -> Tensor<'a> {
        self.layer(
            Layer::BatchNorm,
            &[x.id, gamma.id, beta.id],
            &[],
            &[momentum, eps],
        )
    }

    /// Softmax along `dim`.
    pub fn softmax(self, x: Tensor<'a>, dim: usize) -> Tensor<'a> {
        self.layer(Layer::Softmax, &[x.id], &[dim as i64], &[])
    }

    /// Log-softmax along `dim`.
    pub fn log_softmax(self, x: Tensor<'a>, dim: usize) -> Tensor<'a> {
        self.layer(Layer::LogSoftmax, &[x.id], &[dim as i64], &[])
    }

    /// The squared distances `‖theta − anchors[k]‖²` (`[K]`) from `theta` (`[n]`) to each row
    /// of `anchors` (`[K, n]`), as one host operation with its own backward (since 0.1.3).
    pub fn squared_distances(self, theta: Tensor<'a>, anchors: Tensor<'a>) -> Tensor<'a> {
        self.layer(Layer::SquaredDistances, &[theta.id, anchors.id], &[], &[])
    }

    /// The parameters whose names match any glob in `patterns` (`"*"` for all), flattened and
    /// concatenated into one vector: one tensor however many parameter tensors match.
    pub fn param_group<S: AsRef<str>>(self, patterns: &[S]) -> Tensor<'a> {
        let patterns = patterns_of(patterns);
        self.wrap(self.raw.param_group(RSlice::from_slice(&patterns)))
    }

    /// Keeps a detached copy of `t` across steps and phases; the host saves it with the run
    /// under `name`.
    pub fn keep(self, name: &str, t: Tensor<'a>) -> Kept {
        Kept(self.raw.keep(name.into(), t.id))
    }

    /// A handle to a tensor kept with [`Ops::keep`].
    pub fn kept(self, kept: Kept) -> Tensor<'a> {
        self.wrap(self.raw.kept(kept.0))
    }

    /// Sends a log line to the host.
    pub fn log(self, level: LogLevel, message: &str) {
        self.raw.log(level, message.into())
    }

    /// The run's seed (since 0.1.2).
    pub fn run_seed(self) -> u64 {
        self.raw.run_seed()
    }

    /// The learning rate of the current step: the configured rate times the strategy's
    /// `lr_factor` (NaN outside a step).
    pub fn learning_rate(self) -> f64 {
        self.raw.learning_rate()
    }

    /// Normal noise of `shape` with `mean` and `std`, from the run's stream for this phase,
    /// step and callback: the same on every run of the same seed on the same kind of device
    /// (drawn by the device's generator; backends draw differently).
    pub fn random_normal(self, shape: &[usize], mean: f64, std: f64) -> Tensor<'a> {
        self.wrap(
            self.raw
                .random(Random::Normal as u32, RSlice::from_slice(shape), mean, std),
        )
    }

    /// Uniform noise of `shape` on `[low, high)`, from the same stream as
    /// [`Ops::random_normal`].
    pub fn random_uniform(self, shape: &[usize], low: f64, high: f64) -> Tensor<'a> {
        self.wrap(
            self.raw
                .random(Random::Uniform as u32, RSlice::from_slice(shape), low, high),
        )
    }

    /// Writes the parameters matching `patterns` from the flat vector `values` (declaration
    /// order, the layout of [`Ops::param_group`]). Allowed in `begin_phase` and `after_step`;
    /// takes effect when the callback returns (reads in the same callback still see the old
    /// values). `optimizer`: keep the optimizer's state, or reset it for the whole model.
    pub fn set_params<S: AsRef<str>>(
        self,
        patterns: &[S],
        values: Tensor<'a>,
        optimizer: OptimizerState,
    ) {
        let patterns = patterns_of(patterns);
        self.raw
            .set_params(RSlice::from_slice(&patterns), values.id, optimizer);
    }

    /// The gradient of the scalar `t` with respect to the parameters matching `patterns`, flat
    /// and detached. Only in `Strategy::objective`. It runs a backward pass that uses up the
    /// graph behind `t`: tensors made before the call cannot be used after it, so build the
    /// objective from tensors made afterwards (e.g. [`Ops::loss_at`]).
    pub fn grad<S: AsRef<str>>(self, t: Tensor<'a>, patterns: &[S]) -> Tensor<'a> {
        let patterns = patterns_of(patterns);
        self.wrap(self.raw.grad(t.id, RSlice::from_slice(&patterns)))
    }

    /// The task loss on the current batch with the parameters matching `patterns` shifted by
    /// the flat vector `delta`; its gradient flows to the parameters. A second forward pass
    /// (the host counts it). Only in `Strategy::objective`. Batch-norm layers use the batch's
    /// statistics and leave their running statistics alone in this pass.
    pub fn loss_at<S: AsRef<str>>(self, patterns: &[S], delta: Tensor<'a>) -> Tensor<'a> {
        let patterns = patterns_of(patterns);
        self.wrap(self.raw.loss_at(RSlice::from_slice(&patterns), delta.id))
    }

    /// The current batch's inputs, `[n, ...input shape]` (in `prepare_batch` and `objective`).
    pub fn batch_inputs(self) -> Tensor<'a> {
        self.wrap(self.raw.batch_inputs())
    }

    /// The current batch's targets: class indices as floats `[n]` (cross-entropy) or values
    /// `[n, outputs]` (regression) (in `prepare_batch` and `objective`).
    pub fn batch_targets(self) -> Tensor<'a> {
        self.wrap(self.raw.batch_targets())
    }
}

fn patterns_of<S: AsRef<str>>(patterns: &[S]) -> Vec<RString> {
    patterns.iter().map(|p| RString::from(p.as_ref())).collect()
}

macro_rules! unary_methods {
    ($($(#[$m:meta])* $name:ident => $op:ident,)*) => {
        $( $(#[$m])* pub fn $name(self) -> Self { self.ops.wrap(self.ops.raw.unary(Unary::$op as u32, self.id)) } )*
    };
}

macro_rules! reduce_methods {
    ($($(#[$m:meta])* $all:ident, $dim:ident => $op:ident,)*) => {
        $(
            $(#[$m])* pub fn $all(self) -> Self {
                self.ops.wrap(self.ops.raw.reduce(Reduce::$op as u32, self.id, ROption::RNone, false))
            }
            $(#[$m])* /// Along one dimension, which is kept with size 1 when `keep_dim`.
            pub fn $dim(self, dim: usize, keep_dim: bool) -> Self {
                self.ops.wrap(self.ops.raw.reduce(Reduce::$op as u32, self.id, ROption::RSome(dim), keep_dim))
            }
        )*
    };
}

impl<'a> Tensor<'a> {
    /// The raw handle (to pass back to the host).
    pub fn id(self) -> TensorId {
        self.id
    }

    /// The operations this tensor was made with.
    pub fn ops(self) -> Ops<'a> {
        self.ops
    }

    unary_methods! {
        /// `e^x`, element-wise.
        exp => Exp,
        /// Natural logarithm, element-wise.
        log => Log,
        /// Square root, element-wise.
        sqrt => Sqrt,
        /// Absolute value, element-wise.
        abs => Abs,
        /// `max(x, 0)`, element-wise.
        relu => Relu,
        /// Hyperbolic tangent, element-wise.
        tanh => Tanh,
        /// Logistic sigmoid, element-wise.
        sigmoid => Sigmoid,
        /// `x²`, element-wise.
        square => Square,
        /// `1/x`, element-wise.
        recip => Recip,
    }

    reduce_methods! {
        /// Sum.
        sum, sum_dim => Sum,
        /// Mean.
        mean, mean_dim => Mean,
        /// Maximum.
        max, max_dim => Max,
    }

    fn scalar_op(self, op: Scalar, value: f64) -> Self {
        self.ops
            .wrap(self.ops.raw.scalar(op as u32, self.id, value))
    }

    fn binary_op(self, op: Binary, other: Self) -> Self {
        self.ops
            .wrap(self.ops.raw.binary(op as u32, self.id, other.id))
    }

    /// `x^p`, element-wise.
    pub fn powf(self, p: f64) -> Self {
        self.scalar_op(Scalar::Pow, p)
    }

    /// `a^b`, element-wise with broadcasting.
    pub fn pow(self, other: Self) -> Self {
        self.binary_op(Binary::Pow, other)
    }

    /// `max(x, min)`, element-wise.
    pub fn clamp_min(self, min: f64) -> Self {
        self.scalar_op(Scalar::ClampMin, min)
    }

    /// `min(x, max)`, element-wise.
    pub fn clamp_max(self, max: f64) -> Self {
        self.scalar_op(Scalar::ClampMax, max)
    }

    /// Same elements, new shape (one entry may be `-1`).
    pub fn reshape(self, shape: &[i64]) -> Self {
        self.ops
            .wrap(self.ops.raw.reshape(self.id, RSlice::from_slice(shape)))
    }

    /// All elements as one vector.
    pub fn flatten(self) -> Self {
        self.reshape(&[-1])
    }

    /// Swaps dimensions `dim0` and `dim1`.
    pub fn transpose(self, dim0: usize, dim1: usize) -> Self {
        self.ops.wrap(self.ops.raw.transpose(self.id, dim0, dim1))
    }

    /// Matrix product over the last two dimensions.
    pub fn matmul(self, other: Self) -> Self {
        self.ops.wrap(self.ops.raw.matmul(self.id, other.id))
    }

    /// Elements `start..end` of dimension `dim`.
    pub fn narrow(self, dim: usize, start: usize, end: usize) -> Self {
        self.ops.wrap(self.ops.raw.narrow(self.id, dim, start, end))
    }

    /// A copy through which no gradient flows.
    pub fn detach(self) -> Self {
        self.ops.wrap(self.ops.raw.detach(self.id))
    }

    /// The shape (empty for a scalar).
    pub fn shape(self) -> Vec<usize> {
        self.ops.raw.shape(self.id).into_vec()
    }

    /// Reads all values (synchronises the device: not in a per-step hot path).
    pub fn to_vec(self) -> Vec<f32> {
        self.ops.raw.read(self.id).into_vec()
    }

    /// Reads a one-element tensor's value (NaN if the tensor is not a single value).
    pub fn value(self) -> f64 {
        match self.to_vec().as_slice() {
            [v] => f64::from(*v),
            _ => f64::NAN,
        }
    }
}

macro_rules! binary_operators {
    ($($trait:ident $method:ident => $op:ident, $scalar:expr;)*) => {$(
        impl<'a> $trait for Tensor<'a> {
            type Output = Tensor<'a>;
            fn $method(self, rhs: Tensor<'a>) -> Tensor<'a> { self.binary_op(Binary::$op, rhs) }
        }
        impl<'a> $trait<f64> for Tensor<'a> {
            type Output = Tensor<'a>;
            fn $method(self, rhs: f64) -> Tensor<'a> {
                let (op, value): (Scalar, f64) = $scalar(rhs);
                self.scalar_op(op, value)
            }
        }
    )*};
}

binary_operators! {
    Add add => Add, |s| (Scalar::Add, s);
    Sub sub => Sub, |s: f64| (Scalar::Add, -s);
    Mul mul => Mul, |s| (Scalar::Mul, s);
    Div div => Div, |s: f64| (Scalar::Mul, 1.0 / s);
}

impl<'a> Neg for Tensor<'a> {
    type Output = Tensor<'a>;
    fn neg(self) -> Tensor<'a> {
        self.ops
            .wrap(self.ops.raw.unary(Unary::Neg as u32, self.id))
    }
}

impl<'a> Mul<Tensor<'a>> for f64 {
    type Output = Tensor<'a>;
    fn mul(self, rhs: Tensor<'a>) -> Tensor<'a> {
        rhs * self
    }
}

impl<'a> Add<Tensor<'a>> for f64 {
    type Output = Tensor<'a>;
    fn add(self, rhs: Tensor<'a>) -> Tensor<'a> {
        rhs + self
    }
}
