//! Squared distances from a flat parameter vector θ (`[n]`) to each row of a `[K, n]` matrix of
//! anchors, `d_k = ‖θ − a_k‖²`, on the CPU: one pass over the anchors forward and one backward,
//! where the same math as tensor operations (broadcast subtraction, square, row sums, and their
//! backward) is a dozen passes. Fixed chunks of θ spread over the cores with `rayon` and are
//! summed in order (in `f64`), so results do not depend on the number of cores.

use rayon::prelude::*;

/// Elements of θ one task handles.
const CHUNK: usize = 1 << 14;

/// `[K]`: `‖θ − anchors[k]‖²` for each of the `anchors.len() / theta.len()` rows.
pub fn forward(theta: &[f32], anchors: &[f32]) -> Vec<f32> {
    let n = theta.len();
    let k = anchors.len().checked_div(n).unwrap_or(0);
    let partials: Vec<Vec<f64>> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let range = c * CHUNK..((c + 1) * CHUNK).min(n);
            (0..k)
                .map(|row| {
                    let a = &anchors[row * n..(row + 1) * n];
                    sum_of_squared_differences(&theta[range.clone()], &a[range.clone()])
                })
                .collect()
        })
        .collect();
    (0..k)
        .map(|row| partials.iter().map(|p| p[row]).sum::<f64>() as f32)
        .collect()
}

/// `Σ (t − a)²` over a chunk: eight `f32` lanes (which the compiler vectorises) summed in
/// `f64` at the end.
fn sum_of_squared_differences(theta: &[f32], anchor: &[f32]) -> f64 {
    let mut lanes = [0.0f32; 8];
    let (t8, a8) = (theta.chunks_exact(8), anchor.chunks_exact(8));
    let tail: f64 = t8
        .remainder()
        .iter()
        .zip(a8.remainder())
        .map(|(&t, &a)| ((t - a) as f64).powi(2))
        .sum();
    for (t, a) in t8.zip(a8) {
        for lane in 0..8 {
            let d = t[lane] - a[lane];
            lanes[lane] += d * d;
        }
    }
    lanes.iter().map(|&l| l as f64).sum::<f64>() + tail
}

/// The gradient of θ given the distances' gradient `dd` (`[K]`): `Σ_k 2 dd_k (θ − a_k)`. The
/// anchors' gradient is its negation spread over the rows, `−2 dd_k (θ − a_k)`, returned when
/// asked for.
pub fn backward(
    theta: &[f32],
    anchors: &[f32],
    dd: &[f32],
    anchors_too: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let n = theta.len();
    let mut d_theta = vec![0.0; n];
    d_theta
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, out)| {
            let start = c * CHUNK;
            for (row, &g) in dd.iter().enumerate() {
                let a = &anchors[row * n + start..row * n + start + out.len()];
                for ((o, &t), &a) in out.iter_mut().zip(&theta[start..]).zip(a) {
                    *o += 2.0 * g * (t - a);
                }
            }
        });
    let d_anchors = anchors_too.then(|| {
        let mut d = vec![0.0; anchors.len()];
        d.par_chunks_mut(n.max(1))
            .zip(dd)
            .zip(anchors.par_chunks(n.max(1)))
            .for_each(|((out, &g), a)| {
                for ((o, &t), &a) in out.iter_mut().zip(theta).zip(a) {
                    *o = -2.0 * g * (t - a);
                }
            });
        d
    });
    (d_theta, d_anchors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_and_their_gradient_by_hand() {
        let theta = [1.0, 2.0, 3.0];
        let anchors = [1.0, 2.0, 3.0, 0.0, 0.0, 1.0];
        assert_eq!(forward(&theta, &anchors), [0.0, 9.0]);
        let (d_theta, d_anchors) = backward(&theta, &anchors, &[1.0, 0.5], true);
        // Row 0 is θ itself (no pull); row 1 contributes 2 · 0.5 · (θ − a1) = (1, 2, 2).
        assert_eq!(d_theta, [1.0, 2.0, 2.0]);
        assert_eq!(d_anchors.unwrap(), [0.0, 0.0, 0.0, -1.0, -2.0, -2.0]);
    }
}
