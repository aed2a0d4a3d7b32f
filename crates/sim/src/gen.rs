//! The event-stream generator: run configuration, the sink that receives JSON lines, and the
//! hour-by-hour simulation of the four streams over a region registry with injected incidents.
//!
//! Model, per leaf cell c, source s and local hour t:
//!
//! ```text
//! mean(c, s, t) = base(c, s) / 24 · hour_of_day(s, t) · day_of_week(s, t) · day(city, s) · day(district, s)
//! count         ~ NegBin(mean, variance = φ_s · mean)        (Poisson–Gamma mixture)
//! ```
//!
//! `base(c, s)` is the city's daily target shared in proportion to population × an area-kind
//! intensity × a lognormal cell effect (sd ≈ 0.3), so that neighbouring cells of the same size
//! still differ the way real ones do. The day factors are small shared shocks (weather, a
//! football match) that make district counts co-move. Everything is drawn from ChaCha8
//! streams keyed by the user seed, so a configuration determines its output to the byte.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io::{self, Write};

use vigil_model::time::{DAY, HOUR, SECOND, civil_from_days, days_from_civil, format_local};
use vigil_model::{Duration, RegionSpec, Ts};

use crate::city::{AreaKind, area_kind_of_district};
use crate::incident::{self, Active, GroundTruth, Hour, Incident};
use crate::mix::{
    Attrs, CASE_MIX, DAILY_TARGET, DISPERSION, HourCtx, Mix, RawEvent, Src, case_filing_share, write_event,
};
use crate::rng::{Rng, stream};
use crate::tree::Tree;

/// The fixed local offset of the simulated city (China Standard Time).
pub const LOCAL_OFFSET: Duration = Duration(8 * HOUR);

/// 2026-01-05 00:00 local, a Monday: the default start of a run.
pub fn default_start() -> Ts {
    days_from_civil(2026, 1, 5) * DAY - LOCAL_OFFSET.0
}

/// Which incidents to inject.
#[derive(Clone, Debug, PartialEq)]
pub enum IncidentPlan {
    /// A seeded plan (see [`crate::auto_incidents`]).
    Auto,
    /// Exactly these incidents (an empty list gives a clean baseline).
    Explicit(Vec<Incident>),
}

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenConfig {
    pub seed: u64,
    pub days: u32,
    /// First instant of the run; must be a local midnight.
    pub start: Ts,
    pub incidents: IncidentPlan,
    /// Multiplier on every baseline volume (1.0 = the full city). Incident rates scale with
    /// it too, since they are multiples of the baseline.
    pub volume: f64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig { seed: 1, days: 60, start: default_start(), incidents: IncidentPlan::Auto, volume: 1.0 }
    }
}

/// Receives the generated events: one JSON object per call, without a trailing newline.
/// `source` is one of `police`, `case`, `petition`, `opinion`.
pub trait EventSink {
    fn emit(&mut self, source: &str, line: &str) -> io::Result<()>;
}

impl<S: EventSink + ?Sized> EventSink for &mut S {
    fn emit(&mut self, source: &str, line: &str) -> io::Result<()> {
        (**self).emit(source, line)
    }
}

/// Keeps every line in memory, per source: for tests and small runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemorySink {
    pub lines: BTreeMap<String, Vec<String>>,
}

impl EventSink for MemorySink {
    fn emit(&mut self, source: &str, line: &str) -> io::Result<()> {
        self.lines.entry(source.to_string()).or_default().push(line.to_string());
        Ok(())
    }
}

/// Writes JSON Lines, one writer per source (typically `police.jsonl`, `case.jsonl`, ...).
#[derive(Debug)]
pub struct JsonlSink<W: Write> {
    writers: [W; 4],
}

impl<W: Write> JsonlSink<W> {
    pub fn new(police: W, case: W, petition: W, opinion: W) -> Self {
        JsonlSink { writers: [police, case, petition, opinion] }
    }

    /// The writers back, in source order (police, case, petition, opinion), e.g. to flush.
    pub fn into_inner(self) -> [W; 4] {
        self.writers
    }
}

