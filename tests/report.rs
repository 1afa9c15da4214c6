//! End-to-end tests of `rethink report`: real runs trained by the binary on the MNIST digits
//! shipped in the repository, then reported as figures and tables.

mod common;

use common::{MNIST, rethink, run_err, run_ok};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The label-corruption levels of the fixture runs (plus one shuffled-pixels run).
const PS: [&str; 3] = ["0", "0.5", "1"];

/// Trains the fixture runs once per test binary: an MLP on 300 MNIST digits for p ∈ {0, 0.5, 1}
/// and shuffled pixels, each stopped at 100% train accuracy. Returns the runs' root directory.
fn fixture() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-fixture");
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let out = root.to_str().unwrap();
        let common = [
            "train",
            "--data",
            "mnist",
            "--data-dir",
            MNIST,
            "--split-test-set",
            "300",
            "--val-size",
            "200",
            "--arch",
            "mlp",
            "--learning-rate",
            "0.05",
            "--weight-decay",
            "0",
            "--epochs",
            "40",
            "--stop-at-train-acc",
            "100",
            "--no-progress",
            "--out",
            out,
        ];
        let mut variants: Vec<Vec<&str>> = PS.iter().map(|p| vec!["--label-corrupt-prob", p]).collect();
        variants.push(vec!["--randomize", "shuffled-pixels"]);
        for extra in variants {
            let args: Vec<&str> = common.iter().copied().chain(extra).collect();
            run_ok(&args);
        }
        root
    })
}

/// The run directories under `root`, by experiment name.
fn run_dirs(root: &Path) -> HashMap<String, PathBuf> {
    fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("config.json").exists())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect()
}

/// The run of the fixture with this corruption level (`"0"`, `"0.5"`, `"1"`) or `"shuffled"`.
fn run_named(root: &Path, which: &str) -> PathBuf {
    let dirs = run_dirs(root);
    let name = match which {
        "0" => "mnist_mlp512_lr0.05_mmt0.9_NoWd_NoAug".to_string(),
        "shuffled" => "mnist_shuffled-pixels_mlp512_lr0.05_mmt0.9_NoWd_NoAug".to_string(),
        p => format!("mnist_corrupt{p}_mlp512_lr0.05_mmt0.9_NoWd_NoAug"),
    };
    dirs.get(&name).unwrap_or_else(|| panic!("no run {name} in {dirs:?}")).clone()
}

/// Copies a directory tree.
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Runs `rethink report args…`; returns (success, stdout, stderr).
fn report(args: &[&str]) -> (bool, String, String) {
    let out = rethink().arg("report").args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// A CSV file as rows of named fields (the report's CSVs never quote the fields read here).
fn csv_rows(path: &Path) -> Vec<HashMap<String, String>> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines
        .map(|l| {
            let fields: Vec<&str> = l.split(',').collect();
            assert_eq!(fields.len(), header.len(), "{}: {l}", path.display());
            header.iter().cloned().zip(fields.iter().map(|f| f.to_string())).collect()
        })
        .collect()
}

/// The last row of a run's metrics.csv, by column name.
fn last_metrics(run: &Path) -> HashMap<String, String> {
    csv_rows(&run.join("metrics.csv")).pop().unwrap()
}

fn float(s: &str) -> f64 {
    s.parse().unwrap_or_else(|_| panic!("{s:?} is not a number"))
}

/// Decodes a PNG and returns its size.
fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::BufReader::new(fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Not a blank image: some pixels are neither white nor transparent.
    assert!(buf[..info.buffer_size()].iter().any(|&b| b < 128), "{} is blank", path.display());
    (info.width, info.height)
}

