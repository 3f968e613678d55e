//! Times the host's CPU convolution kernels on ResNet-20's and LeNet-5's layer shapes:
//! milliseconds and GFLOP/s of the forward pass and of both backward passes, per layer shape;
//! then LeNet-5's 2x2 max pooling, and batch normalisation and ReLU on ResNet-20's activation
//! shapes, forward and backward, in microseconds.
//! `cargo run --release -p pn-host --example conv_kernels`.

use std::time::Instant;

use pn_host::kernels::batch_norm::{self, NormShape};
use pn_host::kernels::conv2d::{backward_input, backward_weight, forward, Conv2dShape};
use pn_host::kernels::max_pool2d::{self, Pool2dShape};
use pn_host::kernels::relu;

fn shape(n: usize, c: usize, hw: usize, co: usize, k: usize, stride: usize) -> Conv2dShape {
    Conv2dShape {
        n,
        c,
        h: hw,
        w: hw,
        co,
        kh: k,
        kw: k,
        stride: [stride; 2],
        padding: [k / 2; 2],
        dilation: [1, 1],
        groups: 1,
    }
}

/// The process's CPU time in milliseconds (all threads): with `RAYON_NUM_THREADS=1` it measures
/// the kernels' work even while other processes share the cores.
fn cpu_ms() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 / 1e6
}

/// The best of `rounds` timings of `f`, in milliseconds of wall time, or of CPU time with
/// `--cpu`.
fn best(rounds: usize, mut f: impl FnMut()) -> f64 {
    let cpu = std::env::args().any(|a| a == "--cpu");
    (0..rounds)
        .map(|_| {
            let (start, start_cpu) = (Instant::now(), cpu_ms());
            f();
            if cpu {
                cpu_ms() - start_cpu
            } else {
                start.elapsed().as_secs_f64() * 1e3
            }
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let cases = [
        ("resnet 3->16 32x32", shape(128, 3, 32, 16, 3, 1)),
        ("resnet 16->16 32x32", shape(128, 16, 32, 16, 3, 1)),
        ("resnet 16->32 s2", shape(128, 16, 32, 32, 3, 2)),
        ("resnet 32->32 16x16", shape(128, 32, 16, 32, 3, 1)),
        ("resnet 32->64 s2", shape(128, 32, 16, 64, 3, 2)),
        ("resnet 64->64 8x8", shape(128, 64, 8, 64, 3, 1)),
        ("resnet 16->32 1x1 s2", shape(128, 16, 32, 32, 1, 2)),
        ("lenet5 1->6 28x28 k5", shape(64, 1, 28, 6, 5, 1)),
        ("lenet5 6->16 14x14 k5", shape(64, 6, 14, 16, 5, 1)),
    ];
    println!(
        "{:<24} {:>9} {:>9} {:>9}   GFLOP/s fwd/dx/dw",
        "layer", "fwd ms", "dx ms", "dw ms"
    );
    for (name, s) in cases {
        let [oh, ow] = s.out();
        let flop = 2.0 * (s.n * s.co * oh * ow * s.c * s.kh * s.kw) as f64 / 1e9;
        let x: Vec<f32> = (0..s.n * s.c * s.h * s.w)
            .map(|i| (i % 13) as f32 * 0.1)
            .collect();
        let w: Vec<f32> = (0..s.co * s.c * s.kh * s.kw)
            .map(|i| (i % 7) as f32 * 0.1)
            .collect();
        let dy: Vec<f32> = (0..s.n * s.co * oh * ow)
            .map(|i| (i % 5) as f32 * 0.1)
            .collect();
        let f = best(5, || drop(forward(&s, &x, &w, None)));
        let dx = best(5, || drop(backward_input(&s, &w, &dy)));
        let dw = best(5, || drop(backward_weight(&s, &x, &dy)));
        println!(
            "{name:<24} {f:>9.2} {dx:>9.2} {dw:>9.2}   {:.0}/{:.0}/{:.0}",
            flop / f * 1e3,
            flop / dx * 1e3,
            flop / dw * 1e3
        );
    }
    for (name, [planes, hw]) in [
        ("lenet5 pool 28x28", [64 * 6, 28]),
        ("lenet5 pool 10x10", [64 * 16, 10]),
    ] {
        let s = Pool2dShape {
            planes,
            h: hw,
            w: hw,
            kernel: [2, 2],
            stride: [2, 2],
            padding: [0, 0],
            dilation: [1, 1],
        };
        let x: Vec<f32> = (0..planes * hw * hw)
            .map(|i| ((i * 7919) % 1000) as f32)
            .collect();
        let (y, at) = max_pool2d::forward(&s, &x);
        let f = best(20, || drop(max_pool2d::forward(&s, &x)));
        let b = best(20, || drop(max_pool2d::backward(&s, &at, &y)));
        println!("{name:<24} {:>9.0} {:>9.0}   us fwd/bwd", f * 1e3, b * 1e3);
    }
    for (c, hw) in [(16, 32), (32, 16), (64, 8)] {
        let s = NormShape {
            n: 128,
            c,
            l: hw * hw,
        };
        let len = s.n * s.c * s.l;
        let x: Vec<f32> = (0..len)
            .map(|i| ((i * 7919) % 1000) as f32 * 1e-3)
            .collect();
        let dy: Vec<f32> = (0..len).map(|i| ((i * 31) % 17) as f32 - 8.0).collect();
        let (gamma, beta) = (vec![1.5; c], vec![0.1; c]);
        let out = batch_norm::forward(&s, &x, &gamma, &beta, 1e-5);
        let stats = [&out.mean[..], &out.inv_std[..]];
        let f = best(20, || {
            drop(batch_norm::forward(&s, &x, &gamma, &beta, 1e-5))
        });
        let b = best(20, || {
            drop(batch_norm::backward(&s, &dy, &x, &gamma, stats))
        });
        let name = format!("batch norm {c}x{hw}x{hw}");
        println!("{name:<24} {:>9.0} {:>9.0}   us fwd/bwd", f * 1e3, b * 1e3);
        let f = best(20, || drop(relu::forward(&out.y)));
        let b = best(20, || drop(relu::backward(&out.y, &dy)));
        let name = format!("relu {c}x{hw}x{hw}");
        println!("{name:<24} {:>9.0} {:>9.0}   us fwd/bwd", f * 1e3, b * 1e3);
    }
}
