//! What a simulated event looks like: the four sources, their attribute vocabularies (copied
//! from `rules/sources.toml`, in declaration order), the everyday mixes of those attributes,
//! the hour-of-day and day-of-week profiles, and the JSON wire form of one event.
//!
//! The shares are plausible rather than official: they follow the broad shape of published
//! 110 call-type breakdowns, 12345 hotline reports and public-opinion monitoring summaries
//! (assistance and traffic dominate calls; property management and consumer disputes dominate
//! complaints; online chatter peaks late in the evening).

use std::fmt::Write as _;

use vigil_model::Ts;

use crate::city::AreaKind;
use crate::rng::Rng;

/// The four event sources, in the order the generator emits them within an hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Src {
    Police = 0,
    Case = 1,
    Petition = 2,
    Opinion = 3,
}

impl Src {
    pub const ALL: [Src; 4] = [Src::Police, Src::Case, Src::Petition, Src::Opinion];

    pub fn id(self) -> &'static str {
        SOURCES[self as usize]
    }

    /// The first letter of event ids. Petitions use `s` (社情) because `p` is police.
    pub fn letter(self) -> char {
        ['p', 'c', 's', 'o'][self as usize]
    }
}

/// Source ids as declared in `rules/sources.toml`.
pub const SOURCES: [&str; 4] = ["police", "case", "petition", "opinion"];

/// City-wide daily event volumes at `volume = 1.0`. The case figure includes the `solved`
/// follow-up events.
pub(crate) const DAILY_TARGET: [f64; 4] = [2_500.0, 400.0, 600.0, 4_000.0];

/// Variance-to-mean ratio of hourly cell counts per source. Petitions and opinion items come
/// in clumps (a building's residents call about the same outage, a post draws replies), so
/// they are more over-dispersed than calls for service.
pub(crate) const DISPERSION: [f64; 4] = [1.5, 1.5, 1.9, 2.0];

// ---------------------------------------------------------------------------------------------
// Police incidents.

pub(crate) const INCIDENT_TYPES: [&str; 26] = [
    "theft",
    "burglary",
    "robbery",
    "fraud",
    "assault",
    "sexual_offence",
    "arson",
    "drug",
    "fight",
    "provocation",
    "disturbance",
    "drunk_disorder",
    "family_dispute",
    "neighbour_dispute",
    "economic_dispute",
    "tenancy_dispute",
    "labour_dispute",
    "crowd_gathering",
    "road_blocking",
    "sit_in",
    "traffic",
    "fire",
    "medical",
    "missing_person",
    "assistance",
    "other",
];

/// Per incident type: share of calls in percent, multiplier at night (22:00–05:59), and urgency
/// class (0 = life or property at immediate risk, 1 = prompt attendance, 2 = routine).
const POLICE_MIX: [(f64, f64, u8); 26] = [
    (9.0, 0.8, 2),   // theft
    (1.5, 1.8, 1),   // burglary
    (0.3, 1.6, 0),   // robbery
    (5.0, 0.4, 2),   // fraud
    (2.0, 1.8, 0),   // assault
    (0.2, 1.5, 0),   // sexual_offence
    (0.1, 1.5, 0),   // arson
    (0.4, 1.5, 1),   // drug
    (3.5, 2.2, 1),   // fight
    (1.0, 1.8, 1),   // provocation
    (5.0, 2.0, 2),   // disturbance
    (2.0, 3.0, 1),   // drunk_disorder
    (6.0, 1.2, 2),   // family_dispute
    (5.0, 0.9, 2),   // neighbour_dispute
    (4.0, 0.4, 2),   // economic_dispute
    (2.0, 0.5, 2),   // tenancy_dispute
    (1.5, 0.3, 2),   // labour_dispute
    (0.3, 0.3, 1),   // crowd_gathering
    (0.15, 0.3, 1),  // road_blocking
    (0.1, 0.2, 2),   // sit_in
    (14.0, 0.7, 1),  // traffic
    (1.5, 1.0, 0),   // fire
    (3.0, 1.1, 0),   // medical
    (1.0, 1.0, 0),   // missing_person
    (20.0, 0.7, 2),  // assistance
    (11.45, 0.9, 2), // other
];

