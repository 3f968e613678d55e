//! The GPU path end to end: small suites train on the device named by `PN_TEST_DEVICE`
//! (`vulkan`, `vulkan:N`, `cuda`, `cuda:N`) and on `cpu`, and their per-epoch losses and
//! reports must agree within the tolerances below. Skipped, saying why, when `PN_TEST_DEVICE`
//! is unset; the `pn-host` it runs must be built with the device's feature
//! (`cargo build --release -p pn-host --features vulkan`). CI runs it on Mesa's lavapipe, a
//! Vulkan implementation on the CPU; a session lent a GPU runs it first with `cuda`.
//!
//! The suites cover every model plugin (`mlp` on `teacher_student` and `kink`, `toy2d`, `lenet5`
//! and `resnet` on small MNIST-format images with augmentation, `alexnet` on a CIFAR-10
//! fixture: the sizes keep a CPU Vulkan driver to a few minutes), every strategy
//! (persistence with anchors, deflation, restarts, weight decay, SAM, lookahead, shrink and
//! perturb, EMA) and the ensembles whose batch-norm statistics the host recomputes (SWA and
//! snapshots on `resnet`). Each suite file runs unchanged on both devices.
//!
//! Tolerances: float32 sums in a different order differ in the last bits, and a few dozen
//! steps of training amplify that; losses must agree to [`REL_TOL`] (relative) and accuracies to
//! [`ACC_TOL`] (one example of the fixture's 20 held-out images flipping its class). What a
//! device draws at random (`shrink_perturb`'s noise) comes from that device's generator, so
//! after a perturbation losses are only compared to [`RANDOM_REL_TOL`].
//!
//! Without a device, the test that always runs checks that a device which is unknown, not
//! built in, or absent (`VK_ICD_FILENAMES` pointing nowhere; `cuda` where `PN_TEST_NO_CUDA` is
//! set) is one line and exit 1, and that no suite run starts.

use std::path::Path;
use std::process::Output;
use std::time::Instant;

use pn_tests::{assert_one_line_error, cifar_fixture, root, run_host, stderr, TINY_SUITE};
use serde_json::Value;

/// Largest relative difference of a loss between the device and `cpu`.
const REL_TOL: f64 = 1e-3;
/// Largest absolute difference of an accuracy.
const ACC_TOL: f64 = 0.051;
/// Largest relative difference of a loss after a random perturbation drawn on the device.
const RANDOM_REL_TOL: f64 = 0.2;

/// The tolerance for the losses of a run or report row named `name` in phase `phase`.
fn loss_tolerance(name: &str, phase: usize) -> f64 {
    // shrink_perturb perturbs with noise from the device's generator from its second phase on.
    if name.contains("shrink_perturb") && phase > 0 {
        RANDOM_REL_TOL
    } else {
        REL_TOL
    }
}

/// Every model plugin under `baseline`, a few steps each; images are augmented.
const MODELS: &str = r#"
name = "models"
reference = "baseline"
seeds = [1]

[strategies.baseline]

[workloads.student]
model = { name = "mlp", config = { hidden = [8], activation = "relu", output = "sum", bias = false, init = "xavier_normal" } }
dataset = { name = "teacher_student", config = { d = 8, k = 8, train = 256, valid = 64 } }
train = { optimizer = "adam", lr = 0.01, batch_size = 64, epochs = 3 }

[workloads.kink]
model = { name = "mlp", config = { hidden = [16, 16] } }
dataset = { name = "kink", config = { d = 4, train = 256, valid = 64 } }
train = { optimizer = "sgd", lr = 0.05, batch_size = 64, epochs = 3 }

[workloads.toy2d]
model = { name = "toy2d" }
dataset = { name = "toy2d" }
train = { optimizer = "adam", lr = 0.02, batch_size = 8, epochs = 20 }

[workloads.lenet5]
model = { name = "lenet5" }
dataset = { name = "mnist", config = { dir = "@DIGITS@", split_test = 32 } }
train = { optimizer = "adam", lr = 0.003, batch_size = 8, epochs = 2, augment = { crop_padding = 2, flip = true } }

