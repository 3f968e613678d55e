//! Mutation fuzzing of every file parser a user can feed: suite and run files (TOML), MNIST's IDX
//! files (raw and gzip) and CIFAR-10's binary files, each through the real path (the loaded
//! plugin, then the host's checks). Thousands of seeded random mutations of valid inputs; every
//! one must end in a value or an error message, never a panic, a crash or a hang.

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use pn_host::plugin::registry::Registry;
use pn_host::run::{self, ComponentRef, RunConfig};
use pn_host::suite::Suite;
use pn_tests::{root, TINY_SUITE};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Values that break parsers more often than random ones do.
const EDGE_U32: [u32; 6] = [0, 1, 255, 65_535, 0x7fff_ffff, u32::MAX];
const EDGE_TOML: [&str; 12] = [
    "0",
    "-1",
    "1e308",
    "nan",
    "inf",
    "-inf",
    "9223372036854775807",
    "\"\"",
    "[]",
    "{}",
    "[1, 1]",
    "\"../../x\"",
];

/// One to three random edits of `bytes`: a byte changed, a cut, an insertion, a copied run,
/// or an edge value written over four bytes (where headers keep their sizes).
fn mutate(rng: &mut StdRng, bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for _ in 0..rng.random_range(1..=3) {
        let at = rng.random_range(0..=out.len());
        match rng.random_range(0..5) {
            0 if at < out.len() => out[at] = rng.random(),
            1 => out.truncate(at),
            2 => {
                let n = rng.random_range(1..16);
                out.splice(at..at, (0..n).map(|_| rng.random::<u8>()));
            }
            3 if at < out.len() => {
                let end = rng.random_range(at..out.len().min(at + 64) + 1);
                let run = out[at..end].to_vec();
                out.splice(at..at, run);
            }
            _ if at + 4 <= out.len() => {
                let value = EDGE_U32[rng.random_range(0..EDGE_U32.len())];
                out[at..at + 4].copy_from_slice(&value.to_be_bytes());
            }
            _ => {}
        }
    }
    out
}

/// A TOML text with one value replaced by an edge value, or lines dropped or repeated, or
/// byte-level edits.
fn mutate_toml(rng: &mut StdRng, text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    match rng.random_range(0..4) {
        0 => {
            let i = rng.random_range(0..lines.len());
            if let Some(eq) = lines[i].find('=') {
                let edge = EDGE_TOML[rng.random_range(0..EDGE_TOML.len())];
                lines[i] = format!("{}= {edge}", &lines[i][..eq]);
            }
        }
        1 => {
            lines.remove(rng.random_range(0..lines.len()));
        }
        2 => {
            let i = rng.random_range(0..lines.len());
            lines.insert(i, lines[i].clone());
        }
        _ => return String::from_utf8_lossy(&mutate(rng, text.as_bytes())).into_owned(),
    }
    lines.join("\n")
}

/// Runs `f`, failing the test with `case` if it panics.
fn no_panic<T>(case: &str, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| panic!("panicked on:\n{case}"))
}

fn workspace_plugins() -> Registry {
    Registry::load(&[], &[root().join("plugins")]).expect("plugins load")
}

#[test]
fn suite_and_run_files_never_panic() {
    let registry = workspace_plugins();
    let mut originals = vec![TINY_SUITE.to_string()];
    for entry in std::fs::read_dir(root().join("suites")).unwrap().flatten() {
        originals.push(std::fs::read_to_string(entry.path()).unwrap());
    }
    let mut rng = StdRng::seed_from_u64(1);
    let (mut parsed, mut refused) = (0, 0);
    for i in 0..1500 {
        let text = mutate_toml(&mut rng, &originals[i % originals.len()]);
        match no_panic(&text, || {
            Suite::parse(&text, "fuzz.toml", &registry).map(|suite| {
                suite
                    .plan(&pn_host::suite::cost::StepCosts::one_pass())
                    .runs
                    .len()
            })
        }) {
            Ok(_) => parsed += 1,
            Err(e) => {
                let message = e.to_string();
                assert!(!message.is_empty() && !message.contains('\n'), "{message}");
                refused += 1;
            }
        }
    }
    // both outcomes occur, so the mutations reach past the TOML syntax
    assert!(
        parsed > 50 && refused > 50,
        "{parsed} parsed, {refused} refused"
    );

    let run_file = r#"seed = 3
[strategy]
name = "full_persistent"
config = { phases = 2, lambda = 0.1 }
[model]
name = "mlp"
config = { hidden = [5], output = "sum" }
[dataset]
name = "teacher_student"
config = { d = 5, k = 5, train = 40, valid = 10 }
[train]
optimizer = "sgd"
lr = 0.01
batch_size = 10
epochs = 2
holdout = 0.5
"#;
    for _ in 0..1500 {
        let text = mutate_toml(&mut rng, run_file);
        no_panic(&text, || {
            let config: RunConfig = run::parse_toml(&text, "fuzz.toml")?;
            config.train.validate()?;
            registry.strategy(&config.strategy.name, &config.strategy.config)?;
            registry.model(&config.model.name, &config.model.config)?;
            registry.dataset(&config.dataset.name, &config.dataset.config)?;
            Ok::<_, String>(())
        })
        .ok();
    }
}