/// Priority 1..4 probabilities per urgency class; most calls end up 3 or 4.
const PRIORITY_BY_URGENCY: [[f64; 4]; 3] =
    [[0.30, 0.45, 0.20, 0.05], [0.05, 0.25, 0.50, 0.20], [0.01, 0.06, 0.45, 0.48]];

pub(crate) fn police_type_index(name: &str) -> u8 {
    INCIDENT_TYPES.iter().position(|t| *t == name).expect("known incident type") as u8
}

// ---------------------------------------------------------------------------------------------
// Cases.

pub(crate) const CASE_TYPES: [&str; 24] = [
    "homicide",
    "arson",
    "explosion",
    "dangerous_substances",
    "rape",
    "robbery",
    "kidnapping",
    "grievous_injury",
    "theft",
    "burglary",
    "snatching",
    "fraud",
    "telecom_fraud",
    "illegal_fundraising",
    "pyramid_selling",
    "mass_contract_fraud",
    "drug",
    "other_criminal",
    "admin_assault",
    "admin_affray",
    "admin_provocation",
    "admin_gambling",
    "admin_theft",
    "admin_other",
];

pub(crate) struct CaseType {
    /// Share of filings in percent.
    pub weight: f64,
    /// Criminal cases get a later `solved` event; administrative ones are settled on the spot.
    pub criminal: bool,
    /// Probability of severity 1..5.
    pub severity: [f64; 5],
    /// Share eventually solved (only for criminal cases). Telecom fraud is notoriously hard
    /// to clear; homicide and drug cases almost always are.
    pub clearance: f64,
}

const fn ct(weight: f64, criminal: bool, severity: [f64; 5], clearance: f64) -> CaseType {
    CaseType { weight, criminal, severity, clearance }
}

pub(crate) const CASE_MIX: [CaseType; 24] = [
    ct(0.05, true, [0.0, 0.0, 0.0, 0.0, 1.0], 0.95),
    ct(0.2, true, [0.0, 0.0, 0.3, 0.5, 0.2], 0.6),
    ct(0.01, true, [0.0, 0.0, 0.0, 0.3, 0.7], 0.8),
    ct(0.1, true, [0.0, 0.0, 0.3, 0.5, 0.2], 0.7),
    ct(0.3, true, [0.0, 0.0, 0.0, 0.7, 0.3], 0.85),
    ct(0.6, true, [0.0, 0.0, 0.3, 0.6, 0.1], 0.8),
    ct(0.05, true, [0.0, 0.0, 0.0, 0.4, 0.6], 0.9),
    ct(1.0, true, [0.0, 0.0, 0.0, 0.8, 0.2], 0.85),
    ct(25.0, true, [0.1, 0.6, 0.27, 0.03, 0.0], 0.65),
    ct(5.0, true, [0.0, 0.3, 0.6, 0.1, 0.0], 0.6),
    ct(1.0, true, [0.0, 0.3, 0.6, 0.1, 0.0], 0.6),
    ct(6.0, true, [0.05, 0.55, 0.3, 0.1, 0.0], 0.6),
    ct(14.0, true, [0.05, 0.45, 0.35, 0.15, 0.0], 0.4),
    ct(0.2, true, [0.0, 0.0, 0.2, 0.5, 0.3], 0.7),
    ct(0.2, true, [0.0, 0.0, 0.4, 0.5, 0.1], 0.8),
    ct(0.1, true, [0.0, 0.0, 0.3, 0.5, 0.2], 0.7),
    ct(2.5, true, [0.0, 0.3, 0.55, 0.15, 0.0], 0.95),
    ct(4.0, true, [0.1, 0.5, 0.35, 0.05, 0.0], 0.7),
    ct(8.0, false, [0.6, 0.4, 0.0, 0.0, 0.0], 0.0),
    ct(3.0, false, [0.3, 0.7, 0.0, 0.0, 0.0], 0.0),
    ct(2.0, false, [0.3, 0.7, 0.0, 0.0, 0.0], 0.0),
    ct(4.0, false, [0.8, 0.2, 0.0, 0.0, 0.0], 0.0),
    ct(10.0, false, [0.9, 0.1, 0.0, 0.0, 0.0], 0.0),
    ct(12.0, false, [0.9, 0.1, 0.0, 0.0, 0.0], 0.0),
];