[workloads.alexnet]
model = { name = "alexnet" }
dataset = { name = "cifar10", config = { dir = "@CIFAR@", train_limit = 16 } }
train = { optimizer = "adam", lr = 0.001, batch_size = 8, epochs = 2 }
"#;

/// Every strategy on a small teacher-student workload, two seeds, two phases where there are
/// phases.
const STRATEGIES: &str = r#"
name = "strategies"
reference = "baseline"
seeds = 2
equal_steps = false

[strategies.baseline]
[strategies.reinit]
config = { phases = 2 }
[strategies.full_persistent]
config = { phases = 2 }
[strategies.partial_persistent]
config = { phases = 2 }
[strategies.deflation]
config = { phases = 2 }
[strategies.weight_decay]
[strategies.sam]
[strategies.lookahead]
[strategies.shrink_perturb]
config = { phases = 2 }
[strategies.ema]

[workloads.student]
model = { name = "mlp", config = { hidden = [8], activation = "relu", output = "sum", bias = false, init = "xavier_normal" } }
dataset = { name = "teacher_student", config = { d = 8, k = 8, train = 256, valid = 64 } }
train = { optimizer = "adam", lr = 0.01, batch_size = 64, epochs = 4 }
"#;

/// Batch norm: `resnet` trained plainly and by the two ensembles whose members' statistics
/// the host recomputes on the training split; images are augmented.
const BATCH_NORM: &str = r#"
name = "batch_norm"
reference = "baseline"
seeds = [1]
equal_steps = false

[strategies.baseline]
[strategies.swa]
config = { start = 0.5 }
[strategies.snapshot]
config = { snapshots = 2 }

[workloads.resnet]
model = { name = "resnet" }
dataset = { name = "mnist", config = { dir = "@DIGITS@", split_test = 32 } }
train = { optimizer = "sgd", lr = 0.01, batch_size = 8, epochs = 2, augment = { crop_padding = 2, flip = true } }
"#;

/// Writes MNIST-format IDX files of 48 grey 12x12 images whose class (of 4) is the brightest
/// quadrant, noisy: small enough for a CPU Vulkan driver, learnable in a few steps.
fn digits_fixture(dir: &Path) {
    const N: usize = 48;
    const SIDE: usize = 12;
    std::fs::create_dir_all(dir).unwrap();
    let mut images = vec![0, 0, 8, 3];
    for n in [N, SIDE, SIDE] {
        images.extend((n as u32).to_be_bytes());
    }
    let mut labels = vec![0, 0, 8, 1];
    labels.extend((N as u32).to_be_bytes());
    for i in 0..N {
        let class = (i * 7) % 4;
        labels.push(class as u8);
        for y in 0..SIDE {
            for x in 0..SIDE {
                let quadrant = (y / (SIDE / 2)) * 2 + x / (SIDE / 2);
                let noise = (i * 31 + y * 5 + x * 3) % 97;
                let bright = if quadrant == class { 150 } else { 0 };
                images.push(bright + noise as u8);
            }
        }
    }
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), images).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), labels).unwrap();
}

fn plugin_dir() -> String {
    root().join("plugins").display().to_string()
}

/// Runs `suite` (its text, with the fixtures' folders filled in) on `device` in `dir`.
fn run_suite(dir: &Path, name: &str, text: &str, device: &str) -> (Output, f64) {
    let file = dir.join(format!("{name}.toml"));
    let text = text
        .replace("@CIFAR@", &dir.join("cifar").display().to_string())
        .replace("@DIGITS@", &dir.join("digits").display().to_string());
    std::fs::write(&file, text).unwrap();
    let out = dir.join(format!("{name}-{}", device.replace(':', "_")));
    let started = Instant::now();
    let output = run_host(
        dir,
        &[
            "-q",
            "--plugin-dir",
            &plugin_dir(),
            "--device",
            device,
            "suite",
            "run",
            &file.display().to_string(),
            "--out",
            &out.display().to_string(),
            "--jobs",
            "1",
        ],
    );
    (output, started.elapsed().as_secs_f64())
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Every run folder of a finished suite: name -> run.json.
fn runs(suite_dir: &Path) -> Vec<(String, Value)> {
    let mut runs: Vec<(String, Value)> = std::fs::read_dir(suite_dir.join("runs"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                read_json(&e.path().join("run.json")),
            )
        })
        .collect();
    runs.sort_by(|a, b| a.0.cmp(&b.0));
    runs
}

