//! Finding run directories and reading what `rethink train` left in them: `config.json`,
//! `metrics.csv` and `results.json` (the `.npy` files are read by the figures that need them).
//!
//! A run that cannot be read — a config that does not parse, a truncated `metrics.csv`, a
//! missing file — is skipped with a one-line reason naming the file; it never stops the report.

use crate::train::config::TrainConfig;
use crate::train::metrics::EpochMetrics;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::fs;
use std::path::{Path, PathBuf};

/// One run directory, read.
#[derive(Debug, Clone)]
pub struct Run {
    /// The run directory.
    pub dir: PathBuf,
    /// The experiment name from `config.json`.
    pub experiment: String,
    /// The run's settings.
    pub config: TrainConfig,
    /// One row of `metrics.csv` per completed epoch.
    pub metrics: Vec<EpochMetrics>,
    /// `results.json`, present only when the run finished.
    pub results: Option<Results>,
}

/// When `results.json` says the train accuracy first reached `--stop-at-train-acc`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TimeToFit {
    /// The threshold, in percent.
    pub threshold: f64,
    /// First (0-based) epoch whose train accuracy reached it.
    pub epoch: usize,
    /// SGD steps up to the end of that epoch.
    pub steps: usize,
}

/// The fields of `results.json` the report uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Results {
    /// Trainable parameters.
    pub param_count: usize,
    /// Completed epochs.
    pub epochs_completed: usize,
    /// SGD steps per epoch.
    pub steps_per_epoch: usize,
    /// Metrics of the last epoch.
    #[serde(default)]
    pub last: Option<EpochMetrics>,
    /// When the train accuracy reached `--stop-at-train-acc`, if it was asked and reached.
    #[serde(default)]
    pub time_to_fit: Option<TimeToFit>,
}

/// What `config.json` holds.
#[derive(Deserialize)]
struct SavedConfig {
    #[serde(default)]
    experiment: Option<String>,
    config: TrainConfig,
}

impl Run {
    /// Reads the run in `dir`; the error names the file that is missing or malformed.
    pub fn load(dir: &Path) -> Result<Self> {
        let config_path = dir.join("config.json");
        let text =
            fs::read_to_string(&config_path).with_context(|| format!("cannot read {}", config_path.display()))?;
        let saved: SavedConfig =
            serde_json::from_str(&text).with_context(|| format!("{} does not parse", config_path.display()))?;
        let metrics_path = dir.join("metrics.csv");
        if !metrics_path.exists() {
            bail!("{} is missing (no epoch finished)", metrics_path.display());
        }
        let text =
            fs::read_to_string(&metrics_path).with_context(|| format!("cannot read {}", metrics_path.display()))?;
        let metrics = parse_metrics(&text).with_context(|| format!("{}", metrics_path.display()))?;
        if metrics.is_empty() {
            bail!("{} has no epochs", metrics_path.display());
        }
        let results_path = dir.join("results.json");
        let results = if results_path.exists() {
            let text =
                fs::read_to_string(&results_path).with_context(|| format!("cannot read {}", results_path.display()))?;
            let results: Results =
                serde_json::from_str(&text).with_context(|| format!("{} does not parse", results_path.display()))?;
            Some(results)
        } else {
            None
        };
        let experiment = saved.experiment.unwrap_or_else(|| {
            dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned())
        });
        Ok(Self { dir: dir.to_path_buf(), experiment, config: saved.config, metrics, results })
    }

    /// Whether `results.json` was written (the run finished).
    pub fn finished(&self) -> bool {
        self.results.is_some()
    }

    /// The metrics of the last epoch.
    pub fn last(&self) -> &EpochMetrics {
        // `load` refuses runs without epochs; prefer results.json's copy when present.
        match self.results.as_ref().and_then(|r| r.last.as_ref()) {
            Some(last) => last,
            None => &self.metrics[self.metrics.len() - 1],
        }
    }

    /// Cumulative SGD steps at the end of epoch row `m` (`metrics.csv`'s `steps`, or epochs ×
    /// steps per epoch for files written before the column existed).
    pub fn steps_at(&self, m: &EpochMetrics) -> Option<usize> {
        if m.steps > 0 {
            return Some(m.steps);
        }
        self.results.as_ref().map(|r| (m.epoch + 1) * r.steps_per_epoch)
    }

    /// SGD steps until the train accuracy first reached `threshold` percent, if it did.
    pub fn steps_to_fit(&self, threshold: f64) -> Option<usize> {
        let m = self.metrics.iter().find(|m| m.train_acc >= threshold - 1e-9)?;
        self.steps_at(m)
    }
}