pub(crate) fn case_type_index(name: &str) -> u8 {
    CASE_TYPES.iter().position(|t| *t == name).expect("known case type") as u8
}

/// Filings per day such that filings plus the solved events they later produce meet the
/// daily case target: solved events arrive at the filing rate times the criminal clearance.
pub(crate) fn case_filing_share() -> f64 {
    let total: f64 = CASE_MIX.iter().map(|c| c.weight).sum();
    let solved: f64 = CASE_MIX.iter().filter(|c| c.criminal).map(|c| c.weight * c.clearance).sum();
    1.0 / (1.0 + solved / total)
}

// ---------------------------------------------------------------------------------------------
// Petitions and opinion.

pub(crate) const CHANNELS: [&str; 5] = ["visit", "hotline", "letter", "online", "mayor_mailbox"];
pub(crate) const VISIT: u8 = 0;

/// Channel mix by time: reception offices take visits and register letters in office hours
/// on weekdays; the 12345 hotline and online channels run around the clock.
const CHANNELS_OFFICE: [f64; 5] = [25.0, 35.0, 8.0, 20.0, 12.0];
const CHANNELS_WEEKEND_DAY: [f64; 5] = [4.0, 50.0, 1.0, 33.0, 12.0];
const CHANNELS_OFF_HOURS: [f64; 5] = [0.3, 55.0, 0.0, 35.0, 10.0];

pub(crate) const TOPICS: [&str; 18] = [
    "wage_arrears",
    "land_acquisition",
    "demolition",
    "housing_delivery",
    "housing_title",
    "neighbour",
    "family",
    "property_management",
    "contract_consumer",
    "land_use",
    "environment",
    "traffic",
    "education",
    "medical",
    "social_security",
    "public_safety",
    "fundraising_loss",
    "other",
];

pub(crate) fn topic_index(name: &str) -> u8 {
    TOPICS.iter().position(|t| *t == name).expect("known topic") as u8
}

/// Petition topic shares (percent) for an urban district, and multipliers by area kind:
/// land and demolition grievances concentrate where land is being taken, property-management
/// complaints where there are housing estates.
const PETITION_TOPICS: [f64; 18] =
    [5.0, 2.0, 2.0, 4.0, 3.0, 8.0, 4.0, 14.0, 12.0, 2.0, 9.0, 7.0, 6.0, 6.0, 7.0, 3.0, 1.0, 5.0];
