//! The HTML report in a real browser: headless Chromium renders the `report.html` of a small
//! suite; its DOM holds every table and figure of `report.md`, and its screenshot is not blank.
//! Without Chromium the browser part is skipped with a notice, unless `PN_REQUIRE_CHROMIUM` is
//! set (CI sets it, after installing Debian's `chromium`).

use std::path::{Path, PathBuf};
use std::process::Command;

use pn_tests::{root, run_host, stderr, TINY_SUITE};

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let out = Command::new("which").arg(name).output().ok()?;
            out.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        })
}

/// Runs headless Chromium on `page` with `args`.
fn headless(browser: &Path, page: &Path, args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .env("XDG_RUNTIME_DIR", profile.path())
        .output()
        .expect("chromium starts")
}

#[test]
fn the_html_report_is_one_file_that_chromium_renders_with_every_table_and_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let suite = TINY_SUITE
        .replace("seeds = 4", "seeds = 3")
        .replace("epochs = 250", "epochs = 20");
    std::fs::write(tmp.path().join("suite.toml"), suite).unwrap();
    let plugins = root().join("plugins").display().to_string();
    let args = [
        "--plugin-dir",
        &plugins,
        "-q",
        "suite",
        "run",
        "suite.toml",
        "--out",
        "out",
    ];
    let out = run_host(tmp.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = tmp.path().join("out");
    let markdown = std::fs::read_to_string(dir.join("report.md")).unwrap();
    let page_path = dir.join("report.html");
    let page = std::fs::read_to_string(&page_path).unwrap();
    let tables = markdown.lines().filter(|l| l.starts_with("|---")).count();
    let figures = markdown.matches("![").count();
    assert!(tables >= 2 && figures >= 2, "{markdown}");
    assert!(
        !page.contains("<img") && !page.contains("src=\"http"),
        "self-contained"
    );
    assert!(
        page.contains("[strategies.full_persistent]"),
        "the suite file is on the page"
    );

    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("PN_REQUIRE_CHROMIUM").is_none(),
            "PN_REQUIRE_CHROMIUM is set, but no chromium was found"
        );
        eprintln!("skipped the browser part: no chromium (apt-get install chromium)");
        return;
    };
    let dom = headless(&browser, &page_path, &["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(dom.matches("<table").count(), tables, "{dom}");
    assert_eq!(dom.matches("<figure").count(), figures, "{dom}");
    assert_eq!(
        dom.matches("<figure><svg").count(),
        figures,
        "every figure drawn: {dom}"
    );

    let shot = tmp.path().join("shot.png");
    let screenshot = format!("--screenshot={}", shot.display());
    let done = headless(
        &browser,
        &page_path,
        &[&screenshot, "--window-size=1280,1600"],
    );
    assert!(shot.is_file(), "{}", String::from_utf8_lossy(&done.stderr));
    let image = image::open(&shot).unwrap().to_rgb8();
    let white = image
        .pixels()
        .filter(|p| p.0.iter().all(|&c| c > 245))
        .count();
    let inked = 1.0 - white as f64 / (image.width() * image.height()) as f64;
    assert!(inked > 0.02, "the screenshot is {:.1}% ink", 100.0 * inked);
    if let Some(keep) = std::env::var_os("PN_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}