/// Parses `metrics.csv`, locating columns by the header; a truncated or malformed line is an
/// error naming the line.
pub fn parse_metrics(text: &str) -> Result<Vec<EpochMetrics>> {
    if !text.is_empty() && !text.ends_with('\n') {
        bail!("truncated: the last line has no line break");
    }
    let mut lines = text.lines().enumerate();
    let Some((_, header)) = lines.next() else { bail!("empty file") };
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let column = |name: &str| names.iter().position(|n| *n == name);
    let required = |name: &str| column(name).with_context(|| format!("the header has no {name} column"));
    let epoch = required("epoch")?;
    let train_loss = required("train_loss")?;
    let train_acc = required("train_acc")?;
    let val_acc = required("val_acc")?;
    let (lr, val_loss, seconds) = (column("lr"), column("val_loss"), column("seconds"));
    let (acc_corrupted, acc_clean, steps) = (column("train_acc_corrupted"), column("train_acc_clean"), column("steps"));
    let mut rows = Vec::new();
    for (index, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let at = |name: &str| format!("line {}, column {name}", index + 1);
        if fields.len() != names.len() {
            bail!("line {} has {} fields, the header {}", index + 1, fields.len(), names.len());
        }
        let float = |i: usize, name: &str| -> Result<f64> {
            fields[i].parse::<f64>().with_context(|| format!("{}: {:?} is not a number", at(name), fields[i]))
        };
        let optional = |i: Option<usize>, name: &str| -> Result<Option<f64>> {
            match i {
                Some(i) if !fields[i].is_empty() => float(i, name).map(Some),
                _ => Ok(None),
            }
        };
        let epoch_value: usize = fields[epoch]
            .parse()
            .with_context(|| format!("{}: {:?} is not an epoch number", at("epoch"), fields[epoch]))?;
        let steps_value: usize = match steps {
            Some(i) if !fields[i].is_empty() => {
                fields[i].parse().with_context(|| format!("{}: {:?} is not a step count", at("steps"), fields[i]))?
            }
            _ => 0,
        };
        rows.push(EpochMetrics {
            epoch: epoch_value,
            lr: optional(lr, "lr")?.unwrap_or(f64::NAN),
            train_loss: float(train_loss, "train_loss")?,
            train_acc: float(train_acc, "train_acc")?,
            train_acc_corrupted: optional(acc_corrupted, "train_acc_corrupted")?,
            train_acc_clean: optional(acc_clean, "train_acc_clean")?,
            val_loss: optional(val_loss, "val_loss")?.unwrap_or(f64::NAN),
            val_acc: float(val_acc, "val_acc")?,
            seconds: optional(seconds, "seconds")?.unwrap_or(f64::NAN),
            steps: steps_value,
        });
    }
    Ok(rows)
}

/// Every directory holding a `config.json` (a training run) at or below `root` (not looking
/// inside a run directory), sorted by path. Symbolic links to directories are not followed.
pub fn find_run_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    find_dirs_with(root, "config.json")
}

