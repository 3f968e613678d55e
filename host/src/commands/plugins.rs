//! `plugins list`, `plugins check` and `plugins test`, and where plugins are looked for: the
//! `--plugin-dir` folders (else `plugins/` when it exists) plus `PN_PLUGIN_PATH`.

use std::path::{Path, PathBuf};

use crate::conformance::{self, Verdict};
use crate::error::Error;
use crate::plugin::registry::{plugins_in, Registry};

/// The folders to load every `.so` of: `explicit` (the `--plugin-dir` flags), else `plugins/`
/// when it exists, then every folder of `PN_PLUGIN_PATH`.
pub fn plugin_dirs(explicit: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs = explicit.to_vec();
    if dirs.is_empty() && PathBuf::from("plugins").is_dir() {
        dirs.push("plugins".into());
    }
    if let Some(extra) = std::env::var_os("PN_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&extra));
    }
    dirs
}

/// Loads the `files` (the `--plugin` flags) and every plugin of [`plugin_dirs`]`(explicit_dirs)`;
/// a `--plugin-dir` that is not a folder is an error. Returns the registry and the folders.
pub fn load(
    files: &[PathBuf],
    explicit_dirs: &[PathBuf],
) -> Result<(Registry, Vec<PathBuf>), Error> {
    let dirs = plugin_dirs(explicit_dirs);
    for dir in explicit_dirs {
        if !dir.is_dir() {
            return Err(format!("plugin directory not found: {}", dir.display()).into());
        }
    }
    let registry = Registry::load(files, &dirs)?;
    Ok((registry, dirs))
}

/// Prints what every loaded plugin provides.
pub fn describe(registry: &Registry) {
    crate::out!("{}", registry.describe());
}

/// `plugins list`: prints what every loaded plugin provides; `false` when there is none at all
/// (nothing loaded and no `.so` in any of `dirs`).
pub fn list(registry: &Registry, dirs: &[PathBuf]) -> bool {
    describe(registry);
    !(registry.plugins.is_empty() && dirs.iter().all(|d| plugins_in(d).is_empty()))
}

/// `plugins check`: loads one file alone and prints what it provides.
pub fn check(file: &Path) -> Result<(), Error> {
    let registry = Registry::load(&[file.to_path_buf()], &[])?;
    describe(&registry);
    Ok(())
}

/// `plugins test`: loads the `files` beside the `--plugin` files (`plugins`) and the plugin
/// folders (see [`plugin_dirs`]), then runs every conformance check of every file, one line
/// each; `false` when one failed (the count goes to stderr).
pub fn test(
    plugins: &[PathBuf],
    files: &[PathBuf],
    explicit_dirs: &[PathBuf],
) -> Result<bool, Error> {
    let explicit: Vec<PathBuf> = plugins.iter().chain(files).cloned().collect();
    let registry = Registry::load(&explicit, &plugin_dirs(explicit_dirs))?;
    let (mut failed, mut total) = (0, 0);
    for file in files {
        crate::outln!("{}", file.display());
        for check in conformance::test_plugin(&registry, file)? {
            total += 1;
            failed += matches!(check.verdict, Verdict::Fail(_)) as usize;
            crate::outln!("  {}", check.line());
        }
    }
    if failed > 0 {
        crate::errln!("error: {failed} of {total} checks failed");
    }
    Ok(failed == 0)
}