/// A valid IDX file of `dims` holding `values`.
fn idx(dims: &[u32], values: impl Iterator<Item = u8>) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    dims.iter().for_each(|d| out.extend(d.to_be_bytes()));
    out.extend(values);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Loads data set `name` from `dir` through its plugin and the host's checks.
fn load(registry: &Registry, name: &str, config: serde_json::Value, case: &str) -> bool {
    let device = pn_host::device::parse_device("cpu").unwrap();
    let dataset = ComponentRef {
        name: name.into(),
        config,
    };
    match no_panic(case, || run::load_data(registry, &dataset, &device)) {
        Ok(_) => true,
        Err(e) => {
            let message = e.to_string();
            assert!(!message.contains("panicked"), "{case}: {message}");
            false
        }
    }
}

fn write_all(dir: &Path, files: &[(&str, Vec<u8>)]) {
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn idx_and_cifar_files_never_panic() {
    let registry = workspace_plugins();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mnist = serde_json::json!({ "dir": dir, "split_test": 2 });
    let images = idx(&[4, 3, 3], (0..36u8).map(|v| v * 7));
    let labels = idx(&[4], [1, 7, 3, 9].into_iter());
    let (image_file, label_file) = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte");
    write_all(
        dir,
        &[(image_file, images.clone()), (label_file, labels.clone())],
    );
    assert!(
        load(&registry, "mnist", mnist.clone(), "valid"),
        "the fixture loads"
    );
    let mut rng = StdRng::seed_from_u64(2);
    let mut loaded = 0;
    for i in 0..1000 {
        let (name, original, other, other_bytes) = if i % 2 == 0 {
            (image_file, &images, label_file, &labels)
        } else {
            (label_file, &labels, image_file, &images)
        };
        let mut bytes = mutate(&mut rng, original);
        if i % 3 == 0 {
            bytes = gzip(&bytes);
        }
        for stale in [image_file, label_file] {
            let _ = std::fs::remove_file(dir.join(format!("{stale}.gz")));
        }
        let target = if i % 3 == 0 {
            format!("{name}.gz")
        } else {
            name.into()
        };
        let _ = std::fs::remove_file(dir.join(name));
        write_all(
            dir,
            &[(&target, bytes.clone()), (other, other_bytes.clone())],
        );
        loaded += load(
            &registry,
            "mnist",
            mnist.clone(),
            &format!("{name}: {bytes:?}"),
        ) as usize;
    }
    assert!(loaded < 1000, "some mutations must be refused");

    const RECORD: usize = 1 + 3 * 32 * 32;
    let record = |label: u8| (0..RECORD).map(move |i| if i == 0 { label } else { i as u8 });
    let batch: Vec<u8> = record(3).chain(record(9)).collect();
    let cifar = tmp.path().join("cifar");
    std::fs::create_dir(&cifar).unwrap();
    let config = serde_json::json!({ "dir": cifar });
    for i in 0..200 {
        for b in 1..=5 {
            std::fs::write(cifar.join(format!("data_batch_{b}.bin")), &batch).unwrap();
        }
        let bytes = if i == 0 {
            batch.clone()
        } else {
            mutate(&mut rng, &batch)
        };
        std::fs::write(cifar.join("test_batch.bin"), &bytes).unwrap();
        let ok = load(
            &registry,
            "cifar10",
            config.clone(),
            &format!("test_batch {i}"),
        );
        assert!(ok || i > 0, "the valid fixture loads");
    }
}
