//! [`HostOps`] for a [`Session`]: every tensor operation a plugin calls, each run under
//! `catch_unwind` so that a backend panic becomes the session's error and a poisoned handle.

use abi_stable::std_types::{ROption, RSlice, RStr, RString, RVec};
use burn::tensor::{activation, Tensor};
use pn_plugin_api::abi::{HostOps, LogLevel, OptimizerState, TensorId, POISON};
use pn_plugin_api::ops::{Binary, Layer, Random, Reduce, Scalar, Unary};

use super::Session;
use crate::train::dyn_tensor::DynTensor;
use crate::{map_dyn, with_dyn, zip_dyn};

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

impl HostOps for Session<'_> {
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
        match self.dims_of(t) {
            Ok(dims) => dims.into(),
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
                Unary::Relu => map_dyn!(t, |x| crate::kernels::relu(x)),
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
            let shape = resolve_shape(t.num_elements(), &shape)?;
            t.reshape(&shape)
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
            if let (Layer::SquaredDistances, [group, anchors]) = (op, &inputs[..]) {
                if let Some(d) = self.distances_of_group(*group, *anchors)? {
                    return Ok(d);
                }
            }
            let inputs = inputs
                .iter()
                .map(|&t| self.get(t))
                .collect::<Result<Vec<_>, _>>()?;
            self.layer_op(op, inputs, &args, &fargs)
        })
    }

    fn param_group(&self, patterns: RSlice<'_, RString>) -> TensorId {
        if self.error.borrow().is_some() {
            return POISON;
        }
        let members = self.group_indices(&patterns).and_then(|indices| {
            let params = self.params.borrow();
            if params.is_empty() {
                return Err("parameters are not available in this callback".into());
            }
            Ok(indices.iter().map(|&i| params[i].clone()).collect())
        });
        match members {
            Ok(members) => self.insert_group(members),
            Err(e) => self.fail("param_group", e),
        }
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

    fn run_seed(&self) -> u64 {
        self.position.get().seed
    }

    fn learning_rate(&self) -> f64 {
        self.position.get().lr
    }

    fn random(&self, dist: u32, shape: RSlice<'_, usize>, a: f64, b: f64) -> TensorId {
        self.run("random", || {
            self.draw(code("random", dist, Random::from_code)?, &shape, a, b)
        })
    }

    fn set_params(
        &self,
        patterns: RSlice<'_, RString>,
        values: TensorId,
        optimizer: OptimizerState,
    ) -> bool {
        if self.error.borrow().is_some() {
            return false;
        }
        match self.write_params(&patterns, values, optimizer) {
            Ok(()) => true,
            Err(e) => {
                self.fail("set_params", e);
                false
            }
        }
    }

    fn grad(&self, t: TensorId, patterns: RSlice<'_, RString>) -> TensorId {
        self.run("grad", || self.gradient(t, &patterns))
    }

    fn loss_at(&self, patterns: RSlice<'_, RString>, delta: TensorId) -> TensorId {
        self.run("loss_at", || self.loss_at_shift(&patterns, delta))
    }

    fn batch_inputs(&self) -> TensorId {
        self.run("batch_inputs", || self.batch_part(true))
    }

    fn batch_targets(&self) -> TensorId {
        self.run("batch_targets", || self.batch_part(false))
    }
}
