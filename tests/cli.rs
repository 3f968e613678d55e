//! The `pn-host` command line as a user meets it: the main job, and every user error reported
//! on one line with a non-zero exit and no panic trace.

use std::path::Path;

use pn_tests::{assert_one_line_error, plugin, root, run_host, stderr};

fn workspace_plugin_dir() -> String {
    root().join("plugins").display().to_string()
}

#[test]
fn plugin_alone_runs_the_comparison_against_baseline() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = run_host(
        &root(),
        &[
            "--plugin",
            "plugins/partial_persistent.so",
            "--seeds",
            "1",
            "--quiet",
            "--out",
            &out_dir.path().display().to_string(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout.contains("baseline") && stdout.contains("partial_persistent"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("reinit"),
        "only the given plugin's strategies run: {stdout}"
    );
    let run = out_dir
        .path()
        .join("runs/teacher_student.partial_persistent.seed0");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(record["status"], "completed");
    assert_eq!(record["phases"].as_array().unwrap().len(), 3);
    assert_eq!(record["plugins"][0]["sha256"].as_str().unwrap().len(), 64);
    assert!(run.join("kept.safetensors").is_file());
    for file in [
        "summary.csv",
        "report.md",
        "plots/teacher_student-curves.png",
    ] {
        assert!(out_dir.path().join(file).is_file(), "{file} missing");
    }
}

#[test]
fn plugin_alone_compares_every_strategy_it_provides_even_outside_the_default_suite() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = run_host(
        &root(),
        &[
            "--plugin",
            "plugins/swa.so",
            "--seeds",
            "1",
            "--quiet",
            "--out",
            &out_dir.path().display().to_string(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let runs = out_dir.path().join("runs");
    assert!(runs.join("teacher_student.swa.seed0/run.json").is_file());
    assert!(runs
        .join("teacher_student.baseline.seed0/run.json")
        .is_file());
    assert_eq!(
        std::fs::read_dir(&runs).unwrap().count(),
        2,
        "swa and baseline only"
    );
    // The summary counts what the steps cost: a forward and a backward pass each.
    let summary = std::fs::read_to_string(out_dir.path().join("summary.csv")).unwrap();
    let rows: Vec<Vec<&str>> = summary.lines().map(|l| l.split(',').collect()).collect();
    let column = |name: &str| rows[0].iter().position(|h| *h == name).unwrap();
    for row in &rows[1..] {
        let steps: f64 = row[column("steps")].parse().unwrap();
        let passes: f64 = row[column("passes")].parse().unwrap();
        assert_eq!(passes, 2.0 * steps, "{summary}");
    }

    let out = run_host(
        &root(),
        &[
            "--plugin",
            "plugins/mlp.so",
            "--out",
            &out_dir.path().display().to_string(),
        ],
    );
    assert_one_line_error(
        &out,
        "plugins/mlp.so provides no strategy to compare (only model `mlp`)",
    );
}

#[test]
fn bench_times_the_strategies_it_is_given_beside_the_direct_network() {
    let out = run_host(
        &root(),
        &[
            "bench",
            "--steps",
            "2",
            "--only",
            "teacher",
            "--strategies",
            "baseline,sam,ema",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert!(
        header.ends_with(&["direct", "baseline", "sam", "ema", "vs", "direct"]),
        "{stdout}"
    );
    let row: Vec<f64> = lines[1]
        .split_whitespace()
        .rev()
        .skip(1)
        .take(4)
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(row.iter().all(|ms| *ms > 0.0), "{stdout}");
    // A direct step keeps everything on the device: no read waits for it.
    let reads = lines
        .iter()
        .find_map(|l| l.split_once("reads from the device per step: "))
        .map(|(_, r)| r)
        .unwrap_or_else(|| panic!("no read counts: {stdout}"));
    assert!(reads.starts_with("baseline 0, sam "), "{stdout}");
    let out = run_host(&root(), &["bench", "--only", "LeNet"]);
    assert_one_line_error(&out, "--only `LeNet` matches no workload: teacher-student");
}

/// Writes an executable stand-in for a Python with torch, a shell script running `body`.
fn fake_python(dir: &Path, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("python");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn bench_times_the_pytorch_reference_in_turn_and_prints_its_ratio() {
    let tmp = tempfile::tempdir().unwrap();
    let python = fake_python(
        tmp.path(),
        r#"echo "ready torch fake, 1 threads"
n=0
while read -r kind rest; do
  case "$kind" in
    setup) echo "ok $n"; n=$((n+1)) ;;
    time) sleep 0.05; echo 50 ;;
  esac
done"#,
    );
    let args = [
        "bench",
        "--steps",
        "2",
        "--only",
        "teacher",
        "--pytorch",
        &python,
    ];
    let out = run_host(
        &root(),
        &[&args[..], &["--strategies", "baseline,reinit"]].concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0], "PyTorch reference: torch fake, 1 threads",
        "{stdout}"
    );
    let header: Vec<&str> = lines[1].split_whitespace().collect();
    assert!(
        header.ends_with(&[
            "baseline",
            "PyTorch",
            "PyTorch/pn",
            "reinit",
            "PyTorch",
            "PyTorch/pn",
            "vs",
            "direct"
        ]),
        "{stdout}"
    );
    // Each reference block of two steps took ≥ 50 ms: far slower than pn's student steps, so
    // the ratio is above 1; the reference has no `reinit`, which shows as "-".
    let row: Vec<&str> = lines[2].split_whitespace().collect();
    let cells = &row[row.len() - 7..row.len() - 1];
    let (pn, torch, ratio): (f64, f64, f64) = (
        cells[0].parse().unwrap(),
        cells[1].parse().unwrap(),
        cells[2].parse().unwrap(),
    );
    assert!(torch >= 25.0 && ratio > 1.0, "{stdout}");
    assert!((ratio - torch / pn).abs() < 0.01 * ratio, "{stdout}");
    assert_eq!(&cells[4..6], ["-", "-"], "{stdout}");

    let broken = fake_python(
        tmp.path(),
        "echo 'ModuleNotFoundError: no torch' >&2; exit 1",
    );
    let out = run_host(
        &root(),
        &["bench", "--only", "teacher", "--pytorch", &broken],
    );
    assert_one_line_error(&out, "stopped: ModuleNotFoundError: no torch");
}

#[test]
fn a_truncated_plugin_is_a_one_line_error_not_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(plugin("baseline")).unwrap();
    let dir = tmp.path().join("dir");
    std::fs::create_dir(&dir).unwrap();
    for keep in [64, 5_000, bytes.len() / 2, bytes.len() - 100] {
        std::fs::write(tmp.path().join("t.so"), &bytes[..keep]).unwrap();
        let out = run_host(tmp.path(), &["plugins", "check", "t.so"]);
        assert_one_line_error(&out, "the file is truncated");
        // Merely sitting in a plugin directory: skipped with a warning.
        std::fs::write(dir.join("t.so"), &bytes[..keep]).unwrap();
        let out = run_host(tmp.path(), &["--plugin-dir", "dir", "plugins", "list"]);
        assert!(
            out.status.code().is_some(),
            "killed by a signal: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains("truncated"), "{}", stderr(&out));
    }
}

#[test]
fn plugins_check_reports_what_a_file_provides() {
    let out = run_host(
        &root(),
        &["plugins", "check", &plugin("mlp").display().to_string()],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("model") && stdout.contains("mlp") && stdout.contains("pn-plugin-api 0.1"),
        "{stdout}"
    );
}

#[test]
fn missing_path_directory_and_non_libraries_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().display().to_string();
    let out = run_host(tmp.path(), &["plugins", "check", "nope.so"]);
    assert_one_line_error(&out, "plugin file not found: nope.so");
    let out = run_host(tmp.path(), &["plugins", "check", &dir]);
    assert_one_line_error(&out, "is a directory");
    std::fs::write(tmp.path().join("fake.so"), "not a library").unwrap();
    let out = run_host(tmp.path(), &["plugins", "check", "fake.so"]);
    assert_one_line_error(&out, "fake.so is not a shared library");
}

#[test]
fn a_shared_library_that_is_not_a_plugin_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("lib.c"),
        "int answer(void) { return 42; }\n",
    )
    .unwrap();
    let status = std::process::Command::new("cc")
        .current_dir(tmp.path())
        .args(["-shared", "-fPIC", "-o", "libanswer.so", "lib.c"])
        .status()
        .unwrap();
    assert!(status.success());
    let out = run_host(tmp.path(), &["plugins", "check", "libanswer.so"]);
    assert_one_line_error(&out, "not a pn plugin");
}

#[test]
fn two_plugins_with_the_same_component_name_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(plugin("baseline"), tmp.path().join("baseline_copy.so")).unwrap();
    let out = run_host(
        tmp.path(),
        &[
            "--plugin",
            &plugin("baseline").display().to_string(),
            "--plugin",
            "baseline_copy.so",
            "plugins",
            "list",
        ],
    );
    assert_one_line_error(&out, "strategy `baseline` is provided by both");
}