impl<W: Write> EventSink for JsonlSink<W> {
    fn emit(&mut self, source: &str, line: &str) -> io::Result<()> {
        let i = crate::SOURCES
            .iter()
            .position(|s| *s == source)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("unknown source `{source}`")))?;
        let w = &mut self.writers[i];
        w.write_all(line.as_bytes())?;
        w.write_all(b"\n")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("writing events: {0}")]
    Io(#[from] io::Error),
    #[error("the region registry is empty")]
    EmptyRegistry,
    #[error("region `{0}` appears twice in the registry")]
    DuplicateRegion(String),
    #[error("region `{code}` has parent `{parent}`, which is not in the registry (or forms a cycle)")]
    UnknownParent { code: String, parent: String },
    #[error("the start {0} is not a local midnight (+08:00)")]
    StartNotMidnight(String),
    #[error("volume must be a finite number >= 0, got {0}")]
    BadVolume(f64),
    #[error("incident `{id}`: {reason}")]
    BadIncident { id: String, reason: String },
}

/// A leaf cell as the generator sees it.
pub(crate) struct Cell {
    pub code: String,
    pub kind: AreaKind,
    /// Index into the run's district list (for the shared day factors).
    pub district: usize,
    pub pop: f64,
    /// Expected events per day per source at weekly-average time, volume included.
    pub base: [f64; 4],
}

/// Per-capita intensity by area kind (police, case, petition, opinion): city centres draw
/// more calls and far more online attention per resident; petitions are spread evenly.
fn intensity(kind: AreaKind) -> [f64; 4] {
    match kind {
        AreaKind::Core => [1.2, 1.2, 1.0, 1.3],
        AreaKind::Urban => [1.1, 1.1, 1.0, 1.15],
        AreaKind::NewArea => [1.0, 1.0, 1.1, 1.0],
        AreaKind::County => [0.8, 0.8, 0.95, 0.65],
    }
}

/// Log-scale sd of the cell effect shared by all sources, and of the per-source part; together
/// about 0.3.
const CELL_SD: f64 = 0.25;
const CELL_SOURCE_SD: f64 = 0.17;
/// Log-scale sd of the daily city-wide and district-wide shocks.
const CITY_DAY_SD: f64 = 0.04;
const DISTRICT_DAY_SD: f64 = 0.06;
/// How far back the simulated case history reaches: solved events arrive up to 90 days after
/// filing, so the stream of solved events is already in steady state on the first day.
const HISTORY_DAYS: i64 = 90;

fn build_cells(tree: &Tree<'_>, volume: f64, seed: u64) -> (Vec<Cell>, usize) {
    let mut rng = Rng::new(seed, stream::CELLS);
    let mut district_ids: Vec<usize> = Vec::new();
    let mut weights: Vec<[f64; 4]> = Vec::with_capacity(tree.leaves.len());
    let mut cells = Vec::with_capacity(tree.leaves.len());
    for &leaf in &tree.leaves {
        let region = &tree.regions[leaf];
        let d = tree.district[leaf];
        let district = match district_ids.iter().position(|x| *x == d) {
            Some(i) => i,
            None => {
                district_ids.push(d);
                district_ids.len() - 1
            }
        };
        let kind = area_kind_of_district(&tree.regions[d].code);
        let pop = region.population.unwrap_or(0) as f64;
        let common = CELL_SD * rng.normal();
        let bias = (CELL_SD * CELL_SD + CELL_SOURCE_SD * CELL_SOURCE_SD) / 2.0;
        let inten = intensity(kind);
        let mut w = [0.0; 4];
        for (s, slot) in w.iter_mut().enumerate() {
            *slot = pop * inten[s] * (common + CELL_SOURCE_SD * rng.normal() - bias).exp();
        }
        weights.push(w);
        cells.push(Cell { code: region.code.clone(), kind, district, pop, base: [0.0; 4] });
    }
    // Share each city-wide target out in proportion to the weights, so the expected city total
    // is the target whatever the registry looks like.
    let filing = case_filing_share();
    for s in 0..4 {
        let total: f64 = weights.iter().map(|w| w[s]).sum();
        let target = DAILY_TARGET[s] * volume * if s == Src::Case as usize { filing } else { 1.0 };
        for (cell, w) in cells.iter_mut().zip(&weights) {
            cell.base[s] = if total > 0.0 { target * w[s] / total } else { 0.0 };
        }
    }
    (cells, district_ids.len())
}

