//! Watermarks. Each input (a source, or a Kafka partition) has a watermark = the largest event
//! time it has shown minus its allowed delay; the global watermark is the minimum over inputs
//! that are not idle. An idle input stops holding the others back; when every input is idle the
//! driver may advance time itself. This module only does the arithmetic; the driver decides
//! when an input is idle (it owns the clock).

use serde::{Deserialize, Serialize};
use vigil_model::Ts;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    pub max_ts: Option<Ts>,
    pub delay: i64,
    pub idle: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Watermarks {
    inputs: Vec<Input>,
    /// The global watermark never goes back, even when an idle input wakes with old events.
    floor: Option<Ts>,
}

impl Watermarks {
    /// One input per entry of `delays` (milliseconds).
    pub fn new(delays: &[i64]) -> Watermarks {
        Watermarks {
            inputs: delays.iter().map(|&d| Input { max_ts: None, delay: d, idle: false }).collect(),
            floor: None,
        }
    }

    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Records an event time seen on `input`; the input is no longer idle.
    #[inline]
    pub fn observe(&mut self, input: usize, ts: Ts) {
        let i = &mut self.inputs[input];
        i.idle = false;
        if i.max_ts.is_none_or(|m| ts > m) {
            i.max_ts = Some(ts);
        }
    }

    pub fn set_idle(&mut self, input: usize, idle: bool) {
        self.inputs[input].idle = idle;
    }

    /// Whether the input is marked idle.
    pub fn is_idle(&self, input: usize) -> bool {
        self.inputs[input].idle
    }

    /// The input's own watermark.
    pub fn input_watermark(&self, input: usize) -> Option<Ts> {
        let i = &self.inputs[input];
        i.max_ts.map(|m| m - i.delay)
    }

    /// The global watermark: the minimum over active inputs, never decreasing. `None` until
    /// every active input has shown an event (an active input with no events holds time back).
    pub fn current(&mut self) -> Option<Ts> {
        let mut min: Option<Ts> = None;
        let mut any_active = false;
        for i in &self.inputs {
            if i.idle {
                continue;
            }
            any_active = true;
            let w = i.max_ts.map(|m| m - i.delay)?;
            min = Some(min.map_or(w, |x: Ts| x.min(w)));
        }
        if !any_active {
            // Everything idle: hold at the highest watermark any input reached.
            min = self.inputs.iter().filter_map(|i| i.max_ts.map(|m| m - i.delay)).max();
        }
        if let Some(m) = min
            && self.floor.is_none_or(|f| m > f)
        {
            self.floor = Some(m);
        }
        self.floor
    }

    /// The lowest watermark among active inputs that have shown an event: how far the slowest
    /// input that is moving has got. Drivers hold back inputs that run too far ahead of it.
    pub fn min_active(&self) -> Option<Ts> {
        self.inputs.iter().filter(|i| !i.idle).filter_map(|i| i.max_ts.map(|m| m - i.delay)).min()
    }

    /// True when every input that is not idle has shown an event.
    pub fn all_active_have_data(&self) -> bool {
        self.inputs.iter().all(|i| i.idle || i.max_ts.is_some())
    }

    /// Advances the global watermark to at least `ts` (the driver's wall-clock advance when all
    /// inputs are silent, or the end of a finite replay).
    pub fn advance_to(&mut self, ts: Ts) {
        if self.floor.is_none_or(|f| ts > f) {
            self.floor = Some(ts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_over_active_inputs() {
        let mut w = Watermarks::new(&[10, 0]);
        w.observe(0, 100);
        assert_eq!(w.current(), None, "input 1 has shown nothing yet");
        w.observe(1, 50);
        assert_eq!(w.current(), Some(50));
        w.set_idle(1, true);
        assert_eq!(w.current(), Some(90));
        // Waking with an old event does not move time back.
        w.observe(1, 60);
        assert_eq!(w.current(), Some(90));
    }
}
