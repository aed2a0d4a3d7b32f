//! The calibrated false-alert rate holds on surge-free streams: simulated regions and cuts
//! (Poisson and over-dispersed counts, sparse and busy, with a weekday pattern), thresholds
//! fitted by `Calibration` on the first half, and the rate at which the second half reaches
//! them within 1.5x of each level's budget, for recurrence per rule set (the daily maximum) and
//! per region (every region-day); fitted at 0.9 confidence, as `vigil calibrate` fits by
//! default, at or below the budget on average.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use vigil_scan::{Calibration, Params, scan};

fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn poisson(rng: &mut ChaCha8Rng, lam: f64) -> f64 {
    // Inversion; lam is at most a few dozen here.
    let (u, mut k, mut p) = (uniform(rng), 0u32, (-lam).exp());
    let mut cdf = p;
    while u > cdf && k < 10_000 {
        k += 1;
        p *= lam / k as f64;
        cdf += p;
    }
    k as f64
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let (u, v) = (uniform(rng).max(1e-300), uniform(rng));
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Per day, per region: the largest statistic over the region's cuts.
fn simulate(seed: u64, regions: usize, cuts: usize, days: usize, dispersed: bool) -> Vec<Vec<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Mean one: the factors are the model's exposure.
    let weekday = [1.1, 1.1, 1.0, 1.0, 1.2, 0.8, 0.8];
    let series: Vec<Vec<f64>> = (0..regions * cuts)
        .map(|_| {
            let base = [0.1, 0.5, 2.0, 8.0, 25.0][(rng.next_u32() % 5) as usize];
            (0..days)
                .map(|d| {
                    let noise = if dispersed { (0.3 * normal(&mut rng) - 0.045).exp() } else { 1.0 };
                    poisson(&mut rng, base * weekday[d % 7] * noise)
                })
                .collect()
        })
        .collect();
    let params = Params { windows: 7, baseline: 28, counted: false };
    let warm = params.span();
    let (mut x, mut f) = (Vec::new(), Vec::new());
    (warm..days)
        .map(|t| {
            (0..regions)
                .map(|r| {
                    (0..cuts)
                        .map(|c| {
                            let s = &series[r * cuts + c];
                            x.clear();
                            f.clear();
                            for j in 0..params.span() {
                                x.push(s[t - j]);
                                f.push(weekday[(t - j) % 7]);
                            }
                            scan(&x, &f, &params).stat
                        })
                        .fold(0.0, f64::max)
                })
                .collect()
        })
        .collect()
}

fn check(days: &[Vec<f64>], per_region: bool, recurrence: f64, confidence: Option<f64>) -> (f64, f64) {
    let half = days.len() / 2;
    let sample = |d: &[Vec<f64>]| -> Vec<f64> {
        if per_region {
            d.iter().flatten().copied().collect()
        } else {
            d.iter().map(|r| r.iter().copied().fold(0.0, f64::max)).collect()
        }
    };
    let cal = Calibration::from_daily_maxima(&sample(&days[..half])).unwrap();
    let t = cal.threshold(recurrence, confidence);
    let later = sample(&days[half..]);
    let reached = later.iter().filter(|&&v| v >= t).count();
    (reached as f64 / later.len() as f64, 1.0 / recurrence)
}

/// Fixed seeds, so the test is deterministic; the daily maxima are autocorrelated (a burst stays
/// in the scan for days), so one calibration half holds fewer independent days than it seems
/// and single seeds scatter: each point estimate must hold within 2x, their mean within 1.5x.
/// The thresholds `vigil calibrate` fits by default, at 0.9 confidence, are never above 2x
/// either, and on average at or below the budget and below the point estimate (never above it).
#[test]
fn calibrated_rates_hold_out_of_sample() {
    let cases = [(false, 2.0), (false, 14.0), (true, 20.0), (true, 100.0)];
    let (mut sums, mut sums_conf) = ([0.0; 4], [0.0; 4]);
    let seeds = [11u64, 23, 37, 41, 53, 67];
    for (k, &seed) in seeds.iter().enumerate() {
        let days = simulate(seed, 10, 3, 2400, k % 2 == 1);
        for (i, &(per_region, recurrence)) in cases.iter().enumerate() {
            let (rate, budget) = check(&days, per_region, recurrence, None);
            let (conf, _) = check(&days, per_region, recurrence, Some(0.9));
            println!(
                "seed {seed} per region {per_region} once in {recurrence}: {:.2}x, at 0.9 confidence {:.2}x",
                rate / budget,
                conf / budget
            );
            assert!(
                rate <= 2.0 * budget && rate >= budget / 2.0,
                "seed {seed}, per region {per_region}, once in {recurrence}: rate {rate:.4} against budget {budget:.4}"
            );
            assert!(
                conf <= 2.0 * budget && conf <= rate,
                "seed {seed}, per region {per_region}, once in {recurrence}: at 0.9 {conf:.4}, point {rate:.4}"
            );
            sums[i] += rate / budget;
            sums_conf[i] += conf / budget;
        }
    }
    for (i, &(per_region, recurrence)) in cases.iter().enumerate() {
        let mean = sums[i] / seeds.len() as f64;
        assert!(
            (1.0 / 1.5..=1.5).contains(&mean),
            "per region {per_region}, once in {recurrence}: mean {mean:.2}x the budget"
        );
        let mean_conf = sums_conf[i] / seeds.len() as f64;
        assert!(
            mean_conf <= 1.0 && mean_conf < mean,
            "per region {per_region}, once in {recurrence}: at 0.9, mean {mean_conf:.2}x (point estimate {mean:.2}x)"
        );
    }
}