#[test]
fn reports_every_figure_and_table_from_real_runs() {
    let root = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let fig = tmp.path().join("fig");
    let stdout = run_ok(&["report", root.to_str().unwrap(), "--out", fig.to_str().unwrap()]);
    for stem in ["figure1a", "figure1b", "figure1c", "memorization"] {
        for ext in ["png", "svg", "csv"] {
            let path = fig.join(format!("{stem}.{ext}"));
            assert!(stdout.contains(&format!("wrote {}", path.display())), "{stdout}");
        }
        let size = png_size(&fig.join(format!("{stem}.png")));
        assert_eq!(size, if stem == "memorization" { (1500, 650) } else { (1000, 700) }, "{stem}");
    }

    // SVGs carry their titles, axis titles and legends as text.
    let svg = |stem: &str| fs::read_to_string(fig.join(format!("{stem}.svg"))).unwrap();
    let a = svg("figure1a");
    for text in ["Figure 1a", "SGD steps", "average training loss", "true labels", "random labels", "shuffled pixels"] {
        assert!(a.contains(text), "figure1a.svg lacks {text:?}");
    }
    assert!(!a.contains("p=0.5"), "partially corrupted runs are not part of Figure 1a");
    let b = svg("figure1b");
    assert!(b.contains("label corruption p") && b.contains("time to fit") && b.contains("MLP 1x512"));
    let c = svg("figure1c");
    assert!(c.contains("label corruption p") && c.contains("error at the end of training (%)"));
    let m = svg("memorization");
    assert!(m.contains("epochs trained") && m.contains("train accuracy (%)") && m.contains("corrupted labels"));

    // Figure 1c: one row per p, test error = 100 − the run's final val_acc.
    let rows = csv_rows(&fig.join("figure1c.csv"));
    assert_eq!(rows.len(), PS.len());
    for p in PS {
        let row = rows.iter().find(|r| float(&r["p"]) == float(p)).unwrap_or_else(|| panic!("no p={p}"));
        let last = last_metrics(&run_named(root, p));
        assert!((float(&row["test_error"]) - (100.0 - float(&last["val_acc"]))).abs() < 1e-9, "{row:?}");
        assert_eq!(row["architecture"], "MLP 1x512");
    }

    // Figure 1b: steps to fit from metrics.csv, relative to the true-label run.
    let rows = csv_rows(&fig.join("figure1b.csv"));
    assert_eq!(rows.len(), PS.len());
    let steps = |p: &str| -> f64 {
        let results: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(run_named(root, p).join("results.json")).unwrap()).unwrap();
        results["time_to_fit"]["steps"].as_f64().unwrap()
    };
    for p in PS {
        let row = rows.iter().find(|r| float(&r["p"]) == float(p)).unwrap();
        assert_eq!(float(&row["steps_to_fit"]), steps(p));
        assert!((float(&row["relative_time"]) - steps(p) / steps("0")).abs() < 1e-9, "{row:?}");
    }

    // Figure 1a: every epoch of the four runs, loss as in metrics.csv.
    let rows = csv_rows(&fig.join("figure1a.csv"));
    let tests: Vec<&str> = rows.iter().map(|r| r["randomization"].as_str()).collect();
    for test in ["true labels", "random labels", "shuffled pixels"] {
        assert!(tests.contains(&test), "{tests:?}");
    }
    let shuffled = run_named(root, "shuffled");
    let last = last_metrics(&shuffled);
    let row = rows.iter().rfind(|r| r["run"] == shuffled.display().to_string()).unwrap();
    assert_eq!((float(&row["train_loss"]), &row["steps"]), (float(&last["train_loss"]), &last["steps"]));

    // Memorization: the p = 0.5 run; by the last epoch the fitted shares equal the accuracies.
    let rows = csv_rows(&fig.join("memorization.csv"));
    let half = run_named(root, "0.5");
    assert!(rows.iter().all(|r| r["run"] == half.display().to_string()));
    let last_row = rows.last().unwrap();
    let last = last_metrics(&half);
    assert_eq!(float(&last_row["epochs_trained"]), float(&last["epoch"]) + 1.0);
    for group in ["clean", "corrupted"] {
        let acc = float(&last[&format!("train_acc_{group}")]);
        assert!((float(&last_row[&format!("fitted_{group}_percent")]) - acc).abs() < 1e-9, "{last_row:?}");
    }

    // Table 1: one row per run, parameter count from results.json.
    let rows = csv_rows(&fig.join("table1.csv"));
    assert_eq!(rows.len(), 4);
    for row in &rows {
        let dir = Path::new(&row["run"]);
        let results: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
        assert_eq!(float(&row["parameters"]), results["param_count"].as_f64().unwrap());
        assert_eq!(row["model"], "MLP 1x512");
        assert!((float(&row["test_accuracy"]) - float(&last_metrics(dir)["val_acc"])).abs() < 1e-9);
    }
    let labels: Vec<&str> = rows.iter().map(|r| r["labels"].as_str()).collect();
    assert_eq!(labels, vec!["true", "p=0.5", "random", "shuffled pixels"], "paper order");
    let md = fs::read_to_string(fig.join("table1.md")).unwrap();
    assert!(md.contains("| model | # params | random crop | weight decay | labels | train accuracy | test accuracy |"));
    assert!(md.contains("| MLP 1x512 | 406,528 | no | no | true | 100.00 |"), "{md}");
}

#[test]
fn a_directory_without_runs_is_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    fs::create_dir_all(empty.join("nested")).unwrap();
    let line = run_err(&["report", empty.to_str().unwrap(), "--out", tmp.path().join("fig").to_str().unwrap()]);
    assert!(line.contains("no run directory") && line.contains(empty.to_str().unwrap()), "{line}");
    let missing = tmp.path().join("missing");
    let line = run_err(&["report", missing.to_str().unwrap()]);
    assert!(line.contains(missing.to_str().unwrap()), "{line}");
    assert!(!tmp.path().join("fig").exists(), "nothing is written");
}

