//! Every figure kind writes a decodable PNG and an SVG holding its labels, also for degenerate
//! inputs (single points, gaps, empty series, flat data, bad tau).

use std::path::{Path, PathBuf};

use super::canvas::{with_ext, SIZE};
use super::distributions::elide;
use super::*;

/// A fresh, unique scratch directory.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pn-plots-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The PNG decodes at 900x560 and the SVG holds every label.
fn check(stem: &Path, labels: &[&str]) {
    let png = image::open(with_ext(stem, "png")).expect("PNG decodes");
    assert_eq!((png.width(), png.height()), SIZE);
    let svg = std::fs::read_to_string(with_ext(stem, "svg")).expect("SVG written");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    for label in labels {
        assert!(
            svg.contains(label),
            "{label:?} missing from {}",
            stem.display()
        );
    }
}

/// Saw-tooth log-scale losses: each phase restarts at 0.1 and decays at `rate`.
fn sawtooth(label: &str, color: usize, rate: f64) -> Curve {
    let x: Vec<f64> = (0..=300).map(|i| i as f64 * 40.0).collect();
    let mean: Vec<f64> = x
        .iter()
        .map(|t| 0.1 * (-rate * (t % 3000.0)).exp())
        .collect();
    let low = mean.iter().map(|m| m / 3.0).collect();
    let high = mean.iter().map(|m| m * 3.0).collect();
    Curve {
        label: label.into(),
        color,
        x,
        mean,
        low,
        high,
    }
}

#[test]
fn learning_curves_write_png_and_svg() {
    let dir = scratch("curves");
    let curves = [
        sawtooth("baseline", 0, 2e-3),
        sawtooth("persistent", 1, 5e-3),
    ];
    let stem = dir.join("loss");
    learning_curves(
        &stem,
        "Loss",
        "step",
        "loss",
        true,
        &curves,
        &[3000.0, 6000.0],
    )
    .unwrap();
    check(&stem, &["Loss", "step", "baseline", "persistent", "1e-3"]);
    learning_curves(
        &dir.join("lin"),
        "Linear",
        "step",
        "loss",
        false,
        &curves,
        &[],
    )
    .unwrap();
    check(&dir.join("lin"), &["Linear", "baseline"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn distributions_write_png_and_svg() {
    let dir = scratch("dist");
    let seeds = |scale: f64| {
        (0..20)
            .map(|k| scale * (1.0 + (k as f64 * 0.37).sin()))
            .collect()
    };
    let groups = [
        Group {
            label: "baseline".into(),
            color: 0,
            values: seeds(1e-3),
        },
        Group {
            label: "persistent".into(),
            color: 1,
            values: seeds(1e-6),
        },
        Group {
            label: "not-run".into(),
            color: 2,
            values: vec![],
        },
    ];
    let stem = dir.join("final");
    distributions(&stem, "Final loss", "final loss", true, &groups).unwrap();
    check(
        &stem,
        &[
            "Final loss",
            "final loss",
            "baseline",
            "persistent",
            "not-run",
        ],
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn performance_profile_writes_png_and_svg() {
    let dir = scratch("profile");
    let profiles = [
        Profile {
            label: "baseline".into(),
            color: 0,
            ratios: vec![1.0, 2.5, f64::INFINITY, 7.0],
        },
        Profile {
            label: "persistent".into(),
            color: 1,
            ratios: vec![1.0, 1.0, 1.0, 1.3],
        },
    ];
    let stem = dir.join("profile");
    performance_profile(&stem, "Profile", &profiles, 16.0).unwrap();
    check(
        &stem,
        &[
            "Profile",
            "baseline",
            "persistent",
            "fraction of workloads",
            "\n16\n",
        ],
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn long_labels_are_elided_in_the_middle() {
    assert_eq!(elide("baseline", 8), "baseline");
    assert_eq!(elide("persistent-neurons", 9), "pers…rons");
    assert_eq!(elide("abcdef", 0), "a…f");
}

#[test]
fn degenerate_inputs_do_not_panic() {
    let dir = scratch("degenerate");
    let nan = f64::NAN;
    let curves = [
        Curve {
            label: "single".into(),
            color: 0,
            x: vec![5.0],
            mean: vec![0.5],
            low: vec![0.4],
            high: vec![0.6],
        },
        Curve {
            label: "gaps".into(),
            color: 11,
            x: vec![1.0, 2.0, 3.0],
            mean: vec![nan, -1.0, 0.0],
            low: vec![],
            high: vec![],
        },
        Curve {
            label: "empty".into(),
            color: 2,
            x: vec![],
            mean: vec![],
            low: vec![],
            high: vec![],
        },
    ];
    let flat = [Curve {
        label: "flat".into(),
        color: 3,
        x: vec![0.0, 1.0],
        mean: vec![2.0; 2],
        low: vec![2.0; 2],
        high: vec![2.0; 2],
    }];
    for log in [false, true] {
        learning_curves(&dir.join("c"), "c", "x", "y", log, &curves, &[]).unwrap();
        check(&dir.join("c"), &["single", "gaps", "empty"]);
        learning_curves(&dir.join("f"), "f", "x", "y", log, &flat, &[0.5, nan]).unwrap();
        learning_curves(&dir.join("n"), "nothing", "x", "y", log, &[], &[]).unwrap();
        let groups = [
            Group {
                label: "same".into(),
                color: 0,
                values: vec![3.0; 4],
            },
            Group {
                label: "odd".into(),
                color: 1,
                values: vec![nan, 0.0, -2.0],
            },
            Group {
                label: "one".into(),
                color: 2,
                values: vec![f64::INFINITY, 1.0],
            },
        ];
        distributions(&dir.join("d"), "d", "y", log, &groups).unwrap();
        check(&dir.join("d"), &["same", "odd", "one"]);
        distributions(&dir.join("e"), "no groups", "y", log, &[]).unwrap();
    }
    let profiles = [
        Profile {
            label: "none".into(),
            color: 0,
            ratios: vec![],
        },
        Profile {
            label: "never".into(),
            color: 1,
            ratios: vec![f64::INFINITY, nan],
        },
        Profile {
            label: "best".into(),
            color: 2,
            ratios: vec![1.0, 1.0],
        },
    ];
    for tau_max in [nan, 0.5, 1.0, 1.5, 3.0, 1e6] {
        performance_profile(&dir.join("p"), "p", &profiles, tau_max).unwrap();
        check(&dir.join("p"), &["none", "never", "best"]);
    }
    performance_profile(&dir.join("q"), "q", &[], 4.0).unwrap();
    let bad = Path::new("/dev/null/not-a-dir/plot");
    let e = learning_curves(bad, "t", "x", "y", false, &flat, &[]).unwrap_err();
    assert!(e.contains("/dev/null/not-a-dir"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}
