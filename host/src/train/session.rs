//! The host side of [`pn_plugin_api::abi::HostOps`]: plugin tensor operations recorded in
//! Burn's autodiff graph on the run's device.
//!
//! A [`Session`] owns an arena of tensors. Handles carry the arena's generation, so a handle a
//! plugin kept from an earlier step is refused with a clear message instead of silently
//! reading a reused slot. Each operation runs under `catch_unwind`: a Burn panic (e.g. a shape
//! mismatch) becomes the session's error and a poisoned handle, never an abort.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RSlice, RStr, RString, RVec};
use burn::tensor::{activation, module, Distribution, Tensor};
use pn_plugin_api::abi::{HostOps, HostOpsRef, HostOps_TO, LogLevel, TensorId, POISON};
use pn_plugin_api::ops::{Binary, Layer, Reduce, Scalar, Unary};

use crate::device::{Device, B};
use crate::train::dyn_tensor::DynTensor;
use crate::train::saturation::{LayerSaturation, Tracker};
use crate::{map_dyn, with_dyn, zip_dyn};

type OpResult = Result<DynTensor, String>;

/// Running statistics of one batch-norm layer: index of its gamma, mean, variance, and the
/// number of batches they have seen.
#[derive(Clone)]
pub struct NormStats {
    key: usize,
    mean: Tensor<B, 1>,
    var: Tensor<B, 1>,
    batches: usize,
}

/// Tensor operations for one run: the arena, the current parameters and the kept tensors.
pub struct Session {
    device: Device,
    arena: RefCell<Vec<DynTensor>>,
    generation: Cell<u32>,
    error: RefCell<Option<String>>,
    train: Cell<bool>,
    param_names: Vec<String>,
    params: RefCell<Vec<DynTensor>>,
    /// Parameter groups already resolved: globs -> parameter indices (looked up every step).
    groups: RefCell<Vec<(Vec<String>, Vec<usize>)>>,
    kept: RefCell<Vec<(String, DynTensor)>>,
    /// Arena slots `0..param_slots` hold the parameters (in spec order) during a forward pass.
    param_slots: Cell<usize>,
    /// Running statistics of batch-norm layers.
    norm_stats: RefCell<Vec<NormStats>>,
    /// Whether running statistics are plain averages over the batches seen since
    /// [`Session::reset_state`] (recomputing them) instead of moving averages (training).
    cumulative: Cell<bool>,
    /// Activation saturation, while an evaluation measures it.
    saturation: RefCell<Option<Tracker>>,
}

impl Session {
    /// A session on `device` for a model whose parameters have `param_names`.
    pub fn new(device: Device, param_names: Vec<String>) -> Self {
        Self {
            device,
            arena: RefCell::new(Vec::new()),
            generation: Cell::new(0),
            error: RefCell::new(None),
            train: Cell::new(true),
            param_names,
            params: RefCell::new(Vec::new()),
            groups: RefCell::new(Vec::new()),
            kept: RefCell::new(Vec::new()),
            param_slots: Cell::new(0),
            norm_stats: RefCell::new(Vec::new()),
            cumulative: Cell::new(false),
            saturation: RefCell::new(None),
        }
    }

    /// Starts measuring the saturation of activations (see [`crate::train::saturation`]).
    pub fn track_saturation(&self) {
        *self.saturation.borrow_mut() = Some(Tracker::default());
    }

    /// Stops measuring and returns the saturation per activation layer.
    pub fn take_saturation(&self) -> Vec<LayerSaturation> {
        self.saturation
            .borrow_mut()
            .take()
            .map(Tracker::finish)
            .unwrap_or_default()
    }

    /// Declares that the first `n` handles of this scope are the parameters, in spec order
    /// (layers with state, such as batch norm, find theirs by parameter).
    pub fn mark_params(&self, n: usize) {
        self.param_slots.set(n);
    }

    /// Forgets the layers' running statistics (a phase that starts from an initialisation).
    pub fn reset_state(&self) {
        self.norm_stats.borrow_mut().clear();
    }

    /// Whether the model has layers with running statistics (seen in a training pass).
    pub fn has_state(&self) -> bool {
        !self.norm_stats.borrow().is_empty()
    }

    /// The layers' running statistics, to restore later with [`Session::set_norm_stats`].
    pub fn norm_stats(&self) -> Vec<NormStats> {
        self.norm_stats.borrow().clone()
    }

