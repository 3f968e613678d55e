//! Tuning with equal budgets end to end, on the README's example suite: the search finds the
//! known best region of a setting, every tuned strategy gets the same number of trials, the
//! final runs take the chosen settings, the report shows them with a sensitivity plot per
//! setting, a killed tuning suite resumes to the same report, shards and the generated Slurm
//! scripts run the trials and then the final runs, and mistakes are one-line errors.

use pn_tests::{
    array_task, assert_suite_fails, finished, kill_after_runs, root, run_host, stderr,
    summary_without_times, write_slurm, write_suite,
};
use serde_json::Value;
use std::path::Path;

/// The suite of the README's "Tuning in a suite file" section (the first toml block after it).
fn readme_suite() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split_once("### Tuning in a suite file")
        .expect("the README has a tuning section")
        .1;
    let block = section.split_once("```toml\n").unwrap().1;
    block.split_once("```").unwrap().0.to_string()
}

/// `suite run` arguments (the plugins of `plugins/` in the workspace root).
fn suite_args<'a>(file: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["-q", "suite", "run", file, "--out", out];
    args.extend(extra);
    args
}

fn run_suite(file: &str, out: &Path, extra: &[&str]) -> String {
    let out = out.display().to_string();
    let result = run_host(&root(), &suite_args(file, &out, extra));
    assert!(result.status.success(), "{}", stderr(&result));
    stderr(&result)
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

/// Each trial of `strategy` in `dir`: (its settings, its selection loss).
fn trials(dir: &Path, strategy: &str) -> Vec<(Value, f64)> {
    let mut out = vec![];
    for (name, _) in finished(dir) {
        if !name.starts_with(&format!("student.{strategy}.trial")) {
            continue;
        }
        let run = dir.join("runs").join(&name);
        let record = json(&run.join("run.json"));
        let selected = record["selected_phase"].as_u64().unwrap() as usize;
        let loss = record["phases"][selected]["final_select_loss"]
            .as_f64()
            .unwrap_or(f64::INFINITY);
        out.push((json(&run.join("config.json")), loss));
    }
    out
}

#[test]
fn tuning_finds_the_best_region_gives_equal_budgets_and_uses_the_chosen_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_suite(tmp.path(), &readme_suite());
    let out = tmp.path().join("out");
    run_suite(&file, &out, &["--jobs", "2"]);

    // Equal budgets: every strategy with a search space has its 6 trials (1 seed each), on
    // trial seeds only; the strategy without one has none.
    let plan = json(&out.join("plan.json"));
    let runs = plan["runs"].as_array().unwrap();
    let trial_runs = |s: &str| {
        runs.iter()
            .filter(|r| r["strategy"] == s && r["budget"] == "trial")
            .collect::<Vec<_>>()
    };
    for s in ["baseline", "weight_decay"] {
        assert_eq!(trial_runs(s).len(), 6, "{s}");
        assert_eq!(trials(&out, s).len(), 6, "{s}: trial folders");
        assert!(trial_runs(s)
            .iter()
            .all(|r| r["config"]["seed"] == 1_000_000));
    }
    assert!(trial_runs("reinit").is_empty());

    // The known best region: an L2 penalty (λ/2)‖θ‖² only pulls a realizable teacher-student
    // fit away from the teacher, so the selection loss grows with λ and the best λ is small.
    let wd = trials(&out, "weight_decay");
    let lambda = |c: &Value| c["strategy"]["config"]["lambda"].as_f64().unwrap();
    let (best_config, best_loss) = wd
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .cloned()
        .unwrap();
    assert!(
        lambda(&best_config) <= 1e-2,
        "chose λ = {}",
        lambda(&best_config)
    );
    let large: Vec<f64> = wd
        .iter()
        .filter(|(c, _)| lambda(c) >= 1.0)
        .map(|t| t.1)
        .collect();
    assert!(!large.is_empty(), "the trials cover λ ≥ 1");
    assert!(
        large.iter().all(|&l| l > best_loss),
        "{large:?} vs {best_loss}"
    );
    // The λs spread over the space (quasi-random, not clustered).
    let decades: std::collections::BTreeSet<i64> = wd
        .iter()
        .map(|(c, _)| lambda(c).log10().floor() as i64)
        .collect();
    assert!(decades.len() >= 5, "{decades:?}");

    // The final runs (both budgets) take the best trial's settings; reinit keeps its own.
    for id in [
        "student.weight_decay.seed0",
        "student.weight_decay.equal_steps.seed2",
    ] {
        let config = json(&out.join("runs").join(id).join("config.json"));
        assert_eq!(lambda(&config), lambda(&best_config), "{id}");
        assert_eq!(
            config["train"]["epochs"],
            best_config["train"]["epochs"].as_u64().unwrap()
                * if id.contains("equal") { 2 } else { 1 }
        );
    }
    let reinit = json(&out.join("runs/student.reinit.seed1/config.json"));
    assert_eq!(
        reinit["strategy"]["config"],
        serde_json::json!({ "phases": 2 })
    );

    // The report: the chosen settings per strategy and a sensitivity plot per setting.
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("### Tuning on student"), "{report}");
    let tuning = report.split_once("### Tuning on student").unwrap().1;
    let wd_row = tuning
        .lines()
        .find(|l| l.starts_with("| weight_decay | 6 | "))
        .unwrap_or_else(|| panic!("{tuning}"));
    assert!(
        wd_row.contains(&format!(
            "`lambda = {}`",
            best_config["strategy"]["config"]["lambda"]
        )),
        "{wd_row}"
    );
    assert!(tuning.lines().any(|l| l.starts_with("| baseline | 6 | ")));
    assert!(tuning
        .lines()
        .any(|l| l.starts_with("| reinit | 0 | — | configured settings (no search space)")));
    for plot in [
        "student-weight_decay-tuning-lambda",
        "student-baseline-tuning-train_lr",
        "student-baseline-tuning-train_optimizer",
    ] {
        assert!(report.contains(&format!("plots/{plot}.png")), "{plot}");
        for ext in ["png", "svg"] {
            let f = out.join(format!("plots/{plot}.{ext}"));
            assert!(
                std::fs::metadata(&f).unwrap().len() > 1000,
                "{}",
                f.display()
            );
        }
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Tuning on student"));
    assert!(
        html.contains("<figcaption>weight_decay on student: score against lambda</figcaption>"),
        "the sensitivity plot is inlined"
    );
    // tuning.csv: one row per trial, the chosen one marked.
    let csv = std::fs::read_to_string(out.join("tuning.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 12);
    let chosen: Vec<&str> = csv.lines().filter(|l| l.ends_with(",true")).collect();
    assert_eq!(chosen.len(), 2, "{csv}");
}

#[test]
fn a_killed_tuning_suite_resumes_and_shards_run_trials_then_final_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_suite(tmp.path(), &readme_suite());
    let (killed, whole, sharded) = (
        tmp.path().join("killed"),
        tmp.path().join("whole"),
        tmp.path().join("sharded"),
    );
    // 12 trials and 15 final runs.
    let total = 27;

    // SIGKILL the suite once a few runs have finished (trials among them).
    let killed_dir = killed.display().to_string();
    let before = kill_after_runs(
        &suite_args(&file, &killed_dir, &["--jobs", "1"]),
        &killed,
        5,
    );
    assert!(
        (5..total).contains(&before.len()),
        "{} of {total}",
        before.len()
    );

    // Resumed: the finished runs stay as they were, the rest runs, nothing is redone.
    run_suite(&file, &killed, &["--jobs", "2"]);
    let after = finished(&killed);
    assert_eq!(after.len(), total);
    for (name, old) in &before {
        assert_eq!(&after[name], old, "{name} was redone");
    }

    // Uninterrupted: the same trials (the same file gives the same plan) and the same report.
    run_suite(&file, &whole, &["--jobs", "2"]);
    assert_eq!(
        std::fs::read(killed.join("plan.json")).unwrap(),
        std::fs::read(whole.join("plan.json")).unwrap()
    );
    let reference = summary_without_times(&whole);
    assert_eq!(summary_without_times(&killed), reference);

    // Two shards: the first runs its trials and leaves its final runs waiting (the other
    // shard's trials are not done); the second finishes the trials and then its final runs;
    // the first, run again, does its final runs.
    let waiting = run_suite(&file, &sharded, &["--shard", "1/2"]);
    assert!(
        waiting.contains("final runs wait for tuning trials"),
        "{waiting}"
    );
    let first = finished(&sharded).len();
    run_suite(&file, &sharded, &["--shard", "2/2"]);
    run_suite(&file, &sharded, &["--shard", "1/2"]);
    assert!(finished(&sharded).len() > first);
    assert_eq!(finished(&sharded).len(), total);
    let report = run_host(
        &root(),
        &["-q", "suite", "report", &sharded.display().to_string()],
    );
    assert!(report.status.success(), "{}", stderr(&report));
    assert_eq!(summary_without_times(&sharded), reference);

    // On Slurm the array runs twice (trials, then the final runs), then the report: the same
    // report as the suite run whole.
    let slurm = tmp.path().join("slurm");
    let scripts = write_slurm(&file, &slurm, 2);
    let submit = std::fs::read_to_string(scripts.join("submit.sh")).unwrap();
    assert_eq!(submit.matches("array.sbatch").count(), 2, "{submit}");
    assert!(
        submit.contains("--dependency=afterany:\"${trials%%;*}\""),
        "{submit}"
    );
    for task in [1, 2, 1, 2] {
        array_task(&scripts, task);
    }
    let out = std::process::Command::new("bash")
        .arg(scripts.join("report.sbatch"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summary_without_times(&slurm), reference);
}

#[test]
fn mistakes_in_tuning_are_one_line_errors_naming_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = readme_suite();
    let cases = [
        (
            "trials = 6",
            "trials = 0",
            "line 5: `tuning.trials` must be 1 to 1024, got 0",
        ),
        (
            "lambda = { log_uniform = [1e-5, 10.0] }",
            "lambda = { log_uniform = [0, 10.0] }",
            "line 14: search setting `lambda`: `log_uniform` needs bounds above 0",
        ),
        (
            "lambda = { log_uniform = [1e-5, 10.0] }",
            "lambada = { uniform = [0, 1] }",
            "unknown config key `lambada` for strategy `weight_decay` (did you mean `lambda`?",
        ),
        (
            "train.lr = { log_uniform = [0.001, 0.1] }",
            "train.epochs = { uniform = [1, 9] }",
            "`train.epochs` cannot be tuned",
        ),
        (
            "train.optimizer = { choice = [\"adam\", \"sgd\"] }",
            "train.optimizer = { choice = [\"adam\", \"adamw\"] }",
            "line 10: search setting train.optimizer: unknown variant `adamw`",
        ),
        (
            "train.lr = { log_uniform = [0.001, 0.1] }",
            "train.lr = { uniform = [-1.0, 0.1] }",
            "line 9: strategy `baseline`: trial 0 (train.lr = ",
        ),
        (
            ", holdout = 0.5 }",
            " }",
            "line 22: tuning scores trials on the part of the held-out split kept for selection: set `holdout` (e.g. 0.5) in the train settings of workload `student`",
        ),
        (
            "seeds = 1 ",
            "seeds = [2] ",
            "tuning seed 2 is also one of the suite's `seeds`",
        ),
        (
            "[tuning]\ntrials = 6",
            "[tune]\ntrials = 6",
            "unknown field `tune`",
        ),
        (
            "config = { phases = 2 }",
            "config = { phases = 2 }\nsearch = { phases = { uniform = [2, 4] } }",
            "a search space may not change a strategy's number of phases",
        ),
    ];
    for (old, new, needle) in cases {
        assert!(suite.contains(old), "{old}");
        assert_suite_fails(tmp.path(), &suite.replacen(old, new, 1), needle);
    }
    // A search space without [tuning].
    let without = suite.replacen("[tuning]\ntrials = 6", "", 1).replacen(
        "seeds = 1         # each trial",
        "# each trial",
        1,
    );
    assert_suite_fails(
        tmp.path(),
        &without,
        "`search` needs a [tuning] table with `trials = N`",
    );
    assert!(
        !tmp.path().join("out").exists(),
        "nothing runs from a bad file"
    );
}

#[test]
fn trials_train_at_the_per_phase_budget_or_at_equal_steps() {
    let registry = pn_tests::registry(&[
        "baseline",
        "weight_decay",
        "reinit",
        "mlp",
        "teacher_student",
    ]);
    let epochs = |text: &str| -> Vec<u32> {
        let suite = pn_host::suite::Suite::parse(text, "tuned.toml", &registry)
            .unwrap_or_else(|e| panic!("{e}"));
        let plan = suite.plan(&pn_host::suite::cost::StepCosts::one_pass());
        let mut epochs: Vec<u32> = plan
            .runs
            .iter()
            .filter(|r| r.trial.is_some())
            .map(|r| r.config.train.epochs)
            .collect();
        epochs.dedup();
        epochs
    };
    let suite = readme_suite();
    // Single-phase strategies against the two-phase reinit: 60 epochs per phase, 120 at equal steps.
    assert_eq!(epochs(&suite), [60]);
    let equal = suite.replacen("trials = 6", "trials = 6\nbudget = \"equal_steps\"", 1);
    assert_eq!(epochs(&equal), [120]);
}
