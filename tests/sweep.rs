//! `rethink sweep` end to end, as a user runs it: the shipped quick sweep on real digits, skip on
//! rerun, a killed point resumed to the uninterrupted result, `--list`, `--index`, `--jobs`,
//! `--emit-slurm`, locks, a failing point, and bad sweep files.

mod common;

use common::{rethink, run_err, run_ok};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// Runs `rethink args…` (any exit), returning the process output.
fn run(args: &[&str]) -> Output {
    rethink().args(args).output().expect("binary runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Writes a sweep file into `dir` and returns its path.
fn spec(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    fs::write(&path, body).unwrap();
    path
}

/// `metrics.csv` without the timing column, which differs between runs.
fn metrics_without_seconds(run: &Path) -> Vec<String> {
    let text = fs::read_to_string(run.join("metrics.csv")).unwrap();
    text.lines()
        .map(|l| {
            let mut cells: Vec<&str> = l.split(',').collect();
            cells.remove(6);
            cells.join(",")
        })
        .collect()
}

/// The `--list` status column of every point.
fn statuses(spec: &Path, out: &Path) -> Vec<String> {
    let listing = run_ok(&["sweep", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "--list"]);
    listing.lines().skip(1).map(|l| l.split_whitespace().nth(1).unwrap().to_string()).collect()
}

const SYNTHETIC_MLP: &str = r#"
[base]
data = "synthetic"
synthetic_train = 256
synthetic_test = 64
arch = "mlp"
mlp_spec = "64"
learning_rate = 0.05
weight_decay = 0.0
epochs = 3
"#;

#[test]
fn quick_sweep_runs_reports_and_skips_finished_points_on_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("quick");
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps/quick.toml");
    let spec = spec.to_str().unwrap();
    let started = Instant::now();
    let first = run(&["sweep", spec, "--out", out.to_str().unwrap(), "--jobs", "2"]);
    assert!(first.status.success(), "{}", text(&first));
    eprintln!("quick sweep took {:.1} s", started.elapsed().as_secs_f64());
    let listing = run_ok(&["sweep", spec, "--out", out.to_str().unwrap(), "--list"]);
    let points: Vec<&str> = listing.lines().skip(1).collect();
    assert!(points.len() >= 8, "{listing}");
    assert!(points.iter().all(|l| l.split_whitespace().nth(1) == Some("done")), "{listing}");
    for p in &points {
        let dir = out.join(p.split_whitespace().nth(2).unwrap());
        assert!(dir.join("results.json").is_file() && dir.join("metrics.csv").is_file(), "{p}");
    }
    // The report was written at the end, from these runs.
    let report = out.join("report");
    for file in ["figure1a.png", "figure1a.svg", "figure1b.csv", "figure1c.csv", "table1.md", "table1.csv"] {
        assert!(report.join(file).is_file(), "missing report/{file}: {}", text(&first));
    }
    // Random labels are memorized (100% train) while test accuracy stays near chance.
    let random =
        out.join(points.iter().find(|l| l.contains("corrupt1_mlp")).unwrap().split_whitespace().nth(2).unwrap());
    let results: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(random.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["last"]["train_acc"].as_f64(), Some(100.0), "{results}");
    assert!(results["last"]["val_acc"].as_f64().unwrap() < 20.0, "{results}");

    // A rerun trains nothing and leaves every run as it was.
    let before = fs::read(random.join("checkpoint.safetensors")).unwrap();
    let again = run(&["sweep", spec, "--out", out.to_str().unwrap(), "--jobs", "2", "--no-report"]);
    assert!(again.status.success(), "{}", text(&again));
    let again = text(&again);
    assert!(again.contains(&format!("{} done, 0 to run", points.len())), "{again}");
    assert!(!again.contains("start"), "{again}");
    assert_eq!(fs::read(random.join("checkpoint.safetensors")).unwrap(), before);
}

#[test]
fn a_killed_point_resumes_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let body = format!("{SYNTHETIC_MLP}\n[grid]\nseed = [3]\n")
        .replace("synthetic_train = 256", "synthetic_train = 4000")
        .replace("mlp_spec = \"64\"", "mlp_spec = \"512\"")
        .replace("epochs = 3", "epochs = 12");
    let spec = spec(tmp.path(), "kill", &body);
    let (killed, clean) = (tmp.path().join("killed"), tmp.path().join("clean"));
    let spec_s = spec.to_str().unwrap();

    // Start the sweep in its own process group and kill the whole group (sweep and child)
    // once the point has written its first checkpoint.
    use std::os::unix::process::CommandExt;
    let mut child = rethink()
        .args(["sweep", spec_s, "--out", killed.to_str().unwrap(), "--no-report"])
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let run_dir = killed.join("synthetic_mlp512_lr0.05_mmt0.9_NoWd_NoAug_seed-3");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !run_dir.join("checkpoint.safetensors").exists() {
        assert!(Instant::now() < deadline, "no checkpoint after 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pgid = child.id() as i32;
    // SAFETY: kill(2) on the process group we created; no memory is involved.
    assert_eq!(unsafe { libc::kill(-pgid, libc::SIGKILL) }, 0);
    child.wait().unwrap();
    // The training grandchild may take a moment to die and release its lock.
    let deadline = Instant::now() + Duration::from_secs(20);
    while statuses(&spec, &killed) == ["running"] {
        assert!(Instant::now() < deadline, "the killed point's lock was never released");
        std::thread::sleep(Duration::from_millis(50));
    }
    let done_epochs = fs::read_to_string(run_dir.join("metrics.csv")).unwrap().lines().count() - 1;
    assert!(done_epochs < 12, "the point finished before it was killed; make it longer");
    assert_eq!(statuses(&spec, &killed), ["partial"]);

    run_ok(&["sweep", spec_s, "--out", killed.to_str().unwrap(), "--no-report"]);
    run_ok(&["sweep", spec_s, "--out", clean.to_str().unwrap(), "--no-report"]);
    assert_eq!(statuses(&spec, &killed), ["done"]);
    let resumed = metrics_without_seconds(&run_dir);
    assert_eq!(resumed.len(), 13);
    assert_eq!(resumed, metrics_without_seconds(&clean.join(run_dir.file_name().unwrap())));
}

#[test]
fn index_runs_one_point_and_list_shows_each_status() {
    let tmp = tempfile::tempdir().unwrap();
    let spec =
        spec(tmp.path(), "idx", &format!("{SYNTHETIC_MLP}\n[grid]\nlabel_corrupt_prob = [0.0, 1.0]\nseed = [0, 1]\n"));
    let (spec_s, out) = (spec.to_str().unwrap(), tmp.path().join("out"));
    let out_s = out.to_str().unwrap();
    assert_eq!(statuses(&spec, &out), ["pending"; 4]);
    let stdout = run_ok(&["sweep", spec_s, "--out", out_s, "--index", "2"]);
    assert!(stdout.contains("point 2 of 4"), "{stdout}");
    assert_eq!(statuses(&spec, &out), ["pending", "pending", "done", "pending"]);
    assert!(out.join("synthetic_corrupt1_mlp64_lr0.05_mmt0.9_NoWd_NoAug_seed-0/results.json").is_file());
    assert!(run_ok(&["sweep", spec_s, "--out", out_s, "--index", "2"]).contains("point 2 is done"));
    let e = run_err(&["sweep", spec_s, "--out", out_s, "--index", "4"]);
    assert!(e.contains("--index 4 is out of range") && e.contains("points 0 to 3"), "{e}");

    // A point whose lock another process holds shows as running and is not trained twice.
    let dir = out.join("synthetic_mlp64_lr0.05_mmt0.9_NoWd_NoAug_seed-1");
    fs::create_dir_all(&dir).unwrap();
    let lock = fs::File::create(dir.join(".lock")).unwrap();
    lock.try_lock().unwrap();
    assert_eq!(statuses(&spec, &out), ["pending", "running", "done", "pending"]);
    let e = run_err(&["sweep", spec_s, "--out", out_s, "--index", "1"]);
    assert!(e.contains("point 1 is being trained by another process"), "{e}");
    let both = run(&["sweep", spec_s, "--out", out_s, "--jobs", "2", "--no-report"]);
    assert!(both.status.success(), "{}", text(&both));
    assert!(text(&both).contains("busy"), "{}", text(&both));
    assert_eq!(statuses(&spec, &out), ["done", "running", "done", "done"]);
    drop(lock);
    run_ok(&["sweep", spec_s, "--out", out_s, "--no-report"]);
    assert_eq!(statuses(&spec, &out), ["done"; 4]);

    // Extending the epochs in the sweep file makes finished points partial again: they resume.
    fs::write(&spec, fs::read_to_string(&spec).unwrap().replace("epochs = 3", "epochs = 4")).unwrap();
    assert_eq!(statuses(&spec, &out), ["partial"; 4]);
    // Changing a setting that the run directory's name does not show is a conflict, not a resume.
    fs::write(&spec, fs::read_to_string(&spec).unwrap().replace("epochs = 4", "epochs = 4\nbatch_size = 64")).unwrap();
    let listing = run_ok(&["sweep", spec_s, "--out", out_s, "--list"]);
    assert!(listing.contains("conflict (batch_size: 128 in the checkpoint vs 64 now)"), "{listing}");
}

#[test]
fn a_failing_point_is_reported_and_the_others_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let body = r#"
[base]
arch = "mlp"
mlp_spec = "32"
epochs = 2
weight_decay = 0.0
[[points]]
data = "synthetic"
synthetic_train = 128
synthetic_test = 32
[[points]]
data = "mnist"
data_dir = "no/such/dir"
"#;
    let spec = spec(tmp.path(), "fail", body);
    let out = tmp.path().join("out");
    let result = run(&["sweep", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "--jobs", "2"]);
    assert_eq!(result.status.code(), Some(1));
    let all = text(&result);
    let last = all.lines().last().unwrap();
    assert!(last.starts_with("error: 1 point(s) failed: point 1:") && last.contains("no/such/dir"), "{all}");
    // data_dir is not part of the demo's experiment name, so it is appended to the directory's.
    let log = "logs/mnist_mlp32_lr0.1_mmt0.9_NoWd_NoAug_data-dir-no-such-dir.log";
    assert!(last.contains(log), "{all}");
    assert!(out.join(log).is_file());
    assert_eq!(statuses(&spec, &out), ["done", "pending"]);
}

#[test]
fn emit_slurm_writes_an_array_script() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = spec(tmp.path(), "arr", &format!("{SYNTHETIC_MLP}\n[grid]\nseed = [0, 1, 2]\n"));
    let (out, script) = (tmp.path().join("out"), tmp.path().join("arr.sbatch"));
    run_ok(&[
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--emit-slurm",
        script.to_str().unwrap(),
        "--array-max",
        "2",
        "--sbatch=--partition=gpu",
        "--sbatch",
        "--time=1:00:00",
    ]);
    let text = fs::read_to_string(&script).unwrap();
    assert!(text.contains("#SBATCH --array=0-2%2\n"), "{text}");
    assert!(text.contains("#SBATCH --partition=gpu\n#SBATCH --time=1:00:00\n"), "{text}");
    assert!(text.contains("--index \"$SLURM_ARRAY_TASK_ID\""), "{text}");
    assert!(out.join("slurm").is_dir() && out.join("arr.sweep.toml").is_file());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(&script).unwrap().permissions().mode() & 0o111, 0o111);
    // The emitted script runs a point exactly as an array task would.
    let task = std::process::Command::new("bash").arg(&script).env("SLURM_ARRAY_TASK_ID", "1").output().unwrap();
    assert!(task.status.success(), "{}", String::from_utf8_lossy(&task.stderr));
    assert_eq!(statuses(&spec, &out), ["pending", "done", "pending"]);
    let e = run_err(&["sweep", spec.to_str().unwrap(), "--emit-slurm", script.to_str().unwrap(), "--array-max", "0"]);
    assert!(e.contains("--array-max must be at least 1"), "{e}");
}