/// Differences between two runs of one configuration beyond the tolerances, as lines; and the
/// largest relative loss difference seen.
fn compare_runs(name: &str, cpu: &Value, dev: &Value) -> (Vec<String>, f64) {
    let mut found = vec![];
    let mut worst: f64 = 0.0;
    for key in ["status", "selected_phase", "steps"] {
        if cpu[key] != dev[key] {
            found.push(format!(
                "{name}: {key} {} on cpu, {} on the device",
                cpu[key], dev[key]
            ));
        }
    }
    let phases = |v: &Value| v["phases"].as_array().cloned().unwrap_or_default();
    for (p, (pc, pd)) in phases(cpu).iter().zip(phases(dev).iter()).enumerate() {
        let tol = loss_tolerance(name, p);
        let epochs = |v: &Value| v["epochs"].as_array().cloned().unwrap_or_default();
        let (ec, ed) = (epochs(pc), epochs(pd));
        if ec.len() != ed.len() {
            found.push(format!(
                "{name}: phase {p} has {} epochs on cpu, {} on the device",
                ec.len(),
                ed.len()
            ));
        }
        for (e, (c, d)) in ec.iter().zip(ed.iter()).enumerate() {
            for key in ["train_loss", "valid_loss"] {
                let (a, b) = (c[key].as_f64().unwrap(), d[key].as_f64().unwrap());
                let rel = (a - b).abs() / a.abs().max(1e-6);
                worst = worst.max(rel);
                if rel.is_nan() || rel > tol {
                    found.push(format!(
                        "{name}: phase {p} epoch {} {key}: cpu {a}, device {b} (relative {rel:.2e} > {tol:.0e})",
                        e + 1
                    ));
                }
            }
            for key in ["train_accuracy", "valid_accuracy"] {
                if let (Some(a), Some(b)) = (c[key].as_f64(), d[key].as_f64()) {
                    if (a - b).is_nan() || (a - b).abs() > ACC_TOL {
                        found.push(format!(
                            "{name}: phase {p} epoch {} {key}: cpu {a}, device {b}",
                            e + 1
                        ));
                    }
                }
            }
        }
    }
    (found, worst)
}

/// summary.csv rows: workload, budget, strategy and the counts of runs, statuses, steps and
/// passes (which must be equal), with the final-loss means (which must agree).
fn summary_means(suite_dir: &Path) -> Vec<(String, Vec<f64>)> {
    let text = std::fs::read_to_string(suite_dir.join("summary.csv")).expect("summary.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| header[i].ends_with("loss_mean"))
        .collect();
    assert!(!keep.is_empty(), "summary.csv has loss means: {header:?}");
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            let key = cells[..10].join(",");
            let values = keep
                .iter()
                .map(|&i| cells[i].parse().unwrap_or(f64::NAN))
                .collect();
            (key, values)
        })
        .collect()
}

