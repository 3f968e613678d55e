//! Squared distances from a flat parameter vector θ (`[n]`) to each row of a `[K, n]` matrix of
//! anchors, `d_k = ‖θ − a_k‖²`, on the CPU: one pass over the anchors forward and one backward,
//! where the same math as tensor operations (broadcast subtraction, square, row sums, and their
//! backward) is a dozen passes. Fixed chunks of θ spread over the cores with `rayon` and are
//! summed in order (in `f64`), so results do not depend on the number of cores.

use rayon::prelude::*;

/// Elements of θ one task handles.
const CHUNK: usize = 1 << 14;

/// Chunks below which one thread does all of them: waking the pool costs more than the
/// pass over a small parameter (a bias, a small layer).
const PARALLEL_CHUNKS: usize = 4;

/// Where θ sits in the anchors' rows: rows of `width` values, θ's at `offset..offset + n`. A
/// parameter group's members each see their own columns, so the group is never concatenated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Values per anchor row.
    pub width: usize,
    /// θ's first column.
    pub offset: usize,
}

impl Window {
    /// θ is the whole row.
    pub fn whole(n: usize) -> Self {
        Self {
            width: n,
            offset: 0,
        }
    }

    /// Columns `range` (within θ) of anchor row `row`.
    fn of<'a>(&self, anchors: &'a [f32], row: usize, range: std::ops::Range<usize>) -> &'a [f32] {
        let start = row * self.width + self.offset;
        &anchors[start + range.start..start + range.end]
    }

    /// The number of anchor rows.
    fn rows(&self, anchors: &[f32]) -> usize {
        anchors.len().checked_div(self.width).unwrap_or(0)
    }
}

/// `[K]`: `‖θ − anchors[k]‖²` for each anchor row, θ at `window` in the rows.
pub fn forward(theta: &[f32], anchors: &[f32], window: Window) -> Vec<f32> {
    let n = theta.len();
    assert!(
        window.offset + n <= window.width,
        "θ outside the anchors' rows"
    );
    let k = window.rows(anchors);
    let chunk = |c: usize| -> Vec<f64> {
        let range = c * CHUNK..((c + 1) * CHUNK).min(n);
        (0..k)
            .map(|row| {
                let a = window.of(anchors, row, range.clone());
                sum_of_squared_differences(&theta[range.clone()], a)
            })
            .collect()
    };
    let chunks = n.div_ceil(CHUNK);
    let partials: Vec<Vec<f64>> = if chunks < PARALLEL_CHUNKS {
        (0..chunks).map(chunk).collect()
    } else {
        (0..chunks).into_par_iter().map(chunk).collect()
    };
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
/// asked for (θ must then be the whole row).
pub fn backward(
    theta: &[f32],
    anchors: &[f32],
    window: Window,
    dd: &[f32],
    anchors_too: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let n = theta.len();
    let mut d_theta = vec![0.0; n];
    add_theta_gradient(&mut d_theta, theta, anchors, window, dd);
    assert!(
        !anchors_too || window == Window::whole(n),
        "anchor gradient of a window"
    );
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

/// Adds θ's gradient `Σ_k 2 dd_k (θ − a_k)` to `grad` in one pass: the sum over the anchors
/// first, then one addition per element, so `grad` (θ's gradient from elsewhere in the graph)
/// ends as it would with the distances' gradient computed apart and added to it.
pub fn add_theta_gradient(
    grad: &mut [f32],
    theta: &[f32],
    anchors: &[f32],
    window: Window,
    dd: &[f32],
) {
    let n = theta.len();
    assert_eq!(grad.len(), n, "a gradient of θ's size");
    let chunk = |(c, out): (usize, &mut [f32])| {
        // Blocks small enough for the sums to stay in registers and L1.
        const BLOCK: usize = 256;
        let mut sums = [0.0f32; BLOCK];
        for (b, out) in out.chunks_mut(BLOCK).enumerate() {
            let range = c * CHUNK + b * BLOCK..c * CHUNK + b * BLOCK + out.len();
            let sums = &mut sums[..out.len()];
            sums.fill(0.0);
            for (row, &g) in dd.iter().enumerate() {
                let a = window.of(anchors, row, range.clone());
                for ((s, &t), &a) in sums.iter_mut().zip(&theta[range.clone()]).zip(a) {
                    *s += 2.0 * g * (t - a);
                }
            }
            for (o, s) in out.iter_mut().zip(sums.iter()) {
                *o += s;
            }
        }
    };
    if n.div_ceil(CHUNK) < PARALLEL_CHUNKS {
        grad.chunks_mut(CHUNK).enumerate().for_each(chunk);
    } else {
        grad.par_chunks_mut(CHUNK).enumerate().for_each(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_and_their_gradient_by_hand() {
        let theta = [1.0, 2.0, 3.0];
        let anchors = [1.0, 2.0, 3.0, 0.0, 0.0, 1.0];
        let whole = Window::whole(3);
        assert_eq!(forward(&theta, &anchors, whole), [0.0, 9.0]);
        let (d_theta, d_anchors) = backward(&theta, &anchors, whole, &[1.0, 0.5], true);
        // Row 0 is θ itself (no pull); row 1 contributes 2 · 0.5 · (θ − a1) = (1, 2, 2).
        assert_eq!(d_theta, [1.0, 2.0, 2.0]);
        assert_eq!(d_anchors.unwrap(), [0.0, 0.0, 0.0, -1.0, -2.0, -2.0]);
        // θ's last two values alone, in columns 1..3 of the rows.
        let window = Window {
            width: 3,
            offset: 1,
        };
        assert_eq!(forward(&theta[1..], &anchors, window), [0.0, 8.0]);
        let (d_part, _) = backward(&theta[1..], &anchors, window, &[1.0, 0.5], false);
        assert_eq!(d_part, [2.0, 2.0]);
    }
}
