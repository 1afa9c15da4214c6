//! Crash anywhere, resume, and get the uninterrupted run's files byte for byte.
//!
//! A real run is killed with SIGKILL at many points: in the middle of an epoch's SGD steps,
//! during its evaluation, while its metrics or its checkpoint are being written, and right after
//! the checkpoint (before the epoch's log line). Each time it is resumed with `--resume`. At the
//! end, everything it wrote except wall-clock fields must equal an uninterrupted run's bytes.

mod common;

use common::{MNIST, only_run, rethink, run_ok};
use rethink::train::checkpoint::Checkpoint;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime};

const EPOCHS: usize = 10;

fn args(out: &Path) -> Vec<String> {
    [
        "train",
        "--data",
        "mnist",
        "--data-dir",
        MNIST,
        "--split-test-set",
        "1000",
        "--val-size",
        "2000",
        "--arch",
        "mlp",
        "--mlp-spec",
        "512",
        "--learning-rate",
        "0.02",
        "--label-corrupt-prob",
        "0.5",
        "--data-augmentation",
        "--epochs",
        "10",
        "--no-progress",
        "--resume",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.display().to_string()])
    .collect()
}

/// The run directory under `out`, once the run has created it.
fn existing_run(out: &Path) -> Option<PathBuf> {
    fs::read_dir(out).ok()?.flatten().map(|e| e.path()).find(|p| p.is_dir())
}

/// Epochs recorded in `metrics.csv` so far.
fn epochs_done(dir: &Path) -> usize {
    fs::read_to_string(dir.join("metrics.csv")).map_or(0, |t| t.lines().count().saturating_sub(1))
}

fn mtime(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Whether a temporary sibling of `name` (an atomic write in progress) exists in `dir`.
fn writing(dir: &Path, name: &str) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with(&format!("{name}.tmp-")))
    })
}

/// Where to kill the run.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// This fraction of an epoch after the next epoch starts (SGD steps, or evaluation).
    IntoEpoch(f64),
    /// While this file is being written (its temporary sibling exists).
    Writing(&'static str),
    /// As soon as the checkpoint has been replaced (before the epoch's log line).
    AfterCheckpoint,
}

/// Starts the run (resuming), waits for `at`, kills it; false if it finished first.
fn kill_at(out: &Path, at: KillAt, epoch_seconds: f64) -> bool {
    let mut child: Child =
        rethink().args(args(out)).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("binary runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    let start_epochs = existing_run(out).map_or(0, |dir| epochs_done(&dir));
    let ckpt_before = existing_run(out).and_then(|dir| mtime(&dir.join("checkpoint.safetensors")));
    let mut epoch_started: Option<Instant> = None;
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(Instant::now() < deadline, "kill point {at:?} never reached");
        let dir = existing_run(out);
        let fire = dir.as_ref().is_some_and(|dir| match at {
            KillAt::IntoEpoch(fraction) => {
                // The first epoch line of this process marks an epoch boundary.
                if epoch_started.is_none() && epochs_done(dir) > start_epochs {
                    epoch_started = Some(Instant::now());
                }
                epoch_started.is_some_and(|t| t.elapsed().as_secs_f64() >= fraction * epoch_seconds)
            }
            KillAt::Writing(name) => writing(dir, name),
            KillAt::AfterCheckpoint => {
                let now = mtime(&dir.join("checkpoint.safetensors"));
                now.is_some() && now != ckpt_before
            }
        });
        if fire {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(Duration::from_micros(300));
    }
}

/// `metrics.csv` without its wall-clock column.
fn metrics(dir: &Path) -> String {
    let text = fs::read_to_string(dir.join("metrics.csv")).unwrap();
    text.lines()
        .map(|l| {
            let mut cells: Vec<&str> = l.split(',').collect();
            cells.remove(6);
            cells.join(",") + "\n"
        })
        .collect()
}

/// `results.json` with its wall-clock field (`last.seconds`) removed.
fn results(dir: &Path) -> String {
    let mut value: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    value["last"].as_object_mut().unwrap().remove("seconds");
    value.to_string()
}

/// Every log line that reports an epoch, across the run's `LOG.*.txt` files, in order.
fn epoch_lines(dir: &Path) -> Vec<String> {
    let mut logs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("LOG."))
        .collect();
    logs.sort();
    logs.iter()
        .flat_map(|p| fs::read_to_string(p).unwrap().lines().map(String::from).collect::<Vec<_>>())
        .filter(|l| l.contains(": Acc-tr:"))
        .collect()
}

#[test]
fn killed_anywhere_and_resumed_the_run_writes_the_uninterrupted_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let (reference, killed) = (tmp.path().join("reference"), tmp.path().join("killed"));
    run_ok(&args(&reference).iter().map(String::as_str).collect::<Vec<_>>());
    let reference = only_run(&reference);
    let seconds: Vec<f64> = fs::read_to_string(reference.join("metrics.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(6).unwrap().parse().unwrap())
        .collect();
    let epoch_seconds = seconds.iter().sum::<f64>() / seconds.len() as f64;

    let plan = [
        KillAt::IntoEpoch(0.3),
        KillAt::Writing("checkpoint.safetensors"),
        KillAt::AfterCheckpoint,
        KillAt::IntoEpoch(0.85),
        KillAt::Writing("metrics.csv"),
        KillAt::Writing("fitted_epoch.npy"),
        KillAt::IntoEpoch(0.5),
        KillAt::AfterCheckpoint,
        KillAt::Writing("checkpoint.safetensors"),
        KillAt::IntoEpoch(0.95),
        KillAt::Writing("metrics.csv"),
        KillAt::AfterCheckpoint,
    ];
    let out = killed;
    let mut kills = 0;
    for at in plan {
        if kill_at(&out, at, epoch_seconds) {
            kills += 1;
        }
    }
    eprintln!("killed the run at {kills} of {} planned points (epoch ≈ {epoch_seconds:.3} s)", plan.len());
    assert!(kills >= 10, "only {kills} kill points were reached");
    run_ok(&args(&out).iter().map(String::as_str).collect::<Vec<_>>());
    let resumed = only_run(&out);

    let mut compared = 0;
    assert_eq!(metrics(&resumed), metrics(&reference));
    assert_eq!(results(&resumed), results(&reference));
    assert_eq!(epoch_lines(&resumed), epoch_lines(&reference), "each epoch logged once, in order");
    assert_eq!(epoch_lines(&resumed).len(), EPOCHS);
    compared += 3;
    for file in ["fitted_epoch.npy", "corrupted.npy", "config.json"] {
        assert_eq!(fs::read(resumed.join(file)).unwrap(), fs::read(reference.join(file)).unwrap(), "{file}");
        compared += 1;
    }
    let (a, b) = (
        Checkpoint::load(&resumed.join("checkpoint.safetensors")).unwrap(),
        Checkpoint::load(&reference.join("checkpoint.safetensors")).unwrap(),
    );
    assert_eq!(a.next_epoch, b.next_epoch);
    for (mine, theirs) in [(&a.model, &b.model), (&a.velocity, &b.velocity)] {
        assert_eq!(mine.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>());
        for (name, data) in mine.iter() {
            assert_eq!(data.as_bytes(), theirs[name].as_bytes(), "tensor {name}");
            compared += 1;
        }
    }
    // No temporary file of an interrupted write is left behind.
    let leftovers: Vec<_> = fs::read_dir(&resumed)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    eprintln!("{compared} byte comparisons against the uninterrupted run");
}
