//! Log lines from the host and from plugins (each `.so` has its own statics, so plugins send
//! their lines here through a callback instead of using a logger of their own).

use std::sync::atomic::{AtomicU8, Ordering};

use abi_stable::std_types::RStr;
use pn_plugin_api::LogLevel;

static VERBOSITY: AtomicU8 = AtomicU8::new(1);

/// 0: warnings only, 1: info, 2: debug.
pub fn set_verbosity(level: u8) {
    VERBOSITY.store(level, Ordering::Relaxed);
}

/// Prints a line at `level` if the verbosity allows it.
pub fn log(level: LogLevel, message: &str) {
    let (rank, prefix) = match level {
        LogLevel::Warn => (0, "warning: "),
        LogLevel::Info => (1, ""),
        LogLevel::Debug => (2, "debug: "),
    };
    if rank <= VERBOSITY.load(Ordering::Relaxed) {
        crate::errln!("{prefix}{message}");
    }
}

/// Like `println!`, but a closed or full stdout (`pn-host … | head -1`) is ignored instead of
/// ending the process: the work goes on and its results are still written to files.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Like `print!`, ignoring a closed stdout (see [`outln!`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// Like `eprintln!`, ignoring a closed stderr (see [`outln!`]).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// The callback plugins log through.
pub extern "C" fn plugin_log(level: LogLevel, message: RStr<'_>) {
    log(level, message.as_str());
}
