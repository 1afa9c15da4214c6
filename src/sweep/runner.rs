//! Running a sweep's points on this machine: one in-process (`--index`), or all of them as
//! child processes, `--jobs` at a time, each with its share of the cores.

use super::Sweep;
use super::point::{Job, Point, Status};
use anyhow::{Context, Result, bail};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `--index N`: runs (or resumes) point N in this process; a finished point is skipped.
pub fn run_one(sweep: &Sweep, index: usize) -> Result<()> {
    let Some(point) = sweep.points.get(index) else {
        bail!(
            "--index {index} is out of range: {} has points 0 to {}",
            sweep.spec_path.display(),
            sweep.points.len() - 1
        );
    };
    match point.status(&sweep.out) {
        Status::Done => {
            println!("point {index} is done: {}", point.dir(&sweep.out).display());
            return Ok(());
        }
        Status::Running => bail!("point {index} is being trained by another process ({})", point.dir_name),
        Status::Conflict(why) => bail!("{}", conflict_message(point, &sweep.out, &why)),
        Status::Partial { .. } | Status::Pending => {}
    }
    println!("point {index} of {}: {} [{}]", sweep.points.len(), point.dir_name, point.label);
    let context = || format!("point {index} ({})", point.dir_name);
    match point.job {
        Job::Train(_) => {
            let (config, options) = point.train_args(&sweep.out)?.into_config();
            crate::train::trainer::train(&config, &options).with_context(context)?;
        }
        Job::Kernel(_) => {
            crate::kernel::run(&point.kernel_config(&sweep.out)?).with_context(context)?;
        }
    }
    Ok(())
}

fn conflict_message(point: &Point, out: &Path, why: &str) -> String {
    format!(
        "point {} ({}) holds a run with other settings ({why}): the sweep file changed; move {} away to rerun it",
        point.index,
        point.label,
        point.dir(out).display()
    )
}

/// What happened to each point of a local sweep.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Points that were already finished.
    pub skipped: Vec<usize>,
    /// Points trained (or resumed) to the end now.
    pub finished: Vec<usize>,
    /// Points that failed: index, reason, log file.
    pub failed: Vec<(usize, String, PathBuf)>,
    /// Points another process was training.
    pub busy: Vec<usize>,
}

impl Outcome {
    /// Ok when no point failed; otherwise an error listing the failed points and their logs.
    pub fn into_result(self) -> Result<()> {
        if self.failed.is_empty() {
            return Ok(());
        }
        let list: Vec<String> =
            self.failed.iter().map(|(i, why, log)| format!("point {i}: {why} (log: {})", log.display())).collect();
        bail!("{} point(s) failed: {}", self.failed.len(), list.join("; "))
    }
}

/// A point being trained by a child process.
struct Running {
    index: usize,
    child: Child,
    log: PathBuf,
    started: Instant,
}

/// Runs every unfinished point, `jobs` at a time, as child processes (`rethink train …
/// --resume`) writing their output to `<out>/logs/<run>.log`. One failing point is reported and
/// the others go on.
pub fn run_all(sweep: &Sweep, jobs: usize) -> Result<Outcome> {
    let out = &sweep.out;
    let logs = out.join("logs");
    fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let exe = std::env::current_exe().context("cannot find the rethink executable")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / jobs).max(1);
    let total = sweep.points.len();
    let mut outcome = Outcome::default();
    let mut queue = Vec::new();
    for (point, status) in sweep.points.iter().zip(sweep.statuses()) {
        match status {
            Status::Done => outcome.skipped.push(point.index),
            Status::Running => {
                eprintln!("[{:>3}/{total}] busy     {} (another process is training it)", point.index, point.dir_name);
                outcome.busy.push(point.index);
            }
            Status::Conflict(why) => {
                let message = conflict_message(point, out, &why);
                eprintln!("[{:>3}/{total}] FAILED   {message}", point.index);
                outcome.failed.push((point.index, message, point.dir(out)));
            }
            Status::Partial { .. } | Status::Pending => queue.push(point),
        }
    }
    eprintln!(
        "sweep {}: {total} points, {} done, {} to run, {jobs} at a time with {threads} thread(s) each → {}",
        sweep.spec.name,
        outcome.skipped.len(),
        queue.len(),
        out.display()
    );
    queue.reverse();
    let mut running: Vec<Running> = Vec::new();
    while !queue.is_empty() || !running.is_empty() {
        while running.len() < jobs
            && let Some(point) = queue.pop()
        {
            let log = logs.join(format!("{}.log", point.dir_name));
            let child = spawn(&exe, point, out, &log, threads)?;
            eprintln!("[{:>3}/{total}] start    {} [{}]", point.index, point.dir_name, point.label);
            running.push(Running { index: point.index, child, log, started: Instant::now() });
        }
        std::thread::sleep(Duration::from_millis(100));
        let mut still = Vec::new();
        for mut r in running {
            match r.child.try_wait().context("cannot wait for a sweep point")? {
                None => still.push(r),
                Some(status) => finish(sweep, r, status, &mut outcome),
            }
        }
        running = still;
    }
    eprintln!(
        "sweep {}: {} finished now, {} were done, {} busy elsewhere, {} failed",
        sweep.spec.name,
        outcome.finished.len(),
        outcome.skipped.len(),
        outcome.busy.len(),
        outcome.failed.len()
    );
    Ok(outcome)
}

