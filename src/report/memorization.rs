//! Memorization under partial label corruption (0 < p < 1): per epoch, the train accuracy on
//! the examples whose label was kept ("clean") and on those whose label the corruption mask
//! drew ("corrupted"), and the cumulative share of each group fitted by each epoch — the
//! curves that show clean examples learned first and noisy labels memorized later.

use super::csv::{Csv, num};
use super::names::{BOOKKEEPING, distinguishing_suffixes, model_name, model_rank};
use super::plot::{self, Dash, Figure, Marker, Panel, Series, Style};
use super::runs::Run;
use super::{Outcome, write_figure};
use crate::data::randomize::Randomization;
use crate::npy;
use crate::train::run_dir::python_g;
use anyhow::{Result, bail};
use std::path::Path;

/// The cumulative share (percent) of clean and of corrupted examples fitted by each epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct FittedCurves {
    /// Per epoch in `epochs`: percent of clean examples fitted by then (`None` without any).
    pub clean: Vec<Option<f64>>,
    /// Per epoch in `epochs`: percent of corrupted examples fitted by then (`None` without any).
    pub corrupted: Vec<Option<f64>>,
}

/// For each 0-based epoch in `epochs`, the percent of clean and of corrupted examples whose
/// `fitted_epoch` (first epoch of the final run of correct predictions, −1 = not fitted) is at
/// most that epoch. `fitted` and `corrupted` must have one entry per training example.
pub fn fitted_curves(fitted: &[i64], corrupted: &[u8], epochs: &[usize]) -> Result<FittedCurves> {
    if fitted.len() != corrupted.len() {
        bail!("fitted_epoch.npy has {} examples, corrupted.npy {}", fitted.len(), corrupted.len());
    }
    if let Some(bad) = corrupted.iter().find(|&&c| c > 1) {
        bail!("corrupted.npy holds {bad}, not a 0/1 mask");
    }
    if let Some(bad) = fitted.iter().find(|&&f| f < -1) {
        bail!("fitted_epoch.npy holds {bad}, not an epoch or -1");
    }
    let share = |group: u8, epoch: usize| {
        let members = || fitted.iter().zip(corrupted).filter(move |(_, c)| **c == group);
        let total = members().count();
        let hits = members().filter(|(f, _)| **f >= 0 && **f as usize <= epoch).count();
        (total > 0).then(|| 100.0 * hits as f64 / total as f64)
    };
    Ok(FittedCurves {
        clean: epochs.iter().map(|&e| share(0, e)).collect(),
        corrupted: epochs.iter().map(|&e| share(1, e)).collect(),
    })
}

