//! Saturation of a model's activation layers, measured on the held-out split after every
//! epoch (the persistent-neurons paper studies how persistent training changes it).
//!
//! Each call of an activation in the forward pass is one layer, named by its position and kind
//! (`act1.relu`, `act2.tanh`, …). For ReLU the figure is the fraction of dead units: units
//! (features, or channels of a convolution) whose pre-activation is never positive on the
//! split. For tanh and sigmoid it is the fraction of pre-activations in the flat tails:
//! |tanh(x)| > 0.95 (|x| > 1.832) and sigmoid(x) outside [0.05, 0.95] (|x| > 2.944).

use burn::tensor::{ElementConversion, Tensor};
use pn_plugin_api::ops::Unary;
use serde::{Deserialize, Serialize};

use crate::device::B;
use crate::train::dyn_tensor::DynTensor;

/// One layer's saturation after an epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSaturation {
    /// `act<k>.<kind>`, k counting activations in the forward pass from 1.
    pub layer: String,
    /// Fraction of dead units (ReLU) or saturated pre-activations (tanh, sigmoid).
    pub fraction: f64,
}

enum Site {
    /// Per unit, the largest pre-activation seen.
    Relu(Tensor<B, 1>),
    /// Saturated pre-activations and all pre-activations seen.
    Bounded(Tensor<B, 1>, usize),
}

/// Accumulates saturation over the forward passes of one evaluation.
#[derive(Default)]
pub struct Tracker {
    sites: Vec<(String, Site)>,
    next: usize,
}

impl Tracker {
    /// A new forward pass starts: activations are counted from the first again.
    pub fn start_pass(&mut self) {
        self.next = 0;
    }

    /// Records the pre-activation `x` of an activation `op` (other ops are ignored).
    pub fn observe(&mut self, op: Unary, x: &DynTensor) {
        let (kind, threshold) = match op {
            Unary::Relu => ("relu", 0.0),
            Unary::Tanh => ("tanh", 1.832),
            Unary::Sigmoid => ("sigmoid", 2.944),
            _ => return,
        };
        let dims = x.dims();
        let x = crate::with_dyn!(x.clone(), |t| t
            .detach()
            .reshape([dims.iter().product::<usize>()]));
        let k = self.next;
        self.next += 1;
        let site = if op == Unary::Relu {
            let units = if dims.len() >= 2 { dims[1] } else { 1 };
            let rows = dims.iter().product::<usize>() / units;
            let per_unit = match dims.len() {
                1 => x.max().reshape([1]),
                2 => x.reshape([rows, units]).max_dim(0).reshape([units]),
                _ => {
                    let rest = rows / dims[0];
                    x.reshape([dims[0], units, rest])
                        .swap_dims(0, 1)
                        .reshape([units, rows])
                        .max_dim(1)
                        .reshape([units])
                }
            };
            Site::Relu(per_unit)
        } else {
            let saturated = x.abs().greater_elem(threshold).float().sum();
            Site::Bounded(saturated, dims.iter().product())
        };
        match self.sites.get_mut(k) {
            Some((_, old)) => match (old, site) {
                (Site::Relu(a), Site::Relu(b)) => *a = a.clone().max_pair(b),
                (Site::Bounded(a, n), Site::Bounded(b, m)) => {
                    *a = a.clone() + b;
                    *n += m;
                }
                (old, new) => *old = new,
            },
            None => self.sites.push((format!("act{}.{kind}", k + 1), site)),
        }
    }

    /// The saturation of every layer seen.
    pub fn finish(self) -> Vec<LayerSaturation> {
        self.sites
            .into_iter()
            .map(|(layer, site)| {
                crate::train::dyn_tensor::count_read_back();
                let fraction = match site {
                    Site::Relu(max) => {
                        let units = max.dims()[0] as f64;
                        let dead = max.lower_equal_elem(0.0).float().sum().into_scalar();
                        dead.elem::<f64>() / units
                    }
                    Site::Bounded(saturated, n) => {
                        saturated.into_scalar().elem::<f64>() / n.max(1) as f64
                    }
                };
                LayerSaturation { layer, fraction }
            })
            .collect()
    }
}
