//! `mnist` and `fashion_mnist`: 28x28 grey images in 10 classes read from the original IDX
//! files, raw or `.gz`, in a directory the user gives: `train-images-idx3-ubyte`,
//! `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`.
//! `mnist` is the handwritten digits (LeCun, Cortes & Burges), `fashion_mnist` the clothing
//! images of Xiao, Rasul & Vollgraf (2017), which use the same format and file names.
//! Pixels are scaled to [0, 1] and standardised with each set's mean and std (MNIST 0.1307 and
//! 0.3081, Fashion-MNIST 0.2860 and 0.3530). With `valid = V`, three splits: the last V
//! training images are held out (strategies select on them) and the test files are the test
//! split (runs report on it). With `split_test = N`, only the test files are needed: their
//! first N images train and the rest are held out; with `valid = V` as well, the test files are
//! cut three ways: the first N − V train, the next V are held out, and the rest are the test
//! split.

mod idx;

use std::marker::PhantomData;
use std::ops::Range;
use std::path::PathBuf;

use pn_plugin_api::{Component, DataSplit, DataSplits, Dataset, LossKind, Result};
use serde::{Deserialize, Serialize};

/// What tells the IDX data sets apart.
pub trait Variant: Send + Sync + 'static {
    /// Component name.
    const NAME: &'static str;
    /// One-line description.
    const DESCRIPTION: &'static str;
    /// Default `dir`.
    const DIR: &'static str;
    /// Pixel mean and standard deviation (after scaling to [0, 1]).
    const MEAN_STD: (f32, f32);
}

/// Handwritten digits.
pub struct Digits;

impl Variant for Digits {
    const NAME: &'static str = "mnist";
    const DESCRIPTION: &'static str = "MNIST digits from IDX files (raw or .gz) in `dir`";
    const DIR: &'static str = "data/mnist";
    const MEAN_STD: (f32, f32) = (0.1307, 0.3081);
}

/// Clothing images.
pub struct Fashion;

impl Variant for Fashion {
    const NAME: &'static str = "fashion_mnist";
    const DESCRIPTION: &'static str = "Fashion-MNIST clothing images from IDX files in `dir`";
    const DIR: &'static str = "data/fashion-mnist";
    const MEAN_STD: (f32, f32) = (0.2860, 0.3530);
}

/// Data settings.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, bound = "")]
pub struct Config<V: Variant> {
    /// Directory holding the IDX files. Default `data/mnist` (`data/fashion-mnist`).
    pub dir: PathBuf,
    /// Use only the test files: the first N examples train, the rest are held out (with
    /// `valid = V`: the first N − V train, the next V are held out, the rest are the test split).
    pub split_test: Option<usize>,
    /// Keep at most this many training examples.
    pub train_limit: Option<usize>,
    /// Three splits: hold out the last N examples of the training files (or of the first
    /// `split_test` test examples) as the held-out split (strategies select on it) and give the
    /// test files (the rest of them) as the test split (runs report on it). Without it the test
    /// files are the held-out split.
    pub valid: Option<usize>,
    /// Standardise pixels with the set's mean and std instead of scaling to [0, 1]. Default true.
    pub normalize: bool,
    #[serde(skip)]
    variant: PhantomData<V>,
}

impl<V: Variant> Default for Config<V> {
    fn default() -> Self {
        Self {
            dir: PathBuf::from(V::DIR),
            split_test: None,
            train_limit: None,
            valid: None,
            normalize: true,
            variant: PhantomData,
        }
    }
}

/// An IDX image data set.
pub struct Mnist<V: Variant>(Config<V>);

impl<V: Variant> Component for Mnist<V> {
    const NAME: &'static str = V::NAME;
    const DESCRIPTION: &'static str = V::DESCRIPTION;
    type Config = Config<V>;
    fn new(c: Config<V>) -> Result<Self> {
        Ok(Mnist(c))
    }
}

