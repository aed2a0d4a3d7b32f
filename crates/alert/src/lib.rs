//! vigil-alert owns grading: the per-(region, scope) state machine that turns a stream of
//! scores into alert lifecycle events, with enter/clear thresholds (hysteresis), `for`
//! (persistence before escalating), `hold` (persistence before de-escalating, one level at a
//! time), a fast path for extreme scores, and non-compensatory floors. Pure: the caller passes
//! each evaluation's score and time.

use serde::{Deserialize, Serialize};
use vigil_model::record::AlertEvent;
use vigil_model::{Level, Ts};
use vigil_rules::Grading;

/// Grade state of one (region, scope).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GradeState {
    pub level: Option<Level>,
    /// Consecutive evaluations whose target level was above the current one.
    pub up: u32,
    /// Consecutive evaluations below the current level's clear threshold.
    pub down: u32,
    /// Window end at which the open episode began.
    pub episode_start: Option<Ts>,
    /// Window end at which the current level was reached (its deadline counts from here).
    pub level_since: Option<Ts>,
    /// Lifecycle events emitted in the open episode.
    pub seq: u32,
}

/// One lifecycle event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub event: AlertEvent,
    pub level: Option<Level>,
    pub previous: Option<Level>,
    pub episode_start: Ts,
    pub seq: u32,
    pub reason: Reason,
}

/// Why a level was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Score,
    FastPath,
    Floor,
    Clear,
    /// An evidence alarm's level from its recurrence interval.
    Evidence,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Score => "score",
            Reason::FastPath => "fast_path",
            Reason::Floor => "override",
            Reason::Clear => "below_clear",
            Reason::Evidence => "evidence",
        }
    }
}

/// The highest level whose enter threshold the score reaches.
pub fn level_for(grading: &Grading, score: f64) -> Option<Level> {
    grading.levels.iter().rev().find(|l| score >= l.enter).map(|l| l.level)
}

impl GradeState {
    /// Feeds one evaluation. `score` is `None` while grey: the state holds (an open alert stays
    /// open) and persistence counters restart. `floor` is the lowest level overrides impose.
    pub fn step(&mut self, grading: &Grading, at: Ts, score: Option<f64>, floor: Option<Level>) -> Option<Transition> {
        let Some(score) = score else {
            self.up = 0;
            self.down = 0;
            return None;
        };
        let by_score = level_for(grading, score);
        let target = by_score.max(floor);
        let reason = if floor > by_score { Reason::Floor } else { Reason::Score };
        if target > self.level {
            self.down = 0;
            self.up += 1;
            let red = grading.spec(Level::Red);
            let fast = score >= red.enter + grading.fast_path_margin;
            let need = target.map_or(1, |t| grading.spec(t).for_count);
            let persisted = self.up >= need;
            if persisted || fast || reason == Reason::Floor {
                self.up = 0;
                let previous = self.level;
                self.level = target;
                self.level_since = Some(at);
                let event = if previous.is_none() {
                    self.episode_start = Some(at);
                    self.seq = 0;
                    AlertEvent::Opened
                } else {
                    self.seq += 1;
                    AlertEvent::Escalated
                };
                let reason = if !persisted && reason == Reason::Score { Reason::FastPath } else { reason };
                return Some(Transition {
                    event,
                    level: target,
                    previous,
                    episode_start: self.episode_start.unwrap_or(at),
                    seq: self.seq,
                    reason,
                });
            }
            return None;
        }
        self.up = 0;
        let current = self.level?;
        let spec = grading.spec(current);
        if score < spec.clear && floor < Some(current) {
            self.down += 1;
            if self.down >= spec.hold {
                self.down = 0;
                let next = current.lower();
                self.level = next;
                self.level_since = next.map(|_| at);
                self.seq += 1;
                let start = self.episode_start.unwrap_or(at);
                let event = if next.is_none() {
                    self.episode_start = None;
                    AlertEvent::Resolved
                } else {
                    AlertEvent::Deescalated
                };
                return Some(Transition {
                    event,
                    level: next,
                    previous: Some(current),
                    episode_start: start,
                    seq: self.seq,
                    reason: Reason::Clear,
                });
            }
        } else {
            self.down = 0;
        }
        None
    }
}

