//! A Burn float tensor of rank 1 to 4 chosen at run time, since plugins build shapes dynamically.
//!
//! Operations between tensors of different ranks first prepend size-1 dimensions to the lower
//! rank (numpy broadcasting). A scalar is a rank-1 tensor of shape `[1]`.

use std::sync::atomic::{AtomicU64, Ordering};

use burn::tensor::Tensor;

use crate::device::B;

/// Reads from the device to the host so far in this process.
static READ_BACKS: AtomicU64 = AtomicU64::new(0);

/// Counts one read from the device to the host: on a GPU each waits for the queue to drain, so
/// `pn-host bench` reports them per step. Every read the host makes goes through here.
pub fn count_read_back() {
    READ_BACKS.fetch_add(1, Ordering::Relaxed);
}

/// Reads from the device to the host so far in this process (see [`count_read_back`]).
pub fn read_backs() -> u64 {
    READ_BACKS.load(Ordering::Relaxed)
}

/// A float tensor of rank 1..=4 on the host's backend.
#[derive(Clone, Debug)]
pub enum DynTensor {
    /// Rank 1.
    R1(Tensor<B, 1>),
    /// Rank 2.
    R2(Tensor<B, 2>),
    /// Rank 3.
    R3(Tensor<B, 3>),
    /// Rank 4.
    R4(Tensor<B, 4>),
}

/// Applies a rank-generic expression to the tensor inside a [`DynTensor`], keeping its rank.
#[macro_export]
macro_rules! map_dyn {
    ($t:expr, |$x:ident| $body:expr) => {
        match $t {
            $crate::train::dyn_tensor::DynTensor::R1($x) => {
                $crate::train::dyn_tensor::DynTensor::R1($body)
            }
            $crate::train::dyn_tensor::DynTensor::R2($x) => {
                $crate::train::dyn_tensor::DynTensor::R2($body)
            }
            $crate::train::dyn_tensor::DynTensor::R3($x) => {
                $crate::train::dyn_tensor::DynTensor::R3($body)
            }
            $crate::train::dyn_tensor::DynTensor::R4($x) => {
                $crate::train::dyn_tensor::DynTensor::R4($body)
            }
        }
    };
}

/// Evaluates a rank-generic expression on the tensor inside a [`DynTensor`].
#[macro_export]
macro_rules! with_dyn {
    ($t:expr, |$x:ident| $body:expr) => {
        match $t {
            $crate::train::dyn_tensor::DynTensor::R1($x) => $body,
            $crate::train::dyn_tensor::DynTensor::R2($x) => $body,
            $crate::train::dyn_tensor::DynTensor::R3($x) => $body,
            $crate::train::dyn_tensor::DynTensor::R4($x) => $body,
        }
    };
}

/// Applies a rank-generic expression to two tensors brought to the same (the larger) rank.
#[macro_export]
macro_rules! zip_dyn {
    ($a:expr, $b:expr, |$x:ident, $y:ident| $body:expr) => {{
        let (a, b) = ($a, $b);
        match a.rank().max(b.rank()) {
            1 => {
                let ($x, $y) = (a.into_rank::<1>(), b.into_rank::<1>());
                $crate::train::dyn_tensor::DynTensor::R1($body)
            }
            2 => {
                let ($x, $y) = (a.into_rank::<2>(), b.into_rank::<2>());
                $crate::train::dyn_tensor::DynTensor::R2($body)
            }
            3 => {
                let ($x, $y) = (a.into_rank::<3>(), b.into_rank::<3>());
                $crate::train::dyn_tensor::DynTensor::R3($body)
            }
            _ => {
                let ($x, $y) = (a.into_rank::<4>(), b.into_rank::<4>());
                $crate::train::dyn_tensor::DynTensor::R4($body)
            }
        }
    }};
}

impl DynTensor {
    /// The rank (1..=4).
    pub fn rank(&self) -> usize {
        match self {
            DynTensor::R1(_) => 1,
            DynTensor::R2(_) => 2,
            DynTensor::R3(_) => 3,
            DynTensor::R4(_) => 4,
        }
    }

    /// The shape.
    pub fn dims(&self) -> Vec<usize> {
        with_dyn!(self, |t| t.dims().to_vec())
    }

    /// The number of elements.
    pub fn num_elements(&self) -> usize {
        with_dyn!(self, |t| t.shape().num_elements())
    }

    /// The tensor at rank `D` ≥ its rank, with leading size-1 dimensions prepended.
    pub fn into_rank<const D: usize>(self) -> Tensor<B, D> {
        with_dyn!(self, |t| t.unsqueeze::<D>())
    }

    /// Reshapes to `shape` (rank 1..=4, sizes already resolved).
    pub fn reshape(self, shape: &[usize]) -> Result<DynTensor, String> {
        Ok(match *shape {
            [a] => DynTensor::R1(with_dyn!(self, |t| t.reshape([a]))),
            [a, b] => DynTensor::R2(with_dyn!(self, |t| t.reshape([a, b]))),
            [a, b, c] => DynTensor::R3(with_dyn!(self, |t| t.reshape([a, b, c]))),
            [a, b, c, d] => DynTensor::R4(with_dyn!(self, |t| t.reshape([a, b, c, d]))),
            _ => return Err(format!("rank {} is not supported (1 to 4)", shape.len())),
        })
    }

    /// All elements as a rank-1 tensor.
    pub fn flatten(self) -> Tensor<B, 1> {
        with_dyn!(self, |t| {
            let n = t.shape().num_elements();
            t.reshape([n])
        })
    }

    /// Builds a tensor of `shape` from row-major values.
    pub fn from_values(
        values: Vec<f32>,
        shape: &[usize],
        device: &burn::tensor::Device<B>,
    ) -> Result<DynTensor, String> {
        let n: usize = shape.iter().product();
        if n != values.len() {
            return Err(format!(
                "{} values do not fill shape {shape:?}",
                values.len()
            ));
        }
        let flat = Tensor::<B, 1>::from_data(burn::tensor::TensorData::new(values, [n]), device);
        DynTensor::R1(flat).reshape(if shape.is_empty() { &[1] } else { shape })
    }

    /// Reads the values back, row-major.
    pub fn to_values(&self) -> Vec<f32> {
        count_read_back();
        with_dyn!(self, |t| t
            .to_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .unwrap_or_default())
    }
}