#[test]
fn suites_train_alike_on_the_device_and_on_cpu() {
    let Some(device) = std::env::var("PN_TEST_DEVICE")
        .ok()
        .filter(|d| !d.is_empty())
    else {
        eprintln!(
            "skipped: set PN_TEST_DEVICE=vulkan (or cuda) with a pn-host built `--features vulkan` (or cuda)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    cifar_fixture(&tmp.path().join("cifar"));
    digits_fixture(&tmp.path().join("digits"));
    let mut findings = vec![];
    for (name, text) in [
        ("models", MODELS),
        ("strategies", STRATEGIES),
        ("batch_norm", BATCH_NORM),
    ] {
        let mut dirs = vec![];
        for dev in ["cpu", device.as_str()] {
            let (output, seconds) = run_suite(tmp.path(), name, text, dev);
            assert!(
                output.status.success(),
                "suite {name} on {dev} failed: {}",
                stderr(&output)
            );
            eprintln!("suite {name} on {dev}: {seconds:.1} s");
            dirs.push(tmp.path().join(format!("{name}-{}", dev.replace(':', "_"))));
        }
        let (on_cpu, on_dev) = (runs(&dirs[0]), runs(&dirs[1]));
        let names = |r: &[(String, Value)]| r.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&on_cpu),
            names(&on_dev),
            "suite {name}: the same runs"
        );
        assert!(!on_cpu.is_empty());
        for ((run, c), (_, d)) in on_cpu.iter().zip(on_dev.iter()) {
            assert_eq!(c["status"], "completed", "{run} on cpu: {}", c["message"]);
            let (found, worst) = compare_runs(run, c, d);
            eprintln!("  {run}: largest relative loss difference {worst:.2e}");
            findings.extend(found);
        }
        let (sc, sd) = (summary_means(&dirs[0]), summary_means(&dirs[1]));
        assert_eq!(sc.len(), sd.len(), "suite {name}: summary rows");
        for ((key, a), (key_d, b)) in sc.iter().zip(sd.iter()) {
            assert_eq!(key, key_d);
            // A report row's means are over every phase: the last one's tolerance holds.
            let tol = loss_tolerance(key, usize::MAX);
            for (x, y) in a.iter().zip(b.iter()) {
                if (x - y).is_nan() || (x - y).abs() > tol * x.abs().max(1e-6) {
                    findings.push(format!("suite {name} report, {key}: cpu {x}, device {y}"));
                }
            }
        }
    }
    assert!(
        findings.is_empty(),
        "{device} differs from cpu:\n{}",
        findings.join("\n")
    );
}

#[test]
fn a_device_that_is_unknown_not_built_in_or_absent_is_one_line_before_any_run() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = tmp.path().join("tiny.toml");
    std::fs::write(&suite, TINY_SUITE).unwrap();
    let plugins = plugin_dir();
    let attempt = |device: &str, env: Option<(&str, &str)>| {
        let out = tmp.path().join("out");
        let mut command = std::process::Command::new(pn_tests::pn_host());
        command
            .current_dir(tmp.path())
            .env_remove("PN_PLUGIN_PATH")
            .env_remove("PN_TEST_DEVICE")
            .args(["--plugin-dir", &plugins, "--device", device, "suite", "run"])
            .arg(&suite)
            .arg("--out")
            .arg(&out);
        if let Some((key, value)) = env {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        assert!(!out.join("runs").exists(), "{device}: no run started");
        output
    };
    assert_one_line_error(&attempt("gpu", None), "unknown device `gpu`");
    assert_one_line_error(&attempt("vulkan:x", None), "unknown device `vulkan:x`");
    // Whether or not this pn-host has the feature, device 99 is one line naming it.
    assert_one_line_error(&attempt("vulkan:99", None), "vulkan:99");
    assert_one_line_error(&attempt("cuda:99", None), "cuda:99");
    // Where the caller says this machine has no CUDA device (`PN_TEST_NO_CUDA`; CI runs this
    // test with a `--features cuda` pn-host on its GPU-less machine), `cuda` itself is one line:
    // the probe's, or the missing feature's.
    if std::env::var_os("PN_TEST_NO_CUDA").is_some() {
        assert_one_line_error(&attempt("cuda", None), "cuda");
    }
    // No Vulkan driver at all: the loader finds no ICD.
    let absent = attempt("vulkan", Some(("VK_ICD_FILENAMES", "/nonexistent.json")));
    assert_one_line_error(&absent, "vulkan");
    let message = stderr(&absent);
    assert!(
        message.contains("--features vulkan") || message.contains("no Vulkan device"),
        "{message}"
    );
    // The `run` command probes too.
    let out = run_host(
        tmp.path(),
        &[
            "--plugin-dir",
            &plugins,
            "--device",
            "vulkan:99",
            "run",
            "--out",
            "r",
        ],
    );
    assert_one_line_error(&out, "vulkan:99");
    assert!(!tmp.path().join("r").exists());
}