#[test]
fn broken_runs_are_skipped_with_a_reason_and_the_rest_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    copy_dir(fixture(), &runs);
    // A metrics.csv cut mid-line, a config.json that is not JSON, a run without results.json,
    // and a malformed fitted_epoch.npy.
    let truncated = run_named(&runs, "shuffled");
    let text = fs::read_to_string(truncated.join("metrics.csv")).unwrap();
    fs::write(truncated.join("metrics.csv"), &text[..text.len() - 7]).unwrap();
    let garbage = run_named(&runs, "1");
    fs::write(garbage.join("config.json"), "{\"version\": \"0.1.0\", \"config\": {\"data\": ").unwrap();
    let unfinished = runs.join("unfinished");
    copy_dir(&run_named(&runs, "0"), &unfinished);
    fs::remove_file(unfinished.join("results.json")).unwrap();
    let half = run_named(&runs, "0.5");
    fs::write(half.join("fitted_epoch.npy"), b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f8'}").unwrap();

    let fig = tmp.path().join("fig");
    let (ok, stdout, stderr) = report(&[runs.to_str().unwrap(), "--out", fig.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let line_with = |needle: &str| {
        stderr.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle:?} in {stderr}"))
    };
    assert!(line_with(&truncated.join("metrics.csv").display().to_string()).contains("truncated"));
    assert!(line_with(&garbage.join("config.json").display().to_string()).contains("does not parse"));
    assert!(line_with(&unfinished.display().to_string()).contains("no results.json"));
    assert!(line_with(&half.join("fitted_epoch.npy").display().to_string()).contains("malformed"));
    assert!(line_with("skipped memorization").contains("fitted_epoch.npy"), "{stderr}");
    assert!(!fig.join("memorization.png").exists());

    // The rest: the true-label and p = 0.5 runs in Table 1, the unfinished one in Figure 1a only.
    let rows = csv_rows(&fig.join("table1.csv"));
    let labels: Vec<&str> = rows.iter().map(|r| r["labels"].as_str()).collect();
    assert_eq!(labels, vec!["true", "p=0.5"]);
    let curves = csv_rows(&fig.join("figure1a.csv"));
    assert!(curves.iter().any(|r| r["run"] == unfinished.display().to_string()));
    assert!(fs::read_to_string(fig.join("figure1a.svg")).unwrap().contains("(unfinished)"));
    assert_eq!(csv_rows(&fig.join("figure1c.csv")).len(), 2);
    assert!(stdout.contains("figure1b.png"), "{stdout}");
}

#[test]
fn figures_without_their_runs_are_skipped_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let random = tmp.path().join("random");
    copy_dir(&run_named(fixture(), "1"), &random);
    let fig = tmp.path().join("fig");
    // A single run directory given directly; a threshold it never reached.
    let (ok, stdout, stderr) =
        report(&[random.to_str().unwrap(), "--out", fig.to_str().unwrap(), "--fit-threshold", "100"]);
    assert!(ok, "{stderr}");
    let skipped: Vec<&str> = stderr.lines().filter(|l| l.starts_with("skipped ")).collect();
    assert!(skipped.iter().any(|l| l.starts_with("skipped figure1b: no true-label run")), "{stderr}");
    assert!(skipped.iter().any(|l| l.starts_with("skipped memorization: no finished run with partially")), "{stderr}");
    assert!(!fig.join("figure1b.png").exists() && !fig.join("memorization.csv").exists());
    assert!(stdout.contains("figure1a.png") && stdout.contains("figure1c.png") && stdout.contains("table1.md"));

    // Scored against corrupted test labels: no Figure 1c, a dagger in Table 1.
    let config = fs::read_to_string(random.join("config.json")).unwrap();
    assert!(config.contains("\"val_labels\": \"clean\""), "{config}");
    fs::write(random.join("config.json"), config.replace("\"val_labels\": \"clean\"", "\"val_labels\": \"corrupted\""))
        .unwrap();
    let (ok, _, stderr) = report(&[random.to_str().unwrap(), "--out", fig.to_str().unwrap(), "--fit-threshold", "101"]);
    assert!(!ok && stderr.contains("--fit-threshold 101"), "{stderr}");
    let (ok, _, stderr) = report(&[random.to_str().unwrap(), "--out", fig.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("skipped figure1c: no run scored against clean test labels"), "{stderr}");
    assert!(fs::read_to_string(fig.join("table1.md")).unwrap().contains(" †"));
}
