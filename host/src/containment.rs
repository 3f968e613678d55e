//! Commands that run plugin code run it in a child process: plugins are native code, and one
//! that aborts, segfaults or ends the process would otherwise take `pn-host` down without a word.
//!
//! The parent re-runs its own command line as a child with [`FINISHED_MARKER`] set to a file
//! name; the child creates that file when the host itself finishes ([`mark_finished`]), so an
//! exit that skipped the host (a plugin calling `exit`) is recognised as well as a signal.

use std::process::ExitCode;

/// Set in the child: the file it creates once the host has finished.
const FINISHED_MARKER: &str = "PN_RUN_FINISHED_MARKER";

static MARKER: std::sync::OnceLock<Option<std::ffi::OsString>> = std::sync::OnceLock::new();

/// Whether this process is the contained child. The first call takes the marker out of the
/// environment (call it before any thread starts), so that processes the child starts (suite
/// workers) do not inherit it.
pub fn is_child() -> bool {
    MARKER
        .get_or_init(|| {
            let marker = std::env::var_os(FINISHED_MARKER);
            std::env::remove_var(FINISHED_MARKER);
            marker
        })
        .is_some()
}

/// In the child: tells the parent that the host finished (its exit code is its own).
pub fn mark_finished() {
    if let Some(Some(marker)) = MARKER.get() {
        let _ = std::fs::write(marker, b"");
    }
}

/// Runs this process's command line in a child and returns its exit code; a crash or an early
/// exit inside it becomes one line ending with `kept`, which says what survives.
pub fn run_contained(kept: &str) -> ExitCode {
    let fail = |message: String| {
        crate::errln!("error: {message}");
        ExitCode::from(1)
    };
    let marker = std::env::temp_dir().join(format!("pn-host-{}.finished", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let status = std::env::current_exe().and_then(|exe| {
        std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(FINISHED_MARKER, &marker)
            .status()
    });
    let finished = std::fs::remove_file(&marker).is_ok();
    match status {
        Err(e) => fail(format!("cannot start pn-host's working process: {e}")),
        Ok(status) => match (status.code(), finished) {
            (Some(code), true) => ExitCode::from(code.clamp(0, 255) as u8),
            (Some(code), false) => fail(format!(
                "the working process exited with status {code} before pn-host finished (a plugin ended the process); {kept}"
            )),
            (None, _) => {
                use std::os::unix::process::ExitStatusExt;
                let signal = status.signal().unwrap_or(0);
                fail(format!(
                    "the working process was killed by signal {signal} (a crash in a plugin's native code, or out of memory); {kept}"
                ))
            }
        },
    }
}

/// Ends this process with `message` (one line, exit 1) if it is still running after `limit`:
/// plugin code that hangs cannot be interrupted, but the host can stop waiting for it.
pub fn exit_after(limit: std::time::Duration, message: String) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        crate::errln!("error: {message}");
        mark_finished();
        std::process::exit(1);
    });
}
