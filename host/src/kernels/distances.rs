//! Squared distances from a flat parameter vector θ (`[n]`) to each row of a `[K, n]` matrix of
//! anchors, `d_k = ‖θ − a_k‖²`, on the CPU: one pass over the anchors forward and one backward,
//! where the same math as tensor operations (broadcast subtraction, square, row sums, and their
//! backward) is a dozen passes. Fixed chunks of θ spread over the cores with `rayon` and are
//! summed in order (in `f64`), so results do not depend on the number of cores.

use rayon::prelude::*;

/// Elements of θ one task handles.
pub(super) const CHUNK: usize = 1 << 14;

/// Chunks (a million parameters) below which one thread does all of them: waking the pool
/// costs more than these passes, which are bound by memory. At 4 chunks the penalty added
/// 36–40% to a LeNet-300-100 step (266,610 parameters), on one thread 7–20%.
pub(super) const PARALLEL_CHUNKS: usize = 64;

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
}

/// `[K]`: `‖θ − anchors[k]‖²` for each anchor row, θ at `window` in the rows.
pub fn forward(theta: &[f32], anchors: &[f32], window: Window) -> Vec<f32> {
    let member = Member {
        theta,
        offset: window.offset,
    };
    forward_group(&[member], anchors, window.width, None)
}

/// One member of a parameter group: its values, at columns `offset..offset + len` of the
/// anchors' rows.
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    /// The member's values (flattened).
    pub theta: &'a [f32],
    /// Its first column in the anchors' rows.
    pub offset: usize,
}

/// The chunks of every member, as (member, chunk) pairs, in order.
fn group_chunks(members: &[Member<'_>]) -> Vec<(usize, usize)> {
    members
        .iter()
        .enumerate()
        .flat_map(|(m, member)| (0..member.theta.len().div_ceil(CHUNK)).map(move |c| (m, c)))
        .collect()
}

/// `[K]`: a parameter group's squared distances `‖θ − anchors[k]‖²` from its members, in one
/// pass whose chunks spread over the cores together: each member's distances as
/// [`forward`] gives them (summed in `f64` per member), then added up member by member in
/// `f32` after `start` (the sum so far, or `None`), in order, so the result is the one of
/// adding the members' [`forward`]s one at a time.
pub fn forward_group(
    members: &[Member<'_>],
    anchors: &[f32],
    width: usize,
    start: Option<&[f32]>,
) -> Vec<f32> {
    for m in members {
        assert!(
            m.offset + m.theta.len() <= width,
            "θ outside the anchors' rows"
        );
    }
    let k = anchors.len().checked_div(width).unwrap_or(0);
    let chunks = group_chunks(members);
    let partial = |&(m, c): &(usize, usize)| -> Vec<f64> {
        let Member { theta, offset } = members[m];
        let range = c * CHUNK..((c + 1) * CHUNK).min(theta.len());
        let window = Window { width, offset };
        (0..k)
            .map(|row| {
                let a = window.of(anchors, row, range.clone());
                sum_of_squared_differences(&theta[range.clone()], a)
            })
            .collect()
    };
    let partials: Vec<Vec<f64>> = if chunks.len() < PARALLEL_CHUNKS {
        chunks.iter().map(partial).collect()
    } else {
        chunks.par_iter().map(partial).collect()
    };
    let mut sum: Option<Vec<f32>> = start.map(<[f32]>::to_vec);
    for m in 0..members.len() {
        let mine = || {
            chunks
                .iter()
                .zip(&partials)
                .filter(move |((of, _), _)| *of == m)
        };
        let d = (0..k).map(|row| mine().map(|(_, p)| p[row]).sum::<f64>() as f32);
        sum = Some(match sum {
            None => d.collect(),
            Some(s) => s.iter().zip(d).map(|(s, d)| s + d).collect(),
        });
    }
    sum.unwrap_or_else(|| vec![0.0; k])
}

/// What [`backward_group`] does with a member's gradient buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Adds the distances' gradient to the gradient already there.
    Add,
    /// Overwrites the buffer with the distances' gradient.
    Set,
}

/// Each member's gradient `Σ_k 2 dd_k (θ − a_k)` given the distances' gradient `dd` (`[K]`),
/// added to or written into `grads[m]` (see [`Write`]) in one pass whose chunks spread over
/// the cores together; each value is the one [`add_theta_gradient`] gives.
pub fn backward_group(
    grads: &mut [(&mut [f32], Write)],
    members: &[Member<'_>],
    anchors: &[f32],
    width: usize,
    dd: &[f32],
) {
    assert_eq!(grads.len(), members.len(), "one gradient per member");
    let mut tasks: Vec<(usize, usize, &mut [f32], Write)> = vec![];
    for (m, ((grad, write), member)) in grads.iter_mut().zip(members).enumerate() {
        assert_eq!(
            grad.len(),
            member.theta.len(),
            "a gradient of the member's size"
        );
        assert!(
            member.offset + member.theta.len() <= width,
            "θ outside the anchors' rows"
        );
        let write = *write;
        tasks.extend(
            grad.chunks_mut(CHUNK)
                .enumerate()
                .map(|(c, out)| (m, c, out, write)),
        );
    }
    let task = |(m, c, out, write): (usize, usize, &mut [f32], Write)| {
        let Member { theta, offset } = members[m];
        let window = Window { width, offset };
        let at = GradientChunk {
            c,
            theta,
            anchors,
            window,
            dd,
        };
        theta_gradient_chunk(out, write, &at);
    };
    if tasks.len() < PARALLEL_CHUNKS {
        tasks.into_iter().for_each(task);
    } else {
        tasks.into_par_iter().for_each(task);
    }
}

/// `fn $name(args) = $inner`: a function that runs `$inner` (an `#[inline(always)]` function
/// of the same arguments) compiled for AVX-512 or AVX2 when the CPU has them, since the
/// default x86-64 target vectorises with SSE2 only. Each lane computes what it would without
/// them (no fused multiply-adds, no reordered sums), so the results are the same to the bit.
macro_rules! widest_vectors {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? = $inner:ident) => {
        $(#[$meta])*
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $inner($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $inner($($arg),*)
                }
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F.
                    return unsafe { avx512($($arg),*) };
                }
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $inner($($arg),*)
        }
    };
}

