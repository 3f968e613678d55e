//! The task loss a data set is trained with, and accuracy counts.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor};

use crate::device::B;
use crate::train::data::Targets;

/// The task loss: cross-entropy for class targets, mean squared error for values.
pub fn task_loss(out: Tensor<B, 2>, targets: &Targets) -> Tensor<B, 1> {
    match targets {
        Targets::Classes(t) => CrossEntropyLossConfig::new()
            .init(&out.device())
            .forward(out, t.clone()),
        Targets::Values(t) => (out - t.clone()).square().mean(),
    }
}

/// Number of rows whose arg-max equals the label.
pub fn count_correct(out: Tensor<B, 2>, labels: &Tensor<B, 1, Int>) -> Tensor<B, 1, Int> {
    let n = labels.dims()[0];
    out.argmax(1).reshape([n]).equal(labels.clone()).int().sum()
}
