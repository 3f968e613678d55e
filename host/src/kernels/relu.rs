//! ReLU on the CPU, forward and backward, element-wise over plain `f32` slices in blocks spread
//! over the cores with `rayon` (`flex` runs it on one core, and a ResNet step applies it to
//! every activation twice). Same values as `flex`: `max(x, 0)` (a NaN gives 0), and the
//! gradient passes where the output is positive.

use std::mem::MaybeUninit;

use super::written_in_chunks;

/// Elements per task: large enough that a task's fixed cost vanishes.
pub(super) const BLOCK: usize = 1 << 15;

/// `fill(at, block)` for each block of `len` new elements (`at` its first index), which
/// writes it whole.
fn blocks_written(len: usize, fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync) -> Vec<f32> {
    // SAFETY: each caller writes every element of its block.
    unsafe { written_in_chunks(len, BLOCK, |i, block| fill(i * BLOCK, block)) }
}

/// `max(x, 0)` element-wise.
pub fn forward(x: &[f32]) -> Vec<f32> {
    blocks_written(x.len(), |at, y| {
        for (y, &v) in y.iter_mut().zip(&x[at..]) {
            y.write(v.max(0.0));
        }
    })
}

/// The input's gradient given the output `y` and its gradient `dy`: `dy` where `y > 0`, else 0.
pub fn backward(y: &[f32], dy: &[f32]) -> Vec<f32> {
    // Every element is written only if `dy` is as long as `y` (the zip below stops at the
    // shorter).
    assert_eq!(
        y.len(),
        dy.len(),
        "relu backward: output and gradient differ in length"
    );
    blocks_written(y.len(), |at, dx| {
        for ((d, &out), &g) in dx.iter_mut().zip(&y[at..]).zip(&dy[at..]) {
            d.write(if out > 0.0 { g } else { 0.0 });
        }
    })
}
