//! The paper's Figure 1: (a) training loss against SGD steps for each randomization test,
//! (b) time to fit relative to true labels against the label-corruption level p, and
//! (c) test error against p — each as PNG, SVG and the CSV of its numbers.

use super::csv::{Csv, num};
use super::names::{
    BOOKKEEPING, RANDOMIZATION_KEYS, distinguishing_suffixes, is_label_test, model_name, model_rank,
    randomization_label, randomization_rank, settings_key,
};
use super::plot::{self, DASHES, Dash, Figure, MARKERS, Marker, P_RANGE, Panel, Series, Style};
use super::runs::Run;
use super::{Outcome, write_figure};
use crate::train::config::ValLabels;
use crate::train::run_dir::python_g;
use anyhow::Result;
use std::path::Path;

/// Runs of one architecture that differ only in their randomization test: one line of
/// Figures 1b and 1c.
struct Group<'a> {
    /// Legend text: the model name, plus the settings telling it apart from same-model groups.
    label: String,
    runs: Vec<&'a Run>,
}

/// Settings ignored when grouping runs into lines: bookkeeping, the randomization, and the
/// labels the test split is scored against.
const LINE_IGNORED: &[&[&str]] = &[BOOKKEEPING, RANDOMIZATION_KEYS, &["val_labels"]];

/// Groups `runs` into lines, in the paper's model order.
fn group<'a>(runs: &[&'a Run]) -> Vec<Group<'a>> {
    let mut keyed: Vec<(String, Vec<&'a Run>)> = Vec::new();
    for run in runs {
        let key = settings_key(&run.config, LINE_IGNORED);
        match keyed.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(run),
            None => keyed.push((key, vec![run])),
        }
    }
    keyed.sort_by(|a, b| {
        let (ra, rb) = (&a.1[0].config, &b.1[0].config);
        (model_rank(ra), model_name(ra), &a.0).cmp(&(model_rank(rb), model_name(rb), &b.0))
    });
    let items: Vec<(String, &crate::train::config::TrainConfig)> =
        keyed.iter().map(|(_, members)| (model_name(&members[0].config), &members[0].config)).collect();
    let suffixes = distinguishing_suffixes(&items, LINE_IGNORED);
    keyed
        .into_iter()
        .zip(items.iter().zip(suffixes))
        .map(|((_, mut runs), ((name, _), suffix))| {
            runs.sort_by(|a, b| a.config.label_corrupt_prob.total_cmp(&b.config.label_corrupt_prob));
            Group { label: format!("{name}{suffix}"), runs }
        })
        .collect()
}

/// The dataset named in figure titles when every run used the same one.
fn dataset_title(runs: &[&Run]) -> String {
    let first = runs.first().map(|r| r.config.data);
    if runs.iter().all(|r| Some(r.config.data) == first) {
        first.map_or(String::new(), |d| format!(" ({})", d.name().to_uppercase()))
    } else {
        String::new()
    }
}

