//! `cifar10`: the CIFAR-10 images (Krizhevsky, 2009) read from the original binary files in
//! `dir` (or `dir/cifar-10-batches-bin`): `data_batch_1.bin` … `data_batch_5.bin` train and
//! `test_batch.bin` validates; with `valid = N` the last N training examples are held out
//! (strategies select on them) and `test_batch.bin` is the test split. Each record is one label byte (0–9) and 3072 pixel bytes: the
//! 32x32 red, then green, then blue plane, row-major; 10,000 records per file. Inputs are
//! `[3, 32, 32]` scaled to [0, 1] and, with `normalize` (default), standardised per channel
//! with the usual means (0.4914, 0.4822, 0.4465) and standard deviations (0.2470, 0.2435,
//! 0.2616).

use std::path::{Path, PathBuf};

use pn_plugin_api::{Component, DataSplit, DataSplits, Dataset, LossKind, Result};
use serde::{Deserialize, Serialize};

const SIDE: usize = 32;
const PIXELS: usize = 3 * SIDE * SIDE;
const RECORD: usize = 1 + PIXELS;
const MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
const STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

/// Which examples validate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Valid {
    /// `"test"`: the test file.
    Test(TestSplit),
    /// A number N: the last N training examples; the test file is then the test split.
    Holdout(usize),
}

/// The word `test`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestSplit {
    /// The test file.
    Test,
}

/// Data settings.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory of the binary files. Default `data/cifar-10-batches-bin`.
    pub dir: PathBuf,
    /// Keep at most this many training examples.
    pub train_limit: Option<usize>,
    /// `"test"` (default) or a number of training examples to hold out.
    pub valid: Valid,
    /// Standardise each channel. Default true.
    pub normalize: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data/cifar-10-batches-bin"),
            train_limit: None,
            valid: Valid::Test(TestSplit::Test),
            normalize: true,
        }
    }
}

/// The CIFAR-10 data set.
pub struct Cifar10(Config);

impl Component for Cifar10 {
    const NAME: &'static str = "cifar10";
    const DESCRIPTION: &'static str = "CIFAR-10 images from the binary files in `dir`";
    type Config = Config;
    fn new(c: Config) -> Result<Self> {
        Ok(Cifar10(c))
    }
}

/// Labels and pixel bytes of one or more files.
#[derive(Default)]
struct Records {
    labels: Vec<u8>,
    pixels: Vec<u8>,
}

/// Reads one binary file, checking its size and labels.
fn read_file(path: &Path, into: &mut Records) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        return Err(format!(
            "{}: truncated or not a CIFAR-10 binary file ({} bytes is not a multiple of {RECORD})",
            path.display(),
            bytes.len()
        )
        .into());
    }
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        if record[0] > 9 {
            return Err(format!(
                "{}: record {i} has label {} (0-9 expected)",
                path.display(),
                record[0]
            )
            .into());
        }
        into.labels.push(record[0]);
        into.pixels.extend_from_slice(&record[1..]);
    }
    Ok(())
}

impl Cifar10 {
    /// The folder holding the files: `dir` or `dir/cifar-10-batches-bin`.
    fn folder(&self) -> Result<PathBuf> {
        let dir = &self.0.dir;
        pn_plugin_kit::data::require_dir(dir)?;
        let nested = dir.join("cifar-10-batches-bin");
        Ok(
            if dir.join("data_batch_1.bin").is_file() || !nested.is_dir() {
                dir.clone()
            } else {
                nested
            },
        )
    }

    fn read(&self, folder: &Path, names: &[String]) -> Result<Records> {
        let mut records = Records::default();
        for name in names {
            let path = folder.join(name);
            if !path.is_file() {
                return Err(format!(
                    "{}: missing (CIFAR-10 binary version expected)",
                    path.display()
                )
                .into());
            }
            read_file(&path, &mut records)?;
        }
        Ok(records)
    }

    fn split(&self, r: &Records, range: std::ops::Range<usize>) -> DataSplit {
        let inputs = r.pixels[range.start * PIXELS..range.end * PIXELS]
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let x = f32::from(p) / 255.0;
                let c = (i % PIXELS) / (SIDE * SIDE);
                if self.0.normalize {
                    (x - MEAN[c]) / STD[c]
                } else {
                    x
                }
            })
            .collect::<Vec<f32>>();
        DataSplit {
            inputs: inputs.into(),
            targets: r.labels[range.clone()]
                .iter()
                .map(|&l| f32::from(l))
                .collect::<Vec<f32>>()
                .into(),
            len: range.len(),
        }
    }
}

impl Dataset for Cifar10 {
    fn load_test(&self) -> Result<Option<DataSplit>> {
        if self.0.valid == Valid::Test(TestSplit::Test) {
            return Ok(None);
        }
        let test = self.read(&self.folder()?, &["test_batch.bin".to_string()])?;
        Ok(Some(self.split(&test, 0..test.labels.len())))
    }

