//! Helpers shared by the end-to-end tests: where the built `pn-host` and plugins are.
//!
//! The tests use the artefacts of `cargo xtask build` (the README's test command runs it
//! first): `target/release/pn-host` and `plugins/<name>.so`, exactly what users run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

use pn_host::plugin::registry::Registry;

/// The workspace root, or `PN_TEST_ROOT` when set: a built tree carried elsewhere (a machine
/// lent a GPU has no Rust toolchain), with `target/release/pn-host` and `plugins/*.so`.
pub fn root() -> PathBuf {
    if let Some(dir) = std::env::var_os("PN_TEST_ROOT") {
        return PathBuf::from(dir);
    }
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

/// Asserts a failed command printed exactly one line, starting `error: ` and containing `needle`,
/// and no panic trace.
pub fn assert_one_line_error(out: &Output, needle: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected failure, stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(needle), "expected `{needle}` in: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
}

/// Finished run folders: name -> (run.json bytes, modification time).
pub fn finished(dir: &Path) -> BTreeMap<String, (Vec<u8>, SystemTime)> {
    std::fs::read_dir(dir.join("runs"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| {
                    let json = e.path().join("run.json");
                    let bytes = std::fs::read(&json).expect("a run folder has its run.json");
                    let time = std::fs::metadata(&json).unwrap().modified().unwrap();
                    (e.file_name().to_string_lossy().into_owned(), (bytes, time))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// summary.csv without the wall-clock columns, which differ between any two executions.
pub fn summary_without_times(dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(dir.join("summary.csv")).expect("summary.csv");
    let rows: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    let keep: Vec<usize> = (0..rows[0].len())
        .filter(|&i| !rows[0][i].contains("time"))
        .collect();
    rows.iter()
        .map(|r| keep.iter().map(|&i| r[i].clone()).collect())
        .collect()
}

pub fn write_suite(dir: &Path, text: &str) -> String {
    let file = dir.join("suite.toml");
    std::fs::write(&file, text).unwrap();
    file.display().to_string()
}

/// Writes the Slurm scripts of suite `file` for `shards` tasks of one CPU, the suite directory
/// being `out`; returns the scripts' folder.
pub fn write_slurm(file: &str, out: &Path, shards: usize) -> PathBuf {
    let result = run_host(
        &root(),
        &[
            "suite",
            "slurm",
            file,
            "--shards",
            &shards.to_string(),
            "--out",
            &out.display().to_string(),
            "--cpus-per-task",
            "1",
        ],
    );
    assert!(result.status.success(), "{}", stderr(&result));
    out.join("slurm")
}

/// Runs array task `task` of the scripts in `scripts` as Slurm would, without Slurm.
pub fn array_task(scripts: &Path, task: usize) {
    let out = Command::new("bash")
        .arg(scripts.join("array.sbatch"))
        .env("SLURM_ARRAY_TASK_ID", task.to_string())
        .env("SLURM_CPUS_PER_TASK", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "shard {task}: {}", stderr(&out));
}

/// Starts `pn-host args` in the workspace root and SIGKILLs it once `dir` holds `runs` finished
/// run folders; returns the finished folders as the kill left them.
pub fn kill_after_runs(
    args: &[&str],
    dir: &Path,
    runs: usize,
) -> BTreeMap<String, (Vec<u8>, SystemTime)> {
    let mut child = Command::new(pn_host())
        .current_dir(root())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while finished(dir).len() < runs {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "no runs finished"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    finished(dir)
}

/// Asserts that `suite run` of suite text `text` (in `dir`, with the built plugins) fails with
/// one line containing `needle`.
pub fn assert_suite_fails(dir: &Path, text: &str, needle: &str) {
    let file = write_suite(dir, text);
    let plugins = root().join("plugins").display().to_string();
    let out = run_host(
        dir,
        &[
            "--plugin-dir",
            &plugins,
            "suite",
            "run",
            &file,
            "--out",
            "out",
        ],
    );
    assert_one_line_error(&out, needle);
}

/// A small suite: `baseline` and two-phase `full_persistent` on a 5-unit teacher-student
/// workload, 4 seeds (12 runs with the equal-step baseline), each run well under a second. CI
/// runs it on a real Slurm too (`.ci/slurm-check.sh`).
pub const TINY_SUITE: &str = include_str!("fixtures/tiny-suite.toml");

/// Builds an out-of-workspace plugin crate (an example or a fixture) in a temporary copy, after
/// `edit` has changed its sources (path -> content), against the pn-plugin-api at `api_dir`.
/// Returns the built `.so`. Builds share `target/external-plugins`, so dependencies compile once.
pub fn build_external(
    crate_dir: &Path,
    api_dir: &Path,
    edit: impl Fn(&Path, String) -> String,
) -> (tempfile::TempDir, PathBuf) {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_dir(crate_dir, tmp.path(), &edit);
    let manifest = tmp.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let api = api_dir.display().to_string();
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("pn-plugin-api") {
                format!("pn-plugin-api = {{ path = {api:?} }}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&manifest, text).expect("manifest written");
    // Same dependency versions as the workspace, so nothing new is resolved or compiled.
    std::fs::copy(root().join("Cargo.lock"), tmp.path().join("Cargo.lock")).expect("lock copied");
    let target = root().join("target").join("external-plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(tmp.path())
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--release", "--quiet"])
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "building {} failed:\n{}",
        crate_dir.display(),
        stderr(&out)
    );
    let name = crate_dir
        .file_name()
        .expect("crate name")
        .to_string_lossy()
        .to_string();
    let built = target.join("release").join(format!("lib{name}.so"));
    // Copy the library out: the next build of the same crate overwrites the shared target.
    let so = tmp.path().join(format!("{name}.so"));
    std::fs::copy(&built, &so).expect("library copied");
    (tmp, so)
}

fn copy_dir(from: &Path, to: &Path, edit: &dyn Fn(&Path, String) -> String) {
    std::fs::create_dir_all(to).expect("dir");
    for entry in std::fs::read_dir(from).expect("readable").flatten() {
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            if entry.file_name() != "target" {
                copy_dir(&src, &dst, edit);
            }
        } else {
            let rel = src.strip_prefix(from).unwrap_or(&src).to_path_buf();
            match std::fs::read_to_string(&src) {
                Ok(text) => std::fs::write(&dst, edit(&rel, text)).expect("write"),
                Err(_) => {
                    std::fs::copy(&src, &dst).expect("copy");
                }
            }
        }
    }
}

/// Writes a tiny CIFAR-10 directory: 8 records per training file, 20 test records.
pub fn cifar_fixture(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let file = |name: &str, n: usize, salt: usize| {
        let mut bytes = vec![];
        for i in 0..n {
            let label = ((i + salt) % 10) as u8;
            bytes.push(label);
            bytes.extend(
                (0..3072).map(|p| ((p * 7 + i * 13 + salt + label as usize * 25) % 256) as u8),
            );
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    for b in 1..=5 {
        file(&format!("data_batch_{b}.bin"), 8, b);
    }
    file("test_batch.bin", 20, 0);
}

/// Writes MNIST IDX files into `dir`: `train` training and `test` test images of 2x2 pixels,
/// image i all of value i, with label i % 10.
pub fn mnist_fixture(dir: &Path, train: u8, test: u8) {
    std::fs::create_dir_all(dir).unwrap();
    let write = |prefix: &str, n: u8| {
        let mut images = vec![0, 0, 8, 3, 0, 0, 0, n, 0, 0, 0, 2, 0, 0, 0, 2];
        images.extend((0..n).flat_map(|i| [i; 4]));
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), &images).unwrap();
        let mut labels = vec![0, 0, 8, 1, 0, 0, 0, n];
        labels.extend((0..n).map(|i| i % 10));
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), &labels).unwrap();
    };
    write("train", train);
    write("t10k", test);
}