/// Starts `rethink train` for `point` with `threads` worker threads, output appended to `log`.
fn spawn(exe: &Path, point: &Point, out: &Path, log: &Path, threads: usize) -> Result<Child> {
    let open = || -> Result<File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open log file {}", log.display()))
    };
    let mut argv = point.command_line(out);
    if matches!(point.job, Job::Kernel(_)) {
        // Kernel solves size their own thread pool (not part of the result's identity).
        argv.extend(["--threads".into(), threads.to_string()]);
    }
    Command::new(exe)
        .args(argv)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .stdin(Stdio::null())
        .stdout(open()?)
        .stderr(open()?)
        .spawn()
        .with_context(|| format!("cannot start {} for point {}", exe.display(), point.index))
}

/// Records how a child ended and prints one line about it.
fn finish(sweep: &Sweep, r: Running, status: std::process::ExitStatus, outcome: &mut Outcome) {
    let point = &sweep.points[r.index];
    let total = sweep.points.len();
    let took = format!("{:.1} s", r.started.elapsed().as_secs_f64());
    if status.success() {
        eprintln!("[{:>3}/{total}] done     {} ({}, {took})", r.index, point.dir_name, summary(&point.dir(&sweep.out)));
        outcome.finished.push(r.index);
    } else if point.status(&sweep.out) == Status::Running {
        eprintln!("[{:>3}/{total}] busy     {} (another process is training it)", r.index, point.dir_name);
        outcome.busy.push(r.index);
    } else {
        let why = last_error(&r.log).unwrap_or_else(|| format!("exited with {status}"));
        eprintln!("[{:>3}/{total}] FAILED   {}: {why} (log: {})", r.index, point.dir_name, r.log.display());
        outcome.failed.push((r.index, why, r.log));
    }
}

/// `train 100.00%, val 10.20%, 14 epochs` from a finished run's `results.json`, or
/// `test error 9.70%, fit in 7 passes over K` from a kernel solve's `result.json`.
fn summary(run: &Path) -> String {
    if let Some(r) = fs::read_to_string(run.join("result.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    {
        let fit = r["fit_kernel_passes"].as_u64().map_or(String::new(), |p| format!(", fit in {p} passes over K"));
        return format!("test error {:.2}%{fit}", r["test_error_percent"].as_f64().unwrap_or(f64::NAN));
    }
    let results = fs::read_to_string(run.join("results.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    let Some(r) = results else { return "no results.json".into() };
    let last = &r["last"];
    format!(
        "train {:.2}%, val {:.2}%, {} epochs",
        last["train_acc"].as_f64().unwrap_or(f64::NAN),
        last["val_acc"].as_f64().unwrap_or(f64::NAN),
        r["epochs_completed"].as_u64().unwrap_or(0)
    )
}

/// The last `error:` line of a point's log.
fn last_error(log: &Path) -> Option<String> {
    let text = fs::read_to_string(log).ok()?;
    text.lines().rev().find(|l| l.starts_with("error:")).map(|l| l.trim_start_matches("error:").trim().to_string())
}
