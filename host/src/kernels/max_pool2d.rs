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
    let mut y = vec![0.0; s.planes * oh * ow];
    let mut at = vec![0u32; s.planes * oh * ow];
    let planes = y
        .par_chunks_mut(oh * ow)
        .zip(at.par_chunks_mut(oh * ow))
        .zip(x.par_chunks(s.h * s.w));
    if s.is_2x2() {
        planes.for_each(|((y, at), x)| forward_2x2(s, x, y, at));
    } else {
        let (rows, columns) = (s.windows(0), s.windows(1));
        planes.for_each(|((y, at), x)| forward_plane(s, [&rows, &columns], x, y, at));
    }
    (y, at)
}

impl Pool2dShape {
    /// Whether the windows are 2x2 at stride 2 without padding or dilation, which
    /// [`forward_2x2`] pools.
    fn is_2x2(&self) -> bool {
        self.kernel == [2, 2]
            && self.stride == [2, 2]
            && self.padding == [0, 0]
            && self.dilation == [1, 1]
    }
}

/// One plane's pooling with any windows, `rows` and `columns` from [`Pool2dShape::windows`].
fn forward_plane(
    s: &Pool2dShape,
    [rows, columns]: [&[(usize, usize)]; 2],
    x: &[f32],
    y: &mut [f32],
    at: &mut [u32],
) {
    let ow = columns.len();
    let [dy, dx] = s.dilation;
    for (oy, &(iy0, ny)) in rows.iter().enumerate() {
        for (ox, &(ix0, nx)) in columns.iter().enumerate() {
            // No window yet: `usize::MAX`. Bitwise `|`/`&` and selects instead of branches:
            // which value wins is data, and mispredicted jumps cost more than the comparisons.
            let (mut best, mut index) = (f32::NEG_INFINITY, usize::MAX);
            for ky in 0..ny {
                let line = (iy0 + ky * dy) * s.w + ix0;
                for kx in 0..nx {
                    let i = line + kx * dx;
                    let v = x[i];
                    let wins = (index == usize::MAX) | (v > best) | (v.is_nan() & !best.is_nan());
                    best = if wins { v } else { best };
                    index = if wins { i } else { index };
                }
            }
            y[oy * ow + ox] = best;
            at[oy * ow + ox] = if index == usize::MAX { 0 } else { index as u32 };
        }
    }
}

/// One plane's pooling in 2x2 windows at stride 2: the same comparisons in the same order as
/// [`forward_plane`], with no loop over the window, so that the compiler runs them for several
/// output columns at once.
fn forward_2x2(s: &Pool2dShape, x: &[f32], y: &mut [f32], at: &mut [u32]) {
    let [oh, ow] = s.out();
    let w = s.w;
    for (oy, (y, at)) in y
        .chunks_exact_mut(ow)
        .zip(at.chunks_exact_mut(ow))
        .enumerate()
    {
        let top = &x[2 * oy * w..][..2 * ow];
        let bottom = &x[(2 * oy + 1) * w..][..2 * ow];
        let base = (2 * oy * w) as u32;
        let windows = top.chunks_exact(2).zip(bottom.chunks_exact(2));
        for (ox, ((t, b), (y, at))) in windows.zip(y.iter_mut().zip(at)).enumerate() {
            let (mut best, mut offset) = (t[0], 0);
            for (v, o) in [(t[1], 1), (b[0], w as u32), (b[1], w as u32 + 1)] {
                let wins = (v > best) | (v.is_nan() & !best.is_nan());
                best = if wins { v } else { best };
                offset = if wins { o } else { offset };
            }
            *y = best;
            *at = base + 2 * ox as u32 + offset;
        }
    }
    debug_assert_eq!(y.len(), oh * ow);
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

    /// The 2x2 path against the general one on planes of even and odd sizes whose few distinct
    /// values make ties in most windows, with NaNs among them: the same maxima and positions.
    #[test]
    fn the_2x2_path_picks_what_the_general_path_picks() {
        for (case, [h, w]) in [[2, 2], [5, 4], [4, 7], [9, 11], [28, 28]]
            .into_iter()
            .enumerate()
        {
            let s = Pool2dShape {
                planes: 3,
                h,
                w,
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0, 0],
                dilation: [1, 1],
            };
            assert!(s.is_2x2());
            let x: Vec<f32> = (0..3 * h * w)
                .map(|i| match (i * 7919 + case * 104729) % 11 {
                    0 => f32::NAN,
                    v => (v % 4) as f32 - 1.0,
                })
                .collect();
            let [oh, ow] = s.out();
            let general = |x: &[f32]| {
                let (mut y, mut at) = (vec![0.0; oh * ow], vec![0; oh * ow]);
                let windows = [&s.windows(0)[..], &s.windows(1)[..]];
                forward_plane(&s, windows, x, &mut y, &mut at);
                (y, at)
            };
            let (y, at) = forward(&s, &x);
            for (p, x) in x.chunks_exact(h * w).enumerate() {
                let (expected_y, expected_at) = general(x);
                let plane = p * oh * ow..(p + 1) * oh * ow;
                assert_eq!(at[plane.clone()], expected_at, "{s:?}");
                let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&y[plane]), bits(&expected_y), "{s:?}");
            }
        }
    }
}