const PETITION_TOPIC_CORE: [f64; 18] =
    [0.8, 0.3, 1.5, 0.6, 1.0, 1.0, 1.0, 1.2, 1.2, 0.5, 0.9, 1.2, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
const PETITION_TOPIC_NEW: [f64; 18] =
    [1.8, 2.0, 1.5, 2.0, 1.2, 0.8, 0.8, 1.0, 1.0, 1.5, 1.3, 1.0, 0.9, 0.8, 0.9, 1.0, 1.0, 1.0];
const PETITION_TOPIC_COUNTY: [f64; 18] =
    [1.2, 2.5, 1.2, 0.6, 0.8, 1.3, 1.3, 0.4, 0.6, 3.0, 1.1, 0.9, 1.0, 1.0, 1.2, 1.0, 1.2, 1.0];

const OPINION_TOPICS: [f64; 18] =
    [3.0, 1.5, 1.5, 5.0, 2.0, 4.0, 3.0, 8.0, 10.0, 1.0, 9.0, 14.0, 10.0, 8.0, 5.0, 8.0, 1.0, 6.0];

/// Mean sentiment per topic: grievance topics read clearly negative, the catch-all neutral.
const SENTIMENT_MEAN: [f64; 18] = [
    -0.30, -0.30, -0.30, -0.28, -0.18, -0.12, -0.08, -0.15, -0.15, -0.12, -0.15, -0.10, -0.05, -0.12, -0.10, -0.20,
    -0.35, 0.0,
];
pub(crate) const SENTIMENT_SD: f64 = 0.35;

pub(crate) const PLATFORMS: [&str; 8] =
    ["weibo", "wechat", "douyin", "kuaishou", "toutiao", "xiaohongshu", "forum", "news_site"];
const PLATFORM_MIX: [f64; 8] = [22.0, 20.0, 20.0, 8.0, 10.0, 8.0, 7.0, 5.0];
/// Median reach of an ordinary item per platform (views or readers).
const PLATFORM_REACH: [f64; 8] = [800.0, 500.0, 2_000.0, 1_200.0, 1_000.0, 400.0, 150.0, 3_000.0];
const REACH_SIGMA: f64 = 1.5;
pub(crate) const VIRAL_P: f64 = 0.002;
const COUNT_CAP: u64 = 1_000_000_000;

// ---------------------------------------------------------------------------------------------
// Time profiles.

const HOUR_POLICE: [f64; 24] = [
    1.0, 0.8, 0.6, 0.45, 0.35, 0.35, 0.45, 0.65, 0.85, 0.95, 1.0, 1.05, 1.05, 1.0, 1.0, 1.05, 1.1, 1.15, 1.25, 1.45,
    1.6, 1.6, 1.5, 1.25,
];
const HOUR_CASE: [f64; 24] = [
    0.25, 0.2, 0.15, 0.1, 0.1, 0.1, 0.2, 0.5, 1.2, 1.6, 1.7, 1.6, 1.0, 1.1, 1.6, 1.7, 1.6, 1.4, 1.0, 0.8, 0.7, 0.6,
    0.5, 0.35,
];
const HOUR_PETITION_WEEKDAY: [f64; 24] = [
    0.15, 0.08, 0.05, 0.04, 0.04, 0.06, 0.15, 0.5, 1.6, 2.3, 2.4, 2.1, 1.2, 1.4, 2.2, 2.3, 2.1, 1.6, 0.9, 0.7, 0.6,
    0.5, 0.35, 0.25,
];
const HOUR_PETITION_WEEKEND: [f64; 24] = [
    0.3, 0.15, 0.1, 0.08, 0.08, 0.1, 0.2, 0.5, 0.9, 1.3, 1.5, 1.5, 1.3, 1.3, 1.4, 1.4, 1.3, 1.2, 1.1, 1.1, 1.0, 0.9,
    0.7, 0.5,
];
const HOUR_OPINION: [f64; 24] = [
    0.9, 0.6, 0.4, 0.25, 0.2, 0.2, 0.3, 0.55, 0.8, 0.95, 1.0, 1.05, 1.2, 1.15, 1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 1.55,
    1.7, 1.6, 1.3,
];

/// Day-of-week factors, Monday first. Calls rise on Friday and Saturday nights; petitions
/// collapse at weekends when offices are shut; online chatter rises a little at weekends.
const DOW: [[f64; 7]; 4] = [
    [0.96, 0.95, 0.96, 0.98, 1.06, 1.10, 1.00],
    [1.10, 1.10, 1.10, 1.10, 1.05, 0.78, 0.77],
    [1.28, 1.22, 1.20, 1.18, 1.12, 0.50, 0.50],
    [0.97, 0.96, 0.96, 0.98, 1.00, 1.07, 1.06],
];

/// Local-time context of one simulated hour.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HourCtx {
    pub hour: u32,
    /// 0 = Monday .. 6 = Sunday.
    pub dow: u32,
}

impl HourCtx {
    pub fn weekend(self) -> bool {
        self.dow >= 5
    }

    pub fn night(self) -> bool {
        self.hour >= 22 || self.hour < 6
    }

    pub fn office(self) -> bool {
        (8..18).contains(&self.hour)
    }
}

/// Normalised time profiles and precomputed weight tables, built once per run.
pub(crate) struct Mix {
    /// [source][weekend as usize][hour], each 24-vector with mean 1.
    hour: [[[f64; 24]; 2]; 4],
    /// [source][dow], each with mean 1 over the week.
    dow: [[f64; 7]; 4],
    police_day: [f64; 26],
    police_night: [f64; 26],
    case_weights: [f64; 24],
    petition_topics: [[f64; 18]; 4],
}

fn normalised<const N: usize>(raw: [f64; N]) -> [f64; N] {
    let mean = raw.iter().sum::<f64>() / N as f64;
    raw.map(|x| x / mean)
}