    /// Restores running statistics taken with [`Session::norm_stats`].
    pub fn set_norm_stats(&self, stats: Vec<NormStats>) {
        *self.norm_stats.borrow_mut() = stats;
    }

    /// Makes training passes average the batch statistics evenly (true) instead of with the
    /// layers' momentum (false, the default).
    pub fn set_cumulative(&self, on: bool) {
        self.cumulative.set(on);
    }

    /// The layers' running statistics as named tensors (`<layer>.running_mean`, `.running_var`).
    pub fn state(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let mut out = vec![];
        for NormStats { key, mean, var, .. } in self.norm_stats.borrow().iter() {
            let name = &self.param_names[*key];
            let base = name.strip_suffix(".weight").unwrap_or(name);
            for (suffix, t) in [("running_mean", mean), ("running_var", var)] {
                let t = DynTensor::R1(t.clone());
                out.push((format!("{base}.{suffix}"), t.dims(), t.to_values()));
            }
        }
        out
    }

    /// The parameter index behind `id`, if it is one of this forward pass's parameter handles.
    fn param_index(&self, id: TensorId) -> Option<usize> {
        let slot = (id & 0xffff_ffff) as usize;
        ((id >> 32) as u32 == self.generation.get() && slot < self.param_slots.get())
            .then_some(slot)
    }

    /// Batch normalisation with running statistics kept per `gamma` (see `Layer::BatchNorm`).
    fn batch_norm(&self, inputs: &[TensorId], fargs: &[f64]) -> OpResult {
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
        // Per-channel statistics over every dimension but the channel's.
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
            let mut stats = self.norm_stats.borrow_mut();
            let i = match stats.iter().position(|n| n.key == key) {
                Some(i) => i,
                None => {
                    let (mean, var) = (gamma.zeros_like().detach(), gamma.ones_like().detach());
                    let batches = 0;
                    stats.push(NormStats {
                        key,
                        mean,
                        var,
                        batches,
                    });
                    stats.len() - 1
                }
            };
            let n = &mut stats[i];
            let momentum = if self.cumulative.get() {
                1.0 / (n.batches + 1) as f64
            } else {
                momentum
            };
            n.mean = n.mean.clone() * (1.0 - momentum) + mean.clone().detach() * momentum;
            n.var = n.var.clone() * (1.0 - momentum) + unbiased * momentum;
            n.batches += 1;
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

    /// The object handed to plugin callbacks.
    pub fn ops(&self) -> HostOpsRef<'_> {
        HostOps_TO::from_ptr(self, TD_Opaque)
    }

    /// The device tensors are created on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Starts a new scope (one step or callback): earlier handles become invalid.
    pub fn reset(&self, params: Vec<DynTensor>, train: bool) {
        self.arena.borrow_mut().clear();
        self.param_slots.set(0);
        if let Some(tracker) = self.saturation.borrow_mut().as_mut() {
            tracker.start_pass();
        }
        self.generation.set(self.generation.get().wrapping_add(1));
        *self.params.borrow_mut() = params;
        self.train.set(train);
    }

    /// Drops every tensor of the current scope, so that the parameters are uniquely owned
    /// again when the optimizer updates them (Burn then updates in place).
    pub fn clear(&self) {
        self.reset(Vec::new(), self.train.get());
    }

    /// Adds a tensor to the arena and returns its handle.
    pub fn insert(&self, t: DynTensor) -> TensorId {
        let mut arena = self.arena.borrow_mut();
        arena.push(t);
        (u64::from(self.generation.get()) << 32) | (arena.len() as u64 - 1)
    }

    /// The tensor behind a handle.
    pub fn get(&self, id: TensorId) -> Result<DynTensor, String> {
        if id == POISON {
            return Err("input comes from a failed operation".into());
        }
        if (id >> 32) as u32 != self.generation.get() {
            return Err(
                "tensor handle from an earlier step or callback (use Ops::keep to hold values)"
                    .into(),
            );
        }
        self.arena
            .borrow()
            .get((id & 0xffff_ffff) as usize)
            .cloned()
            .ok_or_else(|| format!("unknown tensor handle {id}"))
    }

    /// Takes the first error recorded since the last call.
    pub fn take_error(&self) -> Option<String> {
        self.error.borrow_mut().take()
    }

    /// The kept tensors (e.g. θ0 and anchors), by name.
    pub fn kept(&self) -> Vec<(String, DynTensor)> {
        self.kept.borrow().clone()
    }