/// Every directory holding a file named `marker` at or below `root` (not looking inside such
/// a directory), sorted by path: `result.json` finds kernel solves.
pub fn find_dirs_with(root: &Path, marker: &str) -> Result<Vec<PathBuf>> {
    let meta = fs::metadata(root).with_context(|| format!("cannot read {}", root.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a directory", root.display());
    }
    let mut found = Vec::new();
    walk(root, marker, &mut found)?;
    found.sort();
    Ok(found)
}

fn walk(dir: &Path, marker: &str, found: &mut Vec<PathBuf>) -> Result<()> {
    if dir.join(marker).is_file() {
        found.push(dir.to_path_buf());
        return Ok(());
    }
    let entries = fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&entry.path(), marker, found)?;
        }
    }
    Ok(())
}

/// Reads every run under `dirs`. A directory without any run directory is an error naming
/// it; an unreadable run is reported in `notes` and left out.
pub fn load_runs(dirs: &[PathBuf], notes: &mut Vec<String>) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    for root in dirs {
        let found = find_run_dirs(root)?;
        if found.is_empty() && find_dirs_with(root, "result.json")?.is_empty() {
            bail!("no run directory (one with a config.json, or a kernel solve's result.json) in {}", root.display());
        }
        for dir in found {
            if runs.iter().any(|r: &Run| r.dir == dir) {
                continue;
            }
            match Run::load(&dir) {
                Ok(run) => runs.push(run),
                Err(err) => notes.push(format!("skipped run: {err:#}")),
            }
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::metrics::to_csv;

    fn row(epoch: usize, acc: f64, steps: usize) -> EpochMetrics {
        EpochMetrics {
            epoch,
            lr: 0.01,
            train_loss: 2.0 - epoch as f64 * 0.5,
            train_acc: acc,
            train_acc_corrupted: (epoch > 0).then_some(40.0),
            train_acc_clean: None,
            val_loss: 2.5,
            val_acc: 31.5,
            seconds: 1.25,
            steps,
        }
    }

    #[test]
    fn metrics_csv_round_trips() {
        let history = vec![row(0, 50.0, 3), row(1, 100.0, 6)];
        assert_eq!(parse_metrics(&to_csv(&history)).unwrap(), history);
    }

    #[test]
    fn truncated_metrics_name_the_line() {
        let text = to_csv(&[row(0, 50.0, 3), row(1, 100.0, 6)]);
        let cut = &text[..text.len() - 9];
        assert!(format!("{:#}", parse_metrics(cut).unwrap_err()).contains("truncated"));
        let bad = text.replacen("100,", "1o0,", 1);
        assert!(format!("{:#}", parse_metrics(&bad).unwrap_err()).contains("line 3, column train_acc"));
        let short = format!("{}3,0.1\n", text);
        assert!(format!("{:#}", parse_metrics(&short).unwrap_err()).contains("line 4 has 2 fields"));
        assert!(format!("{:#}", parse_metrics("epoch,lr\n").unwrap_err()).contains("train_loss"));
    }

    #[test]
    fn steps_to_fit_uses_the_first_epoch_at_the_threshold() {
        let dir = std::env::temp_dir();
        let config = crate::cli::TrainArgs::parse_args(&["--data", "synthetic"]).into_config().0;
        let mut run = Run {
            dir,
            experiment: "x".into(),
            config,
            metrics: vec![row(0, 50.0, 3), row(1, 100.0, 6), row(2, 100.0, 9)],
            results: None,
        };
        assert_eq!(run.steps_to_fit(100.0), Some(6));
        assert_eq!(run.steps_to_fit(40.0), Some(3));
        run.metrics[1].steps = 0;
        assert_eq!(run.steps_to_fit(100.0), None, "no step count without results.json");
        run.results =
            Some(Results { param_count: 1, epochs_completed: 3, steps_per_epoch: 4, last: None, time_to_fit: None });
        assert_eq!(run.steps_to_fit(100.0), Some(8));
        assert_eq!(run.last().epoch, 2);
    }
}
