//! The simulator's random numbers: a ChaCha8 stream per purpose and hand-written samplers
//! (uniform, normal, lognormal, gamma, Poisson, negative binomial, categorical).
//!
//! The samplers are written here rather than taken from `rand_distr` so that the generated
//! files depend only on the ChaCha8 keystream, which is a fixed algorithm: a dependency upgrade
//! can never change a single byte of a simulated city.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Labels that separate the independent random streams derived from one user seed. Keeping
/// the baseline, the incident plan and each incident on their own stream means that adding an
/// incident never changes the baseline events, which is what makes "with and without the
/// incident" comparisons exact.
pub(crate) mod stream {
    pub const CITY: u64 = 0x6369_7479;
    pub const CELLS: u64 = 1;
    pub const BASELINE: u64 = 2;
    pub const HISTORY: u64 = 3;
    pub const PLAN: u64 = 4;
    pub const INCIDENT: u64 = 5;
}

/// SplitMix64, used only to expand a 64-bit seed into a 256-bit ChaCha key. It is written out
/// so that the key schedule does not depend on `SeedableRng::seed_from_u64`'s implementation.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over bytes: a stable hash for turning names (incident ids) into stream labels.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// A seeded random source with the samplers the simulator needs.
pub(crate) struct Rng {
    inner: ChaCha8Rng,
    /// Box–Muller produces normals in pairs; the second one is kept for the next call.
    spare_normal: Option<f64>,
}

impl Rng {
    /// A generator for one purpose (`label`) under one user seed.
    pub fn new(seed: u64, label: u64) -> Rng {
        let mut state = seed ^ label.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        let mut key = [0u8; 32];
        for chunk in key.chunks_exact_mut(8) {
            chunk.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        Rng { inner: ChaCha8Rng::from_seed(key), spare_normal: None }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// Uniform on [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform on the open interval (0, 1), for logarithms and powers that must not see 0.
    pub fn open01(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, n) without modulo bias (rejection of the short last block).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0)");
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// Uniform integer in the inclusive range [lo, hi].
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Standard normal by the Box–Muller transform.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        let u1 = self.open01();
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u2;
        self.spare_normal = Some(r * theta.sin());
        r * theta.cos()
    }

    /// Lognormal with the given median and log-scale standard deviation.
    pub fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    /// Gamma(shape, scale) by Marsaglia and Tsang (2000); shapes below 1 use the boost
    /// Gamma(a) = Gamma(a + 1) · U^(1/a).
    pub fn gamma(&mut self, shape: f64, scale: f64) -> f64 {
        if shape <= 0.0 || scale <= 0.0 {
            return 0.0;
        }
        if shape < 1.0 {
            let boost = self.open01().powf(1.0 / shape);
            return self.gamma(shape + 1.0, scale) * boost;
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = 1.0 + c * x;
            if v <= 0.0 {
                continue;
            }
            let v = v * v * v;
            let u = self.open01();
            let x2 = x * x;
            if u < 1.0 - 0.0331 * x2 * x2 || u.ln() < 0.5 * x2 + d * (1.0 - v + v.ln()) {
                return d * v * scale;
            }
        }
    }