/// The `solved` events still to come, in a min-heap on (time, tie-break sequence) so they
/// come out in time order. The sequence only orders events that share the same second; it
/// counts up from zero in every run, so runs stay reproducible.
/// (time, tie-break sequence, cell, case type, severity) of a scheduled closure.
type SolvedEntry = (Ts, u64, u32, u8, u8);

#[derive(Default)]
pub(crate) struct SolvedQueue {
    heap: BinaryHeap<Reverse<SolvedEntry>>,
    next_seq: u64,
}

impl SolvedQueue {
    /// Decides whether a criminal case filed at `filed` will be solved and, if so, schedules
    /// its `solved` event 5–90 days later in working hours. `clearance_factor` scales the
    /// type's usual clearance rate. Administrative cases are not followed up.
    pub fn schedule(&mut self, rng: &mut Rng, filed: Ts, cell: u32, ty: u8, severity: u8, clearance_factor: f64) {
        let ct = &CASE_MIX[ty as usize];
        if !ct.criminal || !rng.chance(ct.clearance * clearance_factor) {
            return;
        }
        // Most cases that are solved at all are solved within a few weeks.
        let delay_days = loop {
            let d = 5.0 + rng.gamma(1.2, 18.0);
            if d <= 90.0 {
                break d.floor() as i64;
            }
        };
        let local_day = (filed + LOCAL_OFFSET.0).div_euclid(DAY) + delay_days;
        let hour = rng.pick(&SOLVED_HOURS) as i64;
        let ts = local_day * DAY - LOCAL_OFFSET.0 + hour * HOUR + rng.below(3600) as i64 * SECOND;
        self.next_seq += 1;
        self.heap.push(Reverse((ts, self.next_seq, cell, ty, severity)));
    }

    /// Moves the solved events due before `until` into `out`, dropping any that fall before
    /// `from` (closures of pre-history cases that happened before the run started).
    fn drain_until(&mut self, from: Ts, until: Ts, out: &mut Vec<RawEvent>) {
        while let Some(&Reverse((ts, _, cell, ty, severity))) = self.heap.peek() {
            if ts >= until {
                break;
            }
            self.heap.pop();
            if ts >= from {
                out.push(RawEvent { ts, cell, attrs: Attrs::Case { ty, severity, solved: true } });
            }
        }
    }
}

/// Working-hours profile for case closures (08:00–19:00, thin at the edges).
const SOLVED_HOURS: [f64; 24] = [
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 1.2, 1.1, 0.5, 0.7, 1.1, 1.2, 1.1, 0.9, 0.4, 0.2, 0.0, 0.0, 0.0,
    0.0,
];

