//! The im2col matrices of the convolution's GEMMs: written from an input sample, and added
//! back onto an input gradient (col2im).

use super::Conv2dShape;

/// A chunk's matrices with one column per output pixel of each of its samples: `width`
/// columns, sample `i`'s pixels at columns `i * l..(i + 1) * l`.
pub(super) struct Columns<'a> {
    pub(super) data: &'a mut [f32],
    pub(super) width: usize,
}

/// Writes the im2col matrix `[k, l]` of group `g` of one sample `x` (`[c, h, w]`) into
/// `cols` at column `offset`.
pub(super) fn im2col(s: &Conv2dShape, x: &[f32], g: usize, cols: &mut Columns<'_>, offset: usize) {
    let [oh, ow] = s.out();
    let mut rows = cols.data.chunks_exact_mut(cols.width);
    for ci in g * s.cg()..(g + 1) * s.cg() {
        let plane = &x[ci * s.h * s.w..(ci + 1) * s.h * s.w];
        for i in 0..s.kh {
            for j in 0..s.kw {
                let row = &mut rows.next().expect("k rows")[offset..offset + oh * ow];
                if s.stride == [1, 1] && ow == s.w {
                    shifted_plane(s, plane, [i, j], row);
                    continue;
                }
                let (valid, first) = s.valid_columns(j);
                for (oy, out) in row.chunks_exact_mut(ow).enumerate() {
                    let Some(iy) = s.source(0, i, oy) else {
                        out.fill(0.0);
                        continue;
                    };
                    out[..valid.start].fill(0.0);
                    out[valid.end..].fill(0.0);
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

/// One im2col row of a stride-1 convolution whose output is as wide as its input: the plane
/// shifted by the tap `[i, j]`, copied as one block (the rows of the plane follow each other in
/// both), then the columns that wrapped around from the neighbouring row and the rows outside
/// the plane set to zero. Many row-sized copies cost about twice as much.
fn shifted_plane(s: &Conv2dShape, plane: &[f32], [i, j]: [usize; 2], row: &mut [f32]) {
    let [oh, w] = [s.out()[0], s.w];
    let (down, right) = (i * s.dilation[0], j * s.dilation[1]);
    // Output rows whose input row lies inside the plane: lo..hi.
    let lo = s.padding[0].saturating_sub(down).min(oh);
    let hi = (s.h + s.padding[0]).saturating_sub(down).clamp(lo, oh);
    row[..lo * w].fill(0.0);
    row[hi * w..].fill(0.0);
    if hi == lo {
        return;
    }
    let block = &mut row[lo * w..hi * w];
    // block[k] = plane[start + k], where start may lie before the plane or end after it.
    let start = ((lo + down - s.padding[0]) * w + right) as isize - s.padding[1] as isize;
    let skip = ((-start).max(0) as usize).min(block.len());
    let from = start.max(0) as usize;
    let len = (block.len() - skip).min(plane.len().saturating_sub(from));
    block[..skip].fill(0.0);
    block[skip..skip + len].copy_from_slice(&plane[from..from + len]);
    block[skip + len..].fill(0.0);
    let (valid, _) = s.valid_columns(j);
    for line in block.chunks_exact_mut(w) {
        line[..valid.start].fill(0.0);
        line[valid.end..].fill(0.0);
    }
}

/// Adds the im2col matrix of group `g` at column `offset` of `cols` back onto one sample's
/// input gradient `dx`.
pub(super) fn col2im_add(
    s: &Conv2dShape,
    cols: &Columns<'_>,
    offset: usize,
    g: usize,
    dx: &mut [f32],
) {
    let [oh, ow] = s.out();
    let mut rows = cols.data.chunks_exact(cols.width);
    for ci in g * s.cg()..(g + 1) * s.cg() {
        let plane = &mut dx[ci * s.h * s.w..(ci + 1) * s.h * s.w];
        for i in 0..s.kh {
            for j in 0..s.kw {
                let row = &rows.next().expect("k rows")[offset..offset + oh * ow];
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
