//! `pn-host`: loads strategies, models and data sets from ABI-stable plugins and trains and
//! compares them on one Burn backend.
//!
//! The folders follow the data path and the use cases: [`plugin`] (a `.so` file to components
//! by name), [`train`] (one run: session, step, phase loop, records), [`run`] (run configs and a
//! run's files), [`suite`] (suite files, plans, worker pool, Slurm), [`results`] (the suite
//! directory), [`report`] (summaries, statistics, figures), [`bench`] (step timings),
//! [`surface`] (2-D loss surfaces), [`scaffold`] (new plugin crates), [`conformance`]
//! (checks of a plugin), [`containment`] (plugin code in a child process), [`kernels`] (the
//! host's own CPU convolution) and [`commands`] (what each `pn-host` command does once its
//! flags are parsed).
#![warn(missing_docs)]
// The device type is `Copy` in CPU-only builds and not in GPU builds (see `device`).
#![allow(clippy::clone_on_copy)]

pub mod bench;
pub mod commands;
pub mod conformance;
pub mod containment;
pub mod device;
pub mod error;
pub mod kernels;
pub mod log;
pub mod plugin;
pub mod progress;
pub mod report;
pub mod results;
pub mod run;
pub mod scaffold;
pub mod suite;
pub mod surface;
pub mod train;

pub use error::Error;
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
