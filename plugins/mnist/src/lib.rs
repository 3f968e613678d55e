//! `mnist`: handwritten digits (LeCun, Cortes & Burges) read from the original IDX files, raw
//! or `.gz`, in a directory the user gives: `train-images-idx3-ubyte`,
//! `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`.
//! Pixels are scaled to [0, 1] and standardised with MNIST's mean 0.1307 and std 0.3081.
//! With `split_test = N`, only the test files are needed: their first N images train and the
//! rest are held out.

mod idx;

use std::path::PathBuf;

use pn_plugin_api::{Component, DataSplit, DataSplits, Dataset, LossKind, Result};
use serde::{Deserialize, Serialize};

/// Data settings.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory holding the IDX files. Default `data/mnist`.
    pub dir: PathBuf,
    /// Use only the test files: the first N examples train, the rest are held out.
    pub split_test: Option<usize>,
    /// Keep at most this many training examples.
    pub train_limit: Option<usize>,
    /// Standardise pixels (mean 0.1307, std 0.3081) instead of scaling to [0, 1]. Default true.
    pub normalize: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data/mnist"),
            split_test: None,
            train_limit: None,
            normalize: true,
        }
    }
}

/// The MNIST data set.
pub struct Mnist(Config);

impl Component for Mnist {
    const NAME: &'static str = "mnist";
    const DESCRIPTION: &'static str = "MNIST digits from IDX files (raw or .gz) in `dir`";
    type Config = Config;
    fn new(c: Config) -> Result<Self> {
        Ok(Mnist(c))
    }
}

impl Mnist {
    fn read_pair(&self, prefix: &str) -> Result<(idx::Idx, idx::Idx)> {
        let dir = &self.0.dir;
        if !dir.is_dir() {
            return Err(format!(
                "data directory not found: {} (set dataset.dir)",
                dir.display()
            )
            .into());
        }
        let images = idx::read(
            &idx::locate(dir, &format!("{prefix}-images-idx3-ubyte"))?,
            3,
        )?;
        let labels = idx::read(
            &idx::locate(dir, &format!("{prefix}-labels-idx1-ubyte"))?,
            1,
        )?;
        if images.dims[0] != labels.dims[0] {
            return Err(format!(
                "{prefix} files disagree: {} images but {} labels",
                images.dims[0], labels.dims[0]
            )
            .into());
        }
        if let Some(bad) = labels.data.iter().find(|&&l| l > 9) {
            return Err(format!("{prefix} labels: {bad} is not a digit").into());
        }
        Ok((images, labels))
    }

    fn split(
        &self,
        images: &idx::Idx,
        labels: &idx::Idx,
        range: std::ops::Range<usize>,
    ) -> DataSplit {
        let per = images.dims[1] * images.dims[2];
        let scale = |p: u8| {
            let x = f32::from(p) / 255.0;
            if self.0.normalize {
                (x - 0.1307) / 0.3081
            } else {
                x
            }
        };
        let inputs: Vec<f32> = images.data[range.start * per..range.end * per]
            .iter()
            .map(|&p| scale(p))
            .collect();
        let targets: Vec<f32> = labels.data[range.clone()]
            .iter()
            .map(|&l| f32::from(l))
            .collect();
        DataSplit {
            inputs: inputs.into(),
            targets: targets.into(),
            len: range.len(),
        }
    }
}

impl Dataset for Mnist {
    fn load(&self) -> Result<DataSplits> {
        let (test_images, test_labels) = self.read_pair("t10k")?;
        let (train, valid) = match self.0.split_test {
            Some(n) => {
                let total = test_images.dims[0];
                if n == 0 || n >= total {
                    return Err(format!(
                        "config field `split_test` must be in 1..{total}, got {n}"
                    )
                    .into());
                }
                let n = self.0.train_limit.map_or(n, |l| l.min(n));
                (
                    self.split(&test_images, &test_labels, 0..n),
                    self.split(
                        &test_images,
                        &test_labels,
                        self.0.split_test.unwrap_or(n)..total,
                    ),
                )
            }
            None => {
                let (images, labels) = self.read_pair("train")?;
                let n = self
                    .0
                    .train_limit
                    .map_or(images.dims[0], |l| l.min(images.dims[0]));
                (
                    self.split(&images, &labels, 0..n),
                    self.split(&test_images, &test_labels, 0..test_images.dims[0]),
                )
            }
        };
        let shape = vec![1, test_images.dims[1], test_images.dims[2]];
        Ok(DataSplits {
            input_shape: shape.into(),
            outputs: 10,
            loss: LossKind::CrossEntropy,
            train,
            valid,
        })
    }
}

pn_plugin_api::register_dataset!(Mnist);
pn_plugin_api::export_plugin!();
