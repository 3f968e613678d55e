//! 2-D max pooling on the CPU (floor mode), forward with the position of each maximum and the
//! backward pass that routes each output gradient to that position, on plain `f32` slices in
//! NCHW order, planes spread over the cores with `rayon`.
//!
//! Ties go to the first maximum in row-major window order and a NaN wins over any number, as in
//! PyTorch.

use rayon::prelude::*;

/// The shapes and options of one pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool2dShape {
    /// Planes: batch size times channels.
    pub planes: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Window as `[height, width]`.
    pub kernel: [usize; 2],
    /// Stride as `[height, width]`.
    pub stride: [usize; 2],
    /// Padding on each side (never a maximum) as `[height, width]`.
    pub padding: [usize; 2],
    /// Dilation as `[height, width]`.
    pub dilation: [usize; 2],
}

impl Pool2dShape {
    /// Output height and width.
    pub fn out(&self) -> [usize; 2] {
        let o = |size: usize, d: usize| {
            (size + 2 * self.padding[d] - self.dilation[d] * (self.kernel[d] - 1) - 1)
                / self.stride[d]
                + 1
        };
        [o(self.h, 0), o(self.w, 1)]
    }

    /// For each output position along `axis` (0: rows, 1: columns): the first input index its
    /// window covers inside the input and how many it covers (at steps of the dilation).
    fn windows(&self, axis: usize) -> Vec<(usize, usize)> {
        let (size, k, d) = (
            [self.h, self.w][axis],
            self.kernel[axis],
            self.dilation[axis],
        );
        (0..self.out()[axis])
            .map(|out_pos| {
                // Input index of tap t: start + t·d − padding, inside 0..size.
                let start = out_pos * self.stride[axis];
                let first = self.padding[axis].saturating_sub(start).div_ceil(d);
                let end = (size + self.padding[axis])
                    .saturating_sub(start)
                    .div_ceil(d)
                    .min(k);
                let from = (start + first * d).saturating_sub(self.padding[axis]);
                (from, end.saturating_sub(first))
            })
            .collect()
    }
}

/// The pooled `x` (`[planes, h, w]`) and, per output, the index of its maximum in its plane.
pub fn forward(s: &Pool2dShape, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
    let [oh, ow] = s.out();
    let (rows, columns) = (s.windows(0), s.windows(1));
    let [dy, dx] = s.dilation;
    let mut y = vec![0.0; s.planes * oh * ow];
    let mut at = vec![0u32; s.planes * oh * ow];
    y.par_chunks_mut(oh * ow)
        .zip(at.par_chunks_mut(oh * ow))
        .zip(x.par_chunks(s.h * s.w))
        .for_each(|((y, at), x)| {
            for (oy, &(iy0, ny)) in rows.iter().enumerate() {
                for (ox, &(ix0, nx)) in columns.iter().enumerate() {
                    // No window yet: `usize::MAX`. Bitwise `|`/`&` and selects instead of
                    // branches: which value wins is data, and mispredicted jumps cost more
                    // than the comparisons.
                    let (mut best, mut index) = (f32::NEG_INFINITY, usize::MAX);
                    for ky in 0..ny {
                        let line = (iy0 + ky * dy) * s.w + ix0;
                        for kx in 0..nx {
                            let i = line + kx * dx;
                            let v = x[i];
                            let wins =
                                (index == usize::MAX) | (v > best) | (v.is_nan() & !best.is_nan());
                            best = if wins { v } else { best };
                            index = if wins { i } else { index };
                        }
                    }
                    y[oy * ow + ox] = best;
                    at[oy * ow + ox] = if index == usize::MAX { 0 } else { index as u32 };
                }
            }
        });
    (y, at)
}

/// The gradient of the input given the output's gradient `dy` and the maxima's positions.
pub fn backward(s: &Pool2dShape, at: &[u32], dy: &[f32]) -> Vec<f32> {
    let [oh, ow] = s.out();
    let mut dx = vec![0.0; s.planes * s.h * s.w];
    dx.par_chunks_mut(s.h * s.w)
        .zip(at.par_chunks(oh * ow).zip(dy.par_chunks(oh * ow)))
        .for_each(|(dx, (at, dy))| {
            for (&i, &g) in at.iter().zip(dy) {
                dx[i as usize] += g;
            }
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_window_gives_its_first_maximum_and_gets_the_gradient_back() {
        // One 3x4 plane, 2x2 windows with stride 2 and a padding of 1: the top corner windows
        // see one pixel, and the middle window's tie at 7 goes to the first of the two.
        let x = [1.0, 5.0, 2.0, 0.0, 3.0, 4.0, 7.0, 7.0, 9.0, 7.0, 6.0, 2.0];
        let s = Pool2dShape {
            planes: 1,
            h: 3,
            w: 4,
            kernel: [2, 2],
            stride: [2, 2],
            padding: [1, 1],
            dilation: [1, 1],
        };
        assert_eq!(s.out(), [2, 3]);
        let (y, at) = forward(&s, &x);
        assert_eq!(y, [1.0, 5.0, 0.0, 9.0, 7.0, 7.0]);
        assert_eq!(at, [0, 1, 3, 8, 6, 7]);
        let dx = backward(&s, &at, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(
            dx,
            [1.0, 2.0, 0.0, 3.0, 0.0, 0.0, 5.0, 6.0, 4.0, 0.0, 0.0, 0.0]
        );
    }
}
