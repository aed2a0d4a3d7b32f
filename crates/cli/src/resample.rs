//! Monte Carlo replicates of a recorded history, for `vigil calibrate --replicates`
//! (docs/methodology.md §16.3): where the history is short, the evidence alarm's thresholds are
//! fitted on the recorded days together with replicate histories built from them.
//!
//! Each replicate covers the recorded days (or, where they are too few to calibrate on, as many
//! as a full baseline and a calibration need), and each of its local days is a copy of a recorded
//! day of the same weekday, shifted by whole local days, the recorded days of each weekday dealt
//! in a random order (each once before any twice, as in a permutation test): the city's events of that
//! day, every region, source and category together, at their local times of day (less what the
//! recorded history's replay refuses as late, which it does not count either). So a replicate
//! keeps each day's mix and the weekly pattern; what it loses is the order of the days (runs of
//! busy days, trends, clusters that last several days), which makes its days chance by
//! construction: thresholds fitted on replicates alone are lower than real clusters warrant.
//! Draws come from ChaCha8 keyed by the seed and the replicate's number, so the same history,
//! rules and seed give the same replicates.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use vigil_core::{Options, ScoreDetail};
use vigil_model::Event;
use vigil_model::record::{AlertRecord, ScoreRecord};
use vigil_model::time::DAY;
use vigil_replay::{Input, Next, Records};
use vigil_rules::RuleSet;
use vigil_rules::decode::{Decoder, SourceHint};

/// Most recorded events replicates are built from (about 1.1 GiB held in memory): replicates are
/// for a short history, and a longer one is calibrated on its own days.
const MAX_EVENTS: usize = 4_000_000;

/// The recorded events, in time order, and where each local day's begin.
pub struct Recorded {
    rules: Arc<RuleSet>,
    events: Vec<Event>,
    /// (local day number, first event, end), in day order.
    days: Vec<(i64, usize, usize)>,
}

/// The events a replay refuses as late or out of range, by input name and position.
pub type Refused = HashMap<String, HashSet<u64>>;

/// The events a replay of `inputs` refuses as late or out of range: the recorded history's own
/// replay counts none of them, so its replicates must not copy them either (each replicate's
/// events come in time order, so none of them would be late there).
pub fn refused(rules: &Arc<RuleSet>, inputs: Vec<Input>) -> Result<Refused> {
    let options = Options { scores: ScoreDetail::None, ..Options::default() };
    let mut pipeline = vigil_core::Pipeline::new(Arc::clone(rules), options);
    let mut sink = LateOnly(Refused::new());
    vigil_replay::replay(&mut pipeline, inputs, &mut sink).context("replaying the recorded history")?;
    Ok(sink.0)
}

/// Keeps where the late events were, nothing else (no alerts, no scores).
struct LateOnly(Refused);

impl vigil_core::Output for LateOnly {
    fn score(&mut self, _: ScoreRecord) {}
    fn alert(&mut self, _: AlertRecord) {}
}

impl vigil_replay::Sink for LateOnly {
    fn rejected(&mut self, _: vigil_replay::Rejected) {}
    fn late(&mut self, r: vigil_replay::LateRecord) {
        self.0.entry(r.input).or_default().insert(r.line);
    }
}