    /// The values of the tensor kept under `key` (see `HostOps::keep`).
    pub fn kept_values(&self, key: u64) -> Result<Vec<f32>, String> {
        let kept = self.kept.borrow();
        let (_, t) = usize::try_from(key)
            .ok()
            .and_then(|i| kept.get(i))
            .ok_or_else(|| format!("unknown kept tensor {key}"))?;
        Ok(t.to_values())
    }

    fn fail(&self, op: &str, message: String) -> TensorId {
        let mut error = self.error.borrow_mut();
        if error.is_none() {
            *error = Some(format!("tensor operation `{op}` failed: {message}"));
        }
        POISON
    }

    fn run(&self, op: &str, f: impl FnOnce() -> OpResult) -> TensorId {
        if self.error.borrow().is_some() {
            return POISON;
        }
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(Ok(t)) => self.insert(t),
            Ok(Err(e)) => self.fail(op, e),
            Err(payload) => self.fail(op, crate::panic_message(payload.as_ref())),
        }
    }

    fn group_indices(&self, patterns: &[RString]) -> Result<Vec<usize>, String> {
        let same = |key: &[String]| {
            key.iter()
                .map(String::as_str)
                .eq(patterns.iter().map(RString::as_str))
        };
        if let Some((_, found)) = self.groups.borrow().iter().find(|(key, _)| same(key)) {
            return Ok(found.clone());
        }
        let key: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        let mut builder = globset::GlobSetBuilder::new();
        for p in &key {
            builder
                .add(globset::Glob::new(p).map_err(|e| format!("bad parameter glob `{p}`: {e}"))?);
        }
        let set = builder.build().map_err(|e| e.to_string())?;
        let found: Vec<usize> = (0..self.param_names.len())
            .filter(|&i| set.is_match(&self.param_names[i]))
            .collect();
        if found.is_empty() {
            return Err(format!(
                "no parameter matches {key:?}; parameters are {:?}",
                self.param_names
            ));
        }
        self.groups.borrow_mut().push((key, found.clone()));
        Ok(found)
    }

    fn layer_op(&self, op: Layer, x: Vec<DynTensor>, args: &[i64], fargs: &[f64]) -> OpResult {
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
                let options =
                    burn::tensor::ops::ConvOptions::new(pair(0)?, pair(2)?, pair(4)?, arg(6)?);
                DynTensor::R4(module::conv2d(rank4(&first)?, w, bias(2)?, options))
            }
            Layer::MaxPool2d => DynTensor::R4(module::max_pool2d(
                rank4(&first)?,
                pair(0)?,
                pair(2)?,
                pair(4)?,
                [1, 1],
                false,
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
            Layer::BatchNorm => return Err("batch_norm is handled by Session::batch_norm".into()),
        })
    }
}

fn resolve_shape(numel: usize, shape: &[i64]) -> Result<Vec<usize>, String> {
    let known: i64 = shape.iter().filter(|&&d| d != -1).product();
    let mut out = Vec::with_capacity(shape.len());
    for &d in shape {
        out.push(match d {
            -1 if known > 0 => numel / known as usize,
            d if d > 0 => d as usize,
            _ => return Err(format!("invalid shape {shape:?}")),
        });
    }
    if out.iter().product::<usize>() != numel {
        return Err(format!("cannot reshape {numel} elements into {shape:?}"));
    }
    Ok(out)
}

fn code<T>(kind: &str, code: u32, parse: fn(u32) -> Option<T>) -> Result<T, String> {
    parse(code).ok_or_else(|| format!("{kind} operation code {code} is unknown to this pn-host (plugin built against a newer pn-plugin-api?)"))
}

impl HostOps for Session {
    fn constant(&self, data: RSlice<'_, f32>, shape: RSlice<'_, usize>) -> TensorId {
        self.run("constant", || {
            DynTensor::from_values(data.to_vec(), &shape, &self.device)
        })
    }

    fn full(&self, shape: RSlice<'_, usize>, value: f64) -> TensorId {
        let n = shape.iter().product::<usize>().max(1);
        self.run("full", || {
            DynTensor::from_values(vec![value as f32; n], &shape, &self.device)
        })
    }

    fn shape(&self, t: TensorId) -> RVec<usize> {
        match self.get(t) {
            Ok(t) => t.dims().into(),
            Err(e) => {
                self.fail("shape", e);
                RVec::new()
            }
        }
    }