fn kind_slot(kind: AreaKind) -> usize {
    match kind {
        AreaKind::Core => 0,
        AreaKind::Urban => 1,
        AreaKind::NewArea => 2,
        AreaKind::County => 3,
    }
}

impl Mix {
    pub fn new() -> Mix {
        let police = normalised(HOUR_POLICE);
        let case = normalised(HOUR_CASE);
        let opinion = normalised(HOUR_OPINION);
        let hour = [
            [police, police],
            [case, case],
            [normalised(HOUR_PETITION_WEEKDAY), normalised(HOUR_PETITION_WEEKEND)],
            [opinion, opinion],
        ];
        let dow = DOW.map(normalised);
        let police_day = POLICE_MIX.map(|(w, _, _)| w);
        let police_night = POLICE_MIX.map(|(w, night, _)| w * night);
        let case_weights = CASE_MIX.each_ref().map(|c| c.weight);
        let mut petition_topics = [[0.0; 18]; 4];
        for (slot, mult) in
            [(0, PETITION_TOPIC_CORE), (1, [1.0; 18]), (2, PETITION_TOPIC_NEW), (3, PETITION_TOPIC_COUNTY)]
        {
            for i in 0..18 {
                petition_topics[slot][i] = PETITION_TOPICS[i] * mult[i];
            }
        }
        Mix { hour, dow, police_day, police_night, case_weights, petition_topics }
    }

    /// The relative rate of a source in a local hour: hour-of-day times day-of-week, with
    /// mean 1 over a week.
    pub fn time_factor(&self, src: Src, ctx: HourCtx) -> f64 {
        let s = src as usize;
        self.hour[s][ctx.weekend() as usize][ctx.hour as usize] * self.dow[s][ctx.dow as usize]
    }

    pub fn police(&self, rng: &mut Rng, ctx: HourCtx, kind: AreaKind) -> Attrs {
        let weights = if ctx.night() { &self.police_night } else { &self.police_day };
        let ty = rng.pick(weights) as u8;
        police_of_type(rng, ty, 0, kind)
    }

    /// A filed case of a type drawn from the everyday mix.
    pub fn case_filed(&self, rng: &mut Rng) -> (u8, u8) {
        let ty = rng.pick(&self.case_weights) as u8;
        (ty, case_severity(rng, ty))
    }

    pub fn petition(&self, rng: &mut Rng, ctx: HourCtx, kind: AreaKind) -> Attrs {
        let channel = rng.pick(channel_weights(ctx)) as u8;
        let topic = rng.pick(&self.petition_topics[kind_slot(kind)]) as u8;
        // Wage and land grievances are the ones people bring as a group.
        let collective = match TOPICS[topic as usize] {
            "wage_arrears" => 0.15,
            "land_acquisition" | "demolition" | "housing_delivery" | "fundraising_loss" => 0.08,
            _ => 0.025,
        };
        let repeat = match TOPICS[topic as usize] {
            "land_acquisition" | "demolition" | "housing_title" | "fundraising_loss" => 0.25,
            _ => 0.10,
        };
        petition_with(rng, channel, topic, collective, repeat, (5, 30))
    }

    pub fn opinion(&self, rng: &mut Rng) -> Attrs {
        let platform = rng.pick(&PLATFORM_MIX) as u8;
        let topic = rng.pick(&OPINION_TOPICS) as u8;
        opinion_with(rng, platform, topic, SENTIMENT_MEAN[topic as usize], SENTIMENT_SD, 1.0, VIRAL_P)
    }
}

pub(crate) fn channel_weights(ctx: HourCtx) -> &'static [f64; 5] {
    match (ctx.office(), ctx.weekend()) {
        (true, false) => &CHANNELS_OFFICE,
        (true, true) => &CHANNELS_WEEKEND_DAY,
        (false, _) => &CHANNELS_OFF_HOURS,
    }
}

