//! 2-D convolution on the CPU, forward and both backward passes, on plain `f32` slices in
//! NCHW order: im2col per sample and group, then one GEMM (the `gemm` crate), samples spread over
//! the cores with `rayon`.
//!
//! Every output element is computed by one thread in a fixed order, and the weight gradient sums
//! fixed chunks of samples in a fixed order, so results do not depend on the number of cores.

use gemm::{gemm, Parallelism};
use rayon::prelude::*;

/// Samples whose weight-gradient contributions one task sums before the chunks are added in
/// order (fixed, so the sum's order does not depend on the number of threads).
const WEIGHT_CHUNK: usize = 8;

/// The shapes and options of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dShape {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub co: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride as `[height, width]`.
    pub stride: [usize; 2],
    /// Zero padding on each side as `[height, width]`.
    pub padding: [usize; 2],
    /// Dilation as `[height, width]`.
    pub dilation: [usize; 2],
    /// Channel groups (`c` and `co` divisible by it).
    pub groups: usize,
}

impl Conv2dShape {
    /// Output height and width.
    pub fn out(&self) -> [usize; 2] {
        let o = |size: usize, k: usize, d: usize| {
            (size + 2 * self.padding[d] - self.dilation[d] * (k - 1) - 1) / self.stride[d] + 1
        };
        [o(self.h, self.kh, 0), o(self.w, self.kw, 1)]
    }

    /// Output pixels per channel.
    fn l(&self) -> usize {
        let [oh, ow] = self.out();
        oh * ow
    }

    /// Input channels per group.
    fn cg(&self) -> usize {
        self.c / self.groups
    }

    /// Output channels per group.
    fn cog(&self) -> usize {
        self.co / self.groups
    }

    /// Rows of a group's im2col matrix (= weights per output channel).
    fn k(&self) -> usize {
        self.cg() * self.kh * self.kw
    }

    /// The input pixel along `axis` that kernel offset `tap` reads at output position `out_pos`:
    /// `out_pos * stride + tap * dilation - padding`, or `None` in the padding.
    fn source(&self, axis: usize, tap: usize, out_pos: usize) -> Option<usize> {
        let size = [self.h, self.w][axis];
        (out_pos * self.stride[axis] + tap * self.dilation[axis])
            .checked_sub(self.padding[axis])
            .filter(|&i| i < size)
    }

    /// The output positions along the width at which kernel column `tap` reads inside the
    /// input (not the padding), and the input column read at the first of them.
    fn valid_columns(&self, tap: usize) -> (std::ops::Range<usize>, usize) {
        let [_, ow] = self.out();
        let (stride, offset) = (self.stride[1], tap * self.dilation[1]);
        let first = self.padding[1].saturating_sub(offset).div_ceil(stride);
        let end = (self.w + self.padding[1])
            .saturating_sub(offset)
            .div_ceil(stride)
            .min(ow);
        let range = first..end.max(first);
        (
            range.clone(),
            (range.start * stride + offset).saturating_sub(self.padding[1]),
        )
    }
}

