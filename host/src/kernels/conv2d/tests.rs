//! The kernels against the textbook convolution and the adjoint identities of its gradients,
//! and the weight gradient's sum of partial gradients against a plain running sum.

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
                                let (Some(iy), Some(ix)) = (s.source(0, i, oy), s.source(1, j, ox))
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

/// Shapes with few output pixels (one GEMM per chunk of samples, copied into place), and
/// with many (each sample's GEMM written in place).
fn shapes() -> [Conv2dShape; 2] {
    let small = Conv2dShape {
        n: 9,
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
    let large = Conv2dShape {
        h: 21,
        w: 26,
        stride: [1, 1],
        ..small
    };
    assert!(small.l() < DIRECT_PIXELS && large.l() >= DIRECT_PIXELS);
    assert!(chunk_samples(&small) > 1 && chunk_samples(&large) > 1);
    [small, large]
}

#[test]
fn forward_matches_the_textbook_convolution_and_its_gradients_are_its_adjoints() {
    for s in shapes() {
        let x = values(s.n * s.c * s.h * s.w, 1);
        let w = values(s.co * s.cg() * s.kh * s.kw, 2);
        let bias = values(s.co, 4);
        let y = forward(&s, &x, &w, Some(&bias));
        let mut expected = direct(&s, &x, &w);
        for (i, e) in expected.iter_mut().enumerate() {
            *e += bias[i / s.l() % s.co];
        }
        assert_eq!(y.len(), expected.len());
        for (a, b) in y.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-4, "{s:?}: {a} vs {b}");
        }
        // <dy, conv(x, w)> = <backward_input(dy), x> = <backward_weight(dy), w>: the
        // convolution is bilinear, so each gradient is the adjoint of the map it
        // differentiates.
        let y = forward(&s, &x, &w, None);
        let dy = values(y.len(), 3);
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(a, b)| (a * b) as f64).sum::<f64>();
        let reference = dot(&dy, &y);
        let dx = backward_input(&s, &w, &dy);
        let dw = backward_weight(&s, &x, &dy);
        let close = |v: f64| (v - reference).abs() < 1e-3 * reference.abs().max(1.0);
        assert!(close(dot(&dx, &x)) && close(dot(&dw, &w)), "{s:?}");
    }
}

#[test]
fn the_partial_gradients_add_up_as_a_running_sum_does_to_the_bit() {
    for (parts, len) in [(3, 10), (5, SUM_BLOCK), (7, 3 * SUM_BLOCK + 123)] {
        let parts: Vec<Vec<f32>> = (0..parts)
            .map(|p| {
                let value = |i: usize| ((i * 7919 + p * 104_729) % 2003) as f32 / 7.0 - 143.0;
                (0..len).map(value).collect()
            })
            .collect();
        let mut running = vec![0.0f32; len];
        for part in &parts {
            running.iter_mut().zip(part).for_each(|(a, p)| *a += p);
        }
        assert_eq!(sum_in_order(parts, len), running, "{len} values");
    }
}
