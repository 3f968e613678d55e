//! A data set's splits uploaded to the run's device once, and batches selected on the device.

use burn::tensor::{Int, Tensor, TensorData};
use pn_plugin_api::{DataSplit, DataSplits, LossKind};

use crate::device::{Device, B};
use crate::train::dyn_tensor::DynTensor;

/// Targets of a split on the device.
#[derive(Clone, Debug)]
pub enum Targets {
    /// Class indices `[n]`.
    Classes(Tensor<B, 1, Int>),
    /// Regression targets `[n, outputs]`.
    Values(Tensor<B, 2>),
}

/// One split on the device.
#[derive(Clone, Debug)]
pub struct DeviceSplit {
    /// Inputs `[n, ...input_shape]`.
    pub inputs: DynTensor,
    /// Targets.
    pub targets: Targets,
    /// Number of examples.
    pub len: usize,
}

/// A loaded data set on the device.
#[derive(Clone, Debug)]
pub struct Data {
    /// Shape of one example.
    pub input_shape: Vec<usize>,
    /// Number of outputs (classes for cross-entropy).
    pub outputs: usize,
    /// The loss the data set is trained with.
    pub loss: LossKind,
    /// Training split.
    pub train: DeviceSplit,
    /// Held-out split.
    pub valid: DeviceSplit,
    /// Test split, when the data set has one: runs report on it, and select on `valid`.
    pub test: Option<DeviceSplit>,
    /// The training inputs on the CPU, read back from the device the first time augmentation
    /// asks for them (see [`Data::train_host`]).
    train_host: std::sync::OnceLock<std::sync::Arc<Vec<f32>>>,
}

impl Data {
    /// The training inputs on the CPU, for augmentation (see [`crate::train::augment`]); read back
    /// from the device once, so runs without augmentation keep no second copy.
    pub fn train_host(&self) -> std::sync::Arc<Vec<f32>> {
        self.train_host
            .get_or_init(|| std::sync::Arc::new(self.train.inputs.to_values()))
            .clone()
    }

    /// Checks `splits` and uploads them to `device`.
    pub fn upload(splits: DataSplits, device: &Device) -> Result<Self, String> {
        let input_shape = splits.input_shape.to_vec();
        if input_shape.is_empty() || input_shape.len() > 3 || input_shape.contains(&0) {
            return Err(format!(
                "input shape {input_shape:?} must have 1 to 3 dimensions, each at least 1"
            ));
        }
        let shape = SplitShape {
            input_shape: &input_shape,
            outputs: splits.outputs,
            loss: splits.loss,
        };
        Ok(Self {
            input_shape: input_shape.clone(),
            outputs: splits.outputs,
            loss: splits.loss,
            train_host: std::sync::OnceLock::new(),
            train: upload_split("train", splits.train, &shape, device)?,
            valid: upload_split("valid", splits.valid, &shape, device)?,
            test: None,
        })
    }

    /// The same data set with a test split (checked like the others).
    pub fn with_test(mut self, test: DataSplit, device: &Device) -> Result<Self, String> {
        let shape = SplitShape {
            input_shape: &self.input_shape,
            outputs: self.outputs,
            loss: self.loss,
        };
        self.test = Some(upload_split("test", test, &shape, device)?);
        Ok(self)
    }
}

impl DeviceSplit {
    /// The examples at `indices`.
    pub fn batch(&self, indices: Tensor<B, 1, Int>) -> (DynTensor, Targets) {
        let inputs = crate::map_dyn!(self.inputs.clone(), |x| x.select(0, indices.clone()));
        (inputs, self.targets_at(indices))
    }

    /// The targets at `indices`.
    pub fn targets_at(&self, indices: Tensor<B, 1, Int>) -> Targets {
        match &self.targets {
            Targets::Classes(t) => Targets::Classes(t.clone().select(0, indices)),
            Targets::Values(t) => Targets::Values(t.clone().select(0, indices)),
        }
    }

    /// The split divided in two at random, the same way for every run: `count` examples for
    /// strategies to select phases on, and the rest, which the run reports.
    pub fn divide(&self, count: usize) -> (DeviceSplit, DeviceSplit) {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let mut order: Vec<i64> = (0..self.len as i64).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(0x5E1EC7));
        let device = match &self.targets {
            Targets::Classes(t) => t.device(),
            Targets::Values(t) => t.device(),
        };
        let part = |indices: &[i64]| {
            let tensor = Tensor::<B, 1, Int>::from_data(
                TensorData::new(indices.to_vec(), [indices.len()]),
                &device,
            );
            let (inputs, targets) = self.batch(tensor);
            DeviceSplit {
                inputs,
                targets,
                len: indices.len(),
            }
        };
        let (select, report) = order.split_at(count.min(self.len));
        (part(select), part(report))
    }

    /// Examples `start..end`.
    pub fn range(&self, start: usize, end: usize) -> (DynTensor, Targets) {
        let inputs = crate::map_dyn!(self.inputs.clone(), |x| x.narrow(0, start, end - start));
        let targets = match &self.targets {
            Targets::Classes(t) => Targets::Classes(t.clone().narrow(0, start, end - start)),
            Targets::Values(t) => Targets::Values(t.clone().narrow(0, start, end - start)),
        };
        (inputs, targets)
    }
}

/// The shape a data set's splits share.
struct SplitShape<'a> {
    input_shape: &'a [usize],
    outputs: usize,
    loss: LossKind,
}

/// Checks one split against `shape` and uploads it to `device`.
fn upload_split(
    name: &str,
    split: DataSplit,
    shape: &SplitShape,
    device: &Device,
) -> Result<DeviceSplit, String> {
    let input_shape = shape.input_shape;
    let per = input_shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("input shape {input_shape:?} is too large"))?;
    if split.len == 0 {
        return Err(format!("{name} split is empty"));
    }
    if Some(split.inputs.len()) != split.len.checked_mul(per) {
        return Err(format!(
            "{name} split: {} input values for {} examples of shape {input_shape:?}",
            split.inputs.len(),
            split.len
        ));
    }
    let mut dims = vec![split.len];
    dims.extend(input_shape);
    let inputs = DynTensor::from_values(split.inputs.into_vec(), &dims, device)?;
    let targets = match shape.loss {
        LossKind::CrossEntropy => {
            if split.targets.len() != split.len {
                return Err(format!(
                    "{name} split: {} labels for {} examples",
                    split.targets.len(),
                    split.len
                ));
            }
            if let Some(bad) = split
                .targets
                .iter()
                .find(|&&c| c < 0.0 || c as usize >= shape.outputs || c.fract() != 0.0)
            {
                return Err(format!(
                    "{name} split: label {bad} is not a class in 0..{}",
                    shape.outputs
                ));
            }
            let labels: Vec<i64> = split.targets.iter().map(|&c| c as i64).collect();
            Targets::Classes(Tensor::from_data(
                TensorData::new(labels, [split.len]),
                device,
            ))
        }
        LossKind::MeanSquaredError => {
            if split.targets.len() != split.len * shape.outputs {
                return Err(format!(
                    "{name} split: {} targets for {} examples x {} outputs",
                    split.targets.len(),
                    split.len,
                    shape.outputs
                ));
            }
            let values = TensorData::new(split.targets.into_vec(), [split.len, shape.outputs]);
            Targets::Values(Tensor::from_data(values, device))
        }
    };
    Ok(DeviceSplit {
        inputs,
        targets,
        len: split.len,
    })
}