/// Figure 1a: training loss against SGD steps, one curve per randomization test (and per
/// architecture when several are present). Unfinished runs are drawn too, marked as such.
pub fn figure1a(runs: &[Run], out: &Path, notes: &mut Vec<String>) -> Result<Outcome> {
    let mut chosen: Vec<&Run> = Vec::new();
    for run in runs {
        let p = run.config.label_corrupt_prob;
        if p > 0.0 && p < 1.0 {
            continue;
        }
        if run.metrics.iter().any(|m| run.steps_at(m).is_none()) {
            notes.push(format!(
                "figure1a leaves out {}: metrics.csv has no step counts and there is no results.json",
                run.dir.display()
            ));
            continue;
        }
        chosen.push(run);
    }
    if chosen.is_empty() {
        return Ok(Outcome::Skipped("no run with true labels, random labels (p=1) or randomized pixels".into()));
    }
    chosen.sort_by(|a, b| {
        let key = |r: &Run| (model_rank(&r.config), model_name(&r.config), randomization_rank(&r.config));
        key(a).cmp(&key(b)).then(a.dir.cmp(&b.dir))
    });
    let models: Vec<String> = unique(chosen.iter().map(|r| model_name(&r.config)));
    let tests: Vec<String> = unique(chosen.iter().map(|r| randomization_label(&r.config)));
    let several_models = models.len() > 1;
    let base = |r: &Run| {
        let test = randomization_label(&r.config);
        if several_models { format!("{}: {test}", model_name(&r.config)) } else { test }
    };
    let items: Vec<(String, &crate::train::config::TrainConfig)> =
        chosen.iter().map(|r| (base(r), &r.config)).collect();
    let suffixes = distinguishing_suffixes(&items, &[BOOKKEEPING, &["val_labels"]]);

    let max_steps = chosen.iter().flat_map(|r| r.metrics.iter().filter_map(|m| r.steps_at(m))).max().unwrap_or(1);
    let (scale, x_label) = if max_steps >= 5000 { (1000.0, "SGD steps (thousands)") } else { (1.0, "SGD steps") };
    let mut csv = Csv::new(&["architecture", "randomization", "run", "epoch", "steps", "train_loss"]);
    let mut series: Vec<Series> = Vec::new();
    for ((run, (label, _)), suffix) in chosen.iter().zip(&items).zip(&suffixes) {
        let model = model_name(&run.config);
        let test = randomization_label(&run.config);
        let color = tests.iter().position(|t| *t == test).unwrap_or(0);
        let model_index = models.iter().position(|m| *m == model).unwrap_or(0);
        // Colour and marker tell the randomization tests apart, the dash the architecture;
        // markers only while the points are few enough to stay apart.
        let marker = if run.metrics.len() <= 40 { MARKERS[color % MARKERS.len()] } else { Marker::None };
        let mut style = Style::nth(color, DASHES[model_index % DASHES.len()], marker);
        let clashes = series.iter().filter(|s| s.style.color == style.color && s.style.dash == style.dash).count();
        if clashes > 0 {
            // Repeated runs of one test and model (other seeds, settings): the next colours.
            style.color = plot::PALETTE[(color + tests.len() + clashes - 1) % plot::PALETTE.len()];
        }
        let mut points = Vec::new();
        for m in &run.metrics {
            let steps = run.steps_at(m).unwrap_or(0);
            points.push((steps as f64 / scale, m.train_loss));
            csv.row(vec![
                model.clone(),
                test.clone(),
                run.dir.display().to_string(),
                m.epoch.to_string(),
                steps.to_string(),
                num(Some(m.train_loss)),
            ]);
        }
        let unfinished = if run.finished() { "" } else { " (unfinished)" };
        series.push(Series { label: format!("{label}{suffix}{unfinished}"), points, style });
    }
    let losses = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let figure = Figure {
        title: format!("Figure 1a: training loss under randomization tests{}", dataset_title(&chosen)),
        panels: vec![Panel {
            title: None,
            x_label: x_label.into(),
            y_label: "average training loss (cross-entropy)".into(),
            x_range: 0.0..max_steps as f64 / scale * 1.02,
            y_range: plot::from_zero(losses, 0.05),
            series,
        }],
        size: plot::SINGLE,
    };
    write_figure(&figure, &csv, out, "figure1a")
}

/// SGD steps to fit relative to the true-label run of each line's mean steps to fit: `None`
/// when there is no true-label (p = 0) entry. Input and output: `(p, steps)` → relative time.
pub fn relative_times(points: &[(f64, usize)]) -> Option<Vec<f64>> {
    let reference: Vec<f64> = points.iter().filter(|(p, _)| *p == 0.0).map(|(_, s)| *s as f64).collect();
    if reference.is_empty() {
        return None;
    }
    let mean = reference.iter().sum::<f64>() / reference.len() as f64;
    if mean <= 0.0 {
        return None;
    }
    Some(points.iter().map(|(_, s)| *s as f64 / mean).collect())
}

