//! `teacher_student`: regression on labels from a fixed random ReLU teacher, in the setting of
//! Safran & Shamir, "Spurious Local Minima are Common in Two-Layer ReLU Neural Networks"
//! (ICML 2018, arXiv:1712.08968): x ~ N(0, I_d), y = Σ_{i≤k} relu(v_iᵀx) with orthonormal v_i.
//! A student of the same width (`mlp` with `output = "sum"`) can reach zero loss, yet plain
//! gradient descent often stops in a spurious local minimum for d = k between 6 and 12.
//! Generated in memory from fixed seeds: every run sees the same teacher and data.

use pn_plugin_api::{Component, DataSplit, DataSplits, Dataset, Result};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// Data settings.
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Input dimension d. Default 10.
    pub d: usize,
    /// Teacher width k ≤ d. Default 10.
    pub k: usize,
    /// Training examples. Default 2000.
    pub train: usize,
    /// Held-out examples. Default 500.
    pub valid: usize,
    /// Seed of the teacher's directions. Default 0.
    pub teacher_seed: u64,
    /// Seed of the inputs. Default 1.
    pub data_seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            d: 10,
            k: 10,
            train: 2000,
            valid: 500,
            teacher_seed: 0,
            data_seed: 1,
        }
    }
}

/// The teacher-student data set.
pub struct TeacherStudent(Config);

impl Component for TeacherStudent {
    const NAME: &'static str = "teacher_student";
    const DESCRIPTION: &'static str =
        "x ~ N(0, I_d), y = Σ relu(v_iᵀx), orthonormal v_i (generated, no files)";
    type Config = Config;
    fn new(c: Config) -> Result<Self> {
        if c.d == 0 || c.k == 0 || c.k > c.d {
            return Err(format!(
                "config fields `d` and `k` need 1 ≤ k ≤ d, got d = {}, k = {}",
                c.d, c.k
            )
            .into());
        }
        if c.train == 0 || c.valid == 0 {
            return Err("config fields `train` and `valid` must be at least 1".into());
        }
        Ok(TeacherStudent(c))
    }
}

/// k orthonormal vectors in R^d (Gram-Schmidt on Gaussian vectors).
pub fn orthonormal(d: usize, k: usize, rng: &mut StdRng) -> Vec<Vec<f64>> {
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(k);
    while basis.len() < k {
        let mut v: Vec<f64> = (0..d).map(|_| StandardNormal.sample(rng)).collect();
        for b in &basis {
            let dot: f64 = v.iter().zip(b).map(|(x, y)| x * y).sum();
            v.iter_mut().zip(b).for_each(|(x, y)| *x -= dot * y);
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 1e-6 {
            basis.push(v.into_iter().map(|x| x / norm).collect());
        }
    }
    basis
}

fn split(teacher: &[Vec<f64>], d: usize, len: usize, rng: &mut StdRng) -> DataSplit {
    let mut inputs = Vec::with_capacity(len * d);
    let mut targets = Vec::with_capacity(len);
    for _ in 0..len {
        let x: Vec<f64> = (0..d).map(|_| StandardNormal.sample(rng)).collect();
        let y: f64 = teacher
            .iter()
            .map(|v| v.iter().zip(&x).map(|(a, b)| a * b).sum::<f64>().max(0.0))
            .sum();
        inputs.extend(x.iter().map(|&v| v as f32));
        targets.push(y as f32);
    }
    DataSplit {
        inputs: inputs.into(),
        targets: targets.into(),
        len,
    }
}

impl Dataset for TeacherStudent {
    fn load(&self) -> Result<DataSplits> {
        let c = &self.0;
        let teacher = orthonormal(c.d, c.k, &mut StdRng::seed_from_u64(c.teacher_seed));
        let mut rng = StdRng::seed_from_u64(c.data_seed);
        let train = split(&teacher, c.d, c.train, &mut rng);
        let valid = split(&teacher, c.d, c.valid, &mut rng);
        Ok(pn_plugin_kit::data::scalar_regression(&[c.d], train, valid))
    }
}

pn_plugin_api::register_dataset!(TeacherStudent);
pn_plugin_api::export_plugin!();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teacher_directions_are_orthonormal() {
        let basis = orthonormal(8, 6, &mut StdRng::seed_from_u64(3));
        for (i, a) in basis.iter().enumerate() {
            for (j, b) in basis.iter().enumerate() {
                let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                let expected = if i == j { 1.0 } else { 0.0 };
                assert!((dot - expected).abs() < 1e-9, "<v{i}, v{j}> = {dot}");
            }
        }
    }

    #[test]
    fn labels_are_the_teacher_output() {
        let data = TeacherStudent::new(Config {
            d: 3,
            k: 2,
            train: 5,
            valid: 2,
            ..Config::default()
        })
        .unwrap()
        .load()
        .unwrap();
        let teacher = orthonormal(3, 2, &mut StdRng::seed_from_u64(0));
        let x = &data.train.inputs[..3];
        let y: f64 = teacher
            .iter()
            .map(|v| {
                v.iter()
                    .zip(x)
                    .map(|(a, &b)| a * b as f64)
                    .sum::<f64>()
                    .max(0.0)
            })
            .sum();
        assert!((data.train.targets[0] as f64 - y).abs() < 1e-5);
        assert_eq!(data.train.len, 5);
        assert_eq!(data.valid.targets.len(), 2);
    }
}