/// A police incident of a given type. `urgency_shift` moves priority toward 1 (negative) for
/// incident-driven calls that dispatchers treat as more pressing. Response times are
/// lognormal around 12 minutes, faster for urgent calls and slower in rural counties; calls
/// without a dispatch (fraud reports taken by phone, many "other" calls) carry none.
pub(crate) fn police_of_type(rng: &mut Rng, ty: u8, urgency_shift: i32, kind: AreaKind) -> Attrs {
    let (_, _, urgency) = POLICE_MIX[ty as usize];
    let class = (urgency as i32 + urgency_shift).clamp(0, 2) as usize;
    let priority = rng.pick(&PRIORITY_BY_URGENCY[class]) as u8 + 1;
    let missing = match INCIDENT_TYPES[ty as usize] {
        "fraud" => 0.35,
        "other" | "assistance" => 0.12,
        _ => 0.04,
    };
    let response = if rng.chance(missing) {
        None
    } else {
        let p = [0.6, 0.8, 1.0, 1.3][priority as usize - 1];
        let area = match kind {
            AreaKind::Core => 0.85,
            AreaKind::Urban => 0.95,
            AreaKind::NewArea => 1.05,
            AreaKind::County => 1.45,
        };
        Some(rng.lognormal(12.0 * p * area, 0.45).clamp(0.5, 1440.0))
    };
    Attrs::Police { ty, priority, response }
}

pub(crate) fn case_severity(rng: &mut Rng, ty: u8) -> u8 {
    rng.pick(&CASE_MIX[ty as usize].severity) as u8 + 1
}

/// A petition with the given channel and topic. `collective` is the chance that it is a
/// group petition (sizes drawn from `group` = (min, max), skewed to the low end); `repeat` is
/// the chance that the upstream system flagged it as a repeat.
pub(crate) fn petition_with(
    rng: &mut Rng,
    channel: u8,
    topic: u8,
    collective: f64,
    repeat: f64,
    group: (u32, u32),
) -> Attrs {
    let visit = channel == VISIT;
    // Only visits are reliably counted; other channels carry a group size less often and it is
    // mostly 1 (a jointly signed letter now and then).
    let group_size = if visit || rng.chance(0.55) {
        let collective = if visit { collective } else { collective * 0.2 };
        if rng.chance(collective) {
            let (lo, hi) = group;
            let span = (hi - lo) as f64;
            let x = rng.gamma(1.3, span / 4.0).min(span);
            Some(lo + x.round() as u32)
        } else if visit && rng.chance(0.12) {
            Some(rng.range(2, 4) as u32)
        } else {
            Some(1)
        }
    } else {
        None
    };
    let repeat_flag = rng.chance(0.85).then(|| rng.chance(repeat));
    let resolved_p = if channel == 1 { 0.93 } else { 0.88 };
    let resolved_flag = rng.chance(0.8).then(|| rng.chance(resolved_p));
    Attrs::Petition { channel, topic, repeat: repeat_flag, resolved: resolved_flag, group: group_size }
}

/// An opinion item. `engagement_boost` scales interaction (a heated thread draws more);
/// `viral` is the chance of an item that spreads far beyond its platform's usual reach.
pub(crate) fn opinion_with(
    rng: &mut Rng,
    platform: u8,
    topic: u8,
    sentiment_mean: f64,
    sentiment_sd: f64,
    engagement_boost: f64,
    viral: f64,
) -> Attrs {
    let sentiment = (sentiment_mean + sentiment_sd * rng.normal()).clamp(-1.0, 1.0);
    let mut reach = rng.lognormal(PLATFORM_REACH[platform as usize], REACH_SIGMA);
    if rng.chance(viral) {
        reach *= rng.lognormal(60.0, 0.8);
    }
    // Negative items draw more replies and shares than neutral ones.
    let rate = rng.lognormal(0.03, 0.8) * (-0.8 * sentiment).exp() * engagement_boost;
    let engagement = (reach * rate).min(reach * 2.0);
    let reach_v = (reach.round() as u64).min(COUNT_CAP);
    let engagement_v = (engagement.round() as u64).min(COUNT_CAP);
    Attrs::Opinion {
        platform,
        topic,
        sentiment,
        reach: rng.chance(0.92).then_some(reach_v),
        engagement: rng.chance(0.95).then_some(engagement_v),
    }
}

// ---------------------------------------------------------------------------------------------
// Events and their wire form.

/// The attributes of one event, as indices into the vocabularies above.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Attrs {
    Police { ty: u8, priority: u8, response: Option<f64> },
    Case { ty: u8, severity: u8, solved: bool },
    Petition { channel: u8, topic: u8, repeat: Option<bool>, resolved: Option<bool>, group: Option<u32> },
    Opinion { platform: u8, topic: u8, sentiment: f64, reach: Option<u64>, engagement: Option<u64> },
}