impl Recorded {
    /// Reads every event of `inputs` that decodes and is not `refused` (those that do not decode
    /// are left to the replay of the recorded history to report), up to the local day
    /// `last_day` inclusive.
    pub fn read(
        rules: &Arc<RuleSet>,
        inputs: Vec<Input>,
        refused: &Refused,
        last_day: Option<i64>,
    ) -> Result<Recorded> {
        let decoder = Decoder::new(rules);
        let mut events = Vec::new();
        let none = HashSet::new();
        for mut input in inputs {
            let hint = input.source.map_or(SourceHint::None, SourceHint::Default);
            let refused = refused.get(&input.name).unwrap_or(&none);
            let mut ev = Event::default();
            loop {
                match input
                    .records
                    .next_record(&decoder, hint, &mut ev)
                    .with_context(|| format!("reading {}", input.name))?
                {
                    Next::Event { pos, .. } => {
                        if !refused.contains(&pos) && last_day.is_none_or(|l| local_day(rules, ev.ts) <= l) {
                            if events.len() == MAX_EVENTS {
                                bail!(
                                    "replicates are for a short history, and this one holds more than {MAX_EVENTS} events: calibrate on its own days (without --replicates), or on fewer of them (--to)"
                                );
                            }
                            events.push(ev);
                        }
                    }
                    Next::Rejected { .. } => {}
                    Next::End => break,
                }
            }
        }
        // Stable: events of one instant keep their input order.
        events.sort_by_key(|e| e.ts);
        let mut days: Vec<(i64, usize, usize)> = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let d = local_day(rules, e.ts);
            match days.last_mut() {
                Some(last) if last.0 == d => last.2 = i + 1,
                _ => days.push((d, i, i + 1)),
            }
        }
        if days.is_empty() {
            bail!("no events to build replicates from");
        }
        Ok(Recorded { rules: Arc::clone(rules), events, days })
    }

    /// The first and last recorded local days.
    pub fn span(&self) -> (i64, i64) {
        (self.days[0].0, self.days[self.days.len() - 1].0)
    }

    /// Replicate `k` (from 1) of `len` local days from the first recorded day, under `seed`.
    pub fn replicate(self: &Arc<Self>, seed: u64, k: u32, len: i64) -> Result<Input> {
        let mut by_weekday: [Vec<usize>; 7] = Default::default();
        for (i, d) in self.days.iter().enumerate() {
            by_weekday[weekday(d.0)].push(i);
        }
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..12].copy_from_slice(&k.to_le_bytes());
        key[12..16].copy_from_slice(b"repl");
        let mut rng = ChaCha8Rng::from_seed(key);
        let first = self.days[0].0;
        let mut plan = Vec::with_capacity(len as usize);
        // Per weekday, its recorded days in a random order, dealt one by one and shuffled again
        // when all are dealt: every day is copied once before any is copied twice. (Drawn with
        // replacement, a busy day copied twice within a baseline is its own precedent, and the
        // scan discounts an excess its series has already seen: methodology §16.2.)
        let mut decks: [Vec<usize>; 7] = Default::default();
        for target in first..first + len {
            let wd = weekday(target);
            if by_weekday[wd].is_empty() {
                bail!("no recorded day falls on the weekday of {}: replicates need every weekday", date(target));
            }
            if decks[wd].is_empty() {
                decks[wd].clone_from(&by_weekday[wd]);
                shuffle(&mut decks[wd], &mut rng);
            }
            plan.extend(decks[wd].pop().map(|src| (src, target)));
        }
        let records = Replicate { rec: Arc::clone(self), plan, day: 0, next: 0, pos: 0 };
        Ok(Input { name: format!("replicate-{k}"), source: None, records: Box::new(records) })
    }
}

/// Fisher–Yates. Modulo bias is below 2^-50 for any history a machine holds.
fn shuffle(v: &mut [usize], rng: &mut ChaCha8Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
}

/// One replicate's events, day by day as planned.
struct Replicate {
    rec: Arc<Recorded>,
    /// Per target day: the recorded day copied (an index into `rec.days`), the target day.
    plan: Vec<(usize, i64)>,
    day: usize,
    /// The next event of the current day, counted from its first.
    next: usize,
    pos: u64,
}

