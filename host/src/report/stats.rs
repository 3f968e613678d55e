//! Summary statistics and paired significance tests for comparing runs across seeds.
//!
//! Distributions come from `statrs`; the Wilcoxon signed-rank test is implemented here and
//! follows `scipy.stats.wilcoxon(d)` with its defaults (scipy 1.17).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// Mean, sample standard deviation and a t-based 95% confidence interval of the mean.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Number of values.
    pub n: usize,
    /// Arithmetic mean (NaN when `n == 0`).
    pub mean: f64,
    /// Sample standard deviation, `ddof = 1` (0 when `n == 1`, NaN when `n == 0`).
    pub std: f64,
    /// Lower end of the 95% confidence interval of the mean (NaN when `n < 2`).
    pub ci_low: f64,
    /// Upper end of the 95% confidence interval of the mean (NaN when `n < 2`).
    pub ci_high: f64,
}

/// Summarises `xs` (assumed finite): mean, sample std and the 95% Student-t interval
/// `mean ± t(0.975, n−1)·std/√n`, as `scipy.stats.t.interval(0.95, n-1, mean, sem)`.
///
/// With `n == 0` everything but `n` is NaN; with `n == 1` the std is 0 and the interval
/// is unknown (NaN). When all values are equal the interval collapses to the mean.
pub fn summary(xs: &[f64]) -> Summary {
    let n = xs.len();
    let mean = if n == 0 {
        f64::NAN
    } else {
        xs.iter().sum::<f64>() / n as f64
    };
    let (std, half) = match n {
        0 => (f64::NAN, f64::NAN),
        1 => (0.0, f64::NAN),
        _ => {
            let df = (n - 1) as f64;
            let std = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / df).sqrt();
            (std, t_dist(df).inverse_cdf(0.975) * std / (n as f64).sqrt())
        }
    };
    Summary {
        n,
        mean,
        std,
        ci_low: mean - half,
        ci_high: mean + half,
    }
}

/// Resamples drawn by [`summary_bootstrap`].
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;

/// Like [`summary`], but the 95% interval of the mean is the percentile bootstrap
/// ([`BOOTSTRAP_RESAMPLES`] resamples with replacement; the 2.5% and 97.5% quantiles of their
/// means). Meant for losses: positive and spread over decades, where the t interval reaches
/// below zero. This interval lies within the values' range, and the generator is seeded, so
/// the same values always give the same interval.
pub fn summary_bootstrap(xs: &[f64]) -> Summary {
    let mut s = summary(xs);
    let n = xs.len();
    if n >= 2 {
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let mut means: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
            .map(|_| (0..n).map(|_| xs[rng.random_range(0..n)]).sum::<f64>() / n as f64)
            .collect();
        means.sort_by(f64::total_cmp);
        s.ci_low = quantile(&means, 0.025);
        s.ci_high = quantile(&means, 0.975);
    }
    s
}

/// The `q`-quantile of `sorted` (ascending), interpolating linearly between neighbours (as
/// numpy's default); NaN for an empty slice.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Median of `xs` (mean of the two middle values for even lengths); NaN for an empty slice.
///
/// Infinite values are allowed and sort at their ends; NaN inputs are not expected.
pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        v[m - 1] / 2.0 + v[m] / 2.0 // halves first: no overflow for huge finite values
    }
}

/// Result of a paired comparison of a candidate against a reference over the same seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Paired {
    /// Number of pairs.
    pub n: usize,
    /// Fraction of pairs where the candidate is better; ties count 1/2 (NaN when `n == 0`).
    pub win_rate: f64,
    /// Summary of `candidate − reference` (raw difference, sign not flipped).
    pub diff: Summary,
    /// Two-sided Wilcoxon signed-rank p-value; `None` when no difference is non-zero.
    pub wilcoxon_p: Option<f64>,
    /// Two-sided paired t-test p-value; `None` when `n < 2` or all differences are equal.
    pub t_test_p: Option<f64>,
}

/// Compares `candidate` against `reference` pair by pair (same seed at the same index).
///
/// `higher_is_better` only affects `win_rate`; the tests are two-sided and `diff` is always
/// `candidate − reference`. Slices of unequal length are truncated to the shorter one
/// (a debug assertion flags the mismatch). Never panics in release builds.
pub fn paired(
    candidate: &[f64],
    reference: &[f64],
    higher_is_better: bool,
    zero: ZeroMethod,
) -> Paired {
    debug_assert_eq!(candidate.len(), reference.len(), "paired: length mismatch");
    let diffs: Vec<f64> = candidate
        .iter()
        .zip(reference)
        .map(|(c, r)| c - r)
        .collect();
    let n = diffs.len();
    let score: f64 = candidate
        .iter()
        .zip(reference)
        .map(|(c, r)| {
            let better = if higher_is_better { c > r } else { c < r };
            if better {
                1.0
            } else if c == r {
                0.5
            } else {
                0.0
            }
        })
        .sum();
    let diff = summary(&diffs);
    let t_test_p = (n >= 2 && diffs.iter().any(|d| *d != diffs[0])).then(|| {
        let t = diff.mean / (diff.std / (n as f64).sqrt());
        (2.0 * t_dist((n - 1) as f64).sf(t.abs())).min(1.0)
    });
    Paired {
        n,
        win_rate: if n == 0 { f64::NAN } else { score / n as f64 },
        diff,
        wilcoxon_p: wilcoxon_signed_rank_with(&diffs, zero).map(|(_, p)| p),
        t_test_p,
    }
}