#[test]
fn bad_sweep_files_get_one_line_errors_naming_the_point_and_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, &str); 7] = [
        ("[base]\narch = \"mlp\"\n[grid]\nsede = [1, 2]", "point 0 (sede=1): unknown setting `sede`"),
        ("[grid]\nepochs = [\"many\"]", "point 0 (epochs=many): error: invalid value 'many' for '--epochs <EPOCHS>'"),
        ("[grid]\nlabel_corrupt_prob = []", "[grid] label_corrupt_prob is an empty list"),
        ("[base]\narch = \"mlp\"", "the sweep has no points"),
        (
            "[base]\nrandomize = \"none\"\n[[points]]\nlabel_corrupt_prob = 0.5",
            "point 0 (label-corrupt-prob=0.5): --randomize none contradicts",
        ),
        ("[grid]\nseed = [1, 1]", "points 0 and 1 are the same run"),
        ("[grid]\nseed = [1\n", "TOML parse error"),
    ];
    for (i, (body, expect)) in cases.iter().enumerate() {
        let spec = spec(tmp.path(), &format!("bad{i}"), body);
        let e = run_err(&["sweep", spec.to_str().unwrap(), "--list"]);
        assert!(e.contains(expect) && e.contains(&format!("bad{i}.toml")), "case {i}: {e}");
    }
    let e = run_err(&["sweep", "no/such/sweep.toml"]);
    assert!(e.contains("cannot read sweep file no/such/sweep.toml"), "{e}");
    let spec = spec(tmp.path(), "ok", &format!("{SYNTHETIC_MLP}\n[grid]\nseed = [0]\n"));
    let e = run_err(&["sweep", spec.to_str().unwrap(), "--jobs", "0"]);
    assert!(e.contains("--jobs must be at least 1"), "{e}");
}