/// One generated event before it is given an id.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawEvent {
    pub ts: Ts,
    /// Index into the generator's leaf-cell table.
    pub cell: u32,
    pub attrs: Attrs,
}

/// Fixed-point text with `decimals` places and never a negative zero, matching the precision
/// `sources.toml` declares so that decoding keeps the value exactly.
fn push_fixed(out: &mut String, x: f64, decimals: usize) {
    let scale = 10f64.powi(decimals as i32);
    let mut v = (x * scale).round() / scale;
    if v == 0.0 {
        v = 0.0;
    }
    let _ = write!(out, "{v:.decimals$}");
}

/// Appends one event as a JSON object (no newline). The attribute names are written in
/// declaration order; all strings here are plain ASCII or digits and need no escaping.
pub(crate) fn write_event(out: &mut String, id: &str, region: &str, ts: &str, attrs: &Attrs) {
    let _ = write!(out, "{{\"id\":\"{id}\",\"region\":\"{region}\",\"ts\":\"{ts}\",\"attrs\":{{");
    match *attrs {
        Attrs::Police { ty, priority, response } => {
            let _ = write!(out, "\"incident_type\":\"{}\",\"priority\":{priority}", INCIDENT_TYPES[ty as usize]);
            if let Some(r) = response {
                out.push_str(",\"response_minutes\":");
                push_fixed(out, r, 1);
            }
        }
        Attrs::Case { ty, severity, solved } => {
            let status = if solved { "solved" } else { "filed" };
            let _ = write!(
                out,
                "\"case_type\":\"{}\",\"severity\":{severity},\"status\":\"{status}\"",
                CASE_TYPES[ty as usize]
            );
        }
        Attrs::Petition { channel, topic, repeat, resolved, group } => {
            let _ =
                write!(out, "\"channel\":\"{}\",\"topic\":\"{}\"", CHANNELS[channel as usize], TOPICS[topic as usize]);
            if let Some(b) = repeat {
                let _ = write!(out, ",\"repeat_flag\":{b}");
            }
            if let Some(b) = resolved {
                let _ = write!(out, ",\"resolved_flag\":{b}");
            }
            if let Some(g) = group {
                let _ = write!(out, ",\"group_size\":{g}");
            }
        }
        Attrs::Opinion { platform, topic, sentiment, reach, engagement } => {
            let _ = write!(
                out,
                "\"platform\":\"{}\",\"topic\":\"{}\",\"sentiment\":",
                PLATFORMS[platform as usize], TOPICS[topic as usize]
            );
            push_fixed(out, sentiment, 3);
            if let Some(r) = reach {
                let _ = write!(out, ",\"reach\":{r}");
            }
            if let Some(e) = engagement {
                let _ = write!(out, ",\"engagement\":{e}");
            }
        }
    }
    out.push_str("}}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_has_no_negative_zero() {
        let mut s = String::new();
        push_fixed(&mut s, -0.0004, 3);
        s.push(' ');
        push_fixed(&mut s, -0.25049, 3);
        s.push(' ');
        push_fixed(&mut s, 11.96, 1);
        assert_eq!(s, "0.000 -0.250 12.0");
    }

    #[test]
    fn shares_sum_and_case_split() {
        let police: f64 = POLICE_MIX.iter().map(|p| p.0).sum();
        assert!((police - 100.0).abs() < 1e-9, "{police}");
        let f = case_filing_share();
        assert!((0.65..0.8).contains(&f), "{f}");
        for c in &CASE_MIX {
            assert!((c.severity.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn wire_form() {
        let mut s = String::new();
        let a = Attrs::Police { ty: 0, priority: 3, response: Some(11.46) };
        write_event(&mut s, "p-20260105-000001", "990101001001", "2026-01-05T10:03:00+08:00", &a);
        assert_eq!(
            s,
            r#"{"id":"p-20260105-000001","region":"990101001001","ts":"2026-01-05T10:03:00+08:00","attrs":{"incident_type":"theft","priority":3,"response_minutes":11.5}}"#
        );
    }
}