impl Records for Replicate {
    fn next_record(&mut self, _: &Decoder<'_>, _: SourceHint, out: &mut Event) -> io::Result<Next> {
        while let Some(&(src, target)) = self.plan.get(self.day) {
            let (day, start, end) = self.rec.days[src];
            if start + self.next >= end {
                self.day += 1;
                self.next = 0;
                continue;
            }
            *out = self.rec.events[start + self.next];
            self.next += 1;
            self.pos += 1;
            // The same local time of day on the target day (the zone's own offset there).
            let zone = &self.rec.rules.zone;
            out.ts = zone.utc(zone.local(out.ts) + (target - day) * DAY);
            // A recorded event copied to several days is not a resend of itself.
            if out.id_hash != 0 {
                out.id_hash ^= (target as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            }
            return Ok(Next::Event { pos: self.pos, dropped_fields: 0 });
        }
        Ok(Next::End)
    }
}

fn local_day(rules: &RuleSet, ts: vigil_model::Ts) -> i64 {
    rules.zone.local(ts).div_euclid(DAY)
}

/// 0 = Monday for a day number counted from 1970-01-01 (a Thursday).
fn weekday(day: i64) -> usize {
    (day + 3).rem_euclid(7) as usize
}

/// The `YYYY-MM-DD` date of a local day number.
pub fn date(day: i64) -> String {
    vigil_model::Zone::date_of_local(day * DAY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_model::time::HOUR;
    use vigil_rules::testing as mini;

    /// Three weeks of events, one a day at 10:00 (+08:00) plus one more on Mondays, their
    /// response time the day of the month, so a copy can be traced to its recorded day.
    fn recorded(rules: &Arc<RuleSet>) -> Recorded {
        let mut text = String::new();
        for day in 2..=22 {
            let n = if (day - 2) % 7 == 0 { 2 } else { 1 };
            for h in 0..n {
                text += &format!(
                    "{{\"id\":\"e{day}-{h}\",\"region\":\"G1\",\"ts\":\"2026-03-{day:02}T1{h}:00:00+08:00\",\"attrs\":{{\"incident_type\":\"theft\",\"response_minutes\":{day}}}}}\n"
                );
            }
        }
        let input = Input::lines("police.jsonl".into(), rules.source_index("police"), Box::new(io::Cursor::new(text)));
        Recorded::read(rules, vec![input], &Refused::new(), None).unwrap()
    }

    fn events(rec: &Arc<Recorded>, seed: u64, k: u32, len: i64) -> Vec<Event> {
        let mut input = rec.replicate(seed, k, len).unwrap();
        let decoder = Decoder::new(&rec.rules);
        let mut out = Vec::new();
        let mut ev = Event::default();
        while let Next::Event { .. } = input.records.next_record(&decoder, SourceHint::None, &mut ev).unwrap() {
            out.push(ev);
        }
        out
    }

    #[test]
    fn a_replicate_copies_recorded_days_of_the_same_weekday_in_order() {
        let rules = Arc::new(vigil_rules::compile(&mini::files_with(&[])).unwrap());
        let rec = Arc::new(recorded(&rules));
        assert_eq!(rec.span().1 - rec.span().0, 20);
        let attrs = &rules.sources[0].attrs;
        let minutes = attrs.iter().position(|a| a.name == "response_minutes").unwrap();
        // Longer than the history: 35 days, each a copy of one of its days.
        let evs = events(&rec, 7, 1, 35);
        let mut days = 0;
        for (i, e) in evs.iter().enumerate() {
            let local = rules.zone.local(e.ts);
            let target = local.div_euclid(DAY);
            assert!(target >= rec.span().0 && target < rec.span().0 + 35);
            assert!(i == 0 || evs[i - 1].ts <= e.ts, "in time order");
            // The recorded day it copies: 2026-03-<response_minutes>, same weekday and time of day.
            let of_month = attrs[minutes].to_real(e.get(minutes).unwrap()) as i64;
            let source_day = vigil_eval::parse_day(&format!("2026-03-{of_month:02}")).unwrap();
            assert_eq!(weekday(source_day), weekday(target));
            assert!(local.rem_euclid(DAY) == 10 * HOUR || local.rem_euclid(DAY) == 11 * HOUR);
            days += usize::from(i == 0 || evs[i - 1].ts.div_euclid(DAY) != e.ts.div_euclid(DAY));
        }
        assert_eq!(days, 35, "every day of the replicate holds its copy");
        // Dealt, not drawn: the first 21 days copy each of the 21 recorded days (March 2..22) once.
        let copied = |from: i64, to: i64| {
            let mut v: Vec<i64> = evs
                .iter()
                .filter(|e| (from..to).contains(&rules.zone.local(e.ts).div_euclid(DAY)))
                .map(|e| attrs[minutes].to_real(e.get(minutes).unwrap()) as i64)
                .collect();
            v.dedup();
            v.sort_unstable();
            v
        };
        assert_eq!(copied(rec.span().0, rec.span().0 + 21), (2..=22).collect::<Vec<_>>());
        // Mondays hold two events, other days one.
        assert_eq!(evs.len(), 35 + 5);
        // The same seed and replicate give the same events; another replicate, other draws.
        assert_eq!(evs, events(&rec, 7, 1, 35));
        assert_ne!(evs, events(&rec, 7, 2, 35));
        assert_ne!(evs, events(&rec, 8, 1, 35));
        // A copy is not a resend of the recorded event.
        let ids: std::collections::BTreeSet<u64> = evs.iter().map(|e| e.id_hash).collect();
        assert_eq!(ids.len(), evs.len());
    }

    /// An event the recorded history's replay refuses as late is not copied into replicates.
    #[test]
    fn events_refused_as_late_are_left_out() {
        let rules = Arc::new(vigil_rules::compile(&mini::files_with(&[])).unwrap());
        let line = |day: u32, h: u32| {
            format!(
                "{{\"region\":\"G1\",\"ts\":\"2026-03-{day:02}T{h:02}:00:00+08:00\",\"attrs\":{{\"incident_type\":\"theft\",\"response_minutes\":{day}}}}}\n"
            )
        };
        // The third line comes a day after the second's time: late by far more than 5 minutes.
        let text = [line(2, 10), line(3, 10), line(2, 11), line(3, 12)].concat();
        let input = || {
            Input::lines("police.jsonl".into(), rules.source_index("police"), Box::new(io::Cursor::new(text.clone())))
        };
        let refused = refused(&rules, vec![input()]).unwrap();
        assert_eq!(refused.get("police.jsonl").map(|s| s.len()), Some(1), "{refused:?}");
        let all = Recorded::read(&rules, vec![input()], &Refused::new(), None).unwrap();
        let kept = Recorded::read(&rules, vec![input()], &refused, None).unwrap();
        assert_eq!((all.events.len(), kept.events.len()), (4, 3));
        let hours: Vec<i64> = kept.events.iter().map(|e| rules.zone.local(e.ts).rem_euclid(DAY) / HOUR).collect();
        assert_eq!(hours, [10, 10, 12]);
    }
}