impl GradeState {
    /// Evidence alarms: a higher `target` is taken at once (detection is never delayed), a lower
    /// one only at the `hold`-th evaluation in a row below the current level (counted in
    /// `down`), so an excess hovering about a threshold does not open, close and re-open its
    /// episode hour by hour. `hold` 1 follows the evidence at every evaluation.
    pub fn hold(&mut self, at: Ts, target: Option<Level>, hold: u32) -> Option<Transition> {
        if target > self.level {
            return self.set(at, target);
        }
        if target == self.level {
            self.down = 0;
            return None;
        }
        self.down += 1;
        if self.down >= hold.max(1) { self.set(at, target) } else { None }
    }

    /// Evidence alarms held to the end of the day: a higher `target` is taken at once, a lower
    /// one only at a day's end (`day_end`: the day's last evaluation), where the level becomes
    /// that evaluation's. Through a day the level shown is the day's highest, the quantity the
    /// recurrence intervals are calibrated on.
    pub fn hold_to_day_end(&mut self, at: Ts, target: Option<Level>, day_end: bool) -> Option<Transition> {
        if target > self.level || day_end {
            return self.set(at, target);
        }
        None
    }

    /// Moves straight to `target`, with no persistence or hysteresis: evidence alarms, whose
    /// level is the recurrence interval of today's excess and whose calibration counts the days
    /// each threshold is reached, follow the evidence day by day.
    pub fn set(&mut self, at: Ts, target: Option<Level>) -> Option<Transition> {
        if target == self.level {
            return None;
        }
        let previous = self.level;
        self.level = target;
        self.level_since = target.map(|_| at);
        self.up = 0;
        self.down = 0;
        let event = match (previous, target) {
            (None, _) => {
                self.episode_start = Some(at);
                self.seq = 0;
                AlertEvent::Opened
            }
            (_, None) => AlertEvent::Resolved,
            (Some(p), Some(t)) if t > p => AlertEvent::Escalated,
            _ => AlertEvent::Deescalated,
        };
        if event != AlertEvent::Opened {
            self.seq += 1;
        }
        let start = self.episode_start.unwrap_or(at);
        if target.is_none() {
            self.episode_start = None;
        }
        Some(Transition {
            event,
            level: target,
            previous,
            episode_start: start,
            seq: self.seq,
            reason: if target.is_none() { Reason::Clear } else { Reason::Evidence },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_rules::{LevelSpec, Name};

    fn grading() -> Grading {
        let mk = |level, enter, clear, for_count, hold| LevelSpec {
            level,
            label: Name::default(),
            colour: String::new(),
            rank: String::new(),
            response: String::new(),
            deadline: None,
            enter,
            clear,
            for_count,
            hold,
        };
        Grading {
            levels: vec![
                mk(Level::Blue, 30.0, 25.0, 1, 2),
                mk(Level::Yellow, 45.0, 40.0, 1, 2),
                mk(Level::Orange, 60.0, 55.0, 2, 2),
                mk(Level::Red, 75.0, 70.0, 2, 2),
            ],
            fast_path_margin: 10.0,
            indicator_bands: [41.0, 58.0, 77.0, 93.0],
        }
    }

    fn run(scores: &[f64]) -> Vec<(AlertEvent, Option<Level>)> {
        let g = grading();
        let mut s = GradeState::default();
        scores
            .iter()
            .enumerate()
            .filter_map(|(i, &x)| s.step(&g, i as i64, Some(x), None))
            .map(|t| (t.event, t.level))
            .collect()
    }

    #[test]
    fn opens_escalates_after_for_and_steps_down_one_level_at_a_time() {
        use AlertEvent::*;
        let ev = run(&[10.0, 50.0, 65.0, 65.0, 20.0, 20.0, 20.0, 20.0, 20.0, 20.0]);
        assert_eq!(
            ev,
            vec![
                (Opened, Some(Level::Yellow)),
                (Escalated, Some(Level::Orange)),
                (Deescalated, Some(Level::Yellow)),
                (Deescalated, Some(Level::Blue)),
                (Resolved, None),
            ]
        );
    }

    #[test]
    fn hysteresis_keeps_level_between_clear_and_enter() {
        // 42 is below yellow's enter (45) but above its clear (40): stays yellow.
        let ev = run(&[50.0, 42.0, 42.0, 42.0, 42.0]);
        assert_eq!(ev, vec![(AlertEvent::Opened, Some(Level::Yellow))]);
    }

    #[test]
    fn fast_path_skips_for() {
        let g = grading();
        let mut s = GradeState::default();
        let t = s.step(&g, 0, Some(90.0), None).unwrap();
        assert_eq!((t.event, t.level, t.reason), (AlertEvent::Opened, Some(Level::Red), Reason::FastPath));
    }

    #[test]
    fn floor_raises_and_holds() {
        let g = grading();
        let mut s = GradeState::default();
        let t = s.step(&g, 0, Some(5.0), Some(Level::Orange)).unwrap();
        assert_eq!((t.level, t.reason), (Some(Level::Orange), Reason::Floor));
        // While the floor holds, a low score does not de-escalate.
        for i in 1..5 {
            assert_eq!(s.step(&g, i, Some(5.0), Some(Level::Orange)), None);
        }
    }

    #[test]
    fn set_follows_the_target_level_by_level() {
        use AlertEvent::*;
        let mut s = GradeState::default();
        let seq: Vec<_> = [Some(Level::Yellow), Some(Level::Yellow), Some(Level::Red), Some(Level::Blue), None, None]
            .into_iter()
            .enumerate()
            .filter_map(|(i, l)| s.set(i as i64, l))
            .map(|t| (t.event, t.level, t.seq, t.episode_start))
            .collect();
        assert_eq!(
            seq,
            vec![
                (Opened, Some(Level::Yellow), 0, 0),
                (Escalated, Some(Level::Red), 1, 0),
                (Deescalated, Some(Level::Blue), 2, 0),
                (Resolved, None, 3, 0),
            ]
        );
        assert_eq!(s.episode_start, None);
    }

    #[test]
    fn grey_holds_state() {
        let g = grading();
        let mut s = GradeState::default();
        s.step(&g, 0, Some(50.0), None).unwrap();
        for i in 1..10 {
            assert_eq!(s.step(&g, i, None, None), None);
        }
        assert_eq!(s.level, Some(Level::Yellow));
    }

    #[test]
    fn evidence_rises_at_once_and_falls_only_after_its_hold() {
        use Level::*;
        let mut s = GradeState::default();
        let mut seen = Vec::new();
        let targets =
            [None, Some(Orange), Some(Yellow), Some(Orange), Some(Yellow), Some(Yellow), None, None, None, Some(Red)];
        for (t, &target) in targets.iter().enumerate() {
            if let Some(tr) = s.hold(t as Ts, target, 3) {
                seen.push((t, tr.event, tr.level));
            }
        }
        // Orange at once. The dip to yellow at 2 is shorter than the hold of 3 (orange again at
        // 3); from 4 the evidence stays below orange, and the third evaluation in a row (6)
        // lowers the level to what the evidence then says: no alarm, so the episode resolves.
        // Red opens a new one at once.
        assert_eq!(
            seen,
            vec![
                (1, AlertEvent::Opened, Some(Orange)),
                (6, AlertEvent::Resolved, None),
                (9, AlertEvent::Opened, Some(Red)),
            ]
        );
        // A hold of 1 follows the evidence at every evaluation, as `set` does.
        let (mut a, mut b) = (GradeState::default(), GradeState::default());
        for (t, &target) in targets.iter().enumerate() {
            assert_eq!(a.hold(t as Ts, target, 1), b.set(t as Ts, target), "at {t}");
        }
    }

    #[test]
    fn evidence_held_to_the_day_end_falls_only_at_midnight() {
        use Level::*;
        // Four evaluations a day; the last of each (t % 4 == 3) ends it.
        let targets = [
            None,
            Some(Yellow),
            None,
            Some(Orange), // day 0: yellow, then orange at its end
            None,
            Some(Yellow),
            None,
            None, // day 1: below orange all day; at its end nothing
            Some(Red),
            None,
            None,
            Some(Yellow), // day 2: red at once, yellow at its end
        ];
        let mut s = GradeState::default();
        let mut seen = Vec::new();
        for (t, &target) in targets.iter().enumerate() {
            if let Some(tr) = s.hold_to_day_end(t as Ts, target, t % 4 == 3) {
                seen.push((t, tr.event, tr.level));
            }
        }
        assert_eq!(
            seen,
            vec![
                (1, AlertEvent::Opened, Some(Yellow)),
                (3, AlertEvent::Escalated, Some(Orange)),
                (7, AlertEvent::Resolved, None),
                (8, AlertEvent::Opened, Some(Red)),
                (11, AlertEvent::Deescalated, Some(Yellow)),
            ]
        );
    }
}
