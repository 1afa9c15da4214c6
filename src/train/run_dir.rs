//! A run's directory `runs/<experiment>/`: name, log, config, metrics.

use super::config::TrainConfig;
use super::metrics::{EpochMetrics, to_csv};
use crate::atomic::write_atomic;
use crate::model::Arch;
use anyhow::{Context, Result};
use serde::Serialize;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The demo's experiment name, e.g. `cifar10_corrupt1_wide-resnet28-1_lr0.1_mmt0.9_Wd0.0001_NoAug`.
///
/// The architecture part is `wide-resnet{depth}-{k}[-dr{p}]`, `mlp{spec}[-bias]`, `inception`,
/// `inception-nobn` or `alexnet`.
pub fn experiment_name(config: &TrainConfig) -> String {
    let mut name = String::new();
    if !config.name.is_empty() {
        name.push_str(&config.name);
        name.push('_');
    }
    name.push_str(config.data.name());
    name.push('_');
    if config.randomize.changes_inputs() {
        name.push_str(config.randomize.name());
        name.push('_');
    }
    if config.label_corrupt_prob > 0.0 {
        name.push_str(&format!("corrupt{}_", python_g(config.label_corrupt_prob)));
    }
    match config.arch {
        Arch::WideResnet => {
            name.push_str(&format!("wide-resnet{}-{}", config.wrn_depth, config.wrn_widen_factor));
            if config.wrn_droprate > 0.0 {
                name.push_str(&format!("-dr{}", python_g(config.wrn_droprate)));
            }
        }
        Arch::Mlp => {
            name.push_str(&format!("mlp{}", config.mlp_spec));
            if config.mlp_bias {
                name.push_str("-bias");
            }
        }
        Arch::Inception | Arch::InceptionNobn | Arch::Alexnet => name.push_str(config.arch.name()),
    }
    name.push_str(&format!("_lr{}_mmt{}", python_str(config.learning_rate), python_str(config.momentum)));
    if config.weight_decay > 0.0 {
        name.push_str(&format!("_Wd{}", python_str(config.weight_decay)));
    } else {
        name.push_str("_NoWd");
    }
    if !config.data_augmentation {
        name.push_str("_NoAug");
    }
    name
}

