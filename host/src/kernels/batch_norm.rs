//! Batch normalisation in training mode on the CPU, forward and backward, on plain `f32`
//! slices `[n, c, l]` (channels in the middle; `l` is height × width, or 1 after a linear
//! layer): per-channel statistics over `n` and `l`, accumulated in `f64`, rows spread over the
//! cores with `rayon`. `flex` runs the same math as a dozen broadcasting tensor operations
//! whose strided iteration took most of a ResNet-20 step.

use rayon::prelude::*;

/// The shape of one normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormShape {
    /// Batch size.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Values per channel and example.
    pub l: usize,
}

impl NormShape {
    /// Values per channel over the batch.
    fn per_channel(&self) -> f64 {
        (self.n * self.l) as f64
    }

    /// `f(channel, row)` summed over each channel's rows, in `f64`.
    fn channel_sums(&self, f: impl Fn(usize, usize) -> f64 + Sync) -> Vec<f64> {
        (0..self.c)
            .into_par_iter()
            .map(|ch| (0..self.n).map(|n| f(ch, (n * self.c + ch) * self.l)).sum())
            .collect()
    }
}

/// What the forward pass gives: the output and what the backward pass and the running
/// statistics need.
pub struct Forward {
    /// The normalised, scaled and shifted input.
    pub y: Vec<f32>,
    /// The normalised input `(x − mean) / √(var + ε)`.
    pub x_hat: Vec<f32>,
    /// Per-channel batch mean.
    pub mean: Vec<f32>,
    /// Per-channel batch variance (biased: divided by `n · l`).
    pub var: Vec<f32>,
    /// Per-channel `1 / √(var + ε)`.
    pub inv_std: Vec<f32>,
}

/// `gamma · (x − mean) / √(var + ε) + beta` with the batch's per-channel mean and variance.
pub fn forward(s: &NormShape, x: &[f32], gamma: &[f32], beta: &[f32], eps: f64) -> Forward {
    let m = s.per_channel();
    let row = |start: usize| &x[start..start + s.l];
    let mean: Vec<f64> = s
        .channel_sums(|_, start| row(start).iter().map(|&v| v as f64).sum())
        .into_iter()
        .map(|sum| sum / m)
        .collect();
    let var: Vec<f64> = s
        .channel_sums(|ch, start| {
            row(start)
                .iter()
                .map(|&v| (v as f64 - mean[ch]).powi(2))
                .sum()
        })
        .into_iter()
        .map(|sum| sum / m)
        .collect();
    let inv_std: Vec<f32> = var
        .iter()
        .map(|v| (1.0 / (v + eps).sqrt()) as f32)
        .collect();
    let mut y = vec![0.0; x.len()];
    let mut x_hat = vec![0.0; x.len()];
    y.par_chunks_mut(s.l)
        .zip(x_hat.par_chunks_mut(s.l))
        .zip(x.par_chunks(s.l))
        .enumerate()
        .for_each(|(r, ((y, x_hat), x))| {
            let ch = r % s.c;
            let (mean, inv_std) = (mean[ch] as f32, inv_std[ch]);
            for ((y, h), &v) in y.iter_mut().zip(x_hat.iter_mut()).zip(x) {
                *h = (v - mean) * inv_std;
                *y = gamma[ch] * *h + beta[ch];
            }
        });
    Forward {
        y,
        x_hat,
        mean: mean.iter().map(|&v| v as f32).collect(),
        var: var.iter().map(|&v| v as f32).collect(),
        inv_std,
    }
}

/// The gradients of `x`, `gamma` and `beta` given the output's gradient `dy`, the normalised
/// input and the per-channel `gamma` and `1 / √(var + ε)` of the forward pass.
pub fn backward(
    s: &NormShape,
    dy: &[f32],
    x_hat: &[f32],
    gamma: &[f32],
    inv_std: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let m = s.per_channel();
    let rows = |start: usize| {
        dy[start..start + s.l]
            .iter()
            .zip(&x_hat[start..start + s.l])
    };
    let d_beta = s.channel_sums(|_, start| rows(start).map(|(&g, _)| g as f64).sum());
    let d_gamma = s.channel_sums(|_, start| rows(start).map(|(&g, &h)| (g * h) as f64).sum());
    let mut dx = vec![0.0; dy.len()];
    dx.par_chunks_mut(s.l)
        .zip(dy.par_chunks(s.l).zip(x_hat.par_chunks(s.l)))
        .enumerate()
        .for_each(|(r, (dx, (dy, x_hat)))| {
            let ch = r % s.c;
            let scale = gamma[ch] * inv_std[ch];
            let (mean_dy, mean_dy_xhat) = ((d_beta[ch] / m) as f32, (d_gamma[ch] / m) as f32);
            for ((d, &g), &h) in dx.iter_mut().zip(dy).zip(x_hat) {
                *d = scale * (g - mean_dy - h * mean_dy_xhat);
            }
        });
    let to_f32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
    (dx, to_f32(d_gamma), to_f32(d_beta))
}