    /// Poisson(lambda): inversion by sequential search below 30, Hörmann's PTRS (transformed
    /// rejection with squeeze, 1993) above, so that large means cost O(1).
    pub fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda.is_nan() || lambda <= 0.0 {
            return 0;
        }
        if lambda < 30.0 {
            let u = self.uniform();
            let mut p = (-lambda).exp();
            let mut cdf = p;
            let mut k = 0u64;
            // The cap only guards against floating-point stalls in the far tail.
            while u > cdf && k < 1000 {
                k += 1;
                p *= lambda / k as f64;
                cdf += p;
            }
            return k;
        }
        let slam = lambda.sqrt();
        let loglam = lambda.ln();
        let b = 0.931 + 2.53 * slam;
        let a = -0.059 + 0.02483 * b;
        let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
        let v_r = 0.9277 - 3.6224 / (b - 2.0);
        loop {
            let u = self.uniform() - 0.5;
            let v = self.open01();
            let us = 0.5 - u.abs();
            let k = ((2.0 * a / us + b) * u + lambda + 0.43).floor();
            if us >= 0.07 && v <= v_r {
                return k as u64;
            }
            if k < 0.0 || (us < 0.013 && v > us) {
                continue;
            }
            let lhs = v.ln() + inv_alpha.ln() - (a / (us * us) + b).ln();
            let rhs = -lambda + k * loglam - ln_gamma(k + 1.0);
            if lhs <= rhs {
                return k as u64;
            }
        }
    }

    /// A negative-binomial count with mean `mu` and variance `phi · mu` (the NB1 or
    /// quasi-Poisson parametrisation), drawn as a Poisson–Gamma mixture. NB1 keeps the
    /// variance-to-mean ratio the same for every cell size, so small and large cells are
    /// equally over-dispersed; `phi <= 1` falls back to Poisson.
    pub fn neg_binomial(&mut self, mu: f64, phi: f64) -> u64 {
        if mu <= 0.0 {
            return 0;
        }
        if phi <= 1.0 {
            return self.poisson(mu);
        }
        let lambda = self.gamma(mu / (phi - 1.0), phi - 1.0);
        self.poisson(lambda)
    }

    /// Index drawn with probability proportional to `weights[i]`.
    pub fn pick(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.uniform() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        // Rounding can leave x a hair above the last weight; the last positive entry wins.
        weights.iter().rposition(|w| *w > 0.0).unwrap_or(0)
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// ln Γ(x) for x > 0 by the Lanczos approximation (g = 7, n = 9), accurate to about 1e-15,
/// which is ample for the PTRS acceptance test.
pub(crate) fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection keeps the series in its accurate range.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
        (mean, var)
    }

    #[test]
    fn same_seed_same_stream_and_labels_separate() {
        let mut a = Rng::new(7, stream::BASELINE);
        let mut b = Rng::new(7, stream::BASELINE);
        let mut c = Rng::new(7, stream::PLAN);
        let xa: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
    }

    #[test]
    fn poisson_moments_small_and_large() {
        let mut r = Rng::new(1, 99);
        for lambda in [0.3, 4.0, 29.0, 45.0, 400.0] {
            let xs: Vec<f64> = (0..40_000).map(|_| r.poisson(lambda) as f64).collect();
            let (m, v) = moments(&xs);
            assert!((m / lambda - 1.0).abs() < 0.03, "lambda {lambda}: mean {m}");
            assert!((v / lambda - 1.0).abs() < 0.06, "lambda {lambda}: var {v}");
        }
    }

    #[test]
    fn gamma_moments() {
        let mut r = Rng::new(2, 99);
        for (shape, scale) in [(0.2, 2.0), (1.0, 1.0), (3.5, 0.5), (40.0, 0.1)] {
            let xs: Vec<f64> = (0..40_000).map(|_| r.gamma(shape, scale)).collect();
            let (m, v) = moments(&xs);
            let em = shape * scale;
            let ev = shape * scale * scale;
            assert!((m / em - 1.0).abs() < 0.04, "gamma({shape},{scale}) mean {m} vs {em}");
            assert!((v / ev - 1.0).abs() < 0.1, "gamma({shape},{scale}) var {v} vs {ev}");
        }
    }

    #[test]
    fn normal_and_negbin_moments() {
        let mut r = Rng::new(3, 99);
        let xs: Vec<f64> = (0..40_000).map(|_| r.normal()).collect();
        let (m, v) = moments(&xs);
        assert!(m.abs() < 0.02 && (v - 1.0).abs() < 0.03, "normal {m} {v}");
        for mu in [0.2, 5.0, 60.0] {
            let xs: Vec<f64> = (0..40_000).map(|_| r.neg_binomial(mu, 1.8) as f64).collect();
            let (m, v) = moments(&xs);
            assert!((m / mu - 1.0).abs() < 0.04, "nb mean {m} vs {mu}");
            assert!((v / m / 1.8 - 1.0).abs() < 0.1, "nb dispersion {}", v / m);
        }
    }

    #[test]
    fn ln_gamma_matches_factorials() {
        let mut f = 1.0f64;
        for n in 1..30u32 {
            f *= n as f64;
            assert!((ln_gamma(n as f64 + 1.0) - f.ln()).abs() < 1e-9, "n = {n}");
        }
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    }

    #[test]
    fn pick_and_shuffle() {
        let mut r = Rng::new(4, 99);
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            counts[r.pick(&[1.0, 0.0, 3.0])] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!((counts[2] as f64 / counts[0] as f64 - 3.0).abs() < 0.2);
        let mut v: Vec<u32> = (0..10).collect();
        r.shuffle(&mut v);
        let mut s = v.clone();
        s.sort();
        assert_eq!(s, (0..10).collect::<Vec<_>>());
    }
}