#[test]
fn unknown_names_and_bad_config_values_are_one_line_errors() {
    let dir = workspace_plugin_dir();
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().display().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec!["--plugin-dir", &dir, "run", "--out", &out_dir];
        args.extend_from_slice(extra);
        run_host(tmp.path(), &args)
    };
    assert_one_line_error(
        &run(&["--strategy", "fancy"]),
        "unknown strategy `fancy`; available:",
    );
    assert_one_line_error(
        &run(&["--model", "resnet9000"]),
        "unknown model `resnet9000`",
    );
    assert_one_line_error(
        &run(&["--dataset", "imagenet"]),
        "unknown data set `imagenet`",
    );
    assert_one_line_error(
        &run(&[
            "--strategy",
            "full_persistent",
            "--set",
            "strategy.lambda=\"big\"",
        ]),
        "config field `lambda`: invalid type: string \"big\", expected f64",
    );
    assert_one_line_error(
        &run(&[
            "--strategy",
            "full_persistent",
            "--set",
            "strategy.lamda=1.0",
        ]),
        "unknown config key `lamda` for strategy `full_persistent` (did you mean `lambda`?",
    );
    assert_one_line_error(
        &run(&[
            "--strategy",
            "full_persistent",
            "--set",
            "strategy.lambda=-1.0",
        ]),
        "`lambda` must be > 0",
    );
    // A config mistake leaves no run folder behind.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn a_config_file_typo_names_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("run.toml");
    std::fs::write(
        &file,
        "seed = 1\n[strategy]\nname = \"baseline\"\n[modle]\nname = \"mlp\"\n",
    )
    .unwrap();
    let out = run_host(
        tmp.path(),
        &[
            "--plugin-dir",
            &workspace_plugin_dir(),
            "run",
            "--config",
            "run.toml",
        ],
    );
    assert_one_line_error(&out, "run.toml, line 4: unknown field `modle`");
}

