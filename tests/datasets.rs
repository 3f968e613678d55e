//! The image data sets end to end, on fixtures the tests write: CIFAR-10 binary files train a
//! model through `pn-host`, broken files are one-line errors, and Fashion-MNIST reads the IDX
//! format with its own normalisation.

use std::path::Path;

use pn_host::run::ComponentRef;
use pn_tests::{assert_one_line_error, cifar_fixture, mnist_fixture, root, run_host, stderr};
use serde_json::json;

fn run_cifar(tmp: &Path, dir: &Path) -> std::process::Output {
    let set = format!("dataset.dir={:?}", dir.display().to_string());
    run_host(
        tmp,
        &[
            "--plugin-dir",
            &root().join("plugins").display().to_string(),
            "-q",
            "run",
            "--model",
            "lenet5",
            "--dataset",
            "cifar10",
            "--set",
            &set,
            "--set",
            "train.epochs=2",
            "--set",
            "train.batch_size=8",
            "--out",
            "out",
        ],
    )
}

#[test]
fn cifar10_binary_files_train_lenet5_and_broken_files_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("cifar-10-batches-bin");
    cifar_fixture(&data);
    // The parent folder works too: the files are found in `cifar-10-batches-bin` inside it.
    let out = run_cifar(tmp.path(), tmp.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let run_json = tmp.path().join(String::from_utf8_lossy(&out.stdout).trim());
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_json).unwrap()).unwrap();
    assert_eq!(record["status"], "completed");
    assert_eq!(record["dataset"]["config"]["normalize"], true);
    assert_eq!(record["steps"], 2 * 5);

    assert_one_line_error(
        &run_cifar(tmp.path(), &tmp.path().join("absent")),
        "data directory not found",
    );
    let test = data.join("test_batch.bin");
    let mut bytes = std::fs::read(&test).unwrap();
    bytes.truncate(bytes.len() - 100);
    std::fs::write(&test, bytes).unwrap();
    assert_one_line_error(&run_cifar(tmp.path(), &data), "test_batch.bin: truncated");
    std::fs::remove_file(&test).unwrap();
    assert_one_line_error(&run_cifar(tmp.path(), &data), "test_batch.bin: missing");
}

#[test]
fn fashion_mnist_reads_idx_files_with_its_own_normalisation() {
    let tmp = tempfile::tempdir().unwrap();
    // Three 2x2 images (the first all white) and their labels.
    let mut images = vec![0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2];
    images.extend([255u8; 4]);
    images.extend([0u8; 8]);
    std::fs::write(tmp.path().join("t10k-images-idx3-ubyte"), &images).unwrap();
    std::fs::write(
        tmp.path().join("t10k-labels-idx1-ubyte"),
        [0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3],
    )
    .unwrap();
    let registry = pn_tests::registry(&["mnist"]);
    let first_pixel = |name: &str| {
        let set = ComponentRef {
            name: name.into(),
            config: json!({"dir": tmp.path(), "split_test": 2}),
        };
        let (dataset, _) = registry.dataset(&set.name, &set.config).unwrap();
        let splits = dataset.load().unwrap();
        assert_eq!(splits.input_shape.as_slice(), [1, 2, 2]);
        assert_eq!((splits.train.len, splits.valid.len), (2, 1));
        splits.train.inputs[0]
    };
    assert!((first_pixel("fashion_mnist") - (1.0 - 0.2860) / 0.3530).abs() < 1e-5);
    assert!((first_pixel("mnist") - (1.0 - 0.1307) / 0.3081).abs() < 1e-5);
}

#[test]
fn mnist_with_valid_holds_out_training_images_and_gives_the_test_files_as_test_split() {
    let tmp = tempfile::tempdir().unwrap();
    mnist_fixture(tmp.path(), 5, 3);
    let registry = pn_tests::registry(&["mnist"]);
    let config = json!({"dir": tmp.path(), "valid": 2, "normalize": false});
    let (dataset, _) = registry.dataset("mnist", &config).unwrap();
    let splits = dataset.load().unwrap();
    assert_eq!((splits.train.len, splits.valid.len), (3, 2));
    // the held-out images are the last training images (values 3 and 4)
    assert_eq!(splits.valid.targets.as_slice(), [3.0, 4.0]);
    assert!((splits.valid.inputs[0] - 3.0 / 255.0).abs() < 1e-7);
    let test = dataset
        .load_test()
        .unwrap()
        .into_option()
        .expect("a test split");
    assert_eq!(test.len, 3);
    assert_eq!(test.targets.as_slice(), [0.0, 1.0, 2.0]);
    // Without `valid`: two splits, the test files held out, no test split.
    let (dataset, _) = registry
        .dataset("mnist", &json!({"dir": tmp.path()}))
        .unwrap();
    assert_eq!(dataset.load().unwrap().valid.len, 3);
    assert!(dataset.load_test().unwrap().into_option().is_none());
    let (dataset, _) = registry
        .dataset("mnist", &json!({"dir": tmp.path(), "valid": 5}))
        .unwrap();
    let e = dataset.load().into_result().err().unwrap().to_string();
    assert!(e.contains("`valid` must be in 1..5"), "{e}");
}

#[test]
fn mnist_with_split_test_and_valid_cuts_the_test_files_three_ways() {
    let tmp = tempfile::tempdir().unwrap();
    mnist_fixture(tmp.path(), 0, 7);
    // No training files at all: only the test files are read.
    std::fs::remove_file(tmp.path().join("train-images-idx3-ubyte")).unwrap();
    let registry = pn_tests::registry(&["mnist"]);
    let load = |config: serde_json::Value| {
        let (dataset, _) = registry.dataset("mnist", &config).unwrap();
        let splits = dataset.load().into_result();
        let test = dataset.load_test().into_result();
        (splits, test)
    };
    let (splits, test) = load(json!({"dir": tmp.path(), "split_test": 5, "valid": 2}));
    let splits = splits.unwrap();
    assert_eq!(splits.train.targets.as_slice(), [0.0, 1.0, 2.0]);
    assert_eq!(splits.valid.targets.as_slice(), [3.0, 4.0]);
    let test = test.unwrap().into_option().expect("a test split");
    assert_eq!(test.targets.as_slice(), [5.0, 6.0]);
    // train_limit cuts only the training examples.
    let (splits, _) =
        load(json!({"dir": tmp.path(), "split_test": 5, "valid": 2, "train_limit": 1}));
    let splits = splits.unwrap();
    assert_eq!(splits.train.targets.as_slice(), [0.0]);
    assert_eq!(splits.valid.targets.as_slice(), [3.0, 4.0]);
    // Without `valid`: two splits as before.
    let (splits, test) = load(json!({"dir": tmp.path(), "split_test": 5}));
    assert_eq!(splits.unwrap().valid.targets.as_slice(), [5.0, 6.0]);
    assert!(test.unwrap().into_option().is_none());
    // A held-out split as large as the training part is refused in one line.
    let (splits, test) = load(json!({"dir": tmp.path(), "split_test": 5, "valid": 5}));
    let e = splits.err().unwrap().to_string();
    assert!(
        e.contains("`valid` must be in 1..5 (the `split_test` examples), got 5"),
        "{e}"
    );
    assert!(test.is_err());
}
