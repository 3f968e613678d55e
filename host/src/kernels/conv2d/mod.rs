//! 2-D convolution on the CPU, forward and both backward passes, on plain `f32` slices in
//! NCHW order: the im2col matrices of a chunk of samples side by side, then one GEMM per chunk
//! and group (the `gemm` crate), chunks spread over the cores with `rayon`. The input gradient
//! of a stride-1 convolution is itself a convolution (flipped weight), so it needs no col2im.
//!
//! Chunk sizes depend on the shape only: every output element is computed by one thread in a
//! fixed order, and the weight gradient adds the chunks' sums in order, so results do not depend
//! on the number of cores.

use std::cell::RefCell;
use std::mem::MaybeUninit;

use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use super::written;

mod im2col;

use im2col::{col2im_add, im2col, Columns};

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

/// `dst[m, n] (+)= a[m, k] · b[k, n]`, each matrix given by its row and column strides (`dst`'s
/// columns are contiguous). Without `accumulate`, `dst` is only written, never read, so it may
/// start uninitialised.
#[allow(clippy::too_many_arguments)]
fn matmul(
    [m, n, k]: [usize; 3],
    dst: &mut [MaybeUninit<f32>],
    dst_rs: usize,
    accumulate: bool,
    a: &[f32],
    [a_rs, a_cs]: [usize; 2],
    b: &[f32],
    [b_rs, b_cs]: [usize; 2],
) {
    assert!(m == 0 || n == 0 || dst.len() >= (m - 1) * dst_rs + n);
    assert!(m == 0 || k == 0 || a.len() > (m - 1) * a_rs + (k - 1) * a_cs);
    assert!(n == 0 || k == 0 || b.len() > (k - 1) * b_rs + (n - 1) * b_cs);
    // SAFETY: the asserts above keep every index gemm reads or writes inside the slices, and
    // gemm reads `dst` only when told to accumulate onto it.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().cast::<f32>(),
            1,
            dst_rs as isize,
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

/// `values` as possibly uninitialised floats, for [`matmul`] to write or add onto.
fn writable(values: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: same size and alignment; the callers write only initialised floats through it.
    unsafe { &mut *(values as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// The size a chunk's im2col matrix aims at (512 KiB): one GEMM per chunk and group, long
/// enough that the GEMM's fixed costs vanish, short enough that the matrix stays in the core's
/// L2 cache between im2col writing it and the GEMM reading it.
const CHUNK_FLOATS: usize = 128 * 1024;

/// The samples one task handles together: their im2col matrices side by side make one GEMM.
/// It depends on the shape only, never on the number of threads, so sums keep their order.
fn chunk_samples(s: &Conv2dShape) -> usize {
    (CHUNK_FLOATS / (s.k() * s.l()).max(1)).clamp(1, s.n.div_ceil(4).max(1))
}

/// For channels `channels` of each of `samples` samples laid out `[samples, co, l]`: the range
/// of that channel and sample, and its range in a chunk matrix `[channels, samples · l]` that
/// holds the samples side by side (one GEMM operand).
fn side_by_side(
    s: &Conv2dShape,
    samples: usize,
    channels: std::ops::Range<usize>,
) -> impl Iterator<Item = (std::ops::Range<usize>, std::ops::Range<usize>)> + '_ {
    let (l, first) = (s.l(), channels.start);
    channels.flat_map(move |o| {
        (0..samples).map(move |i| {
            let at = (i * s.co + o) * l;
            let to = ((o - first) * samples + i) * l;
            (at..at + l, to..to + l)
        })
    })
}

/// The output gradient of group `g`'s channels of a chunk's samples `dy` (`[samples, co, l]`)
/// as one GEMM operand `[cog, samples · l]`: `dy`'s own rows for a single sample, else the
/// samples side by side in `scratch`.
fn group_gradient<'a>(
    s: &Conv2dShape,
    dy: &'a [f32],
    g: usize,
    scratch: &'a mut [f32],
) -> &'a [f32] {
    let (l, cog) = (s.l(), s.cog());
    let samples = dy.len() / (s.co * l);
    if samples == 1 {
        return &dy[g * cog * l..(g + 1) * cog * l];
    }
    for (at, to) in side_by_side(s, samples, g * cog..(g + 1) * cog) {
        scratch[to].copy_from_slice(&dy[at]);
    }
    &scratch[..cog * samples * l]
}

thread_local! {
    /// This thread's scratch memory, kept from one convolution to the next: allocating and
    /// zeroing it per task took a tenth of a ResNet-20 step.
    static SCRATCH: RefCell<[Vec<f32>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
}

/// Runs `task` with this thread's scratch memory sized for `s`: one chunk's im2col matrix and
/// one chunk of output channels. They hold what an earlier task left: every user writes a
/// scratch element before it reads it.
fn with_scratch<R>(s: &Conv2dShape, task: impl FnOnce([&mut [f32]; 2]) -> R) -> R {
    let width = chunk_samples(s) * s.l();
    let sizes = [s.k() * width, s.cog() * width];
    SCRATCH.with_borrow_mut(|[cols, out]| {
        for (buffer, len) in [&mut *cols, &mut *out].into_iter().zip(sizes) {
            if buffer.len() < len {
                buffer.resize(len, 0.0);
            }
        }
        task([&mut cols[..sizes[0]], &mut out[..sizes[1]]])
    })
}

/// The convolution of `x` (`[n, c, h, w]`) with `weight` (`[co, c / groups, kh, kw]`) plus
/// `bias` (`[co]`): `[n, co, oh, ow]`.
pub fn forward(s: &Conv2dShape, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (l, samples) = (s.l(), chunk_samples(s));
    let fill = |y: &mut [MaybeUninit<f32>]| {
        y.par_chunks_mut(samples * s.co * l)
            .zip(x.par_chunks(samples * s.c * s.h * s.w))
            .for_each(|(y, x)| {
                with_scratch(s, |scratch| forward_chunk(s, x, weight, scratch, y));
                let Some(bias) = bias else { return };
                // SAFETY: `forward_chunk` wrote every element of `y`.
                let y = unsafe { &mut *(y as *mut [MaybeUninit<f32>] as *mut [f32]) };
                for sample in y.chunks_exact_mut(s.co * l) {
                    for (channel, b) in sample.chunks_exact_mut(l).zip(bias) {
                        channel.iter_mut().for_each(|v| *v += b);
                    }
                }
            });
    };
    // SAFETY: the chunks cover the output, and `forward_chunk` writes every element of each.
    unsafe { written(s.n * s.co * l, fill) }
}

/// Output pixels per channel from which each sample's GEMM writes its output block `[cog, l]`
/// in place; below, one GEMM over the chunk's samples side by side and a copy into place cost
/// less (a GEMM only `l` columns wide runs at a fraction of its speed).
const DIRECT_PIXELS: usize = 256;

/// Writes every element of the output `y` (`[samples, co, l]`) of the chunk `x`, with the
/// scratch matrices `cols` (im2col) and `out` (the GEMM's output, where it is not written in
/// place).
fn forward_chunk(
    s: &Conv2dShape,
    x: &[f32],
    weight: &[f32],
    [cols, out]: [&mut [f32]; 2],
    y: &mut [MaybeUninit<f32>],
) {
    let (l, k, cog) = (s.l(), s.k(), s.cog());
    let width = y.len() / s.co;
    let mut cols = Columns { data: cols, width };
    for g in 0..s.groups {
        for (i, x) in x.chunks_exact(s.c * s.h * s.w).enumerate() {
            im2col(s, x, g, &mut cols, i * l);
        }
        let w = &weight[g * cog * k..];
        if l >= DIRECT_PIXELS {
            for (i, y) in y.chunks_exact_mut(s.co * l).enumerate() {
                let y = &mut y[g * cog * l..(g + 1) * cog * l];
                let b = &cols.data[i * l..];
                matmul([cog, l, k], y, l, false, w, [k, 1], b, [width, 1]);
            }
            continue;
        }
        let out = &mut out[..cog * width];
        let (b, dst) = (&*cols.data, writable(out));
        matmul([cog, width, k], dst, width, false, w, [k, 1], b, [width, 1]);
        for (at, to) in side_by_side(s, width / l, g * cog..(g + 1) * cog) {
            y[at].write_copy_of_slice(&out[to]);
        }
    }
}

/// The gradient of the input `x` given the output's gradient `dy`.
///
/// With stride 1 it is itself a convolution: of `dy` with the weight flipped in space and with
/// input and output channels swapped, padded by `dilation · (kernel - 1) - padding`, which
/// [`forward`] computes without a scatter back into the input. Other strides run the GEMM into
/// an im2col matrix and add it back (col2im).
pub fn backward_input(s: &Conv2dShape, weight: &[f32], dy: &[f32]) -> Vec<f32> {
    if let Some(transposed) = s.transposed() {
        return forward(&transposed, dy, &flipped(s, weight), None);
    }
    let (l, k, cog, samples) = (s.l(), s.k(), s.cog(), chunk_samples(s));
    let mut dx = vec![0.0; s.n * s.c * s.h * s.w];
    dx.par_chunks_mut(samples * s.c * s.h * s.w)
        .zip(dy.par_chunks(samples * s.co * l))
        .for_each(|(dx, dy)| {
            with_scratch(s, |[cols, dy_g]| {
                let width = dy.len() / s.co;
                let cols = Columns { data: cols, width };
                for g in 0..s.groups {
                    let dy_g = group_gradient(s, dy, g, dy_g);
                    // cols[k, width] = weight_gᵀ[k, cog] · dy_g[cog, width]
                    let w = &weight[g * cog * k..];
                    matmul(
                        [k, width, cog],
                        writable(cols.data),
                        width,
                        false,
                        w,
                        [1, k],
                        dy_g,
                        [width, 1],
                    );
                    for (i, dx) in dx.chunks_exact_mut(s.c * s.h * s.w).enumerate() {
                        col2im_add(s, &cols, i * l, g, dx);
                    }
                }
            })
        });
    dx
}

/// `weight` (`[co, c / groups, kh, kw]`) flipped in space with input and output channels
/// swapped within each group: `[c, co / groups, kh, kw]`.
fn flipped(s: &Conv2dShape, weight: &[f32]) -> Vec<f32> {
    let (cg, cog, taps) = (s.cg(), s.cog(), s.kh * s.kw);
    let mut out = vec![0.0; s.c * cog * taps];
    for g in 0..s.groups {
        for o in 0..cog {
            for ci in 0..cg {
                let from = &weight[((g * cog + o) * cg + ci) * taps..][..taps];
                let to = &mut out[((g * cg + ci) * cog + o) * taps..][..taps];
                to.iter_mut()
                    .zip(from.iter().rev())
                    .for_each(|(t, f)| *t = *f);
            }
        }
    }
    out
}

impl Conv2dShape {
    /// The convolution that maps this one's output gradient to its input gradient, where that
    /// is a plain convolution (stride 1, padding within the kernel's reach).
    fn transposed(&self) -> Option<Conv2dShape> {
        let reach = [
            self.dilation[0] * (self.kh - 1),
            self.dilation[1] * (self.kw - 1),
        ];
        let [oh, ow] = self.out();
        // Only where it pays: with few input channels the flipped convolution has few output
        // channels (a thin GEMM), and where the output is smaller than the input it would
        // multiply the padding's zeros.
        let fits = self.stride == [1, 1]
            && (0..2).all(|d| self.padding[d] <= reach[d])
            && self.cg() >= 8
            && [oh, ow] == [self.h, self.w];
        fits.then(|| Conv2dShape {
            c: self.co,
            h: oh,
            w: ow,
            co: self.c,
            padding: [reach[0] - self.padding[0], reach[1] - self.padding[1]],
            ..*self
        })
    }
}

/// The gradient of the weight given the input `x` and the output's gradient `dy`.
pub fn backward_weight(s: &Conv2dShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (l, k, cog, samples) = (s.l(), s.k(), s.cog(), chunk_samples(s));
    let sample_x = s.c * s.h * s.w;
    let partials: Vec<Vec<f32>> = x
        .par_chunks(samples * sample_x)
        .zip(dy.par_chunks(samples * s.co * l))
        .map(|(x, dy)| {
            with_scratch(s, |[cols, dy_g]| {
                let width = dy.len() / s.co;
                let mut cols = Columns { data: cols, width };
                let mut dw = vec![0.0; s.co * k];
                let dw_t = &mut vec![0.0; k * cog];
                for g in 0..s.groups {
                    for (i, x) in x.chunks_exact(sample_x).enumerate() {
                        im2col(s, x, g, &mut cols, i * l);
                    }
                    let dy_g = group_gradient(s, dy, g, dy_g);
                    // dw_gᵀ[k, cog] = cols[k, width] · dy_gᵀ[width, cog]: this order runs at
                    // about twice the speed of dy_g · colsᵀ when cog is small.
                    let c = &*cols.data;
                    matmul(
                        [k, cog, width],
                        writable(dw_t),
                        cog,
                        false,
                        c,
                        [width, 1],
                        dy_g,
                        [1, width],
                    );
                    let dw = &mut dw[g * cog * k..(g + 1) * cog * k];
                    for (o, row) in dw.chunks_exact_mut(k).enumerate() {
                        row.iter_mut()
                            .zip(dw_t.iter().skip(o).step_by(cog))
                            .for_each(|(d, t)| *d = *t);
                    }
                }
                dw
            })
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

/// Elements of [`sum_in_order`]'s result per task (64 KiB).
const SUM_BLOCK: usize = 16 * 1024;

/// The element-wise sum of `parts` (each `len` long), each element's parts added in their
/// order, so the same sums whatever the number of cores. Blocks of the result are spread over
/// the cores: on the calling thread this sum took 1% of a ResNet-20 step while the pool waited.
fn sum_in_order(parts: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let add_block = |(b, out): (usize, &mut [f32])| {
        for part in &parts {
            let part = &part[b * SUM_BLOCK..];
            out.iter_mut().zip(part).for_each(|(a, p)| *a += p);
        }
    };
    let mut sum = vec![0.0; len];
    if len <= SUM_BLOCK {
        add_block((0, &mut sum));
    } else {
        sum.par_chunks_mut(SUM_BLOCK)
            .enumerate()
            .for_each(add_block);
    }
    sum
}

#[cfg(test)]
mod tests;
