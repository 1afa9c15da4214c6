//! Learning-rate schedules: the learning rate is an argument of every SGD step, so a schedule
//! is a function of the epoch.

use serde::{Deserialize, Serialize};

/// Schedule family, as `--lr-schedule` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScheduleKind {
    /// The demo's steps: ×0.1 from epoch 150 and ×0.01 from epoch 225.
    Step,
    /// The paper's exponential decay: lr·decay^epoch.
    Exp,
}

/// How the learning rate changes from epoch to epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum LrSchedule {
    /// The demo's steps: ×0.1 from epoch 150 and ×0.01 from epoch 225.
    Step,
    /// The paper's: lr·decay^epoch (decay 0.95).
    Exp {
        /// Factor applied every epoch.
        decay: f64,
    },
}

impl LrSchedule {
    /// The schedule `kind` with its parameter.
    pub fn new(kind: ScheduleKind, decay: f64) -> Self {
        match kind {
            ScheduleKind::Step => LrSchedule::Step,
            ScheduleKind::Exp => LrSchedule::Exp { decay },
        }
    }

    /// Learning rate for 0-based `epoch` given the base rate.
    pub fn at(self, base: f64, epoch: usize) -> f64 {
        match self {
            LrSchedule::Step => base * 0.1f64.powi((epoch / 150) as i32) * 0.1f64.powi((epoch / 225) as i32),
            LrSchedule::Exp { decay } => base * decay.powi(epoch as i32),
        }
    }

    /// Checks the schedule's own parameters.
    pub fn validate(self) -> anyhow::Result<()> {
        if let LrSchedule::Exp { decay } = self
            && !(decay.is_finite() && decay > 0.0 && decay <= 1.0)
        {
            anyhow::bail!("--lr-decay {decay} must be in (0, 1]");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_schedule_matches_the_demo() {
        let s = LrSchedule::Step;
        assert_eq!(s.at(0.1, 0), 0.1);
        assert_eq!(s.at(0.1, 149), 0.1);
        assert!((s.at(0.1, 150) - 0.01).abs() < 1e-15);
        assert!((s.at(0.1, 224) - 0.01).abs() < 1e-15);
        assert!((s.at(0.1, 225) - 0.001).abs() < 1e-15);
        assert!((s.at(0.1, 299) - 0.001).abs() < 1e-15);
    }

    #[test]
    fn exp_schedule_decays_every_epoch() {
        let s = LrSchedule::new(ScheduleKind::Exp, 0.95);
        assert_eq!(s.at(0.1, 0), 0.1);
        assert!((s.at(0.1, 2) - 0.1 * 0.95 * 0.95).abs() < 1e-15);
        assert!(LrSchedule::Exp { decay: 1.5 }.validate().is_err());
        assert!(LrSchedule::Exp { decay: 0.95 }.validate().is_ok());
    }
}