impl<V: Variant> Mnist<V> {
    fn read_pair(&self, prefix: &str) -> Result<(idx::Idx, idx::Idx)> {
        let dir = &self.0.dir;
        pn_plugin_kit::data::require_dir(dir)?;
        let images = idx::read(
            &idx::locate(dir, &format!("{prefix}-images-idx3-ubyte"))?,
            3,
        )?;
        let labels = idx::read(
            &idx::locate(dir, &format!("{prefix}-labels-idx1-ubyte"))?,
            1,
        )?;
        if images.dims[1] == 0 || images.dims[2] == 0 || images.dims[0] == 0 {
            return Err(format!(
                "{prefix} images: the file holds {} images of {}×{} pixels; need at least one image of at least 1×1",
                images.dims[0], images.dims[1], images.dims[2]
            )
            .into());
        }
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

    fn split(&self, images: &idx::Idx, labels: &idx::Idx, range: Range<usize>) -> DataSplit {
        let per = images.dims[1] * images.dims[2];
        let (mean, std) = V::MEAN_STD;
        let scale = |p: u8| {
            let x = f32::from(p) / 255.0;
            if self.0.normalize {
                (x - mean) / std
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

/// Which examples of one pair of files each split takes.
struct Ranges {
    train: Range<usize>,
    valid: Range<usize>,
    test: Option<Range<usize>>,
}

impl<V: Variant> Mnist<V> {
    /// How `split_test = n` (and `valid`, if given) cut `total` test examples: the first `n`
    /// train and the rest are held out; with `valid = v` the last `v` of those `n` are held
    /// out instead and the examples from `n` on are the test split.
    fn test_file_ranges(&self, n: usize, total: usize) -> Result<Ranges> {
        if n == 0 || n >= total {
            return Err(format!("config field `split_test` must be in 1..{total}, got {n}").into());
        }
        Ok(match self.0.valid {
            None => Ranges {
                train: self.train_range(n),
                valid: n..total,
                test: None,
            },
            Some(v) if v == 0 || v >= n => {
                return Err(format!(
                    "config field `valid` must be in 1..{n} (the `split_test` examples), got {v}"
                )
                .into())
            }
            Some(v) => Ranges {
                train: self.train_range(n - v),
                valid: n - v..n,
                test: Some(n..total),
            },
        })
    }

    /// How `valid = v` cuts `total` training examples: the last `v` are held out.
    fn train_file_ranges(&self, v: usize, total: usize) -> Result<Range<usize>> {
        if v == 0 || v >= total {
            return Err(format!("config field `valid` must be in 1..{total}, got {v}").into());
        }
        Ok(total - v..total)
    }

    /// The examples that train, whose end is `end` unless `train_limit` is smaller.
    fn train_range(&self, end: usize) -> Range<usize> {
        0..self.0.train_limit.map_or(end, |l| l.min(end))
    }
}

impl<V: Variant> Dataset for Mnist<V> {
    fn load_test(&self) -> Result<Option<DataSplit>> {
        let (images, labels) = self.read_pair("t10k")?;
        let total = images.dims[0];
        let test = match (self.0.split_test, self.0.valid) {
            (Some(n), _) => self.test_file_ranges(n, total)?.test,
            (None, Some(_)) => Some(0..total),
            (None, None) => None,
        };
        Ok(test.map(|range| self.split(&images, &labels, range)))
    }

    fn load(&self) -> Result<DataSplits> {
        let (test_images, test_labels) = self.read_pair("t10k")?;
        let (train, valid) = match (self.0.split_test, self.0.valid) {
            (Some(n), _) => {
                let ranges = self.test_file_ranges(n, test_images.dims[0])?;
                (
                    self.split(&test_images, &test_labels, ranges.train),
                    self.split(&test_images, &test_labels, ranges.valid),
                )
            }
            (None, Some(v)) => {
                let (images, labels) = self.read_pair("train")?;
                let held_out = self.train_file_ranges(v, images.dims[0])?;
                (
                    self.split(&images, &labels, self.train_range(held_out.start)),
                    self.split(&images, &labels, held_out),
                )
            }
            (None, None) => {
                let (images, labels) = self.read_pair("train")?;
                (
                    self.split(&images, &labels, self.train_range(images.dims[0])),
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

pn_plugin_api::register_dataset!(Mnist<Digits>);
pn_plugin_api::register_dataset!(Mnist<Fashion>);
pn_plugin_api::export_plugin!();
