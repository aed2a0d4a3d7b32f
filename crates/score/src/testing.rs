//! Test support shared by the crates' unit tests: a small deterministic generator, so that
//! randomised checks repeat exactly without a dependency.

/// An xorshift64 generator from `seed` (non-zero): the same sequence on every run.
pub fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}
