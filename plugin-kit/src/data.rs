//! Helpers for data-set plugins: directory checks for those that read files, and the splits of
//! generated regression problems.

use std::path::Path;

use pn_plugin_api::abi::{DataSplit, DataSplits, LossKind};
use pn_plugin_api::component::Result;

/// Regression onto one value per example (mean squared error), inputs of `input_shape`.
pub fn scalar_regression(input_shape: &[usize], train: DataSplit, valid: DataSplit) -> DataSplits {
    DataSplits {
        input_shape: input_shape.to_vec().into(),
        outputs: 1,
        loss: LossKind::MeanSquaredError,
        train,
        valid,
    }
}

/// `Ok` if `dir` is a directory, else the one-line error users of every file-based data set
/// see: `data directory not found: DIR (set dataset.dir)`.
pub fn require_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(format!(
            "data directory not found: {} (set dataset.dir)",
            dir.display()
        )
        .into())
    }
}
