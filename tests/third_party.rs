//! Plugins built outside the workspace, as a third party would: the example strategy loads
//! into the already-built pn-host and its formula decides the result; a plugin built against
//! another pn-plugin-api version is refused by name; a plugin that panics or misuses tensor
//! operations fails its run with a message instead of killing the process.

use std::path::Path;

use pn_tests::{assert_one_line_error, build_external, plugin, root, run_host, stderr};

fn api() -> std::path::PathBuf {
    root().join("plugin-api")
}

/// Runs `strategy` from `so` on a short teacher-student workload; returns the record.
fn run_strategy(dir: &Path, so: &Path, strategy: &str) -> serde_json::Value {
    let plugins = root().join("plugins").display().to_string();
    let args = [
        "--plugin",
        &so.display().to_string(),
        "--plugin-dir",
        &plugins,
        "--quiet",
        "run",
        "--strategy",
        strategy,
        "--set",
        "train.epochs=20",
        "--set",
        "dataset.train=400",
        "--out",
        "out",
    ];
    let out = run_host(dir, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let job = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .flatten()
        .max_by_key(|e| e.file_name())
        .unwrap()
        .path();
    let run = std::fs::read_dir(&job)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap()
}

#[test]
fn example_plugin_loads_and_its_formula_decides_the_result() {
    let example = root().join("examples").join("cauchy_repulsion");
    let (dir, so) = build_external(&example, &api(), |_, text| text);
    let record = run_strategy(dir.path(), &so, "cauchy_repulsion");
    assert_eq!(record["status"], "completed");
    assert_eq!(record["phases"].as_array().unwrap().len(), 3);

    // The same plugin with a different kernel: the host is unchanged, the result is not.
    let (dir2, so2) = build_external(&example, &api(), |_, text| {
        text.replace("(d2 / s2 + 1.0).recip()", "(d2 / s2 + 1.0).recip().sqrt()")
    });
    let changed = run_strategy(dir2.path(), &so2, "cauchy_repulsion");
    let loss = |r: &serde_json::Value| r["phases"][1]["final_train_loss"].as_f64().unwrap();
    assert_eq!(
        record["phases"][0]["final_train_loss"], changed["phases"][0]["final_train_loss"],
        "phase 1 has no penalty"
    );
    assert_ne!(
        loss(&record),
        loss(&changed),
        "phase 2 follows the plugin's formula"
    );
}

#[test]
fn new_writes_plugin_crates_that_build_load_and_train() {
    let tmp = tempfile::tempdir().unwrap();
    let mut built = vec![];
    for kind in ["strategy", "model", "dataset"] {
        let name = format!("my_{kind}");
        let out = run_host(tmp.path(), &["new", kind, &name]);
        assert!(out.status.success(), "{}", stderr(&out));
        let (dir, so) = build_external(&tmp.path().join(&name), &api(), |_, text| text);
        built.push((dir, so.display().to_string()));
    }
    let out = run_host(tmp.path(), &["new", "strategy", "my_strategy"]);
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));

    // The strategy joins the default comparison; the model trains on the data set.
    let plugins = root().join("plugins").display().to_string();
    let strategy = &built[0].1;
    let out = run_host(
        tmp.path(),
        &[
            "--plugin",
            strategy,
            "--plugin-dir",
            &plugins,
            "--seeds",
            "1",
            "-q",
            "--out",
            "cmp",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(tmp
        .path()
        .join("cmp/runs/teacher_student.my_strategy.seed0/run.json")
        .is_file());
    let (model, dataset) = (&built[1].1, &built[2].1);
    let args = [
        "--plugin",
        model,
        "--plugin",
        dataset,
        "--plugin-dir",
        &plugins,
        "-q",
        "run",
        "--model",
        "my_model",
        "--dataset",
        "my_dataset",
        "--set",
        "train.epochs=2",
        "--out",
        "one",
    ];
    let out = run_host(tmp.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn new_in_a_workspace_joins_it_and_its_plugins_build_together() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    std::fs::write(
        ws.join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = []\n",
    )
    .unwrap();
    for name in ["first_idea", "second_idea"] {
        let out = run_host(
            ws,
            &[
                "new",
                "strategy",
                name,
                "--api",
                &api().display().to_string(),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("a member of the workspace"), "{said}");
        let manifest = std::fs::read_to_string(ws.join(name).join("Cargo.toml")).unwrap();
        assert!(!manifest.contains("[workspace]"), "{manifest}");
    }
    let manifest = std::fs::read_to_string(ws.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(r#"members = ["first_idea", "second_idea"]"#),
        "{manifest}"
    );
    // One build of the workspace makes both libraries (dependencies as the workspace's).
    std::fs::copy(root().join("Cargo.lock"), ws.join("Cargo.lock")).unwrap();
    let target = root().join("target").join("external-plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .current_dir(ws)
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--release", "--quiet"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    for name in ["first_idea", "second_idea"] {
        let so = target.join("release").join(format!("lib{name}.so"));
        let out = run_host(ws, &["plugins", "check", &so.display().to_string()]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains(name));
    }
}

#[test]
fn a_data_set_built_against_the_0_1_1_contract_trains_without_a_test_split() {
    // Built before `Dataset::load_test` (0.1.4) was appended: the host calls its default.
    let tmp = tempfile::tempdir().unwrap();
    let old_api = root()
        .join("tests")
        .join("fixtures")
        .join("plugin_api_0_1_1");
    let old = old_api.display().to_string();
    let out = run_host(tmp.path(), &["new", "dataset", "old_data", "--api", &old]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_dir, so) = build_external(&tmp.path().join("old_data"), &old_api, |_, text| text);
    let plugins = root().join("plugins").display().to_string();
    let so = so.display().to_string();
    let args = [
        "--plugin",
        &so,
        "--plugin-dir",
        &plugins,
        "-q",
        "run",
        "--dataset",
        "old_data",
        "--model",
        "mlp",
        "--set",
        "train.epochs=2",
        "--out",
        "one",
    ];
    let out = run_host(tmp.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let record = std::fs::read_dir(tmp.path().join("one"))
        .unwrap()
        .flatten()
        .flat_map(|run| std::fs::read_dir(run.path()).unwrap().flatten())
        .map(|dir| std::fs::read_to_string(dir.path().join("run.json")).unwrap())
        .next()
        .expect("a run");
    assert!(record.contains("\"status\": \"completed\""), "{record}");
    assert!(record.contains("\"api_version\": \"0.1.1\""), "{record}");
    assert!(!record.contains("test_split"), "{record}");
}

#[test]
fn a_plugin_built_against_the_0_1_1_contract_loads_and_gives_the_same_result() {
    let example = root().join("examples").join("cauchy_repulsion");
    let old_api = root()
        .join("tests")
        .join("fixtures")
        .join("plugin_api_0_1_1");
    let (old_dir, old_so) = build_external(&example, &old_api, |_, text| text);
    let (new_dir, new_so) = build_external(&example, &api(), |_, text| text);
    let out = run_host(
        old_dir.path(),
        &["plugins", "check", &old_so.display().to_string()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0.1.1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let old = run_strategy(old_dir.path(), &old_so, "cauchy_repulsion");
    let new = run_strategy(new_dir.path(), &new_so, "cauchy_repulsion");
    assert_eq!(old["status"], "completed");
    assert_eq!(without_times(&old["phases"]), without_times(&new["phases"]));
}

/// `value` without its wall-time fields.
fn without_times(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => map
            .iter()
            .filter(|(k, _)| k.as_str() != "elapsed_s")
            .map(|(k, v)| (k.clone(), without_times(v)))
            .collect(),
        serde_json::Value::Array(items) => items.iter().map(without_times).collect(),
        other => other.clone(),
    }
}

#[test]
fn a_plugin_built_against_another_minor_or_a_newer_patch_is_refused() {
    let current: Vec<u32> = env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|n| n.parse().unwrap())
        .collect();
    let (major, minor, patch) = (current[0], current[1], current[2]);
    for version in [
        format!("{major}.{}.0", minor + 1),
        format!("{major}.{minor}.{}", patch + 1),
    ] {
        refused(&version);
    }
}

fn refused(version: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let api_copy = tmp.path().join("plugin-api");
    std::fs::create_dir_all(api_copy.join("src")).unwrap();
    for file in std::fs::read_dir(api().join("src")).unwrap().flatten() {
        std::fs::copy(file.path(), api_copy.join("src").join(file.file_name())).unwrap();
    }
    // The contract's manifest stands on its own: only its version changes.
    let manifest = std::fs::read_to_string(api().join("Cargo.toml")).unwrap();
    let current = format!("version = \"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(manifest.contains(&current), "{manifest}");
    let manifest = manifest.replacen(&current, &format!("version = \"{version}\""), 1);
    std::fs::write(api_copy.join("Cargo.toml"), manifest).unwrap();
    let (_dir, so) = build_external(
        &root().join("examples").join("cauchy_repulsion"),
        &api_copy,
        |_, text| text,
    );
    let out = run_host(tmp.path(), &["plugins", "check", &so.display().to_string()]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "built against pn-plugin-api {version}, but this pn-host uses {}",
            env!("CARGO_PKG_VERSION")
        )),
        "{err}"
    );
}

#[test]
fn failures_inside_plugins_fail_the_run_not_the_process() {
    let (dir, so) = faulty_plugin();
    let plugins = root().join("plugins").display().to_string();
    for (fail, message) in [
        (
            "panic",
            "faulty panicked in objective: faulty strategy exploded",
        ),
        ("bad_shapes", "tensor operation `matmul` failed"),
        ("error", "faulty: faulty strategy refused"),
        (
            "bad_lr",
            "strategy lr_factor must be finite and ≥ 0, got NaN",
        ),
        (
            "bad_result",
            "strategy phase_result: a flat parameter vector has 1 values",
        ),
        (
            "abort",
            "the working process was killed by signal 6 (a crash in a plugin's native code, or out of memory); no result was written",
        ),
        (
            "exit",
            "the working process exited with status 0 before pn-host finished",
        ),
        (
            "hang",
            "timed out: the run took longer than its limit of 1 s (train.timeout)",
        ),
    ] {
        let set = format!("strategy.fail={fail:?}");
        let args = [
            "--plugin",
            &so.display().to_string(),
            "--plugin-dir",
            &plugins,
            "run",
            "--strategy",
            "faulty",
            "--set",
            &set,
            "--set",
            "train.epochs=1",
            "--set",
            "train.timeout=1",
            "--out",
            "out",
        ];
        let out = run_host(dir.path(), &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{fail}: {err}");
        assert!(err.contains(message), "{fail}: {err}");
        assert!(!err.contains("RUST_BACKTRACE"), "{fail}: {err}");
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error")).count(),
            1,
            "{fail}: {err}"
        );
    }
    // The healthy plugins of the same host still load and run afterwards.
    assert!(plugin("baseline").is_file());
}

#[test]
fn a_plugin_that_crashes_its_worker_fails_that_run_and_the_suite_goes_on() {
    let (dir, so) = faulty_plugin();
    faulty_suite(dir.path(), "abort");
    let plugins = root().join("plugins").display().to_string();
    let so = so.display().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "--plugin",
            &so,
            "--plugin-dir",
            &plugins,
            "suite",
            "run",
            "suite.toml",
            "--out",
            "out",
            "--jobs",
            "1",
        ];
        args.extend(extra);
        run_host(dir.path(), &args)
    };
    let out = run(&[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("RUST_BACKTRACE"), "{err}");
    let status = |id: &str| -> serde_json::Value {
        let path = dir.path().join("out/runs").join(id).join("run.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    for seed in [0, 1] {
        let failed = status(&format!("student.faulty.seed{seed}"));
        assert_eq!(failed["status"], "failed");
        let message = failed["message"].as_str().unwrap();
        assert!(message.contains("worker process died"), "{message}");
        assert!(message.contains("signal 6"), "{message}");
        assert_eq!(
            status(&format!("student.baseline.seed{seed}"))["status"],
            "completed"
        );
    }
    let summary = std::fs::read_to_string(dir.path().join("out/summary.csv")).unwrap();
    assert!(
        summary.contains("student,per_phase,faulty,2,0,0,2,0"),
        "{summary}"
    );

    // A rerun leaves failed runs alone unless asked to retry them.
    let out = run(&[]);
    assert!(stderr(&out).contains("0 runs to do"), "{}", stderr(&out));
    let out = run(&["--retry-failed"]);
    assert!(stderr(&out).contains("2 runs to do"), "{}", stderr(&out));
}

/// The faulty-plugin fixture, built against this checkout's contract.
fn faulty_plugin() -> (tempfile::TempDir, std::path::PathBuf) {
    let fixture = root().join("tests").join("fixtures").join("faulty_plugin");
    build_external(&fixture, &api(), |_, text| text)
}

/// Arguments that run `suite.toml` with plugin `so` into `out`, one run at a time, each limited
/// to `timeout` seconds.
fn hang_suite_args(so: &Path, out: &str, timeout: &str) -> Vec<String> {
    let plugins = root().join("plugins").display().to_string();
    let so = so.display().to_string();
    [
        "--plugin",
        &so,
        "--plugin-dir",
        &plugins,
        "-q",
        "suite",
        "run",
        "suite.toml",
        "--out",
        out,
        "--jobs",
        "1",
        "--timeout",
        timeout,
    ]
    .map(String::from)
    .to_vec()
}

/// The tiny suite with `faulty` (failing as `fail` says) in place of `full_persistent`, two
/// seeds of 5 epochs, written to `dir/suite.toml`.
fn faulty_suite(dir: &Path, fail: &str) {
    let suite = pn_tests::TINY_SUITE
        .replace("seeds = 4", "seeds = 2")
        .replace("epochs = 250", "epochs = 5")
        .replace(
            "[strategies.full_persistent]\nconfig = { phases = 2 }",
            &format!("[strategies.faulty]\nconfig = {{ fail = {fail:?} }}"),
        );
    std::fs::write(dir.join("suite.toml"), suite).unwrap();
}

#[test]
fn a_crash_while_a_suite_file_is_checked_is_one_line_and_no_run_starts() {
    let (dir, so) = faulty_plugin();
    faulty_suite(dir.path(), "abort_in_new");
    let plugins = root().join("plugins").display().to_string();
    let so = so.display().to_string();
    let args = [
        "--plugin",
        &so,
        "--plugin-dir",
        &plugins,
        "suite",
        "run",
        "suite.toml",
        "--out",
        "out",
    ];
    let out = run_host(dir.path(), &args);
    assert_one_line_error(&out, "the working process was killed by signal 6");
    assert!(
        stderr(&out).contains("finished runs are kept"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("out").join("runs").exists());
}

#[test]
fn a_hanging_run_times_out_and_printed_lines_cannot_pass_for_results() {
    let (dir, so) = faulty_plugin();
    let run = |out: &str| {
        let args = hang_suite_args(&so, out, "2");
        run_host(
            dir.path(),
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    };
    faulty_suite(dir.path(), "hang");
    let started = std::time::Instant::now();
    let out = run("hang");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let record = |suite: &str, id: &str| -> serde_json::Value {
        let path = dir
            .path()
            .join(suite)
            .join("runs")
            .join(id)
            .join("run.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    for seed in [0, 1] {
        let hung = record("hang", &format!("student.faulty.seed{seed}"));
        assert_eq!(hung["status"], "failed");
        let message = hung["message"].as_str().unwrap();
        assert!(message.contains("timed out"), "{message}");
        let id = format!("student.baseline.seed{seed}");
        assert_eq!(record("hang", &id)["status"], "completed");
    }
    assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());

    // a plugin printing an event-shaped line on stdout: the line is a log line, not a result
    faulty_suite(dir.path(), "print_events");
    let out = run("print");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("error: spoofed"), "{err}");
    for seed in [0, 1] {
        let id = format!("student.faulty.seed{seed}");
        assert_eq!(record("print", &id)["status"], "completed");
    }
}

#[test]
fn a_run_whose_worker_is_terminated_stays_unfinished_not_failed() {
    // as when `scancel` or Ctrl-C stops a suite: the run must run again on resume
    let (dir, so) = faulty_plugin();
    faulty_suite(dir.path(), "hang");
    let out_dir = dir.path().join("terminated").display().to_string();
    let args = hang_suite_args(&so, &out_dir, "5");
    let suite = std::process::Command::new(pn_tests::pn_host())
        .current_dir(dir.path())
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // the baseline runs come first (ids are sorted); then the worker hangs in faulty.seed0
    let last_baseline = Path::new(&out_dir).join("runs/student.baseline.seed1/run.json");
    let started = std::time::Instant::now();
    while !last_baseline.is_file() {
        assert!(
            started.elapsed().as_secs() < 60,
            "the baseline runs never finished"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let worker = format!("suite worker {out_dir}");
    let killed = std::process::Command::new("pkill")
        .args(["-TERM", "-f", &worker])
        .status()
        .unwrap();
    assert!(killed.success(), "a worker was running");
    let result = suite.wait_with_output().unwrap();
    let err = stderr(&result);
    assert_eq!(result.status.code(), Some(1), "{err}");
    assert!(err.contains("student.faulty.seed0: interrupted"), "{err}");
    let runs = Path::new(&out_dir).join("runs");
    assert!(
        !runs.join("student.faulty.seed0").exists(),
        "no record of the interrupted run"
    );
    let timed_out = std::fs::read_to_string(runs.join("student.faulty.seed1/run.json")).unwrap();
    assert!(timed_out.contains("timed out"), "{timed_out}");
}

#[test]
fn plugins_test_passes_every_plugin_here_and_names_the_check_a_faulty_one_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--plugin-dir".to_string(),
        root().join("plugins").display().to_string(),
    ];
    args.extend(["plugins".into(), "test".into()]);
    let files = pn_host::plugin::registry::plugins_in(&root().join("plugins"));
    assert!(files.len() >= 20, "{files:?}");
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_host(tmp.path(), &args);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}{}", stderr(&out));
    assert!(!report.contains("FAIL"), "{report}");
    for line in [
        "ok   strategy sam: the same seed gives the same losses",
        "ok   strategy full_persistent: trains the check workload with finite losses",
        "ok   strategy full_persistent: its objective's gradient agrees with finite differences",
        "ok   strategy sam: its objective's gradient agrees with finite differences",
        "ok   model lenet5: its full config builds it again unchanged",
        "ok   model resnet: the task loss's gradient agrees with finite differences",
        "ok   model toy2d: trains two steps on random inputs with finite losses",
        "ok   data set teacher_student: loads with its defaults",
    ] {
        assert!(report.contains(line), "`{line}` missing in:\n{report}");
    }

    let (_dir, so) = faulty_plugin();
    let plugins = root().join("plugins").display().to_string();
    let so = so.display().to_string();
    let out = run_host(
        tmp.path(),
        &["--plugin-dir", &plugins, "plugins", "test", &so],
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let failed: Vec<&str> = report.lines().filter(|l| l.contains("FAIL")).collect();
    assert_eq!(failed.len(), 2, "{report}");
    let fails = |line: &str| failed.iter().any(|l| l.contains(line));
    assert!(
        fails("FAIL strategy faulty: the same seed gives the same losses: epoch 1"),
        "{report}"
    );
    // ‖θ‖² in the value, not in the gradient: caught at the first checked step
    assert!(
        fails("FAIL strategy faulty_gradient: its objective's gradient agrees with finite differences: phase 1 step 2: directional derivative"),
        "{report}"
    );
    assert!(
        report.contains(
            "ok   strategy faulty: its objective's gradient agrees with finite differences"
        ),
        "{report}"
    );
    assert!(
        stderr(&out).contains("error: 2 of 10 checks failed"),
        "{}",
        stderr(&out)
    );
}