#[test]
fn a_diverging_run_ends_with_a_message_and_its_record() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "--plugin-dir",
        &workspace_plugin_dir(),
        "--quiet",
        "run",
        "--out",
        "out",
        "--set",
        "train.optimizer=\"sgd\"",
        "--set",
        "train.lr=1e6",
        "--set",
        "train.epochs=3",
    ];
    let out = run_host(tmp.path(), &args);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("diverged") && err.contains("smaller learning rate"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let job = std::fs::read_dir(tmp.path().join("out"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let record =
        std::fs::read_to_string(job.join("baseline-mlp-teacher_student-seed0/run.json")).unwrap();
    assert!(record.contains("\"status\": \"diverged\""), "{record}");
}

#[test]
fn parameters_that_become_nan_end_the_run_as_diverged_and_nan_settings_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = workspace_plugin_dir();
    let run = |set: &str| {
        let args = [
            "--plugin-dir",
            &dir,
            "--quiet",
            "run",
            "--out",
            "out",
            "--set",
            "train.epochs=2",
            "--set",
            set,
        ];
        run_host(tmp.path(), &args)
    };
    // ReLU hides NaN weights in the loss; the phase's end check does not.
    let out = run("train.weight_decay=1e39");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("diverged: parameters became NaN or infinite in phase 1"),
        "{err}"
    );
    assert_one_line_error(
        &run("strategy.lambda=nan"),
        "--set strategy.lambda: `nan` is not a finite number",
    );
    let file = "seed = 1\n[strategy]\nname = \"baseline\"\n[model]\nname = \"mlp\"\n[dataset]\nname = \"teacher_student\"\n[train]\nweight_decay = nan\n";
    std::fs::write(tmp.path().join("nan.toml"), file).unwrap();
    let out = run_host(
        tmp.path(),
        &[
            "--plugin-dir",
            &dir,
            "run",
            "--config",
            "nan.toml",
            "--out",
            "out",
        ],
    );
    assert_one_line_error(
        &out,
        "train.weight_decay must be a finite number ≥ 0, got NaN",
    );
}