/// Figure 1b: steps until the train accuracy reaches `threshold` percent, relative to the
/// true-label run of the same architecture and settings, against the corruption level p.
pub fn figure1b(runs: &[Run], threshold: f64, out: &Path, notes: &mut Vec<String>) -> Result<Outcome> {
    let label_runs: Vec<&Run> = runs.iter().filter(|r| r.finished() && is_label_test(&r.config)).collect();
    if label_runs.is_empty() {
        return Ok(Outcome::Skipped("no finished run with true or corrupted labels".into()));
    }
    let mut fitted: Vec<&Run> = Vec::new();
    for run in &label_runs {
        if run.steps_to_fit(threshold).is_some() {
            fitted.push(run);
        } else {
            notes.push(format!(
                "figure1b leaves out {}: train accuracy never reached {}% in {} epochs (best {:.2}%)",
                run.dir.display(),
                python_g(threshold),
                run.metrics.len(),
                run.metrics.iter().map(|m| m.train_acc).fold(0.0, f64::max)
            ));
        }
    }
    if fitted.is_empty() {
        return Ok(Outcome::Skipped(format!(
            "no run reached {t}% train accuracy (train with --stop-at-train-acc {t} and enough --epochs, or lower --fit-threshold)",
            t = python_g(threshold)
        )));
    }
    let mut csv = Csv::new(&["architecture", "randomization", "p", "steps_to_fit", "relative_time", "run"]);
    let mut series = Vec::new();
    let mut missing = Vec::new();
    for group in group(&fitted) {
        let points: Vec<(f64, usize)> =
            group.runs.iter().map(|r| (r.config.label_corrupt_prob, r.steps_to_fit(threshold).unwrap_or(0))).collect();
        let Some(relative) = relative_times(&points) else {
            missing.push(group.label.clone());
            continue;
        };
        for ((run, (p, steps)), rel) in group.runs.iter().zip(&points).zip(&relative) {
            csv.row(vec![
                group.label.clone(),
                randomization_label(&run.config),
                num(Some(*p)),
                steps.to_string(),
                num(Some(*rel)),
                run.dir.display().to_string(),
            ]);
        }
        let i = series.len();
        series.push(Series {
            label: group.label.clone(),
            points: mean_by_p(points.iter().map(|(p, _)| *p).zip(relative.iter().copied())),
            style: Style::nth(i, Dash::Solid, MARKERS[i % MARKERS.len()]),
        });
    }
    if !missing.is_empty() {
        let why = format!("no true-label run (p=0) that reached {}% train accuracy", python_g(threshold));
        if series.is_empty() {
            return Ok(Outcome::Skipped(format!("{why} for {}", missing.join(", "))));
        }
        notes.push(format!("figure1b leaves out {}: {why}", missing.join(", ")));
    }
    let values = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let figure = Figure {
        title: format!(
            "Figure 1b: time to {}% train accuracy vs. label corruption{}",
            python_g(threshold),
            dataset_title(&fitted)
        ),
        panels: vec![Panel {
            title: None,
            x_label: "label corruption p (fraction of random labels)".into(),
            y_label: "time to fit (SGD steps, relative to true labels)".into(),
            x_range: P_RANGE,
            y_range: plot::from_zero(values, 0.15),
            series,
        }],
        size: plot::SINGLE,
    };
    write_figure(&figure, &csv, out, "figure1b")
}

