//! `kernel_fit`: how many passes over the kernel matrix conjugate gradient needs to fit the
//! labels, against label corruption p, one line per kernel — the kernel counterpart of
//! Figure 1b (Belkin, Ma & Mandal 2018), from the `result.json` of `rethink kernel
//! --solver cg --until-fit` runs (e.g. `sweeps/kernel_fit.toml`).

use super::csv::{Csv, num};
use super::plot::{self, Dash, Figure, MARKERS, P_RANGE, Panel, Series, Style};
use super::{Outcome, write_figure};
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One kernel solve, read from its `result.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelRun {
    /// The run directory.
    pub dir: PathBuf,
    /// The kernel and its parameter, e.g. `laplacian σ=10`.
    pub kernel: String,
    /// The feature map (`raw`, `gabor`, `random-conv`).
    pub features: String,
    /// Training points.
    pub n_train: usize,
    /// Label corruption probability.
    pub p: f64,
    /// CG iterations until the train error was 0 (`None`: not fitted, or not CG).
    pub fit_iterations: Option<usize>,
    /// Passes over K until then.
    pub fit_kernel_passes: Option<usize>,
    /// Test error in percent.
    pub test_error: f64,
}

impl KernelRun {
    /// Reads `dir/result.json`; the error names the file and the missing field.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("result.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let json: Value = serde_json::from_str(&text).with_context(|| format!("{} does not parse", path.display()))?;
        let field = |pointer: &str| {
            json.pointer(pointer).with_context(|| format!("{} has no {pointer}", path.display())).cloned()
        };
        let kernel = field("/kernel")?;
        let name = kernel["name"].as_str().unwrap_or("?").to_string();
        let kernel = match (kernel["bandwidth"].as_f64(), kernel["sigma"].as_f64()) {
            (Some(bw), _) => format!("{name} bandwidth {bw}"),
            (_, Some(sigma)) => format!("{name} σ={sigma}"),
            _ => name,
        };
        let number = |pointer: &str| -> Result<f64> {
            field(pointer)?.as_f64().with_context(|| format!("{}: {pointer} is not a number", path.display()))
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            kernel,
            features: field("/features/settings/kind")?.as_str().unwrap_or("?").to_string(),
            n_train: number("/data/n_train")? as usize,
            p: number("/data/label_corrupt_prob")?,
            fit_iterations: json["fit_iterations"].as_u64().map(|v| v as usize),
            fit_kernel_passes: json["fit_kernel_passes"].as_u64().map(|v| v as usize),
            test_error: number("/test_error_percent")?,
        })
    }

    /// The line this run belongs to: kernel, features (when not raw) and training size.
    fn line(&self) -> String {
        let features = if self.features == "raw" { String::new() } else { format!(", {} features", self.features) };
        format!("{}{features}, n = {}", self.kernel, self.n_train)
    }
}

/// Draws passes to fit against p for every kernel (one line each, repeated p averaged) and
/// writes the numbers of every run, fitted or not, to `kernel_fit.csv`.
pub fn kernel_fit(runs: &[KernelRun], out: &Path, notes: &mut Vec<String>) -> Result<Outcome> {
    let fitted: Vec<&KernelRun> = runs.iter().filter(|r| r.fit_kernel_passes.is_some()).collect();
    if fitted.is_empty() {
        return Ok(Outcome::Skipped(
            "no kernel run recorded its fitting time (run rethink kernel --solver cg --until-fit)".into(),
        ));
    }
    for run in runs.iter().filter(|r| r.fit_kernel_passes.is_none()) {
        notes.push(format!(
            "{} did not fit its labels (not CG with --until-fit, or --max-iters too low)",
            run.dir.display()
        ));
    }
    let mut csv =
        Csv::new(&["kernel", "features", "n_train", "p", "fit_iterations", "fit_kernel_passes", "test_error", "run"]);
    let mut lines: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for run in runs {
        csv.row(vec![
            run.kernel.clone(),
            run.features.clone(),
            run.n_train.to_string(),
            num(Some(run.p)),
            run.fit_iterations.map_or(String::new(), |v| v.to_string()),
            run.fit_kernel_passes.map_or(String::new(), |v| v.to_string()),
            num(Some(run.test_error)),
            run.dir.display().to_string(),
        ]);
        if let Some(passes) = run.fit_kernel_passes {
            let line = run.line();
            match lines.iter_mut().find(|(l, _)| *l == line) {
                Some((_, points)) => points.push((run.p, passes as f64)),
                None => lines.push((line, vec![(run.p, passes as f64)])),
            }
        }
    }
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    let top = lines.iter().flat_map(|(_, pts)| pts.iter().map(|p| p.1)).fold(1.0, f64::max);
    let series = lines
        .into_iter()
        .enumerate()
        .map(|(i, (label, points))| Series {
            label,
            points: super::figure1::mean_by_p(points.into_iter()),
            style: Style::nth(i, Dash::Solid, MARKERS[i % MARKERS.len()]),
        })
        .collect();
    let figure = Figure {
        title: "Kernels fit noisy labels too: conjugate-gradient passes until the train error is 0".into(),
        panels: vec![Panel {
            title: None,
            x_label: "label corruption p (fraction of random labels)".into(),
            y_label: "passes over the kernel matrix to fit".into(),
            x_range: P_RANGE,
            y_range: plot::from_zero([top], 0.08),
            series,
        }],
        size: plot::SINGLE,
    };
    write_figure(&figure, &csv, out, "kernel_fit")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_result_and_names_a_missing_field() {
        let tmp = tempfile::tempdir().unwrap();
        let json = r#"{"kernel": {"name": "laplacian", "sigma": 10.0}, "features": {"settings": {"kind": "raw"}},
            "data": {"n_train": 500, "label_corrupt_prob": 0.5}, "fit_iterations": 9, "fit_kernel_passes": 9,
            "test_error_percent": 40.5}"#;
        std::fs::write(tmp.path().join("result.json"), json).unwrap();
        let run = KernelRun::load(tmp.path()).unwrap();
        assert_eq!(
            (run.kernel.as_str(), run.n_train, run.p, run.fit_kernel_passes),
            ("laplacian σ=10", 500, 0.5, Some(9))
        );
        assert_eq!(run.line(), "laplacian σ=10, n = 500");
        std::fs::write(tmp.path().join("result.json"), json.replace("\"n_train\": 500, ", "")).unwrap();
        assert!(format!("{:#}", KernelRun::load(tmp.path()).unwrap_err()).contains("has no /data/n_train"));
    }
}