#[test]
fn a_missing_or_corrupt_mnist_directory_is_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("mnist");
    std::fs::create_dir(&data).unwrap();
    let run = |dir: &Path| {
        let set = format!("dataset.dir={:?}", dir.display().to_string());
        run_host(
            tmp.path(),
            &[
                "--plugin-dir",
                &workspace_plugin_dir(),
                "run",
                "--dataset",
                "mnist",
                "--set",
                &set,
                "--set",
                "dataset.split_test=2",
                "--set",
                "model.output=\"linear\"",
                // One held-out example cannot be divided for selection and reporting.
                "--set",
                "train.holdout=0",
                "--out",
                "out",
            ],
        )
    };
    assert_one_line_error(&run(&tmp.path().join("absent")), "data directory not found");
    assert_one_line_error(&run(&data), "missing");
    // Header says 3 images of 2x2, but only 11 bytes of pixels follow.
    let mut images = vec![0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2];
    images.extend([0u8; 11]);
    std::fs::write(data.join("t10k-images-idx3-ubyte"), &images).unwrap();
    std::fs::write(
        data.join("t10k-labels-idx1-ubyte"),
        [0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3],
    )
    .unwrap();
    assert_one_line_error(&run(&data), "truncated file");
    // 3 images of 0x0 pixels: a well-formed file that holds nothing to train on
    std::fs::write(
        data.join("t10k-images-idx3-ubyte"),
        [0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0],
    )
    .unwrap();
    assert_one_line_error(&run(&data), "3 images of 0×0 pixels");
    images.push(0);
    std::fs::write(data.join("t10k-images-idx3-ubyte"), &images).unwrap();
    let out = run(&data);
    assert!(
        out.status.success(),
        "a well-formed tiny MNIST trains: {}",
        stderr(&out)
    );
    // a named model starts from its own defaults (mlp: a linear output layer), not from the
    // embedded workload's one-output mlp
    let set = format!("dataset.dir={:?}", data.display().to_string());
    let named = run_host(
        tmp.path(),
        &[
            "--plugin-dir",
            &workspace_plugin_dir(),
            "run",
            "--model",
            "mlp",
            "--dataset",
            "mnist",
            "--set",
            &set,
            "--set",
            "dataset.split_test=2",
            "--set",
            "train.holdout=0",
            "--out",
            "out",
        ],
    );
    assert!(named.status.success(), "{}", stderr(&named));
}