/// Python's `str(float)`: shortest round-trip digits, scientific below 1e-4 or from 1e16.
pub fn python_str(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return if x == 0.0 { "0.0".into() } else { format!("{x}") };
    }
    let sci = format!("{x:e}"); // shortest digits, e.g. "1e-4", "1.5e0"
    let (mantissa, exp) = sci.split_once('e').expect("scientific format has an exponent");
    let exp: i32 = exp.parse().expect("exponent is an integer");
    if (-4..16).contains(&exp) {
        let s = format!("{x}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

/// Python's `'%g' % x`: 6 significant digits, trailing zeros removed.
pub fn python_g(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let sci = format!("{x:.5e}");
    let (mantissa, exp) = sci.split_once('e').expect("scientific format has an exponent");
    let exp: i32 = exp.parse().expect("exponent is an integer");
    let trim = |s: String| {
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
    };
    if (-4..6).contains(&exp) {
        trim(format!("{:.*}", (5 - exp).max(0) as usize, x))
    } else {
        format!("{}e{}{:02}", trim(mantissa.to_string()), if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

/// An open run directory with its log file, held exclusively by this process.
pub struct RunDir {
    /// `runs/<experiment>`.
    pub path: PathBuf,
    log: File,
    /// The lock on `.lock`, released when the run ends (or the process dies).
    _lock: File,
}

/// Name of the lock file in every run directory.
pub const LOCK_FILE: &str = ".lock";

/// Whether another process holds the lock of the run directory `dir` (a run in progress).
pub fn is_locked(dir: &Path) -> bool {
    let Ok(file) = OpenOptions::new().read(true).write(true).open(dir.join(LOCK_FILE)) else {
        return false;
    };
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// Takes the exclusive lock of the run directory `dir`, so that two processes (overlapping
/// sweeps, racing Slurm array tasks) never train the same run. The operating system releases it
/// when the process exits, however it exits. Retries for a second, since [`is_locked`] probes
/// take the lock for an instant.
fn lock_run_dir(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    for attempt in 0..20 {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if attempt < 19 => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            Err(std::fs::TryLockError::WouldBlock) => break,
            Err(std::fs::TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
    }
    anyhow::bail!("run directory {} is in use by another rethink process", dir.display())
}

/// What `config.json` holds: the settings plus where they came from.
#[derive(Serialize)]
struct SavedConfig<'a> {
    /// rethink's version.
    version: &'a str,
    /// The experiment name (the directory's name).
    experiment: &'a str,
    /// Every setting of the run.
    config: &'a TrainConfig,
}

impl RunDir {
    /// Creates (or reopens) `root/<name>`, locks it (failing if another process holds it) and
    /// opens today's `LOG.<yymmdd>.txt` for appending.
    pub fn open(root: &Path, name: &str) -> Result<Self> {
        let path = root.join(name);
        fs::create_dir_all(&path).with_context(|| format!("cannot create run directory {}", path.display()))?;
        let lock = lock_run_dir(&path)?;
        // With the lock held, no other process writes here: temporary files are leftovers
        // of a run killed mid-write.
        for dir in [path.clone(), path.join("tb")] {
            crate::atomic::remove_stale_temp_files(&dir)?;
        }
        let log_path = path.join(format!("LOG.{}.txt", chrono::Local::now().format("%y%m%d")));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("cannot open log file {}", log_path.display()))?;
        Ok(Self { path, log, _lock: lock })
    }

    /// Prints `line` on stdout and appends it to the log file.
    pub fn log(&mut self, line: &str) -> Result<()> {
        println!("{line}");
        self.append_log(line)
    }

    /// Appends `line` to the log file only.
    fn append_log(&mut self, line: &str) -> Result<()> {
        writeln!(self.log, "{line}")
            .and_then(|_| self.log.flush())
            .with_context(|| format!("cannot write the log in {}", self.path.display()))
    }

    /// Appends the lines of the epochs in `history` that no `LOG.*.txt` of the run has yet (a
    /// run killed after its checkpoint but before its log line), so the logs show every epoch
    /// once, in order.
    pub fn catch_up_log(&mut self, history: &[EpochMetrics]) -> Result<()> {
        let logged = self.last_logged_epoch()?;
        for m in history.iter().filter(|m| logged.is_none_or(|last| m.epoch > last)) {
            self.append_log(&m.log_line())?;
        }
        Ok(())
    }

    /// The highest epoch with a line in the run's `LOG.*.txt` files.
    fn last_logged_epoch(&self) -> Result<Option<usize>> {
        let entries =
            fs::read_dir(&self.path).with_context(|| format!("cannot read run directory {}", self.path.display()))?;
        let mut last = None;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("LOG.") && name.ends_with(".txt")) {
                continue;
            }
            let text = fs::read_to_string(entry.path())
                .with_context(|| format!("cannot read log file {}", entry.path().display()))?;
            let epochs =
                text.lines().filter(|l| l.contains(": Acc-tr:")).filter_map(|l| l.split(':').next()?.parse().ok());
            last = last.max(epochs.max());
        }
        Ok(last)
    }

    /// Writes `config.json` (settings, version, experiment name).
    pub fn write_config(&self, config: &TrainConfig, experiment: &str) -> Result<()> {
        let saved = SavedConfig { version: env!("CARGO_PKG_VERSION"), experiment, config };
        let json = serde_json::to_string_pretty(&saved).expect("config serialises");
        write_atomic(&self.path.join("config.json"), json.as_bytes())
    }

    /// Rewrites `metrics.csv` and the TensorBoard events (`tb/`, see
    /// [`super::tensorboard::write_events`]) from the run's history, so both always hold exactly
    /// the epochs done, also after a resume.
    pub fn write_metrics(&self, history: &[EpochMetrics]) -> Result<()> {
        write_atomic(&self.path.join("metrics.csv"), to_csv(history).as_bytes())?;
        super::tensorboard::write_events(&self.path, history)
    }

    /// Path of the run's checkpoint.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.path.join("checkpoint.safetensors")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_floats_like_python() {
        assert_eq!(python_str(0.1), "0.1");
        assert_eq!(python_str(0.0001), "0.0001");
        assert_eq!(python_str(1.0), "1.0");
        assert_eq!(python_str(0.9), "0.9");
        assert_eq!(python_str(0.01), "0.01");
        assert_eq!(python_str(1e-5), "1e-05");
        assert_eq!(python_str(5e-4), "0.0005");
        assert_eq!(python_g(1.0), "1");
        assert_eq!(python_g(0.5), "0.5");
        assert_eq!(python_g(0.1), "0.1");
        assert_eq!(python_g(0.25), "0.25");
        assert_eq!(python_g(1e-5), "1e-05");
        assert_eq!(python_g(0.3), "0.3");
    }

    #[test]
    fn names_every_architecture() {
        let name = |args: &[&str]| {
            let argv: Vec<&str> = ["--data", "synthetic"].iter().chain(args).copied().collect();
            experiment_name(&crate::cli::TrainArgs::parse_args(&argv).into_config().0)
        };
        let tail = "_lr0.1_mmt0.9_Wd0.0001_NoAug";
        assert_eq!(name(&[]), format!("synthetic_wide-resnet28-1{tail}"));
        assert_eq!(name(&["--arch", "inception"]), format!("synthetic_inception{tail}"));
        assert_eq!(name(&["--arch", "inception-nobn"]), format!("synthetic_inception-nobn{tail}"));
        assert_eq!(name(&["--arch", "alexnet"]), format!("synthetic_alexnet{tail}"));
        assert_eq!(name(&["--arch", "mlp"]), format!("synthetic_mlp512{tail}"));
        assert_eq!(
            name(&["--arch", "mlp", "--mlp-spec", "512x512x512", "--mlp-bias"]),
            format!("synthetic_mlp512x512x512-bias{tail}")
        );
    }
}
