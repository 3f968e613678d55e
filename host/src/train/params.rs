//! Model parameters as Burn parameters owned by the host, created from a model plugin's specs.
//!
//! Parameters live in a [`ParamStore`] module (one `Vec<Param>` per rank) so that Burn's
//! optimizers update them; initial values are drawn on the CPU from the run's seed, which makes
//! θ0 identical on every device.

use burn::module::{Module, Param};
use burn::tensor::{Tensor, TensorData};
use pn_plugin_api::abi::InitKind;
use pn_plugin_api::ParamSpec;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal, Uniform};

use crate::device::{Device, B};
use crate::train::dyn_tensor::DynTensor;

/// The trainable parameters of a model, grouped by rank. (Burn's derive recognises the
/// backend only when the generic is named `B`.)
#[derive(Module, Debug)]
pub struct ParamStore<B: burn::tensor::backend::Backend> {
    r1: Vec<Param<Tensor<B, 1>>>,
    r2: Vec<Param<Tensor<B, 2>>>,
    r3: Vec<Param<Tensor<B, 3>>>,
    r4: Vec<Param<Tensor<B, 4>>>,
}

/// Parameter values on the CPU, in spec order (θ0, anchors, final models).
pub type Values = Vec<Vec<f32>>;

/// Draws initial values for `specs` from `seed`.
pub fn initial_values(specs: &[ParamSpec], seed: u64) -> Result<Values, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    specs
        .iter()
        .map(|spec| {
            let n = spec.numel();
            Ok(match spec.init {
                InitKind::Constant => vec![spec.a as f32; n],
                InitKind::Uniform => {
                    let d = Uniform::new(spec.a, spec.b).map_err(|e| {
                        format!("parameter `{}`: bad uniform range: {e}", spec.name)
                    })?;
                    (0..n).map(|_| d.sample(&mut rng) as f32).collect()
                }
                InitKind::Normal => {
                    let d = Normal::new(spec.a, spec.b)
                        .map_err(|e| format!("parameter `{}`: bad normal: {e}", spec.name))?;
                    (0..n).map(|_| d.sample(&mut rng) as f32).collect()
                }
            })
        })
        .collect()
}

/// A flat vector of every parameter in spec order, cut into the parameters of `specs`.
pub fn split_flat(specs: &[ParamSpec], flat: &[f32]) -> Result<Values, String> {
    let total: usize = specs.iter().map(ParamSpec::numel).sum();
    if flat.len() != total {
        return Err(format!(
            "a flat parameter vector has {} values, but the model has {total} parameters",
            flat.len()
        ));
    }
    let mut rest = flat;
    Ok(specs
        .iter()
        .map(|s| {
            let (head, tail) = rest.split_at(s.numel());
            rest = tail;
            head.to_vec()
        })
        .collect())
}

impl ParamStore<B> {
    /// A store without parameters (a placeholder while the real one is moved through a step).
    pub fn empty() -> Self {
        Self {
            r1: vec![],
            r2: vec![],
            r3: vec![],
            r4: vec![],
        }
    }

    /// Whether every parameter value is finite (one read from the device).
    pub fn all_finite(&self) -> bool {
        let sums: Vec<Tensor<B, 1>> = self
            .r1
            .iter()
            .map(|p| p.val().abs().sum())
            .chain(self.r2.iter().map(|p| p.val().abs().sum()))
            .chain(self.r3.iter().map(|p| p.val().abs().sum()))
            .chain(self.r4.iter().map(|p| p.val().abs().sum()))
            .collect();
        if sums.is_empty() {
            return true;
        }
        let total = Tensor::cat(sums, 0).sum().detach();
        DynTensor::R1(total)
            .to_values()
            .first()
            .is_some_and(|v| v.is_finite())
    }
    /// Trainable parameters with `values` and the shapes of `specs`, on `device`.
    pub fn new(specs: &[ParamSpec], values: &Values, device: &Device) -> Result<Self, String> {
        let mut store = Self::empty();
        for (spec, v) in specs.iter().zip(values) {
            let data = |dims: &[usize]| TensorData::new(v.clone(), dims.to_vec());
            match spec.shape.as_slice() {
                [a] => store
                    .r1
                    .push(Param::from_tensor(Tensor::from_data(data(&[*a]), device))),
                [a, b] => store.r2.push(Param::from_tensor(Tensor::from_data(
                    data(&[*a, *b]),
                    device,
                ))),
                [a, b, c] => store.r3.push(Param::from_tensor(Tensor::from_data(
                    data(&[*a, *b, *c]),
                    device,
                ))),
                [a, b, c, d] => store.r4.push(Param::from_tensor(Tensor::from_data(
                    data(&[*a, *b, *c, *d]),
                    device,
                ))),
                other => {
                    return Err(format!(
                        "parameter `{}` has rank {} (1 to 4 supported)",
                        spec.name,
                        other.len()
                    ))
                }
            }
        }
        Ok(store)
    }

    /// The parameters in spec order, tracked by autodiff (`detached`: without the graph).
    pub fn tensors(&self, specs: &[ParamSpec], detached: bool) -> Vec<DynTensor> {
        let mut next = [0usize; 4];
        specs
            .iter()
            .map(|spec| {
                let rank = spec.shape.len();
                let i = next[rank - 1];
                next[rank - 1] += 1;
                let t = match rank {
                    1 => DynTensor::R1(self.r1[i].val()),
                    2 => DynTensor::R2(self.r2[i].val()),
                    3 => DynTensor::R3(self.r3[i].val()),
                    _ => DynTensor::R4(self.r4[i].val()),
                };
                if detached {
                    crate::map_dyn!(t, |x| x.detach())
                } else {
                    t
                }
            })
            .collect()
    }

    /// The current values, in spec order.
    pub fn values(&self, specs: &[ParamSpec]) -> Values {
        self.tensors(specs, true)
            .iter()
            .map(DynTensor::to_values)
            .collect()
    }

    /// Replaces every parameter with `values` (spec order), keeping their identities, so that
    /// the optimizer's state for them carries over.
    pub fn assign(
        &mut self,
        specs: &[ParamSpec],
        values: &Values,
        device: &Device,
    ) -> Result<(), String> {
        for (i, v) in values.iter().enumerate() {
            let flat = Tensor::from_data(TensorData::new(v.clone(), [v.len()]), device);
            self.set(specs, i, flat)?;
        }
        Ok(())
    }

    /// Replaces parameter `index` (spec order) with the flat `values`, keeping its identity, so
    /// that the optimizer's state for it carries over.
    pub fn set(
        &mut self,
        specs: &[ParamSpec],
        index: usize,
        values: Tensor<B, 1>,
    ) -> Result<(), String> {
        let spec = specs.get(index).ok_or("no such parameter")?;
        let rank = spec.shape.len();
        let slot = specs[..index]
            .iter()
            .filter(|s| s.shape.len() == rank)
            .count();
        let value = DynTensor::R1(values.detach()).reshape(&spec.shape)?;
        fn replace<const D: usize>(
            params: &mut [Param<Tensor<B, D>>],
            slot: usize,
            t: Tensor<B, D>,
        ) {
            let old = params[slot].clone();
            params[slot] = old.map(|_| t.require_grad());
        }
        match value {
            DynTensor::R1(t) => replace(&mut self.r1, slot, t),
            DynTensor::R2(t) => replace(&mut self.r2, slot, t),
            DynTensor::R3(t) => replace(&mut self.r3, slot, t),
            DynTensor::R4(t) => replace(&mut self.r4, slot, t),
        }
        Ok(())
    }
}