    fn read(&self, t: TensorId) -> RVec<f32> {
        match self.get(t) {
            Ok(t) => t.to_values().into(),
            Err(e) => {
                self.fail("read", e);
                RVec::new()
            }
        }
    }

    fn unary(&self, op: u32, t: TensorId) -> TensorId {
        self.run("unary", || {
            let t = self.get(t)?;
            let op = code("unary", op, Unary::from_code)?;
            if let Some(tracker) = self.saturation.borrow_mut().as_mut() {
                tracker.observe(op, &t);
            }
            Ok(match op {
                Unary::Neg => map_dyn!(t, |x| x.neg()),
                Unary::Exp => map_dyn!(t, |x| x.exp()),
                Unary::Log => map_dyn!(t, |x| x.log()),
                Unary::Sqrt => map_dyn!(t, |x| x.sqrt()),
                Unary::Abs => map_dyn!(t, |x| x.abs()),
                Unary::Relu => map_dyn!(t, |x| activation::relu(x)),
                Unary::Tanh => map_dyn!(t, |x| x.tanh()),
                Unary::Sigmoid => map_dyn!(t, |x| activation::sigmoid(x)),
                Unary::Square => map_dyn!(t, |x| x.square()),
                Unary::Recip => map_dyn!(t, |x| x.recip()),
            })
        })
    }

    fn binary(&self, op: u32, a: TensorId, b: TensorId) -> TensorId {
        self.run("binary", || {
            let (a, b) = (self.get(a)?, self.get(b)?);
            Ok(match code("binary", op, Binary::from_code)? {
                Binary::Add => zip_dyn!(a, b, |x, y| x + y),
                Binary::Sub => zip_dyn!(a, b, |x, y| x - y),
                Binary::Mul => zip_dyn!(a, b, |x, y| x * y),
                Binary::Div => zip_dyn!(a, b, |x, y| x / y),
                Binary::Pow => zip_dyn!(a, b, |x, y| x.powf(y)),
            })
        })
    }

    fn scalar(&self, op: u32, t: TensorId, value: f64) -> TensorId {
        self.run("scalar", || {
            let t = self.get(t)?;
            let v = value as f32;
            Ok(match code("scalar", op, Scalar::from_code)? {
                Scalar::Add => map_dyn!(t, |x| x.add_scalar(v)),
                Scalar::Mul => map_dyn!(t, |x| x.mul_scalar(v)),
                Scalar::Pow => map_dyn!(t, |x| x.powf_scalar(v)),
                Scalar::ClampMin => map_dyn!(t, |x| x.clamp_min(v)),
                Scalar::ClampMax => map_dyn!(t, |x| x.clamp_max(v)),
            })
        })
    }

    fn reduce(&self, op: u32, t: TensorId, dim: ROption<usize>, keep_dim: bool) -> TensorId {
        self.run("reduce", || {
            let t = self.get(t)?;
            let op = code("reduce", op, Reduce::from_code)?;
            let Some(dim) = dim.into_option() else {
                return Ok(DynTensor::R1(with_dyn!(t, |x| match op {
                    Reduce::Sum => x.sum(),
                    Reduce::Mean => x.mean(),
                    Reduce::Max => x.max(),
                })));
            };
            if dim >= t.rank() {
                return Err(format!(
                    "dimension {dim} out of range for shape {:?}",
                    t.dims()
                ));
            }
            let reduced = map_dyn!(t, |x| match op {
                Reduce::Sum => x.sum_dim(dim),
                Reduce::Mean => x.mean_dim(dim),
                Reduce::Max => x.max_dim(dim),
            });
            if keep_dim {
                return Ok(reduced);
            }
            let mut dims = reduced.dims();
            dims.remove(dim);
            if dims.is_empty() {
                dims.push(1);
            }
            reduced.reshape(&dims)
        })
    }

    fn reshape(&self, t: TensorId, shape: RSlice<'_, i64>) -> TensorId {
        self.run("reshape", || {
            let t = self.get(t)?;
            let numel = t.dims().iter().product();
            t.reshape(&resolve_shape(numel, &shape)?)
        })
    }

    fn transpose(&self, t: TensorId, dim0: usize, dim1: usize) -> TensorId {
        self.run("transpose", || {
            Ok(map_dyn!(self.get(t)?, |x| x.swap_dims(dim0, dim1)))
        })
    }

