//! `kink`: regression of a function with a kink, `y = |x_1 + … + x_d| / √d` with inputs
//! uniform on `[−√3, √3]^d` (unit variance), the problem on which narrow ReLU networks "die"
//! (Lu, Shin, Su & Karniadakis, 2019, "Dying ReLU and Initialization: Theory and Numerical
//! Examples", arXiv:1903.06733). The persistent-neurons paper trains a three-layer fully
//! connected network on it (`mlp` with `hidden = [w, w]`): from standard initialisations a
//! narrow network often collapses to a constant, or to one linear piece, and stays there, since
//! dead ReLU units get no gradient. The constant predictor's loss is the variance of y
//! (0.25 for d = 1); the kink itself is learnable to zero loss. Generated in memory from a
//! fixed seed: every run sees the same data.

use pn_plugin_api::{Component, DataSplit, DataSplits, Dataset, Result};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal, Uniform};
use serde::{Deserialize, Serialize};

/// Data settings.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Input dimension d. Default 1.
    pub d: usize,
    /// Training examples. Default 1000.
    pub train: usize,
    /// Held-out examples. Default 500.
    pub valid: usize,
    /// Standard deviation of Gaussian noise added to the training targets. Default 0.
    pub noise: f64,
    /// Seed of the inputs and noise. Default 1.
    pub data_seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            d: 1,
            train: 1000,
            valid: 500,
            noise: 0.0,
            data_seed: 1,
        }
    }
}

/// The kink data set.
pub struct Kink(Config);

impl Component for Kink {
    const NAME: &'static str = "kink";
    const DESCRIPTION: &'static str =
        "y = |Σ x_i| / √d, x ~ U[−√3, √3]^d: where narrow ReLU nets collapse (generated, no files)";
    type Config = Config;
    fn new(c: Config) -> Result<Self> {
        if c.d == 0 || c.train == 0 || c.valid == 0 {
            return Err("config fields `d`, `train` and `valid` must be at least 1".into());
        }
        if !(c.noise >= 0.0 && c.noise.is_finite()) {
            return Err(format!("config field `noise` must be ≥ 0, got {}", c.noise).into());
        }
        Ok(Kink(c))
    }
}

/// The target for input `x`.
pub fn kink(x: &[f64]) -> f64 {
    x.iter().sum::<f64>().abs() / (x.len() as f64).sqrt()
}

fn split(c: &Config, len: usize, noise: f64, rng: &mut StdRng) -> Result<DataSplit> {
    let bound = 3f64.sqrt();
    let inputs_dist = Uniform::new(-bound, bound)?;
    let noise_dist = Normal::new(0.0, noise)?;
    let mut inputs = Vec::with_capacity(len * c.d);
    let mut targets = Vec::with_capacity(len);
    for _ in 0..len {
        let x: Vec<f64> = (0..c.d).map(|_| inputs_dist.sample(rng)).collect();
        let y = kink(&x)
            + if noise > 0.0 {
                noise_dist.sample(rng)
            } else {
                0.0
            };
        inputs.extend(x.iter().map(|&v| v as f32));
        targets.push(y as f32);
    }
    Ok(DataSplit {
        inputs: inputs.into(),
        targets: targets.into(),
        len,
    })
}

impl Dataset for Kink {
    fn load(&self) -> Result<DataSplits> {
        let c = &self.0;
        let mut rng = StdRng::seed_from_u64(c.data_seed);
        let train = split(c, c.train, c.noise, &mut rng)?;
        let valid = split(c, c.valid, 0.0, &mut rng)?;
        Ok(pn_plugin_kit::data::scalar_regression(&[c.d], train, valid))
    }
}

pn_plugin_api::register_dataset!(Kink);
pn_plugin_api::export_plugin!();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_the_kink_of_the_inputs_and_held_out_targets_are_clean() {
        let c = Config {
            d: 2,
            train: 200,
            valid: 50,
            noise: 0.1,
            ..Config::default()
        };
        let data = Kink::new(c).unwrap().load().unwrap();
        let bound = 3f32.sqrt();
        assert!(data.train.inputs.iter().all(|v| v.abs() <= bound));
        let residual = |s: &DataSplit| -> Vec<f64> {
            s.inputs
                .chunks(2)
                .zip(s.targets.iter())
                .map(|(x, &y)| y as f64 - kink(&[x[0] as f64, x[1] as f64]))
                .collect()
        };
        assert!(residual(&data.valid).iter().all(|r| r.abs() < 1e-5));
        let noise = residual(&data.train);
        let std = (noise.iter().map(|r| r * r).sum::<f64>() / noise.len() as f64).sqrt();
        assert!((0.07..0.13).contains(&std), "noise std {std}");
        assert!((kink(&[1.0, -3.0]) - 2.0 / 2f64.sqrt()).abs() < 1e-12);
    }
}