#[test]
fn plugin_log_lines_reach_the_host_with_verbose() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "--plugin-dir",
        &workspace_plugin_dir(),
        "-v",
        "run",
        "--strategy",
        "full_persistent",
        "--set",
        "train.epochs=5",
        "--out",
        "out",
    ];
    let out = run_host(tmp.path(), &args);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("debug: full_persistent: ‖θ1* − θ0‖² ="),
        "{err}"
    );
}

#[test]
fn plugin_path_environment_variable_is_searched() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(pn_tests::pn_host())
        .current_dir(tmp.path())
        .env("PN_PLUGIN_PATH", root().join("plugins"))
        .args(["plugins", "list"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout.contains("full_persistent") && stdout.contains("teacher_student"),
        "{stdout}"
    );
}

#[test]
fn an_unavailable_device_is_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_host(
        tmp.path(),
        &[
            "--plugin-dir",
            &workspace_plugin_dir(),
            "--device",
            "tpu",
            "run",
        ],
    );
    assert_one_line_error(&out, "unknown device `tpu`");
    let out = run_host(
        tmp.path(),
        &[
            "--plugin-dir",
            &workspace_plugin_dir(),
            "--device",
            "cuda:x",
            "run",
        ],
    );
    assert_one_line_error(&out, "cuda:x");
}

