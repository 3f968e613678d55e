//! Sums of per-batch metrics kept on the device and read back once: the loss weighted by batch
//! size and the number of correct predictions.

use burn::tensor::{Element, Int, Tensor, TensorData};

use crate::device::B;
use crate::train::data::Targets;
use crate::train::loss::{count_correct, task_loss};

/// Running sums of a split's or an epoch's batches.
#[derive(Default)]
pub struct MetricSum {
    loss: Option<Tensor<B, 1>>,
    correct: Option<Tensor<B, 1, Int>>,
}

impl MetricSum {
    /// Adds a batch of `n` examples with mean task loss `loss` (one element) and, for class
    /// targets, the model's `output` to count correct predictions.
    pub fn add(&mut self, loss: Tensor<B, 1>, n: usize, output: Tensor<B, 2>, targets: &Targets) {
        let weighted = loss * (n as f32);
        self.loss = Some(match self.loss.take() {
            Some(s) => s + weighted,
            None => weighted,
        });
        if let Targets::Classes(labels) = targets {
            let c = count_correct(output, labels);
            self.correct = Some(match self.correct.take() {
                Some(s) => s + c,
                None => c,
            });
        }
    }

    /// Adds a batch's outputs: its task loss is computed here.
    pub fn add_outputs(&mut self, output: Tensor<B, 2>, targets: &Targets) {
        let n = output.dims()[0];
        let loss = task_loss(output.clone(), targets);
        self.add(loss, n, output, targets);
    }

    /// Mean loss and accuracy (None for regression) over `n` examples; NaN loss when empty.
    pub fn finish(self, n: usize) -> (f64, Option<f64>) {
        let n = n as f64;
        let loss = self.loss.map(scalar).unwrap_or(f64::NAN) / n;
        (loss, self.correct.map(|c| int_scalar(c) / n))
    }
}

fn scalar(t: Tensor<B, 1>) -> f64 {
    crate::train::dyn_tensor::count_read_back();
    first::<f64>(t.into_data()).unwrap_or(f64::NAN)
}

fn int_scalar(t: Tensor<B, 1, Int>) -> f64 {
    crate::train::dyn_tensor::count_read_back();
    first::<i64>(t.into_data()).unwrap_or(0) as f64
}

/// The first value of `data`, as `E`.
fn first<E: Element>(data: TensorData) -> Option<E> {
    data.convert::<E>()
        .to_vec::<E>()
        .ok()
        .and_then(|v| v.first().copied())
}