/// Generates `cfg.days` days of events for every leaf region of `regions`, hour by hour, and
/// hands each event to `sink` as one JSON line. Within each source, events arrive in
/// non-decreasing event time. Returns the incidents that were injected.
pub fn generate(cfg: &GenConfig, regions: &[RegionSpec], sink: &mut impl EventSink) -> Result<GroundTruth, GenError> {
    if (cfg.start + LOCAL_OFFSET.0).rem_euclid(DAY) != 0 {
        return Err(GenError::StartNotMidnight(format_local(cfg.start, LOCAL_OFFSET)));
    }
    if !cfg.volume.is_finite() || cfg.volume < 0.0 {
        return Err(GenError::BadVolume(cfg.volume));
    }
    let tree = Tree::new(regions)?;
    let incidents = match &cfg.incidents {
        IncidentPlan::Auto => incident::plan(cfg.seed, cfg.days, cfg.start, &tree),
        IncidentPlan::Explicit(list) => {
            incident::validate(list, &tree)?;
            list.clone()
        }
    };
    let mix = Mix::new();
    let (cells, n_districts) = build_cells(&tree, cfg.volume, cfg.seed);
    let mut solved = SolvedQueue::default();
    case_history(cfg, &cells, &mix, &mut solved);
    let mut active: Vec<Active> = incidents.iter().map(|inc| Active::new(inc, cfg.seed, &tree, &cells)).collect();

    let mut rng = Rng::new(cfg.seed, stream::BASELINE);
    let mut batch: Vec<RawEvent> = Vec::new();
    let mut line = String::with_capacity(256);
    let mut id = String::with_capacity(24);
    let mut day_factor = vec![[1.0f64; 4]; n_districts];
    let first_local_day = (cfg.start + LOCAL_OFFSET.0).div_euclid(DAY);
    for day in 0..cfg.days as i64 {
        let local_day = first_local_day + day;
        let (y, m, d) = civil_from_days(local_day);
        let ymd = format!("{y:04}{m:02}{d:02}");
        let dow = (local_day + 3).rem_euclid(7) as u32; // 1970-01-01 was a Thursday.
        let mut seq = [0u32; 4];
        let city: [f64; 4] = std::array::from_fn(|_| shock(&mut rng, CITY_DAY_SD));
        for f in day_factor.iter_mut() {
            for s in 0..4 {
                f[s] = city[s] * shock(&mut rng, DISTRICT_DAY_SD);
            }
        }
        for hour in 0..24u32 {
            let hour_start = cfg.start + day * DAY + hour as i64 * HOUR;
            let ctx = HourCtx { hour, dow };
            for src in Src::ALL {
                let s = src as usize;
                batch.clear();
                let tf = mix.time_factor(src, ctx) / 24.0;
                for (ci, cell) in cells.iter().enumerate() {
                    let mu = cell.base[s] * tf * day_factor[cell.district][s];
                    let n = rng.neg_binomial(mu, DISPERSION[s]);
                    for _ in 0..n {
                        let ts = hour_start + rng.below(3600) as i64 * SECOND;
                        let attrs = match src {
                            Src::Police => mix.police(&mut rng, ctx, cell.kind),
                            Src::Case => {
                                let (ty, severity) = mix.case_filed(&mut rng);
                                solved.schedule(&mut rng, ts, ci as u32, ty, severity, 1.0);
                                Attrs::Case { ty, severity, solved: false }
                            }
                            Src::Petition => mix.petition(&mut rng, ctx, cell.kind),
                            Src::Opinion => mix.opinion(&mut rng),
                        };
                        batch.push(RawEvent { ts, cell: ci as u32, attrs });
                    }
                }
                let hour_in = Hour { start: hour_start, ctx, mix: &mix, cells: &cells };
                for inc in active.iter_mut() {
                    inc.hour_events(src, &hour_in, &mut batch, &mut solved);
                }
                if src == Src::Case {
                    solved.drain_until(cfg.start, hour_start + HOUR, &mut batch);
                }
                // Stable sort: equal times keep generation order, which is itself seeded.
                batch.sort_by_key(|e| e.ts);
                for e in &batch {
                    seq[s] += 1;
                    id.clear();
                    use std::fmt::Write as _;
                    let _ = write!(id, "{}-{}-{:06}", src.letter(), ymd, seq[s]);
                    let ts = format_local(e.ts, LOCAL_OFFSET);
                    line.clear();
                    write_event(&mut line, &id, &cells[e.cell as usize].code, &ts, &e.attrs);
                    sink.emit(src.id(), &line)?;
                }
            }
        }
    }
    Ok(GroundTruth { incidents })
}

/// A mean-one lognormal shock.
fn shock(rng: &mut Rng, sd: f64) -> f64 {
    (sd * rng.normal() - sd * sd / 2.0).exp()
}

/// Simulates the criminal cases filed in the 90 days before the run, only to schedule the
/// `solved` events that fall inside it; without this the solved stream would start at zero
/// and take three months to reach its level, which a detector would read as a trend.
fn case_history(cfg: &GenConfig, cells: &[Cell], mix: &Mix, queue: &mut SolvedQueue) {
    let mut rng = Rng::new(cfg.seed, stream::HISTORY);
    for (ci, cell) in cells.iter().enumerate() {
        for back in 1..=HISTORY_DAYS {
            let day_start = cfg.start - back * DAY;
            let n = rng.poisson(cell.base[Src::Case as usize]);
            for _ in 0..n {
                let (ty, severity) = mix.case_filed(&mut rng);
                let filed = day_start + rng.below(86_400) as i64 * SECOND;
                queue.schedule(&mut rng, filed, ci as u32, ty, severity, 1.0);
            }
        }
    }
}
