//! Helpers shared by the end-to-end tests: where the built `pn-host` and plugins are.
//!
//! The tests use the artefacts of `cargo xtask build` (the README's test command runs it
//! first): `target/release/pn-host` and `plugins/<name>.so`, exactly what users run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pn_host::registry::Registry;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `plugins/<name>.so`, which must have been built by `cargo xtask build`.
pub fn plugin(name: &str) -> PathBuf {
    let path = root().join("plugins").join(format!("{name}.so"));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask build` before the tests",
        path.display()
    );
    path
}

/// A registry with the named plugins loaded.
pub fn registry(names: &[&str]) -> Registry {
    let files: Vec<PathBuf> = names.iter().map(|n| plugin(n)).collect();
    Registry::load(&files, &[]).expect("plugins load")
}

/// The release `pn-host` binary.
pub fn pn_host() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let bin = target.join("release").join("pn-host");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo xtask build` before the tests",
        bin.display()
    );
    bin
}

/// Runs `pn-host` with `args` in `dir`, without the default plugin directory.
pub fn run_host(dir: &Path, args: &[&str]) -> Output {
    Command::new(pn_host())
        .current_dir(dir)
        .env_remove("PN_PLUGIN_PATH")
        .args(args)
        .output()
        .expect("pn-host starts")
}

/// stderr of a finished command, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}
