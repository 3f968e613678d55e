//! `cargo xtask build`: builds the workspace in release and copies each plugin's
//! `target/release/libpn_<name>.so` to `plugins/<name>.so`, where `pn-host` finds it.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The workspace root, asked of cargo at run time (so a moved or copied checkout builds into
/// its own folders, not the ones this binary was compiled in).
fn root(cargo: &str) -> Result<PathBuf, String> {
    let out = Command::new(cargo)
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let manifest = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    manifest
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("no workspace folder above {}", manifest.display()))
}

fn build(extra: &[String]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = root(&cargo)?;
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--release", "--workspace"])
        .args(extra)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("cargo build failed".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let plugins = root.join("plugins");
    let mut copied = vec![];
    for entry in std::fs::read_dir(&plugins)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let crate_dir = entry.path();
        if !crate_dir.join("Cargo.toml").is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_string();
        let built = target.join("release").join(format!("libpn_{name}.so"));
        let dest = plugins.join(format!("{name}.so"));
        // Copy to a temporary name and rename, so a running pn-host never maps a half-written file.
        let tmp = plugins.join(format!(".{name}.so.tmp"));
        std::fs::copy(&built, &tmp)
            .and_then(|_| std::fs::rename(&tmp, &dest))
            .map_err(|e| format!("cannot copy {}: {e}", built.display()))?;
        copied.push(name);
    }
    copied.sort();
    eprintln!(
        "plugins/: {}",
        copied
            .iter()
            .map(|n| format!("{n}.so"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") => build(&args[1..]),
        _ => Err("usage: cargo xtask build [cargo build flags, e.g. --features cuda]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
