//! Comparison suites end to end: mistakes in a suite file, a suite killed with SIGKILL and
//! resumed, and sharded runs (through the generated Slurm scripts) merging into one report.

use std::path::Path;
use std::process::{Command, Stdio};

use pn_tests::{
    array_task, assert_one_line_error, assert_suite_fails, finished, kill_after_runs,
    mnist_fixture, pn_host, root, run_host, stderr, summary_without_times, write_slurm,
    write_suite, TINY_SUITE,
};

fn plugin_dir() -> String {
    root().join("plugins").display().to_string()
}

fn suite_args<'a>(file: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["-q", "suite", "run", file, "--out", out];
    args.extend(extra);
    args
}

#[test]
fn a_killed_suite_resumes_and_shards_merge_into_the_same_report() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_suite(tmp.path(), TINY_SUITE);
    let path = |name: &str| tmp.path().join(name).display().to_string();
    let (killed, whole, sharded) = (path("killed"), path("whole"), path("sharded"));

    // Start the suite with one worker and SIGKILL it after a few runs have finished.
    let args = suite_args(&file, &killed, &["--jobs", "1"]);
    let before = kill_after_runs(&args, Path::new(&killed), 3);
    assert!(
        (3..12).contains(&before.len()),
        "killed mid-way: {} of 12 runs done",
        before.len()
    );

    // Rerun: finished runs are kept as they were, the rest is done, nothing is left half-written.
    let out = run_host(&root(), &suite_args(&file, &killed, &["--jobs", "2"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let after = finished(Path::new(&killed));
    assert_eq!(after.len(), 12);
    for (name, old) in &before {
        assert_eq!(&after[name], old, "{name} was redone");
    }
    for entry in std::fs::read_dir(Path::new(&killed).join("runs"))
        .unwrap()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "leftover temporary folder {name}");
        for f in [
            "config.json",
            "metrics.csv",
            "metrics.jsonl",
            "model.safetensors",
            "init.safetensors",
        ] {
            assert!(entry.path().join(f).is_file(), "{name}/{f} missing");
        }
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(entry.path().join("run.json")).unwrap()).unwrap();
        assert_eq!(record["status"], "completed", "{name}");
    }

    // The same suite uninterrupted.
    let out = run_host(&root(), &suite_args(&file, &whole, &["--jobs", "2"]));
    assert!(out.status.success(), "{}", stderr(&out));

    // And sharded three ways through the generated Slurm scripts, as array tasks would run it.
    let scripts = write_slurm(&file, Path::new(&sharded), 3);
    let array = std::fs::read_to_string(scripts.join("array.sbatch")).unwrap();
    assert!(array.contains("#SBATCH --array=1-3"), "{array}");
    let mut done = 0;
    for task in 1..=3 {
        array_task(&scripts, task);
        let now = finished(Path::new(&sharded)).len();
        assert_eq!(now - done, 4, "shard {task} ran its share only");
        done = now;
    }
    let out = Command::new("bash")
        .arg(scripts.join("report.sbatch"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let reference = summary_without_times(Path::new(&whole));
    assert_eq!(reference.len(), 1 + 2 * 2, "two budgets × two strategies");
    assert_eq!(summary_without_times(Path::new(&killed)), reference);
    assert_eq!(summary_without_times(Path::new(&sharded)), reference);
    let report = std::fs::read_to_string(Path::new(&whole).join("report.md")).unwrap();
    for plot in ["student-curves", "student-final", "performance-profile"] {
        assert!(
            report.contains(&format!("plots/{plot}.png")),
            "{plot} not in report"
        );
        for ext in ["png", "svg"] {
            let f = Path::new(&whole).join(format!("plots/{plot}.{ext}"));
            assert!(
                std::fs::metadata(&f).unwrap().len() > 1000,
                "{}",
                f.display()
            );
        }
    }
}

#[test]
fn suites_started_together_on_one_directory_all_complete_and_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_suite(tmp.path(), TINY_SUITE);
    let out = tmp.path().join("out").display().to_string();
    let children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(pn_host())
                .current_dir(root())
                .args(suite_args(&file, &out, &["--jobs", "1"]))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let result = child.wait_with_output().unwrap();
        assert!(result.status.success(), "{}", stderr(&result));
    }
    let runs = finished(Path::new(&out));
    assert_eq!(runs.len(), 12);
    for (name, (json, _)) in &runs {
        let record: serde_json::Value = serde_json::from_slice(json).unwrap();
        assert_eq!(record["status"], "completed", "{name}");
    }
}

