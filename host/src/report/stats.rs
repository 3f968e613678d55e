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
mod tests {
    use super::*;

    // Reference values below come from scipy 1.17.1.

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol * b.abs().max(1.0), "{a} vs {b}");
    }

    fn wil(d: &[f64]) -> (f64, f64) {
        wilcoxon_signed_rank(d).expect("some non-zero difference")
    }

    /// `(i + 1) * (-1 if i % 3 == 0 else 1)` for `i in range(n)`: distinct |d|, no zeros.
    fn alternating(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| (i + 1) as f64 * if i % 3 == 0 { -1.0 } else { 1.0 })
            .collect()
    }

    #[test]
    fn wilcoxon_exact_small() {
        // scipy.stats.wilcoxon([1.5, -0.3, 2.1, 0.8, 3.2, -1.1, 0.6, 2.7, 1.9, 0.4])
        //   -> statistic=6.0, pvalue=0.02734375
        let (s, p) = wil(&[1.5, -0.3, 2.1, 0.8, 3.2, -1.1, 0.6, 2.7, 1.9, 0.4]);
        assert_eq!(s, 6.0);
        close(p, 0.02734375, 1e-9);
        // scipy.stats.wilcoxon([1, 2, 3, 4, 5, 6]) -> statistic=0.0, pvalue=0.03125
        assert_eq!(wil(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), (0.0, 0.03125));
        // scipy.stats.wilcoxon([1, -2, 3, -4]) -> statistic=4.0, pvalue=0.875
        assert_eq!(wil(&[1.0, -2.0, 3.0, -4.0]), (4.0, 0.875));
        // scipy.stats.wilcoxon([2.0]) -> statistic=0.0, pvalue=1.0 (same for [-2.0])
        assert_eq!(wil(&[2.0]), (0.0, 1.0));
        assert_eq!(wil(&[-2.0]), (0.0, 1.0));
    }

    #[test]
    fn wilcoxon_exact_n50() {
        // scipy.stats.wilcoxon(alternating(50)) -> statistic=425.0, pvalue=0.03996834652842374
        let (s, p) = wil(&alternating(50));
        assert_eq!(s, 425.0);
        close(p, 0.03996834652842374, 1e-9);
    }

    #[test]
    fn wilcoxon_approx_n60() {
        // scipy.stats.wilcoxon(alternating(60)) -> statistic=590.0, pvalue=0.016733071607703435
        let (s, p) = wil(&alternating(60));
        assert_eq!(s, 590.0);
        close(p, 0.016733071607703435, 1e-6);
    }

    #[test]
    fn wilcoxon_ties_and_zeros_small_is_exact_permutation() {
        // scipy.stats.wilcoxon([1, 2, 2, -3, 4, 4, 5, -1, 6]) -> statistic=6.5, pvalue=0.06640625
        let (s, p) = wil(&[1.0, 2.0, 2.0, -3.0, 4.0, 4.0, 5.0, -1.0, 6.0]);
        assert_eq!(s, 6.5);
        close(p, 0.06640625, 1e-9);
        // scipy.stats.wilcoxon([0, 1.5, -0.5, 2.5, 0, 3.5, -4.5, 5.5]) -> statistic=6.0, pvalue=0.4375
        let (s, p) = wil(&[0.0, 1.5, -0.5, 2.5, 0.0, 3.5, -4.5, 5.5]);
        assert_eq!(s, 6.0);
        close(p, 0.4375, 1e-9);
    }

    #[test]
    fn wilcoxon_ties_approx() {
        // scipy.stats.wilcoxon([1, -2, 2, 3, 3, 3, -1, 4, 5, 5, 6, -6, 7, 8, 8, 9, 10, -11, 12, 12])
        //   -> statistic=34.5, pvalue=0.008432366048583164
        let d = [
            1.0, -2.0, 2.0, 3.0, 3.0, 3.0, -1.0, 4.0, 5.0, 5.0, 6.0, -6.0, 7.0, 8.0, 8.0, 9.0,
            10.0, -11.0, 12.0, 12.0,
        ];
        let (s, p) = wil(&d);
        assert_eq!(s, 34.5);
        close(p, 0.008432366048583164, 1e-6);
    }

    #[test]
    fn wilcoxon_zeros_approx() {
        // scipy.stats.wilcoxon([0, 0.5, 1.5, -2.5, 3.5, 0, 4.5, 5.5, -6.5, 7.5, 8.5, 9.5, -10.5,
        //   11.5, 12.5, 13.5]) -> statistic=21.0, pvalue=0.04798974969495946
        let d = [
            0.0, 0.5, 1.5, -2.5, 3.5, 0.0, 4.5, 5.5, -6.5, 7.5, 8.5, 9.5, -10.5, 11.5, 12.5, 13.5,
        ];
        let (s, p) = wil(&d);
        assert_eq!(s, 21.0);
        close(p, 0.04798974969495946, 1e-6);
    }

    #[test]
    fn wilcoxon_no_nonzero_difference() {
        assert_eq!(wilcoxon_signed_rank(&[]), None);
        assert_eq!(wilcoxon_signed_rank(&[0.0, 0.0, -0.0]), None);
    }

    #[test]
    fn summary_ci_matches_scipy_t_interval() {
        // scipy.stats.t.interval(0.95, 1, loc=1.5, scale=scipy.stats.sem([1, 2]))
        //   -> (-4.853102368087347, 7.853102368087347)
        let s = summary(&[1.0, 2.0]);
        assert_eq!((s.n, s.mean), (2, 1.5));
        close(s.std, std::f64::consts::FRAC_1_SQRT_2, 1e-12); // 0.7071067811865476
        close(s.ci_low, -4.853102368087347, 1e-9);
        close(s.ci_high, 7.853102368087347, 1e-9);
        // x = [3.1, 2.7, 4.4, 5.0, 3.9]; scipy.stats.t.interval(0.95, 4, loc=x.mean(),
        //   scale=scipy.stats.sem(x)) -> (2.6572030453042084, 4.982796954695792), std 0.9364827814754524
        let s = summary(&[3.1, 2.7, 4.4, 5.0, 3.9]);
        close(s.mean, 3.82, 1e-12);
        close(s.std, 0.9364827814754524, 1e-12);
        close(s.ci_low, 2.6572030453042084, 1e-9);
        close(s.ci_high, 4.982796954695792, 1e-9);
        // x = [((i * 37) % 13) / 10 for i in range(30)]; same call with df=29
        //   -> (0.4654303025163935, 0.7545696974836062), std 0.3871647604368687
        let x: Vec<f64> = (0..30).map(|i| ((i * 37) % 13) as f64 / 10.0).collect();
        let s = summary(&x);
        close(s.mean, 0.61, 1e-12);
        close(s.std, 0.3871647604368687, 1e-12);
        close(s.ci_low, 0.4654303025163935, 1e-9);
        close(s.ci_high, 0.7545696974836062, 1e-9);
    }

    #[test]
    fn summary_edge_cases() {
        let s = summary(&[]);
        assert_eq!(s.n, 0);
        assert!(s.mean.is_nan() && s.std.is_nan() && s.ci_low.is_nan() && s.ci_high.is_nan());
        let s = summary(&[4.0]);
        assert_eq!((s.n, s.mean, s.std), (1, 4.0, 0.0));
        assert!(s.ci_low.is_nan() && s.ci_high.is_nan());
        let s = summary(&[2.0, 2.0, 2.0]);
        assert_eq!((s.mean, s.std, s.ci_low, s.ci_high), (2.0, 0.0, 2.0, 2.0));
    }

    #[test]
    fn median_cases() {
        assert!(median(&[]).is_nan());
        assert_eq!(median(&[3.0]), 3.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        // numpy.median([1, inf, 3, 2]) -> 2.5; ([5, inf, inf]) -> inf; ([-inf, 4]) -> -inf
        assert_eq!(median(&[1.0, f64::INFINITY, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[5.0, f64::INFINITY, f64::INFINITY]), f64::INFINITY);
        assert_eq!(median(&[f64::NEG_INFINITY, 4.0]), f64::NEG_INFINITY);
        assert_eq!(median(&[f64::MAX, f64::MAX]), f64::MAX);
    }

    #[test]
    fn paired_matches_scipy() {
        let c = [0.81, 0.79, 0.85, 0.80, 0.83, 0.78, 0.84];
        let r = [0.80, 0.80, 0.82, 0.77, 0.83, 0.79, 0.81];
        let p = paired(&c, &r, true, ZeroMethod::Wilcox);
        assert_eq!(p.n, 7);
        close(p.win_rate, 4.5 / 7.0, 1e-15);
        // scipy.stats.ttest_rel(c, r) -> statistic=1.6217697081587656, pvalue=0.15597940607130667
        close(p.t_test_p.unwrap(), 0.15597940607130667, 1e-9);
        // scipy.stats.wilcoxon(numpy.subtract(c, r)) -> statistic=4.0, pvalue=0.25
        close(p.wilcoxon_p.unwrap(), 0.25, 1e-9);
        let d: Vec<f64> = c.iter().zip(&r).map(|(a, b)| a - b).collect();
        assert_eq!(p.diff, summary(&d));

        // scipy.stats.ttest_rel([1, 2, 3, 4, 5], [1.5, 2.1, 2.0, 4.5, 5.2]) -> pvalue=0.8389809498732862
        // scipy.stats.wilcoxon(numpy.subtract(...)) -> statistic=5.0, pvalue=0.5625
        let p = paired(
            &[1.0, 2.0, 3.0, 4.0, 5.0],
            &[1.5, 2.1, 2.0, 4.5, 5.2],
            true,
            ZeroMethod::Wilcox,
        );
        close(p.t_test_p.unwrap(), 0.8389809498732862, 1e-9);
        close(p.wilcoxon_p.unwrap(), 0.5625, 1e-9);
        close(p.diff.mean, -0.06, 1e-12);

        // c = [10, ..., 17], r = [c_i - 1 - 0.01 i]: scipy.stats.ttest_rel(c, r)
        //   -> statistic=119.51150572225127, pvalue=7.572602316213325e-13
        let c: Vec<f64> = (10..18).map(f64::from).collect();
        let r: Vec<f64> = c
            .iter()
            .enumerate()
            .map(|(i, x)| x - 1.0 - 0.01 * i as f64)
            .collect();
        let tp = paired(&c, &r, true, ZeroMethod::Wilcox).t_test_p.unwrap();
        assert!((tp / 7.572602316213325e-13 - 1.0).abs() < 1e-6, "{tp}");
    }

    #[test]
    fn paired_win_rate_and_direction() {
        // diffs [-0.1, 0, 0.1, -0.05, 0]: scipy.stats.ttest_rel -> pvalue=0.7780495489000209,
        // scipy.stats.wilcoxon -> statistic=2.5, pvalue=1.0
        let c = [0.5, 0.4, 0.3, 0.3, 0.9];
        let r = [0.6, 0.4, 0.2, 0.35, 0.9];
        let hi = paired(&c, &r, true, ZeroMethod::Wilcox);
        let lo = paired(&c, &r, false, ZeroMethod::Wilcox);
        close(hi.win_rate, 2.0 / 5.0, 1e-15); // 1 win + 2 ties
        close(lo.win_rate, 3.0 / 5.0, 1e-15); // 2 wins + 2 ties
        assert_eq!(hi.diff, lo.diff);
        assert_eq!((hi.t_test_p, hi.wilcoxon_p), (lo.t_test_p, lo.wilcoxon_p));
        close(hi.t_test_p.unwrap(), 0.7780495489000209, 1e-9);
        close(hi.wilcoxon_p.unwrap(), 1.0, 1e-9);
    }

    #[test]
    fn paired_degenerate() {
        let p = paired(&[], &[], true, ZeroMethod::Wilcox);
        assert_eq!((p.n, p.wilcoxon_p, p.t_test_p), (0, None, None));
        assert!(p.win_rate.is_nan());
        let p = paired(&[1.0], &[0.0], true, ZeroMethod::Wilcox);
        assert_eq!((p.n, p.win_rate, p.t_test_p), (1, 1.0, None));
        assert_eq!(p.wilcoxon_p, Some(1.0));
        let p = paired(
            &[1.0, 2.0, 3.0],
            &[1.0, 2.0, 3.0],
            false,
            ZeroMethod::Wilcox,
        );
        assert_eq!((p.win_rate, p.wilcoxon_p, p.t_test_p), (0.5, None, None));
        // all differences equal (and non-zero): no t-test, Wilcoxon still defined
        let p = paired(&[2.0, 3.0, 4.0], &[1.0, 2.0, 3.0], true, ZeroMethod::Wilcox);
        assert_eq!((p.win_rate, p.t_test_p), (1.0, None));
        assert!(p.wilcoxon_p.is_some());
    }

    #[test]
    fn bootstrap_intervals_of_losses_stay_in_their_range_and_agree_with_t_for_many_values() {
        // final losses over ten decades: the t interval reaches below zero
        let losses = [1e-13, 2e-12, 8e-9, 3e-9, 4e-8, 1e-13, 5e-10, 2e-11];
        let t = summary(&losses);
        assert!(t.ci_low < 0.0, "{t:?}");
        let b = summary_bootstrap(&losses);
        assert_eq!((b.mean, b.std), (t.mean, t.std));
        assert!(
            b.ci_low > 0.0 && b.ci_low < b.mean && b.mean < b.ci_high,
            "{b:?}"
        );
        assert!(b.ci_high <= 4e-8);
        assert_eq!(
            summary_bootstrap(&losses),
            b,
            "seeded: the same interval every time"
        );
        // for many roughly normal values the two intervals nearly agree
        let mut rng = StdRng::seed_from_u64(7);
        let normal = rand_distr::Normal::new(1.0, 0.1).unwrap();
        let xs: Vec<f64> = (0..400).map(|_| rng.sample(normal)).collect();
        let (t, b) = (summary(&xs), summary_bootstrap(&xs));
        let width = t.ci_high - t.ci_low;
        close(b.ci_low, t.ci_low, 0.1 * width);
        close(b.ci_high, t.ci_high, 0.1 * width);
        // constant values: the interval collapses; one value: unknown
        let c = summary_bootstrap(&[0.5; 5]);
        assert_eq!((c.ci_low, c.ci_high), (0.5, 0.5));
        assert!(summary_bootstrap(&[0.5]).ci_low.is_nan());
    }

    #[test]
    fn zero_methods_match_scipy() {
        // scipy 1.17.1: stats.wilcoxon(d, zero_method=m) -> (statistic, pvalue)
        let small = [0.5, -1.2, 0.0, 2.0, 0.0, 1.5, -0.3, 0.8];
        let ties = [1.0, -1.0, 0.0, 2.0, 0.0, 1.0, 3.0, 0.0, 2.0];
        let n20 = [
            0.3, -0.1, 0.0, 0.0, 0.7, 1.2, -0.4, 0.0, 0.9, 0.25, 1.1, -0.05, 0.0, 0.6, 0.8, 1.5,
            -0.2, 0.45, 0.0, 0.33,
        ];
        let n60: Vec<f64> = (0..60).map(|i| ((i * 37) % 23 - 7) as f64 / 5.0).collect();
        let cases: [(&[f64], ZeroMethod, f64, f64); 12] = [
            (&small, ZeroMethod::Wilcox, 5.0, 0.3125),
            (&small, ZeroMethod::Pratt, 9.0, 0.34375),
            (&small, ZeroMethod::Zsplit, 10.5, 0.34375),
            (&ties, ZeroMethod::Wilcox, 2.0, 0.125),
            (&ties, ZeroMethod::Pratt, 5.0, 0.125),
            (&ties, ZeroMethod::Zsplit, 8.0, 0.125),
            (&n20, ZeroMethod::Wilcox, 13.0, 0.007598223082063245),
            (&n20, ZeroMethod::Pratt, 33.0, 0.015041971347208848),
            (&n20, ZeroMethod::Zsplit, 40.5, 0.015858179886411118),
            (&n60, ZeroMethod::Wilcox, 348.5, 0.0001444164201454818),
            (&n60, ZeroMethod::Pratt, 405.5, 0.00019052728868080245),
            (&n60, ZeroMethod::Zsplit, 408.5, 0.0001907571402497502),
        ];
        for (d, zero, statistic, p) in cases {
            let (s, q) = wilcoxon_signed_rank_with(d, zero).unwrap();
            assert_eq!(s, statistic, "{zero:?} {d:?}");
            close(q, p, 1e-9);
        }
    }
}
