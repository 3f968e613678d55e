//! Data augmentation for image data sets (`train.augment`): random crop after zero padding and
//! random horizontal flip, the standard CIFAR recipe. Batches are augmented on the CPU by a
//! background thread that works up to [`AHEAD`] batches ahead of training, so the device does
//! not wait for them. The random choices depend only on the run's seed and the epoch, so every
//! phase sees the same augmented batches (as it sees the same batch order).

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Batches prepared ahead of the training loop.
pub const AHEAD: usize = 2;

/// Augmentation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Augment {
    /// Zero padding on each side before a random crop back to the original size (0: no crop).
    pub crop_padding: usize,
    /// Mirror each image left-right with probability 1/2.
    pub flip: bool,
}

impl Default for Augment {
    fn default() -> Self {
        Self {
            crop_padding: 4,
            flip: true,
        }
    }
}

/// Writes image `src` (`[c, h, w]`) shifted by (`dy`, `dx`) within its zero padding of `pad`
/// (offsets in `0..=2 pad`; `pad, pad` is no shift) and optionally mirrored, into `out`.
pub fn augment_image(
    src: &[f32],
    [c, h, w]: [usize; 3],
    pad: usize,
    (dy, dx): (usize, usize),
    flip: bool,
    out: &mut Vec<f32>,
) {
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                let sx = if flip { w - 1 - x } else { x };
                // Source pixel of the crop: (y + dy − pad, sx + dx − pad) in the unpadded image.
                let (yy, xx) = ((y + dy).checked_sub(pad), (sx + dx).checked_sub(pad));
                out.push(match (yy, xx) {
                    (Some(yy), Some(xx)) if yy < h && xx < w => src[(ch * h + yy) * w + xx],
                    _ => 0.0,
                });
            }
        }
    }
}

/// A background thread producing the augmented inputs of one epoch's batches, in order.
pub struct Prefetch {
    batches: Receiver<Vec<f32>>,
}

impl Prefetch {
    /// Starts augmenting `batches` (example indices) of `inputs` (row-major `[n, c, h, w]`).
    pub fn start(
        inputs: Arc<Vec<f32>>,
        shape: [usize; 3],
        batches: Vec<Vec<i64>>,
        augment: Augment,
        seed: u64,
    ) -> Self {
        let (tx, rx) = sync_channel(AHEAD);
        std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(seed);
            let per: usize = shape.iter().product();
            let pad = augment.crop_padding;
            for batch in batches {
                let mut out = Vec::with_capacity(batch.len() * per);
                for &i in &batch {
                    let i = i as usize;
                    let shift = (rng.random_range(0..=2 * pad), rng.random_range(0..=2 * pad));
                    let flip = augment.flip && rng.random_bool(0.5);
                    augment_image(
                        &inputs[i * per..(i + 1) * per],
                        shape,
                        pad,
                        shift,
                        flip,
                        &mut out,
                    );
                }
                if tx.send(out).is_err() {
                    return; // training stopped early
                }
            }
        });
        Self { batches: rx }
    }

    /// The next batch's inputs; `None` if the thread ended.
    pub fn next_batch(&self) -> Option<Vec<f32>> {
        self.batches.recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_mirror_and_crops_shift_with_zero_borders() {
        // One channel, 2x3: rows [1 2 3], [4 5 6].
        let img = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut out = vec![];
        augment_image(&img, [1, 2, 3], 0, (0, 0), true, &mut out);
        assert_eq!(out, [3.0, 2.0, 1.0, 6.0, 5.0, 4.0]);
        out.clear();
        augment_image(&img, [1, 2, 3], 1, (1, 1), false, &mut out);
        assert_eq!(out, img, "a centred crop is the image");
        out.clear();
        // Crop starting one pixel up and left: the image moves down-right, zeros enter.
        augment_image(&img, [1, 2, 3], 1, (0, 0), false, &mut out);
        assert_eq!(out, [0.0, 0.0, 0.0, 0.0, 1.0, 2.0]);
    }

    #[test]
    fn prefetched_batches_are_deterministic_per_seed() {
        let inputs = Arc::new((0..4 * 2 * 4 * 4).map(|v| v as f32).collect::<Vec<f32>>());
        let run = |seed| {
            let p = Prefetch::start(
                inputs.clone(),
                [2, 4, 4],
                vec![vec![0, 3], vec![1]],
                Augment::default(),
                seed,
            );
            (
                p.next_batch().unwrap(),
                p.next_batch().unwrap(),
                p.next_batch(),
            )
        };
        let (a, b, end) = run(7);
        assert_eq!((a.len(), b.len(), end), (2 * 32, 32, None));
        assert_eq!(run(7).0, a);
        assert_ne!(run(8).0, a);
    }
}