    fn matmul(&self, a: TensorId, b: TensorId) -> TensorId {
        self.run("matmul", || {
            let (a, b) = (self.get(a)?, self.get(b)?);
            if a.rank() < 2 || b.rank() < 2 {
                return Err(format!(
                    "matmul needs rank ≥ 2, got {:?} and {:?}",
                    a.dims(),
                    b.dims()
                ));
            }
            Ok(zip_dyn!(a, b, |x, y| x.matmul(y)))
        })
    }

    fn cat(&self, ts: RSlice<'_, TensorId>, dim: usize) -> TensorId {
        self.run("cat", || {
            let ts = ts
                .iter()
                .map(|&t| self.get(t))
                .collect::<Result<Vec<_>, _>>()?;
            let rank = ts.first().ok_or("cat of no tensors")?.rank();
            if ts.iter().any(|t| t.rank() != rank) {
                return Err("cat needs tensors of the same rank".into());
            }
            Ok(match rank {
                1 => DynTensor::R1(Tensor::cat(
                    ts.into_iter().map(|t| t.into_rank::<1>()).collect(),
                    dim,
                )),
                2 => DynTensor::R2(Tensor::cat(
                    ts.into_iter().map(|t| t.into_rank::<2>()).collect(),
                    dim,
                )),
                3 => DynTensor::R3(Tensor::cat(
                    ts.into_iter().map(|t| t.into_rank::<3>()).collect(),
                    dim,
                )),
                _ => DynTensor::R4(Tensor::cat(
                    ts.into_iter().map(|t| t.into_rank::<4>()).collect(),
                    dim,
                )),
            })
        })
    }

    fn narrow(&self, t: TensorId, dim: usize, start: usize, end: usize) -> TensorId {
        self.run("narrow", || {
            if end <= start {
                return Err(format!("empty range {start}..{end}"));
            }
            Ok(map_dyn!(self.get(t)?, |x| x.narrow(
                dim,
                start,
                end - start
            )))
        })
    }

    fn detach(&self, t: TensorId) -> TensorId {
        self.run("detach", || Ok(map_dyn!(self.get(t)?, |x| x.detach())))
    }

    fn layer(
        &self,
        op: u32,
        inputs: RSlice<'_, TensorId>,
        args: RSlice<'_, i64>,
        fargs: RSlice<'_, f64>,
    ) -> TensorId {
        self.run("layer", || {
            let op = code("layer", op, Layer::from_code)?;
            if op == Layer::BatchNorm {
                return self.batch_norm(&inputs, &fargs);
            }
            let inputs = inputs
                .iter()
                .map(|&t| self.get(t))
                .collect::<Result<Vec<_>, _>>()?;
            self.layer_op(op, inputs, &args, &fargs)
        })
    }

    fn param_group(&self, patterns: RSlice<'_, RString>) -> TensorId {
        self.run("param_group", || {
            let indices = self.group_indices(&patterns)?;
            let params = self.params.borrow();
            if params.is_empty() {
                return Err("parameters are not available in this callback".into());
            }
            let mut parts: Vec<Tensor<B, 1>> = indices
                .iter()
                .map(|&i| params[i].clone().flatten())
                .collect();
            Ok(DynTensor::R1(if parts.len() == 1 {
                parts.remove(0)
            } else {
                Tensor::cat(parts, 0)
            }))
        })
    }

    fn keep(&self, name: RStr<'_>, t: TensorId) -> u64 {
        match self.get(t) {
            Ok(t) => {
                let t = map_dyn!(t, |x| x.detach());
                let mut kept = self.kept.borrow_mut();
                match kept.iter().position(|(n, _)| n == name.as_str()) {
                    Some(i) => {
                        kept[i].1 = t;
                        i as u64
                    }
                    None => {
                        kept.push((name.to_string(), t));
                        kept.len() as u64 - 1
                    }
                }
            }
            Err(e) => self.fail("keep", e),
        }
    }

    fn kept(&self, key: u64) -> TensorId {
        self.run("kept", || {
            self.kept
                .borrow()
                .get(key as usize)
                .map(|(_, t)| t.clone())
                .ok_or_else(|| format!("unknown kept tensor {key}"))
        })
    }

    fn log(&self, level: LogLevel, message: RStr<'_>) {
        crate::log::plugin_log(level, message);
    }
}