#[test]
fn a_two_parameter_run_records_its_trajectory_and_plots_its_surface() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = workspace_plugin_dir();
    let out = run_host(
        tmp.path(),
        &[
            "--plugin-dir",
            &dir,
            "-q",
            "run",
            "--strategy",
            "full_persistent",
            "--model",
            "mlp",
            "--set",
            "model.hidden=[1]",
            "--set",
            "model.output=\"sum\"",
            "--set",
            "model.bias=false",
            "--set",
            "dataset.d=2",
            "--set",
            "dataset.k=1",
            "--set",
            "train.record_every=10",
            "--set",
            "train.epochs=30",
            "--set",
            "train.batch_size=200",
            "--out",
            "out",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let run = Path::new(String::from_utf8_lossy(&out.stdout).trim())
        .parent()
        .unwrap()
        .to_path_buf();
    let run = tmp.path().join(run);
    let csv = std::fs::read_to_string(run.join("trajectory.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "phase,step,layer0.weight[0],layer0.weight[1]");
    // 3 phases × (steps 0, 10, …, 300): 31 points each.
    assert_eq!(lines.len(), 1 + 3 * 31, "{csv}");
    assert!(lines[1].starts_with("1,0,") && lines[32].starts_with("2,0,"));
    assert_eq!(
        lines[1].split_once(",0,").unwrap().1,
        lines[32].split_once(",0,").unwrap().1,
        "phase 2 starts at θ0"
    );
    let out = run_host(
        tmp.path(),
        &[
            "--plugin-dir",
            &dir,
            "surface",
            &run.display().to_string(),
            "--grid",
            "20",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::metadata(run.join("surface.png")).unwrap().len() > 5000);
    assert!(std::fs::read_to_string(run.join("surface.svg"))
        .unwrap()
        .contains("phase 3"));

    // Only small models record trajectories.
    let out = run_host(
        tmp.path(),
        &[
            "--plugin-dir",
            &dir,
            "run",
            "--model",
            "mlp",
            "--set",
            "model.hidden=[2000]",
            "--set",
            "train.record_every=1",
            "--set",
            "train.epochs=1",
            "--out",
            "out",
        ],
    );
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("trajectories are recorded for at most 10000"),
        "{err}"
    );
}

#[test]
fn a_snapshot_run_says_its_result_is_an_ensemble_and_saves_the_members() {
    let out_dir = tempfile::tempdir().unwrap();
    let dir = out_dir.path().display().to_string();
    let out = run_host(
        &root(),
        &[
            "run",
            "--strategy",
            "snapshot",
            "--set",
            "strategy.snapshots=3",
            "--set",
            "train.epochs=6",
            "--out",
            &dir,
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = format!("{stdout}{}", stderr(&out));
    assert!(said.contains("(ensemble of 3, 60 steps"), "{said}");
    let json = stdout.lines().last().unwrap().trim();
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(
        record["kept"],
        serde_json::json!(["snapshot.1", "snapshot.2", "snapshot.3"])
    );
    assert_eq!(record["phases"][0]["members"], 3);
}

#[test]
fn plugin_files_with_a_non_utf8_name_are_skipped_and_writable_ones_warned_about() {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plugins");
    std::fs::create_dir(&dir).unwrap();
    let odd = dir.join(std::ffi::OsStr::from_bytes(b"base\xffline.so"));
    std::fs::copy(pn_tests::plugin("baseline"), &odd).unwrap();
    let sam = dir.join("sam.so");
    std::fs::copy(pn_tests::plugin("sam"), &sam).unwrap();
    std::fs::set_permissions(&sam, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = run_host(tmp.path(), &["--plugin-dir", "plugins", "plugins", "list"]);
    let err = stderr(&out);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("is not valid UTF-8: rename it"), "{err}");
    assert!(!listed.contains("baseline"), "{listed}");
    assert!(listed.contains("sam"), "{listed}");
    assert!(
        err.contains("sam.so can be modified by every user (mode 666)"),
        "{err}"
    );
    std::fs::set_permissions(&sam, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run_host(tmp.path(), &["--plugin-dir", "plugins", "plugins", "list"]);
    assert!(
        !stderr(&out).contains("can be modified"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn set_reaches_training_settings_that_are_unset_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_host(
        tmp.path(),
        &[
            "--plugin-dir",
            &workspace_plugin_dir(),
            "run",
            "--set",
            "train.epochs=1",
            "--set",
            "train.augment={ crop_padding = 0, flip = true }",
            "--out",
            "out",
        ],
    );
    // accepted as a setting; the teacher-student inputs are not images, which the run says
    assert_one_line_error(&out, "train.augment needs image inputs");
}

#[test]
fn optimizer_constants_are_settings_recorded_in_every_run() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = workspace_plugin_dir();
    let train = |out: &str, set: &[&str]| -> serde_json::Value {
        let mut args = vec!["--plugin-dir", plugins.as_str()];
        args.extend(["-q", "run", "--set", "train.epochs=2", "--out", out]);
        for s in set {
            args.extend(["--set", s]);
        }
        let result = run_host(tmp.path(), &args);
        assert!(result.status.success(), "{}", stderr(&result));
        let json = String::from_utf8_lossy(&result.stdout).trim().to_string();
        serde_json::from_slice(&std::fs::read(tmp.path().join(json)).unwrap()).unwrap()
    };
    let loss = |r: &serde_json::Value| r["final_metrics"]["train_loss"].as_f64().unwrap();
    let default = train("adam", &[]);
    assert_eq!(default["train"]["epsilon"], 1e-8);
    assert_eq!(default["train"]["beta1"], 0.9);
    let burn = train("adam_eps", &["train.epsilon=1e-5"]);
    assert_eq!(burn["train"]["epsilon"], 1e-5);
    assert_ne!(loss(&default), loss(&burn));
    let sgd = ["train.optimizer=\"sgd\"", "train.lr=0.05"];
    let damped = train("sgd", &sgd);
    assert_eq!(damped["train"]["dampening"], 0.1);
    let undamped = train("sgd0", &[sgd[0], sgd[1], "train.dampening=0"]);
    let nesterov = train(
        "nesterov",
        &[sgd[0], sgd[1], "train.dampening=0", "train.nesterov=true"],
    );
    assert_ne!(loss(&damped), loss(&undamped));
    assert_ne!(loss(&undamped), loss(&nesterov));
    let bad = run_host(tmp.path(), &["run", "--set", "train.beta2=1"]);
    assert_one_line_error(&bad, "train.beta2 must be in [0, 1), got 1");
}
