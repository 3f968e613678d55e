//! The image data sets end to end, on fixtures the tests write: CIFAR-10 binary files train a
//! model through `pn-host`, broken files are one-line errors, and Fashion-MNIST reads the IDX
//! format with its own normalisation.

use std::path::Path;

use pn_host::run::ComponentRef;
use pn_tests::{assert_one_line_error, cifar_fixture, root, run_host, stderr};
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
