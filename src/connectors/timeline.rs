//! MRR over time as step functions: one per provider object (a subscription), summed per
//! customer. An object's steps before the moment its newest state was observed are history,
//! kept as they were written; from that moment on they follow from that state.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// From `at` on, the amount is `amount_minor` (minor units of the timeline's currency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub at: DateTime<Utc>,
    pub amount_minor: i64,
}

/// One object's MRR as its state implies it, whole (past and future).
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub customer: String,
    /// Upper-case ISO 4217.
    pub currency: String,
    pub steps: Vec<Step>,
    /// What the object holds that MRR leaves out, in words.
    pub left_out: Vec<String>,
}

/// The amount at `at`: that of the last step at or before it, 0 before the first.
pub fn amount_at(steps: &[Step], at: DateTime<Utc>) -> i64 {
    steps
        .iter()
        .take_while(|s| s.at <= at)
        .last()
        .map_or(0, |s| s.amount_minor)
}

/// Consecutive equal amounts collapse into the first; leading zeros go.
pub fn normalize(steps: Vec<Step>) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::with_capacity(steps.len());
    for s in steps {
        match out.last_mut() {
            Some(last) if last.at == s.at => last.amount_minor = s.amount_minor,
            _ => out.push(s),
        }
    }
    let mut kept: Vec<Step> = Vec::with_capacity(out.len());
    for s in out {
        let previous = kept.last().map_or(0, |p| p.amount_minor);
        if s.amount_minor != previous {
            kept.push(s);
        }
    }
    kept
}

/// An object's steps once a state observed at `cut` is applied to what was `known`: the known
/// steps before `cut` (history), then the new state's from `cut` on. `cut: None` (nothing known
/// yet) takes the new state whole. Steps after `now` are dropped: they are written when a
/// later observation finds them past.
pub fn merge(
    known: &[Step],
    state: &[Step],
    cut: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<Step> {
    let mut steps: Vec<Step> = match cut {
        None => state.to_vec(),
        Some(cut) => {
            let mut steps: Vec<Step> = known.iter().filter(|s| s.at < cut).copied().collect();
            steps.push(Step {
                at: cut,
                amount_minor: amount_at(state, cut),
            });
            steps.extend(state.iter().filter(|s| s.at > cut).copied());
            steps
        }
    };
    steps.retain(|s| s.at <= now);
    normalize(steps)
}

/// The sum of several objects' steps (one customer's subscriptions).
pub fn sum(objects: &[&[Step]]) -> Vec<Step> {
    let mut times: Vec<DateTime<Utc>> = objects
        .iter()
        .flat_map(|o| o.iter().map(|s| s.at))
        .collect();
    times.sort();
    times.dedup();
    let steps = times
        .into_iter()
        .map(|at| Step {
            at,
            amount_minor: objects.iter().map(|o| amount_at(o, at)).sum(),
        })
        .collect();
    normalize(steps)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0).unwrap()
    }

    fn s(day: u32, amount: i64) -> Step {
        Step {
            at: t(day),
            amount_minor: amount,
        }
    }

    #[test]
    fn amounts_are_read_between_steps() {
        let steps = [s(2, 100), s(5, 0)];
        assert_eq!(amount_at(&steps, t(1)), 0);
        assert_eq!(amount_at(&steps, t(2)), 100);
        assert_eq!(amount_at(&steps, t(4)), 100);
        assert_eq!(amount_at(&steps, t(6)), 0);
    }

    #[test]
    fn history_before_the_cut_stays_and_the_state_rules_after_it() {
        let known = [s(1, 100)];
        // Quantity doubled on the 10th; the new state says 200 since the start.
        let state = [s(1, 200), s(20, 0)];
        let merged = merge(&known, &state, Some(t(10)), t(15));
        assert_eq!(merged, vec![s(1, 100), s(10, 200)]);
        // Once the 20th is past, the end is written too.
        assert_eq!(
            merge(&known, &state, Some(t(10)), t(25)),
            vec![s(1, 100), s(10, 200), s(20, 0)]
        );
        // Nothing known: the state whole.
        assert_eq!(merge(&[], &state, None, t(25)), vec![s(1, 200), s(20, 0)]);
        // The same state again changes nothing.
        assert_eq!(
            merge(&[s(1, 200)], &state, Some(t(12)), t(15)),
            vec![s(1, 200)]
        );
    }

    #[test]
    fn sums_add_objects_at_every_breakpoint() {
        let a = [s(1, 100), s(10, 0)];
        let b = [s(5, 50)];
        assert_eq!(sum(&[&a, &b]), vec![s(1, 100), s(5, 150), s(10, 50)]);
        assert_eq!(sum(&[]), vec![]);
        assert_eq!(
            normalize(vec![s(1, 0), s(2, 5), s(3, 5), s(4, 0)]),
            vec![s(2, 5), s(4, 0)]
        );
    }
}
