//! The solutions θk* a restart strategy keeps across phases (persistence, deflation): each is
//! kept as `anchor<k>` and all of them stacked as `anchors`, a `[K, n]` matrix, so a penalty
//! over every anchor is one broadcast expression.

use pn_plugin_api::tensor::{Kept, Ops, Tensor};

/// Anchors kept so far.
#[derive(Debug, Default)]
pub struct Anchors {
    list: Vec<Kept>,
    stacked: Option<Kept>,
}

impl Anchors {
    /// Keeps `theta` (a flat parameter group) as the next anchor.
    pub fn push(&mut self, ops: Ops<'_>, theta: Tensor<'_>) {
        let k = self.list.len() + 1;
        self.list.push(ops.keep(&format!("anchor{k}"), theta));
        let rows: Vec<Tensor<'_>> = self
            .list
            .iter()
            .map(|&a| ops.kept(a).reshape(&[1, -1]))
            .collect();
        self.stacked = Some(ops.keep("anchors", ops.cat(&rows, 0)));
    }

    /// Every anchor as rows of a `[K, n]` matrix; `None` before the first.
    pub fn stacked<'a>(&self, ops: Ops<'a>) -> Option<Tensor<'a>> {
        self.stacked.map(|k| ops.kept(k))
    }

    /// The first anchor θ1*.
    pub fn first(&self) -> Option<Kept> {
        self.list.first().copied()
    }
}

/// Squared distances `‖θ − θk*‖²` from the flat `theta` (`[n]`) to each row of `anchors`
/// (`[K, n]`), as a `[K]` vector: one host operation ([`Ops::squared_distances`]).
pub fn squared_distances<'a>(theta: Tensor<'a>, anchors: Tensor<'a>) -> Tensor<'a> {
    theta.ops().squared_distances(theta, anchors)
}