    fn load(&self) -> Result<DataSplits> {
        let folder = self.folder()?;
        let batches: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}.bin")).collect();
        let train = self.read(&folder, &batches)?;
        let n = train.labels.len();
        let (train_split, valid_split) = match self.0.valid {
            Valid::Test(_) => {
                let test = self.read(&folder, &["test_batch.bin".to_string()])?;
                let keep = self.0.train_limit.map_or(n, |l| l.min(n));
                (
                    self.split(&train, 0..keep),
                    self.split(&test, 0..test.labels.len()),
                )
            }
            Valid::Holdout(h) => {
                if h == 0 || h >= n {
                    return Err(format!(
                        "config field `valid` must be \"test\" or in 1..{n}, got {h}"
                    )
                    .into());
                }
                let keep = self.0.train_limit.map_or(n - h, |l| l.min(n - h));
                (self.split(&train, 0..keep), self.split(&train, n - h..n))
            }
        };
        Ok(DataSplits {
            input_shape: vec![3, SIDE, SIDE].into(),
            outputs: 10,
            loss: LossKind::CrossEntropy,
            train: train_split,
            valid: valid_split,
        })
    }
}

pn_plugin_api::register_dataset!(Cifar10);
pn_plugin_api::export_plugin!();

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `records` (label, pixel value) as a binary file; every pixel of a record's red,
    /// green and blue planes is value, value + 1 and value + 2.
    fn write(path: &Path, records: &[(u8, u8)]) {
        let mut bytes = vec![];
        for &(label, v) in records {
            bytes.push(label);
            for c in 0..3u8 {
                bytes.extend(std::iter::repeat_n(v + c, SIDE * SIDE));
            }
        }
        std::fs::write(path, bytes).unwrap();
    }

    fn fixture(dir: &Path) {
        for i in 1..=5u8 {
            write(
                &dir.join(format!("data_batch_{i}.bin")),
                &[(i, 10 * i), (9, 0)],
            );
        }
        write(&dir.join("test_batch.bin"), &[(3, 100)]);
    }

    fn load(dir: &Path, config: Config) -> Result<DataSplits> {
        Cifar10(Config {
            dir: dir.into(),
            ..config
        })
        .load()
    }

    #[test]
    fn reads_records_in_channel_order_and_normalises_per_channel() {
        let tmp = std::env::temp_dir().join(format!("pn-cifar-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        fixture(&tmp);
        let raw = load(
            &tmp,
            Config {
                normalize: false,
                ..Config::default()
            },
        )
        .unwrap();
        assert_eq!(raw.input_shape.as_slice(), [3, 32, 32]);
        assert_eq!(raw.train.len, 10);
        assert_eq!(raw.train.targets[..4], [1.0, 9.0, 2.0, 9.0]);
        assert_eq!(raw.valid.len, 1);
        let first = &raw.train.inputs[..PIXELS];
        assert_eq!(first[0], 10.0 / 255.0, "red plane first");
        assert_eq!(first[SIDE * SIDE], 11.0 / 255.0, "then green");
        assert_eq!(first[2 * SIDE * SIDE], 12.0 / 255.0, "then blue");
        let norm = load(&tmp, Config::default()).unwrap();
        let blue = norm.valid.inputs[2 * SIDE * SIDE];
        assert!((blue - (102.0 / 255.0 - MEAN[2]) / STD[2]).abs() < 1e-6);
        let held = load(
            &tmp,
            Config {
                valid: Valid::Holdout(3),
                train_limit: Some(4),
                ..Config::default()
            },
        )
        .unwrap();
        assert_eq!((held.train.len, held.valid.len), (4, 3));
        let test_split = |valid| {
            Cifar10(Config {
                dir: tmp.clone(),
                valid,
                ..Config::default()
            })
            .load_test()
            .unwrap()
        };
        let test = test_split(Valid::Holdout(3)).expect("a test split");
        assert_eq!(test.targets.as_slice(), [3.0], "the test file");
        assert!(test_split(Valid::Test(TestSplit::Test)).is_none());
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn truncated_files_bad_labels_and_missing_files_are_named() {
        let tmp = std::env::temp_dir().join(format!("pn-cifar-bad-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        fixture(&tmp);
        let err = |c: Config| load(&tmp, c).err().unwrap().to_string();
        let path = tmp.join("data_batch_3.bin");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.pop();
        std::fs::write(&path, &bytes).unwrap();
        assert!(err(Config::default()).contains("data_batch_3.bin: truncated"));
        write(&path, &[(12, 0)]);
        assert!(err(Config::default()).contains("label 12"));
        std::fs::remove_file(&path).unwrap();
        assert!(err(Config::default()).contains("data_batch_3.bin: missing"));
        assert!(load(&tmp.join("nowhere"), Config::default())
            .err()
            .unwrap()
            .to_string()
            .contains("not found"));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
