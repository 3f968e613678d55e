//! Every strategy against every other on the same seeds, not only against the reference: the
//! paired win rate and the Wilcoxon signed-rank p-value of each pair, Holm-adjusted over the
//! table's pairs (so a table of many strategies does not find differences by chance).

use std::fmt::Write as _;

use crate::report::stats;

/// The pairwise comparisons of one workload at one budget.
#[derive(Debug, Clone, PartialEq)]
pub struct PairTable {
    /// Workload label.
    pub workload: String,
    /// `per_phase` or `equal_steps`.
    pub budget: String,
    /// Strategy labels, in table order.
    pub strategies: Vec<String>,
    /// `cells[i][j]` (i ≠ j): the fraction of shared seeds on which strategy i ended better
    /// than j (ties count half), and the Holm-adjusted two-sided Wilcoxon p of their paired
    /// differences (None when every difference is zero or no seed is shared).
    pub cells: Vec<Vec<Option<Cell>>>,
}

/// One cell of a pair table: win rate of the row over the column, Holm-adjusted p.
pub type Cell = (f64, Option<f64>);

/// Holm's step-down adjustment of `p` (None entries are left out and stay None).
pub fn holm(p: &[Option<f64>]) -> Vec<Option<f64>> {
    let mut order: Vec<usize> = (0..p.len()).filter(|&i| p[i].is_some()).collect();
    order.sort_by(|&a, &b| p[a].unwrap_or(1.0).total_cmp(&p[b].unwrap_or(1.0)));
    let m = order.len();
    let mut adjusted = vec![None; p.len()];
    let mut running = 0.0_f64;
    for (rank, &i) in order.iter().enumerate() {
        let value = (p[i].unwrap_or(1.0) * (m - rank) as f64).min(1.0);
        running = running.max(value);
        adjusted[i] = Some(running);
    }
    adjusted
}

/// The table for `values[s][seed]` (the compared metric of strategy s on each seed; None where
/// the run has no result).
pub fn pair_table(
    workload: &str,
    budget: &str,
    strategies: &[String],
    values: &[Vec<Option<f64>>],
    higher_is_better: bool,
    zero: stats::ZeroMethod,
) -> PairTable {
    let k = strategies.len();
    let mut pairs = vec![];
    for i in 0..k {
        for j in i + 1..k {
            let (a, b): (Vec<f64>, Vec<f64>) = values[i]
                .iter()
                .zip(&values[j])
                .filter_map(|(x, y)| Some(((*x)?, (*y)?)))
                .unzip();
            pairs.push((i, j, stats::paired(&a, &b, higher_is_better, zero)));
        }
    }
    let adjusted = holm(&pairs.iter().map(|p| p.2.wilcoxon_p).collect::<Vec<_>>());
    let mut cells = vec![vec![None; k]; k];
    for ((i, j, paired), p) in pairs.iter().zip(adjusted) {
        if paired.n > 0 {
            cells[*i][*j] = Some((paired.win_rate, p));
            cells[*j][*i] = Some((1.0 - paired.win_rate, p));
        }
    }
    PairTable {
        workload: workload.into(),
        budget: budget.into(),
        strategies: strategies.to_vec(),
        cells,
    }
}

/// The table in markdown: row strategy against column strategy.
pub fn markdown(table: &PairTable) -> String {
    let mut out = String::from(
        "\nEvery pair (row vs column): seeds on which the row ended better, and the \
         Holm-adjusted Wilcoxon p over this table's pairs.\n\n",
    );
    let _ = writeln!(out, "| | {} |", table.strategies.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(table.strategies.len()));
    for (i, name) in table.strategies.iter().enumerate() {
        let cells: Vec<String> = table.cells[i]
            .iter()
            .map(|cell| match cell {
                None => "–".into(),
                Some((win, Some(p))) => format!("{:.0}% (p {})", win * 100.0, format_p(*p)),
                Some((win, None)) => format!("{:.0}% (all tied)", win * 100.0),
            })
            .collect();
        let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
    }
    out
}

fn format_p(p: f64) -> String {
    if p < 1e-3 {
        format!("{p:.1e}")
    } else {
        format!("{p:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holm_matches_its_definition() {
        // statsmodels.stats.multitest.multipletests([0.01, 0.04, 0.03, 0.2], method="holm")
        let adjusted = holm(&[Some(0.01), Some(0.04), Some(0.03), Some(0.2), None]);
        let want = [0.04, 0.09, 0.09, 0.2];
        for (got, want) in adjusted.iter().zip(want) {
            assert!((got.unwrap() - want).abs() < 1e-12, "{adjusted:?}");
        }
        assert_eq!(adjusted[4], None);
    }

    #[test]
    fn a_pair_table_is_antisymmetric_in_wins() {
        let values = vec![
            vec![
                Some(1.0),
                Some(2.0),
                Some(3.0),
                Some(4.0),
                Some(5.0),
                Some(6.0),
            ],
            vec![
                Some(2.0),
                Some(3.0),
                Some(4.0),
                Some(5.0),
                Some(6.0),
                Some(7.0),
            ],
            vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0), Some(5.0), None],
        ];
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let t = pair_table(
            "w",
            "per_phase",
            &names,
            &values,
            false,
            stats::ZeroMethod::Wilcox,
        );
        assert_eq!(t.cells[0][1].unwrap().0, 1.0, "a is lower on every seed");
        assert_eq!(t.cells[1][0].unwrap().0, 0.0);
        assert_eq!(
            t.cells[0][2],
            Some((0.5, None)),
            "a and c tie on the 5 shared seeds"
        );
        assert!(t.cells[0][0].is_none());
    }
}