/// Writes `memorization.png`/`.svg`/`.csv` for the finished runs with 0 < p < 1.
pub fn memorization(runs: &[Run], out: &Path, notes: &mut Vec<String>) -> Result<Outcome> {
    let mut chosen: Vec<&Run> = runs
        .iter()
        .filter(|r| {
            let p = r.config.label_corrupt_prob;
            r.finished() && r.config.randomize == Randomization::Labels && p > 0.0 && p < 1.0
        })
        .collect();
    if chosen.is_empty() {
        return Ok(Outcome::Skipped("no finished run with partially corrupted labels (0 < p < 1)".into()));
    }
    chosen.sort_by(|a, b| {
        let key = |r: &Run| (model_rank(&r.config), model_name(&r.config));
        key(a)
            .cmp(&key(b))
            .then(a.config.label_corrupt_prob.total_cmp(&b.config.label_corrupt_prob))
            .then(a.dir.cmp(&b.dir))
    });
    let mut loaded = Vec::new();
    for run in chosen {
        let epochs: Vec<usize> = run.metrics.iter().map(|m| m.epoch).collect();
        let curves = npy::read(&run.dir.join("fitted_epoch.npy"), npy::parse_i64).and_then(|fitted| {
            let corrupted = npy::read(&run.dir.join("corrupted.npy"), npy::parse_u8)?;
            fitted_curves(&fitted, &corrupted, &epochs)
        });
        match curves {
            Ok(curves) => loaded.push((run, curves)),
            Err(err) => notes.push(format!("memorization leaves out a run: {err:#}")),
        }
    }
    if loaded.is_empty() {
        return Ok(Outcome::Skipped("no run with p in (0, 1) has readable fitted_epoch.npy and corrupted.npy".into()));
    }
    let several_models = loaded.iter().any(|(r, _)| model_name(&r.config) != model_name(&loaded[0].0.config));
    let items: Vec<(String, &crate::train::config::TrainConfig)> = loaded
        .iter()
        .map(|(r, _)| {
            let p = format!("p={}", python_g(r.config.label_corrupt_prob));
            let base = if several_models { format!("{}, {p}", model_name(&r.config)) } else { p };
            (base, &r.config)
        })
        .collect();
    let suffixes = distinguishing_suffixes(&items, &[BOOKKEEPING, &["val_labels"]]);

    let mut csv = Csv::new(&[
        "architecture",
        "p",
        "run",
        "epochs_trained",
        "train_acc_clean",
        "train_acc_corrupted",
        "fitted_clean_percent",
        "fitted_corrupted_percent",
    ]);
    let mut accuracy = Vec::new();
    let mut fitted = Vec::new();
    for (i, (((run, curves), (base, _)), suffix)) in loaded.iter().zip(&items).zip(&suffixes).enumerate() {
        let label = format!("{base}{suffix}");
        let color = plot::PALETTE[i % plot::PALETTE.len()];
        let marker = if run.metrics.len() <= 30 { plot::MARKERS[i % plot::MARKERS.len()] } else { Marker::None };
        let clean = Style { color, dash: Dash::Solid, marker };
        // One run: clean and corrupted get their own colours (and markers) besides the dash.
        let noisy = if loaded.len() == 1 {
            let second = if marker == Marker::None { Marker::None } else { plot::MARKERS[1] };
            Style::nth(1, Dash::Dashed, second)
        } else {
            Style { color, dash: Dash::Dashed, marker }
        };
        let x = |m: &crate::train::metrics::EpochMetrics| (m.epoch + 1) as f64;
        let pairs = |values: &mut dyn Iterator<Item = (f64, Option<f64>)>| -> Vec<(f64, f64)> {
            values.filter_map(|(x, y)| y.map(|y| (x, y))).collect()
        };
        accuracy.push(Series {
            label: format!("{label}: clean labels"),
            points: pairs(&mut run.metrics.iter().map(|m| (x(m), m.train_acc_clean))),
            style: clean,
        });
        accuracy.push(Series {
            label: format!("{label}: corrupted labels"),
            points: pairs(&mut run.metrics.iter().map(|m| (x(m), m.train_acc_corrupted))),
            style: noisy,
        });
        fitted.push(Series {
            label: format!("{label}: clean labels"),
            points: pairs(&mut run.metrics.iter().zip(&curves.clean).map(|(m, c)| (x(m), *c))),
            style: clean,
        });
        fitted.push(Series {
            label: format!("{label}: corrupted labels"),
            points: pairs(&mut run.metrics.iter().zip(&curves.corrupted).map(|(m, c)| (x(m), *c))),
            style: noisy,
        });
        for (j, m) in run.metrics.iter().enumerate() {
            csv.row(vec![
                model_name(&run.config),
                num(Some(run.config.label_corrupt_prob)),
                run.dir.display().to_string(),
                (m.epoch + 1).to_string(),
                num(m.train_acc_clean),
                num(m.train_acc_corrupted),
                num(curves.clean[j]),
                num(curves.corrupted[j]),
            ]);
        }
    }
    let max_epoch = loaded.iter().flat_map(|(r, _)| r.metrics.iter().map(|m| m.epoch + 1)).max().unwrap_or(1);
    let x_range = 0.0..max_epoch as f64 * 1.02 + 0.5;
    let model = if several_models { String::new() } else { format!(" ({})", model_name(&loaded[0].0.config)) };
    let figure = Figure {
        title: format!("Memorization under partially corrupted labels{model}"),
        panels: vec![
            Panel {
                title: Some("train accuracy by label group".into()),
                x_label: "epochs trained".into(),
                y_label: "train accuracy (%)".into(),
                x_range: x_range.clone(),
                y_range: -3.0..103.0,
                series: accuracy,
            },
            Panel {
                title: Some("examples fitted for good by each epoch".into()),
                x_label: "epochs trained".into(),
                y_label: "cumulative share fitted (%)".into(),
                x_range,
                y_range: -3.0..103.0,
                series: fitted,
            },
        ],
        size: plot::DOUBLE,
    };
    write_figure(&figure, &csv, out, "memorization")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_shares_split_by_the_mask() {
        let fitted = [0, 2, -1, 1, 0, -1];
        let corrupted = [0, 0, 0, 1, 1, 1];
        let curves = fitted_curves(&fitted, &corrupted, &[0, 1, 2]).unwrap();
        let pct = |v: &[Option<f64>]| v.iter().map(|x| x.map(|x| (x * 3.0 / 100.0).round())).collect::<Vec<_>>();
        assert_eq!(pct(&curves.clean), vec![Some(1.0), Some(1.0), Some(2.0)]);
        assert_eq!(pct(&curves.corrupted), vec![Some(1.0), Some(2.0), Some(2.0)]);
        let none_corrupted = fitted_curves(&[0, 1], &[0, 0], &[1]).unwrap();
        assert_eq!((none_corrupted.clean, none_corrupted.corrupted), (vec![Some(100.0)], vec![None]));
    }

    #[test]
    fn mismatched_files_are_refused() {
        assert!(format!("{}", fitted_curves(&[0, 1], &[0], &[0]).unwrap_err()).contains("2 examples"));
        assert!(format!("{}", fitted_curves(&[0], &[2], &[0]).unwrap_err()).contains("0/1 mask"));
        assert!(format!("{}", fitted_curves(&[-3], &[0], &[0]).unwrap_err()).contains("-3"));
    }
}
