//! The statistics against scipy's values.

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
        1.0, -2.0, 2.0, 3.0, 3.0, 3.0, -1.0, 4.0, 5.0, 5.0, 6.0, -6.0, 7.0, 8.0, 8.0, 9.0, 10.0,
        -11.0, 12.0, 12.0,
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
        0.3, -0.1, 0.0, 0.0, 0.7, 1.2, -0.4, 0.0, 0.9, 0.25, 1.1, -0.05, 0.0, 0.6, 0.8, 1.5, -0.2,
        0.45, 0.0, 0.33,
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