widest_vectors! {
    /// `Σ (t − a)²` over a chunk: eight `f32` lanes (which the compiler vectorises) summed in
    /// `f64` at the end.
    fn sum_of_squared_differences(theta: &[f32], anchor: &[f32]) -> f64 =
        sum_of_squared_differences_in_lanes
}

/// [`sum_of_squared_differences`], inlined into each instruction set's copy.
#[inline(always)]
fn sum_of_squared_differences_in_lanes(theta: &[f32], anchor: &[f32]) -> f64 {
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
    let member = Member {
        theta,
        offset: window.offset,
    };
    backward_group(
        &mut [(grad, Write::Add)],
        &[member],
        anchors,
        window.width,
        dd,
    );
}

/// Chunk `c` of a member θ, for its gradient: θ, the anchors, θ's window in their rows and
/// the distances' gradient `dd`.
struct GradientChunk<'a> {
    c: usize,
    theta: &'a [f32],
    anchors: &'a [f32],
    window: Window,
    dd: &'a [f32],
}

widest_vectors! {
    /// θ's gradient over a chunk (`out`), added to `out` or written into it.
    fn theta_gradient_chunk(out: &mut [f32], write: Write, at: &GradientChunk<'_>) =
        theta_gradient_chunk_in_lanes
}

/// [`theta_gradient_chunk`], inlined into each instruction set's copy.
#[inline(always)]
fn theta_gradient_chunk_in_lanes(out: &mut [f32], write: Write, at: &GradientChunk<'_>) {
    let GradientChunk {
        c,
        theta,
        anchors,
        window,
        dd,
    } = *at;
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
        match write {
            Write::Add => out.iter_mut().zip(sums.iter()).for_each(|(o, s)| *o += s),
            Write::Set => out.copy_from_slice(sums),
        }
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