/// How the Wilcoxon signed-rank test treats zero differences (scipy's `zero_method`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZeroMethod {
    /// Zeros are dropped before ranking (Wilcoxon; scipy's default). With many zeros this
    /// raises p.
    #[default]
    Wilcox,
    /// Zeros are ranked with the rest, then their ranks are dropped (Pratt).
    Pratt,
    /// Zeros are ranked with the rest, and their ranks split between both signs.
    Zsplit,
}

impl ZeroMethod {
    /// scipy's name for it.
    pub fn name(self) -> &'static str {
        match self {
            ZeroMethod::Wilcox => "wilcox",
            ZeroMethod::Pratt => "pratt",
            ZeroMethod::Zsplit => "zsplit",
        }
    }
}

/// Wilcoxon signed-rank test on paired differences with scipy's default treatment of zeros
/// (see [`wilcoxon_signed_rank_with`]).
pub fn wilcoxon_signed_rank(diffs: &[f64]) -> Option<(f64, f64)> {
    wilcoxon_signed_rank_with(diffs, ZeroMethod::Wilcox)
}

/// Wilcoxon signed-rank test on paired differences: (statistic, two-sided p), None if no
/// non-zero difference.
///
/// Matches `scipy.stats.wilcoxon(diffs, zero_method=...)` (two-sided, method "auto", no
/// continuity correction): the statistic is `min(R+, R−)` over average ranks of `|d|`. The
/// p-value is exact (enumerating all sign flips of the non-zero differences) when
/// `diffs.len() <= 50` with neither ties nor zeros, or when `diffs.len() <= 13` (scipy's
/// exhaustive permutation test); otherwise it is the normal approximation with the
/// tie-corrected variance (Pratt's with Cureton's correction). `diffs.len()` counts zeros.
pub fn wilcoxon_signed_rank_with(diffs: &[f64], zero: ZeroMethod) -> Option<(f64, f64)> {
    if diffs.iter().all(|d| *d == 0.0) {
        return None;
    }
    let mut d: Vec<f64> = match zero {
        ZeroMethod::Wilcox => diffs.iter().copied().filter(|d| *d != 0.0).collect(),
        _ => diffs.to_vec(),
    };
    d.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    // Doubled average ranks stay integral: the group at sorted positions i..j gets i + j + 1.
    let mut ranks2 = Vec::with_capacity(d.len()); // of the non-zero differences
    let (mut plus2, mut minus2, mut zero2, mut tie_term, mut i) = (0u64, 0u64, 0u64, 0.0, 0);
    while i < d.len() {
        let j = i + d[i..].iter().take_while(|x| x.abs() == d[i].abs()).count();
        let r2 = (i + j + 1) as u64;
        let group = &d[i..j];
        if d[i] == 0.0 {
            zero2 += r2 * group.len() as u64;
        } else {
            ranks2.extend(std::iter::repeat_n(r2, group.len()));
        }
        plus2 += r2 * group.iter().filter(|x| **x > 0.0).count() as u64;
        minus2 += r2 * group.iter().filter(|x| **x < 0.0).count() as u64;
        if !(zero == ZeroMethod::Pratt && d[i] == 0.0) {
            tie_term += ((j - i).pow(3) - (j - i)) as f64;
        }
        i = j;
    }
    let split = if zero == ZeroMethod::Zsplit {
        zero2 as f64 / 4.0
    } else {
        0.0
    };
    let (r_plus, r_minus) = (plus2 as f64 / 2.0 + split, minus2 as f64 / 2.0 + split);
    let n = d.len() as f64;
    let zeros = diffs.len() - ranks2.len();
    let p = if diffs.len() <= 13 || (diffs.len() <= 50 && tie_term == 0.0 && zeros == 0) {
        // Zeros do not change sign, so their share of R+ is the same under every flip.
        exact_p(&ranks2, plus2)
    } else {
        let mut mean = n * (n + 1.0) / 4.0;
        let mut var = n * (n + 1.0) * (2.0 * n + 1.0);
        if zero == ZeroMethod::Pratt {
            let z = zeros as f64;
            mean -= z * (z + 1.0) / 4.0;
            var -= z * (z + 1.0) * (2.0 * z + 1.0);
        }
        let z = (r_plus - mean) / ((var - tie_term / 2.0) / 24.0).sqrt();
        2.0 * Normal::standard().sf(z.abs())
    };
    Some((r_plus.min(r_minus), p.min(1.0)))
}

/// Two-sided p of the doubled positive-rank sum `obs2` under random signs of `ranks2`:
/// counts come from the product of `(1 + q^r)` over the (doubled) ranks.
fn exact_p(ranks2: &[u64], obs2: u64) -> f64 {
    let total = ranks2.iter().sum::<u64>() as usize;
    let mut counts = vec![0u64; total + 1];
    counts[0] = 1;
    for &r in ranks2 {
        let r = r as usize;
        for s in (r..=total).rev() {
            counts[s] += counts[s - r];
        }
    }
    let obs = obs2 as usize;
    let low: u64 = counts[..=obs].iter().sum();
    let high: u64 = counts[obs..].iter().sum();
    2.0 * low.min(high) as f64 / (2.0f64).powi(ranks2.len() as i32)
}

fn t_dist(df: f64) -> StudentsT {
    StudentsT::new(0.0, 1.0, df).expect("df > 0")
}

#[cfg(test)]
mod tests;