/// A sweep of `rethink kernel` solves (the shipped `sweeps/kernel_fit.toml`, cut down): every
/// point solves into its own directory, a rerun solves nothing, the report draws the passes to
/// fit against p from the `result.json` files, and kernel-specific mistakes are one-line errors.
#[test]
fn kernel_sweep_records_fitting_time_and_the_report_draws_it() {
    let tmp = tempfile::tempdir().unwrap();
    let shipped = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("sweeps/kernel_fit.toml")).unwrap();
    let body = shipped
        .replace("data_dir = \"data/mnist\"", &format!("data_dir = {:?}", common::MNIST))
        .replace("split_test_set = 2000", "split_test_set = 600")
        .replace("test_size = 1000", "test_size = 200")
        .replace("label_corrupt_prob = [0.0, 0.25, 0.5, 0.75, 1.0]", "label_corrupt_prob = [0.0, 1.0]");
    let sweep = spec(tmp.path(), "kfit", &body);
    let out = tmp.path().join("out");
    let (spec_s, out_s) = (sweep.to_str().unwrap(), out.to_str().unwrap());
    let first = run(&["sweep", spec_s, "--out", out_s, "--jobs", "2"]);
    assert!(first.status.success(), "{}", text(&first));
    assert_eq!(statuses(&sweep, &out), ["done"; 4]);
    let mut passes = Vec::new();
    for dir in ["kernel-laplacian_label-corrupt-prob-0", "kernel-gaussian_label-corrupt-prob-1"] {
        let result: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(out.join(dir).join("result.json")).unwrap()).unwrap();
        assert_eq!(result["train_error_percent"], 0.0, "{dir}");
        assert_eq!(result["config"]["cg"]["until_fit"], true, "{dir}");
        passes.push(result["fit_kernel_passes"].as_u64().unwrap());
    }
    // The report's CSV holds each solve's numbers; the figure is there.
    let csv = fs::read_to_string(out.join("report/kernel_fit.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    let row = csv.lines().find(|l| l.contains("kernel-gaussian_label-corrupt-prob-1")).unwrap();
    assert!(
        row.starts_with("gaussian bandwidth 0.02,raw,600,1,") && row.contains(&format!(",{},", passes[1])),
        "{row}"
    );
    assert!(out.join("report/kernel_fit.png").is_file() && out.join("report/kernel_fit.svg").is_file());

    // A rerun solves nothing; a changed setting is a conflict, not a silent overwrite.
    let again = text(&run(&["sweep", spec_s, "--out", out_s, "--no-report"]));
    assert!(again.contains("4 done, 0 to run") && !again.contains("start"), "{again}");
    let changed = spec(tmp.path(), "kfit", &body.replace("max_iters = 3000", "max_iters = 2999"));
    assert!(statuses(&changed, &out).iter().all(|s| s == "conflict"), "{:?}", statuses(&changed, &out));

    // Kernel-specific mistakes.
    let e = run_err(&["sweep", spec_s, "--out", out_s, "--device", "cpu"]);
    assert!(e.contains("--device applies to sweeps of `rethink train`"), "{e}");
    let bad = spec(tmp.path(), "kbad", &body.replace("until_fit = true", "until_fit = true\nepochs = 3"));
    let e = run_err(&["sweep", bad.to_str().unwrap(), "--list"]);
    assert!(e.contains("unknown setting `epochs`: not a `rethink kernel` flag"), "{e}");
    let bad = spec(tmp.path(), "kbad2", &body.replace("cg_precond = \"none\"", "cg_precond = \"none\"\nridge = -1"));
    let e = run_err(&["sweep", bad.to_str().unwrap(), "--list"]);
    assert!(e.contains("point 0") && e.contains("--ridge -1 must be a non-negative number"), "{e}");
}
