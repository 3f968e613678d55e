//! `pn-host`: loads strategies, models and data sets from ABI-stable plugins and trains and
//! compares them on one Burn backend.
//!
//! Modules, each with one job: [`loader`] (a `.so` file to a checked plugin), [`registry`]
//! (components by name, config merging), [`session`] (the tensor operations plugins call,
//! recorded in Burn's autodiff graph), [`engine`] (phases, steps, evaluation), [`job`] (run
//! configs, results on disk), [`suite`] (suite files, plans, shards, the results store),
//! [`pool`] (runs in worker processes), [`report`] (tables, CSV, markdown, plots via
//! [`stats`] and [`plots`]), [`bench`] (step timings).
#![warn(missing_docs)]

pub mod augment;
pub mod bench;
pub mod data;
pub mod device;
pub mod dyn_tensor;
pub mod engine;
pub mod ensemble;
pub mod job;
pub mod loader;
pub mod log;
pub mod params;
pub mod plots;
pub mod pool;
pub mod registry;
pub mod report;
pub mod saturation;
pub mod session;
pub mod slurm;
pub mod stats;
pub mod suite;
pub mod surface;

pub use pn_plugin_api::component::payload_message as panic_message;

thread_local! {
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Replaces the default panic hook (which prints a trace) with one that remembers the message
/// and location; [`take_panic`] reads it back for a one-line report.
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = format!("{}{location}", panic_message(info.payload()));
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(message));
    }));
}

/// The last panic message recorded by [`quiet_panics`] on this thread.
pub fn take_panic() -> Option<String> {
    LAST_PANIC.with(|p| p.borrow_mut().take())
}
