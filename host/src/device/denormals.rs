//! Subnormal floats flushed to zero in every thread that computes (the main thread and the
//! `rayon` pool the kernels and Burn's `flex` share), as TensorFlow does on the CPU.
//!
//! Why: arithmetic that reads or makes a subnormal `f32` (below 1.2e-38) takes a slow path of
//! the CPU, about a hundred times a normal operation. Training meets them when a term decays:
//! the persistence penalty's gradient as θ leaves an anchor's kernel, Adam's moments of such a
//! gradient. A LeNet-300-100 step with the penalty took 4.9 ms instead of 2.7 ms there. Values
//! that small change no result a user reads, but a few last bits may differ from a run without
//! flushing (PyTorch keeps subnormals unless `torch.set_flush_denormal(True)`).
//!
//! Every thread must flush alike: a thread that did not would give other bits for the same
//! work, and results would depend on which thread ran it.

/// Sets flush-to-zero and denormals-are-zero on this thread (x86-64; elsewhere nothing).
pub fn flush_on_this_thread() {
    #[cfg(target_arch = "x86_64")]
    {
        /// MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6) flags.
        const FTZ_DAZ: u32 = 0x8040;
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr/ldmxcsr read and write this thread's SSE control register; setting
        // FTZ and DAZ changes only how subnormal values round.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
            csr |= FTZ_DAZ;
            std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack));
        }
    }
}

/// Flushes subnormals on this thread and on every thread of `rayon`'s global pool, which this
/// call builds. Call it first in `main`, before anything runs on the pool.
pub fn flush_everywhere() {
    flush_on_this_thread();
    // An error means the pool exists already (built by an earlier call): its threads flush.
    let _ = flushing_pool().build_global();
}

/// A `rayon` pool whose threads flush subnormals from their start.
fn flushing_pool() -> rayon::ThreadPoolBuilder {
    rayon::ThreadPoolBuilder::new().start_handler(|_| flush_on_this_thread())
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// Whether this thread flushes subnormals to zero.
    fn flushing() -> bool {
        let tiny = std::hint::black_box(f32::MIN_POSITIVE);
        std::hint::black_box(tiny / 4.0) == 0.0
    }

    #[test]
    fn subnormals_are_flushed_on_this_thread_and_in_the_pool() {
        std::thread::spawn(|| {
            assert!(!flushing(), "a new thread keeps subnormals");
            flush_on_this_thread();
            assert!(flushing());
        })
        .join()
        .unwrap();
        let pool = flushing_pool().num_threads(2).build().unwrap();
        assert!(pool.broadcast(|_| flushing()).into_iter().all(|f| f));
    }
}