/// Figure 1c: test error (against the true test labels) at the end of training, against the
/// corruption level p; training error dashed beside it, chance level dotted.
pub fn figure1c(runs: &[Run], out: &Path) -> Result<Outcome> {
    let label_runs: Vec<&Run> = runs.iter().filter(|r| r.finished() && is_label_test(&r.config)).collect();
    if label_runs.is_empty() {
        return Ok(Outcome::Skipped("no finished run with true or corrupted labels".into()));
    }
    let clean: Vec<&Run> = label_runs.iter().copied().filter(|r| r.config.val_labels == ValLabels::Clean).collect();
    if clean.is_empty() {
        return Ok(Outcome::Skipped("no run scored against clean test labels (train with --val-labels clean)".into()));
    }
    let mut csv = Csv::new(&["architecture", "p", "test_error", "train_error", "run"]);
    let mut series = Vec::new();
    for (i, group) in group(&clean).iter().enumerate() {
        let mut test = Vec::new();
        let mut train = Vec::new();
        for run in &group.runs {
            let p = run.config.label_corrupt_prob;
            let last = run.last();
            let (test_error, train_error) = (100.0 - last.val_acc, 100.0 - last.train_acc);
            test.push((p, test_error));
            train.push((p, train_error));
            csv.row(vec![
                group.label.clone(),
                num(Some(p)),
                num(Some(test_error)),
                num(Some(train_error)),
                run.dir.display().to_string(),
            ]);
        }
        let color = plot::PALETTE[i % plot::PALETTE.len()];
        let marker = MARKERS[i % MARKERS.len()];
        series.push(Series {
            label: format!("{}: test error", group.label),
            points: mean_by_p(test.into_iter()),
            style: Style { color, dash: Dash::Solid, marker },
        });
        series.push(Series {
            label: format!("{}: training error", group.label),
            points: mean_by_p(train.into_iter()),
            style: Style { color, dash: Dash::Dashed, marker },
        });
    }
    let classes = clean[0].config.num_classes;
    if clean.iter().all(|r| r.config.num_classes == classes) {
        let chance = 100.0 * (1.0 - 1.0 / classes as f64);
        series.push(Series {
            label: format!("chance level ({chance:.0}%)"),
            points: vec![(P_RANGE.start, chance), (P_RANGE.end, chance)],
            style: Style { color: plot::REFERENCE, dash: Dash::Dotted, marker: Marker::None },
        });
    }
    let figure = Figure {
        title: format!("Figure 1c: test error vs. label corruption{}", dataset_title(&clean)),
        panels: vec![Panel {
            title: None,
            x_label: "label corruption p (fraction of random labels)".into(),
            y_label: "error at the end of training (%)".into(),
            x_range: P_RANGE,
            // A little room below 0 so that a training error of 0 stays visible above the axis.
            y_range: -3.0..103.0,
            series,
        }],
        size: plot::SINGLE,
    };
    write_figure(&figure, &csv, out, "figure1c")
}

/// Averages the values of equal p (repeated runs), sorted by p.
pub fn mean_by_p(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut sums: Vec<(f64, f64, usize)> = Vec::new();
    for (p, v) in points {
        match sums.iter_mut().find(|(q, _, _)| *q == p) {
            Some(entry) => {
                entry.1 += v;
                entry.2 += 1;
            }
            None => sums.push((p, v, 1)),
        }
    }
    sums.sort_by(|a, b| a.0.total_cmp(&b.0));
    sums.into_iter().map(|(p, s, n)| (p, s / n as f64)).collect()
}

/// The distinct values, in first-appearance order.
fn unique(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_time_divides_by_the_true_label_run() {
        let rel = relative_times(&[(0.0, 100), (0.5, 250), (1.0, 400)]).unwrap();
        assert_eq!(rel, vec![1.0, 2.5, 4.0]);
        // Repeated true-label runs: their mean is the reference.
        let rel = relative_times(&[(0.0, 100), (0.0, 300), (1.0, 400)]).unwrap();
        assert_eq!(rel, vec![0.5, 1.5, 2.0]);
        assert_eq!(relative_times(&[(0.5, 250), (1.0, 400)]), None);
        assert_eq!(relative_times(&[(0.0, 0), (1.0, 400)]), None);
    }

    #[test]
    fn repeated_p_values_are_averaged() {
        let points = mean_by_p([(1.0, 4.0), (0.0, 1.0), (1.0, 6.0)].into_iter());
        assert_eq!(points, vec![(0.0, 1.0), (1.0, 5.0)]);
    }
}
