//! Learning-rate schedules: the learning rate is an argument of every SGD step, so a schedule
//! is a function of the epoch.

use serde::{Deserialize, Serialize};

/// How the learning rate changes from epoch to epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum LrSchedule {
    /// The demo's steps: ×0.1 from epoch 150 and ×0.01 from epoch 225.
    Step,
}

impl LrSchedule {
    /// Learning rate for 0-based `epoch` given the base rate.
    pub fn at(self, base: f64, epoch: usize) -> f64 {
        match self {
            LrSchedule::Step => {
                base * 0.1f64.powi((epoch / 150) as i32) * 0.1f64.powi((epoch / 225) as i32)
            }
        }
    }

    /// Checks the schedule's own parameters.
    pub fn validate(self) -> anyhow::Result<()> {
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
}