#[test]
fn a_suite_whose_output_is_closed_still_runs_everything_and_reports() {
    // as in `pn-host suite run … 2>&1 | head -1`: both streams closed after the first line
    let tmp = tempfile::tempdir().unwrap();
    let file = write_suite(tmp.path(), TINY_SUITE);
    let out = tmp.path().join("out").display().to_string();
    let mut child = Command::new(pn_host())
        .current_dir(root())
        .args(["suite", "run", &file, "--out", &out, "--jobs", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(finished(Path::new(&out)).len(), 12);
    assert!(Path::new(&out).join("report.md").is_file());
}

#[test]
fn suite_report_reads_a_directory_without_plugins() {
    let tmp = tempfile::tempdir().unwrap();
    let small = TINY_SUITE
        .replace("seeds = 4", "seeds = [7, 9]")
        .replace("epochs = 250", "epochs = 20");
    let file = write_suite(tmp.path(), &small);
    let out_dir = tmp.path().join("out").display().to_string();
    let out = run_host(&root(), &suite_args(&file, &out_dir, &[]));
    assert!(out.status.success(), "{}", stderr(&out));
    let first = std::fs::read_to_string(tmp.path().join("out/summary.csv")).unwrap();
    std::fs::remove_file(tmp.path().join("out/summary.csv")).unwrap();
    // No plugins are needed to report: run it from an empty directory.
    let out = run_host(tmp.path(), &["suite", "report", &out_dir]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("at equal total steps"), "{stdout}");
    assert!(stdout.contains("full_persistent"), "{stdout}");
    let again = std::fs::read_to_string(tmp.path().join("out/summary.csv")).unwrap();
    assert_eq!(first, again);
    assert!(
        first.contains("student,equal_steps,baseline,2,2,0,0,0,160"),
        "{first}"
    );

    let out = run_host(tmp.path(), &["suite", "report", "nowhere"]);
    assert_one_line_error(&out, "not a suite directory");
}

#[test]
fn suite_file_mistakes_are_one_line_errors_naming_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &str); 12] = [
        (
            "[strategies.full_persistent]",
            "[strategies.full_persistent]\nname = \"full_persistant\"",
            "line 9: unknown strategy `full_persistant`",
        ),
        ("epochs = 250", "epochs = \"ten\"", "line 14"),
        ("seeds = 4", "seeds = 4\nseed = 1", "unknown field `seed`"),
        (
            "config = { phases = 2 }",
            "config = { phase = 2 }",
            "line 9: unknown config key `phase`",
        ),
        (
            "reference = \"baseline\"",
            "reference = \"plain\"",
            "line 3: reference `plain`",
        ),
        (
            "seeds = 4",
            "seeds = 4\n[plugins]\n\"baseline.so\" = \"0000\"",
            "line 6: plugin",
        ),
        ("seeds = 4", "seeds = [1, 1, 2]", "seed 1 is listed twice"),
        (
            "seeds = 4",
            "seeds = 100000000000",
            "`seeds` must be at most",
        ),
        (
            "name = \"tiny\"",
            "name = \"../../escape\"",
            "suite name `../../escape` may use only",
        ),
        (
            "config = { phases = 2 }",
            "config = { phases = 100000 }",
            "line 9: the strategy declares 100000 phases; it must be 1 to 1000",
        ),
        (
            "epochs = 250",
            "epochs = 4294967295",
            "train.epochs must be 1 to",
        ),
        (
            "seeds = 4",
            "seeds = 4\nzero_method = \"pratty\"",
            "unknown variant `pratty`, expected one of `wilcox`, `pratt`, `zsplit`",
        ),
    ];
    for (old, new, needle) in cases {
        assert!(TINY_SUITE.contains(old), "{old}");
        assert_suite_fails(tmp.path(), &TINY_SUITE.replacen(old, new, 1), needle);
    }
    assert!(
        !tmp.path().join("out").exists(),
        "nothing runs from a bad file"
    );
}

#[test]
fn every_suite_in_the_repository_parses_and_plans() {
    let names: Vec<String> = std::fs::read_dir(root().join("plugins"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".so")
                .map(String::from)
        })
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let registry = pn_tests::registry(&names);
    let mut checked = 0;
    for entry in std::fs::read_dir(root().join("suites")).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let origin = path.display().to_string();
            let suite = pn_host::suite::Suite::parse(&text, &origin, &registry)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                !suite
                    .plan(&pn_host::suite::cost::StepCosts::one_pass())
                    .runs
                    .is_empty(),
                "{origin}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 7, "{checked} suite files");
}