/// `dst[m, n] (+)= a[m, k] · b[k, n]`, each matrix given by its row and column strides.
#[allow(clippy::too_many_arguments)]
fn matmul(
    [m, n, k]: [usize; 3],
    dst: &mut [f32],
    accumulate: bool,
    a: &[f32],
    [a_rs, a_cs]: [usize; 2],
    b: &[f32],
    [b_rs, b_cs]: [usize; 2],
) {
    assert!(dst.len() >= m * n);
    assert!(m == 0 || k == 0 || a.len() > (m - 1) * a_rs + (k - 1) * a_cs);
    assert!(n == 0 || k == 0 || b.len() > (k - 1) * b_rs + (n - 1) * b_cs);
    // SAFETY: the asserts above keep every index gemm reads or writes inside the slices.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// The im2col matrix `[k, l]` of group `g` of one sample `x` (`[c, h, w]`).
fn im2col(s: &Conv2dShape, x: &[f32], g: usize, cols: &mut [f32]) {
    let [oh, ow] = s.out();
    let mut rows = cols.chunks_exact_mut(oh * ow);
    for ci in g * s.cg()..(g + 1) * s.cg() {
        let plane = &x[ci * s.h * s.w..(ci + 1) * s.h * s.w];
        for i in 0..s.kh {
            for j in 0..s.kw {
                let row = rows.next().expect("k rows");
                let (valid, first) = s.valid_columns(j);
                for (oy, out) in row.chunks_exact_mut(ow).enumerate() {
                    out.fill(0.0);
                    let Some(iy) = s.source(0, i, oy) else {
                        continue;
                    };
                    let line = &plane[iy * s.w..(iy + 1) * s.w];
                    let out = &mut out[valid.clone()];
                    if s.stride[1] == 1 {
                        out.copy_from_slice(&line[first..first + out.len()]);
                    } else {
                        let from = line[first..].iter().step_by(s.stride[1]);
                        out.iter_mut().zip(from).for_each(|(o, v)| *o = *v);
                    }
                }
            }
        }
    }
}

/// Adds the im2col matrix `cols` of group `g` back onto one sample's input gradient `dx`.
fn col2im_add(s: &Conv2dShape, cols: &[f32], g: usize, dx: &mut [f32]) {
    let [oh, ow] = s.out();
    let mut rows = cols.chunks_exact(oh * ow);
    for ci in g * s.cg()..(g + 1) * s.cg() {
        let plane = &mut dx[ci * s.h * s.w..(ci + 1) * s.h * s.w];
        for i in 0..s.kh {
            for j in 0..s.kw {
                let row = rows.next().expect("k rows");
                let (valid, first) = s.valid_columns(j);
                for (oy, src) in row.chunks_exact(ow).enumerate() {
                    let Some(iy) = s.source(0, i, oy) else {
                        continue;
                    };
                    let line = &mut plane[iy * s.w..(iy + 1) * s.w];
                    let to = line[first..].iter_mut().step_by(s.stride[1]);
                    to.zip(&src[valid.clone()]).for_each(|(d, v)| *d += v);
                }
            }
        }
    }
}

/// The convolution of `x` (`[n, c, h, w]`) with `weight` (`[co, c / groups, kh, kw]`) plus
/// `bias` (`[co]`): `[n, co, oh, ow]`.
pub fn forward(s: &Conv2dShape, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (l, k, cog) = (s.l(), s.k(), s.cog());
    let mut y = vec![0.0; s.n * s.co * l];
    y.par_chunks_mut(s.co * l)
        .zip(x.par_chunks(s.c * s.h * s.w))
        .for_each(|(y, x)| {
            let mut cols = vec![0.0; k * l];
            for g in 0..s.groups {
                im2col(s, x, g, &mut cols);
                let out = &mut y[g * cog * l..(g + 1) * cog * l];
                matmul(
                    [cog, l, k],
                    out,
                    false,
                    &weight[g * cog * k..],
                    [k, 1],
                    &cols,
                    [l, 1],
                );
            }
            if let Some(bias) = bias {
                for (channel, b) in y.chunks_exact_mut(l).zip(bias) {
                    channel.iter_mut().for_each(|v| *v += b);
                }
            }
        });
    y
}

/// The gradient of the input `x` given the output's gradient `dy`.
pub fn backward_input(s: &Conv2dShape, weight: &[f32], dy: &[f32]) -> Vec<f32> {
    let (l, k, cog) = (s.l(), s.k(), s.cog());
    let mut dx = vec![0.0; s.n * s.c * s.h * s.w];
    dx.par_chunks_mut(s.c * s.h * s.w)
        .zip(dy.par_chunks(s.co * l))
        .for_each(|(dx, dy)| {
            let mut cols = vec![0.0; k * l];
            for g in 0..s.groups {
                // cols[k, l] = weight_gᵀ[k, cog] · dy_g[cog, l]
                let (w, dy) = (&weight[g * cog * k..], &dy[g * cog * l..]);
                matmul([k, l, cog], &mut cols, false, w, [1, k], dy, [l, 1]);
                col2im_add(s, &cols, g, dx);
            }
        });
    dx
}

/// The gradient of the weight given the input `x` and the output's gradient `dy`.
pub fn backward_weight(s: &Conv2dShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (l, k, cog) = (s.l(), s.k(), s.cog());
    let sample_x = s.c * s.h * s.w;
    let partials: Vec<Vec<f32>> = (0..s.n.div_ceil(WEIGHT_CHUNK))
        .into_par_iter()
        .map(|chunk| {
            let mut dw = vec![0.0; s.co * k];
            let mut cols = vec![0.0; k * l];
            for n in chunk * WEIGHT_CHUNK..((chunk + 1) * WEIGHT_CHUNK).min(s.n) {
                let (x, dy) = (&x[n * sample_x..], &dy[n * s.co * l..]);
                for g in 0..s.groups {
                    im2col(s, x, g, &mut cols);
                    // dw_g[cog, k] += dy_g[cog, l] · colsᵀ[l, k]
                    let dw = &mut dw[g * cog * k..(g + 1) * cog * k];
                    matmul(
                        [cog, k, l],
                        dw,
                        true,
                        &dy[g * cog * l..],
                        [l, 1],
                        &cols,
                        [1, l],
                    );
                }
            }
            dw
        })
        .collect();
    sum_in_order(partials, s.co * k)
}

/// The gradient of the bias given the output's gradient `dy`.
pub fn backward_bias(s: &Conv2dShape, dy: &[f32]) -> Vec<f32> {
    let l = s.l();
    let mut db = vec![0.0; s.co];
    for sample in dy.chunks_exact(s.co * l) {
        for (b, channel) in db.iter_mut().zip(sample.chunks_exact(l)) {
            *b += channel.iter().sum::<f32>();
        }
    }
    db
}

/// The element-wise sum of `parts` (each `len` long), added in their order.
fn sum_in_order(parts: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    parts.into_iter().fold(vec![0.0; len], |mut acc, part| {
        acc.iter_mut().zip(part).for_each(|(a, p)| *a += p);
        acc
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook convolution, one output element at a time.
    fn direct(s: &Conv2dShape, x: &[f32], w: &[f32]) -> Vec<f32> {
        let [oh, ow] = s.out();
        let mut y = vec![0.0; s.n * s.co * oh * ow];
        for n in 0..s.n {
            for o in 0..s.co {
                let g = o / s.cog();
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = 0.0;
                        for ci in 0..s.cg() {
                            for i in 0..s.kh {
                                for j in 0..s.kw {
                                    let (Some(iy), Some(ix)) =
                                        (s.source(0, i, oy), s.source(1, j, ox))
                                    else {
                                        continue;
                                    };
                                    let c = g * s.cg() + ci;
                                    acc += x[((n * s.c + c) * s.h + iy) * s.w + ix]
                                        * w[((o * s.cg() + ci) * s.kh + i) * s.kw + j];
                                }
                            }
                        }
                        y[((n * s.co + o) * oh + oy) * ow + ox] = acc;
                    }
                }
            }
        }
        y
    }

    fn values(len: usize, salt: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + salt * 104729) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn forward_matches_the_textbook_convolution_and_its_gradients_are_its_adjoints() {
        let s = Conv2dShape {
            n: 3,
            c: 4,
            h: 7,
            w: 6,
            co: 6,
            kh: 3,
            kw: 2,
            stride: [2, 1],
            padding: [1, 2],
            dilation: [1, 2],
            groups: 2,
        };
        let x = values(s.n * s.c * s.h * s.w, 1);
        let w = values(s.co * s.cg() * s.kh * s.kw, 2);
        let y = forward(&s, &x, &w, None);
        let expected = direct(&s, &x, &w);
        assert_eq!(y.len(), expected.len());
        for (a, b) in y.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        // <dy, conv(x, w)> = <backward_input(dy), x> = <backward_weight(dy), w>: the
        // convolution is bilinear, so each gradient is the adjoint of the map it differentiates.
        let dy = values(y.len(), 3);
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(a, b)| (a * b) as f64).sum::<f64>();
        let reference = dot(&dy, &y);
        let dx = backward_input(&s, &w, &dy);
        let dw = backward_weight(&s, &x, &dy);
        assert!((dot(&dx, &x) - reference).abs() < 1e-3 * reference.abs().max(1.0));
        assert!((dot(&dw, &w) - reference).abs() < 1e-3 * reference.abs().max(1.0));
    }
}