#[test]
fn a_data_set_that_cannot_load_stops_the_suite_once_before_any_run() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-dir");
    let text = TINY_SUITE.replace(
        r#"dataset = { name = "teacher_student", config = { d = 5, k = 5, train = 400, valid = 100 } }"#,
        &format!(r#"dataset = {{ name = "mnist", config = {{ dir = "{}" }} }}"#, missing.display()),
    );
    assert!(text.contains("mnist"));
    let file = write_suite(tmp.path(), &text);
    let out = run_host(
        tmp.path(),
        &[
            "--plugin-dir",
            &plugin_dir(),
            "suite",
            "run",
            &file,
            "--out",
            "out",
        ],
    );
    assert_one_line_error(
        &out,
        "workload `student`: data set `mnist`: data directory not found",
    );
    assert!(
        finished(&tmp.path().join("out")).is_empty(),
        "no run was recorded"
    );
}

/// The ids of the runs of shard `i` of `n`, from the plan in suite directory `dir`.
fn shard_ids(dir: &Path, (i, n): (usize, usize)) -> Vec<String> {
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("plan.json")).unwrap()).unwrap();
    let ids = plan["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string());
    pn_host::suite::shard(ids.collect(), (i, n))
}

/// Runs `suite report` on `dir`: (success, stdout).
fn report(dir: &Path) -> (bool, String) {
    let out = run_host(&root(), &["suite", "report", &dir.display().to_string()]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Asserts that the report of `dir` lacks exactly the runs of shard `i` of `n`, names that
/// shard only, and tells how to rerun it with `rerun`.
fn assert_missing_shard(dir: &Path, (i, n): (usize, usize), rerun: &str) {
    let (complete, stdout) = report(dir);
    assert!(!complete, "a partial report fails: {stdout}");
    let missing = shard_ids(dir, (i, n));
    assert!(!missing.is_empty());
    assert!(
        stdout.contains(&format!(
            "{} planned runs have no result yet.",
            missing.len()
        )),
        "{stdout}"
    );
    let expected = format!(
        "shard {i} of {n} ({} runs): {}",
        missing.len(),
        missing.join(", ")
    );
    assert!(stdout.contains(&expected), "`{expected}` not in:\n{stdout}");
    for other in (1..=n).filter(|&o| o != i) {
        assert!(!stdout.contains(&format!("shard {other} of")), "{stdout}");
    }
    assert!(
        stdout.contains(&format!("rerun the shard: {rerun}\n")),
        "{stdout}"
    );
    let markdown = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(markdown.contains("## Missing runs"), "{markdown}");
    for id in &missing {
        assert!(
            markdown.contains(&format!("`{id}`")),
            "{id} not in report.md"
        );
    }
}

#[test]
fn a_partial_report_names_the_missing_runs_their_shard_and_how_to_rerun_it() {
    let tmp = tempfile::tempdir().unwrap();
    let small = TINY_SUITE
        .replace("seeds = 4", "seeds = [3, 5, 8]")
        .replace("epochs = 250", "epochs = 10");
    let file = write_suite(tmp.path(), &small);

    // Through the Slurm scripts, with array task 2 of 3 never run.
    let slurm = tmp.path().join("slurm");
    let scripts = write_slurm(&file, &slurm, 3);
    array_task(&scripts, 1);
    array_task(&scripts, 3);
    assert_missing_shard(
        &slurm,
        (2, 3),
        &format!(
            "sbatch --array=2 {}",
            scripts.join("array.sbatch").display()
        ),
    );
    array_task(&scripts, 2);
    let (complete, stdout) = report(&slurm);
    assert!(complete, "{stdout}");
    assert!(!stdout.contains("no result yet"), "{stdout}");
    let markdown = std::fs::read_to_string(slurm.join("report.md")).unwrap();
    assert!(!markdown.contains("Missing runs"), "{markdown}");

    // Sharded by hand: the command the report gives reruns the missing shard.
    let manual = tmp.path().join("manual");
    let dir = manual.display().to_string();
    let out = run_host(&root(), &suite_args(&file, &dir, &["--shard", "1/2"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let rerun = format!("pn-host suite run {dir}/suite.toml --out {dir} --shard 2/2");
    assert_missing_shard(&manual, (2, 2), &rerun);
    let args: Vec<&str> = rerun.split(' ').skip(1).collect();
    let out = run_host(&root(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(report(&manual).0, "the rerun shard completes the suite");
    assert_eq!(
        summary_without_times(&manual),
        summary_without_times(&slurm)
    );
}

#[test]
fn suite_slurm_warns_when_no_node_of_the_partition_has_the_cpus_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_suite(tmp.path(), TINY_SUITE);
    // A stand-in for Slurm's `sinfo`: one line per node, partition (default starred) and CPUs.
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let sinfo = bin.join("sinfo");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let slurm = |lines: &str, extra: &[&str]| {
        std::fs::write(&sinfo, format!("#!/bin/sh\n{lines}\n")).unwrap();
        let mut perms = std::fs::metadata(&sinfo).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&sinfo, perms).unwrap();
        let out = Command::new(pn_host())
            .current_dir(root())
            .env("PATH", &path)
            .args(["suite", "slurm", &file, "--out"])
            .arg(tmp.path().join("out"))
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(tmp.path().join("out/slurm/array.sbatch").is_file());
        stderr(&out)
    };
    let nodes = "printf 'debug* 2\\ndebug* 2\\nbig 8\\n'";
    let warned = slurm(nodes, &[]);
    assert!(
        warned.contains("warning: --cpus-per-task 4 exceeds the CPUs of every node in partition `debug` (at most 2)"),
        "{warned}"
    );
    assert_eq!(warned.lines().count(), 1, "{warned}");
    assert_eq!(slurm(nodes, &["--cpus-per-task", "2"]), "");
    assert_eq!(slurm(nodes, &["--partition", "big"]), "");
    let warned = slurm(nodes, &["--partition", "big", "--cpus-per-task", "9"]);
    assert!(warned.contains("partition `big` (at most 8)"), "{warned}");
    // Without a usable answer from sinfo, no warning.
    assert_eq!(
        slurm("echo 'cannot reach the controller' >&2; exit 1", &[]),
        ""
    );
}

#[test]
fn a_suite_chooses_how_the_wilcoxon_test_treats_zero_differences() {
    let tmp = tempfile::tempdir().unwrap();
    let text = TINY_SUITE
        .replace("seeds = 4", "seeds = 3\nzero_method = \"pratt\"")
        .replace("epochs = 250", "epochs = 10");
    let file = write_suite(tmp.path(), &text);
    let out = run_host(
        tmp.path(),
        &[
            "--plugin-dir",
            &plugin_dir(),
            "-q",
            "suite",
            "run",
            &file,
            "--out",
            "out",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report = std::fs::read_to_string(tmp.path().join("out/report.md")).unwrap();
    assert!(
        report.contains("`zero_method = \"pratt\"`: seeds with a zero difference"),
        "{report}"
    );
    let plan = std::fs::read_to_string(tmp.path().join("out/plan.json")).unwrap();
    assert!(plan.contains("\"zero_method\": \"pratt\""), "{plan}");
}

#[test]
fn equal_budgets_are_equal_in_passes_when_a_step_costs_two() {
    let tmp = tempfile::tempdir().unwrap();
    let text = TINY_SUITE
        .replace("seeds = 4", "seeds = 2")
        .replace("epochs = 250", "epochs = 10")
        .replace(
            "[strategies.full_persistent]",
            "[strategies.sam]\n\n[strategies.full_persistent]",
        );
    let file = write_suite(tmp.path(), &text);
    let out_dir = tmp.path().join("out").display().to_string();
    let out = run_host(&root(), &suite_args(&file, &out_dir, &[]));
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = std::fs::read_to_string(tmp.path().join("out/summary.csv")).unwrap();
    let row = |budget: &str, strategy: &str| -> Vec<String> {
        let prefix = format!("student,{budget},{strategy},");
        let line = summary
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} row in\n{summary}"));
        line.split(',').map(String::from).collect()
    };
    // steps and passes are columns 8 and 9: 4 steps per epoch; a SAM step costs two passes of
    // each kind, so SAM (cost 2) and full_persistent (2 phases × 1) are the costliest runs
    // and baseline gets an equal-pass run of 20 epochs, SAM none.
    assert_eq!(row("per_phase", "sam")[8..10], ["40", "160"]);
    assert_eq!(row("per_phase", "full_persistent")[8..10], ["80", "160"]);
    assert_eq!(row("equal_steps", "baseline")[8..10], ["80", "160"]);
    // (the equal-budget table shows SAM's per-phase runs: it has no run of its own there)
    assert_eq!(row("equal_steps", "sam")[8..10], ["40", "160"]);
    let plan = std::fs::read_to_string(tmp.path().join("out/plan.json")).unwrap();
    assert!(!plan.contains("student.sam.equal_steps"), "{plan}");
    assert!(
        plan.contains("student.baseline.equal_steps.seed0"),
        "{plan}"
    );
    assert!(plan.contains("\"passes_per_step\": 2.0"), "{plan}");
    let report = std::fs::read_to_string(tmp.path().join("out/report.md")).unwrap();
    assert!(report.contains("At equal total passes"), "{report}");
    assert!(report.contains("`sam` (2)"), "{report}");
}

/// A workload whose data set has a test split (MNIST with `valid`: the test files) reports its
/// held-out metrics on that split: its tables' column says `test`, while a workload without one
/// in the same suite keeps `valid`, and `summary.csv` keeps its fixed column names.
#[test]
fn tables_name_the_test_split_where_a_workload_reports_on_one() {
    let tmp = tempfile::tempdir().unwrap();
    let digits = tmp.path().join("digits");
    mnist_fixture(&digits, 20, 10);
    let text = format!(
        "{}\n[workloads.digits]\nmodel = {{ name = \"mlp\", config = {{ hidden = [4] }} }}\n\
         dataset = {{ name = \"mnist\", config = {{ dir = \"{}\", valid = 4 }} }}\n\
         train = {{ optimizer = \"adam\", lr = 0.01, batch_size = 4, epochs = 2 }}\n",
        TINY_SUITE
            .replace("seeds = 4", "seeds = 2")
            .replace("epochs = 250", "epochs = 2"),
        digits.display()
    );
    let file = write_suite(tmp.path(), &text);
    let out_dir = tmp.path().join("out");
    let out = run_host(
        &root(),
        &suite_args(&file, &out_dir.display().to_string(), &[]),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let read = |name: &str| std::fs::read_to_string(out_dir.join(name)).unwrap();
    let runs = |w: &str| {
        finished(&out_dir)
            .into_iter()
            .filter(|(id, _)| id.starts_with(&format!("{w}.")))
            .map(|(_, (json, _))| String::from_utf8_lossy(&json).contains("\"test_split\": true"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        runs("digits"),
        [true; 6],
        "every digits run reports on test"
    );
    assert_eq!(runs("student"), [false; 6]);

    let (test, valid) = (
        "| final test loss or accuracy |",
        "| final valid loss or accuracy |",
    );
    let report = read("report.md");
    let (student, digits) = report
        .split_once("\n## digits\n")
        .map(|(a, b)| (a.split_once("\n## student\n").unwrap().1, b))
        .unwrap_or_else(|| panic!("student, then digits:\n{report}"));
    assert_eq!(digits.matches(test).count(), 2, "{digits}");
    assert!(!digits.contains(valid), "{digits}");
    assert_eq!(student.matches(valid).count(), 2, "{student}");
    assert!(!student.contains(test), "{student}");
    assert!(
        report.contains("On `digits`, the data set has a test split: strategies chose their phase on its held-out split, and the tables' `test` columns (`valid_*` in `summary.csv`) are measured on the test split."),
        "{report}"
    );
    assert!(read("report.html").contains("final test loss or accuracy"));
    let terminal = String::from_utf8_lossy(&out.stdout);
    for header in [
        "final test loss or accuracy",
        "final valid loss or accuracy",
    ] {
        assert_eq!(terminal.matches(header).count(), 2, "{terminal}");
    }
    // summary.csv: the same columns as any suite's, `valid_*` for both workloads.
    let summary = summary_without_times(&out_dir);
    assert_eq!(
        summary[0],
        summary_without_times(&root().join("docs/results/default"))[0]
    );
    assert!(summary.iter().any(|row| row[0] == "digits"));
}

/// The main job (`pn-host` with no arguments: the embedded default comparison, 160 runs) gives
/// the committed `docs/results/default/summary.csv` in every column but the wall times: a
/// change that moves a result must come with its rerun results.
#[test]
fn the_default_comparison_reproduces_its_committed_results() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_host(
        tmp.path(),
        &["--plugin-dir", &plugin_dir(), "-q", "--out", "default"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let fresh = summary_without_times(&tmp.path().join("default"));
    let committed = summary_without_times(&root().join("docs").join("results").join("default"));
    assert_eq!(fresh[0], committed[0], "the columns");
    for (f, c) in fresh.iter().zip(&committed) {
        assert_eq!(f, c, "a row of docs/results/default/summary.csv");
    }
    assert_eq!(fresh.len(), committed.len());
}
