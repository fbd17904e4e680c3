//! The result table: one row per (scenario, peer), as markdown.

use std::fmt;

/// A measured figure, with its unit.
#[derive(Debug, Clone, Copy)]
pub enum Figure {
    /// Nanoseconds per operation on one thread (lower is better).
    NsPerOp(f64),
    /// Millions of operations per second, all threads together (higher is better).
    MopsPerSec(f64),
}

impl Figure {
    fn value(self) -> f64 {
        match self {
            Self::NsPerOp(v) | Self::MopsPerSec(v) => v,
        }
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NsPerOp(ns) => write!(f, "{ns:.1} ns/op"),
            Self::MopsPerSec(mops) => write!(f, "{mops:.2} Mops/s"),
        }
    }
}

/// One line of the table: cache-tower against one peer in one scenario.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured, with the unit and which way is better.
    pub scenario: String,
    /// cache-tower's figure.
    pub ours: Figure,
    /// The peer and the call measured, e.g. "moka 0.12 `get`".
    pub peer: String,
    /// The peer's figure, in the same unit as `ours`.
    pub theirs: Figure,
}

impl Row {
    /// ours / peer: below 1 is better for times, above 1 is better for throughputs (the scenario
    /// name says which).
    pub fn ratio(&self) -> f64 {
        self.ours.value() / self.theirs.value()
    }
}

/// What a scenario reports: its rows, and notes to print under the table (baselines, caveats).
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// One row per peer.
    pub rows: Vec<Row>,
    /// Sentences for the reader of the table.
    pub notes: Vec<String>,
}

impl From<Vec<Row>> for Outcome {
    fn from(rows: Vec<Row>) -> Self {
        Self { rows, notes: Vec::new() }
    }
}

/// The rows as a markdown table with the columns
/// `scenario | cache-tower | peer | peer's figure | ratio (ours / peer)`.
pub fn markdown_table(rows: &[Row]) -> String {
    let mut table = String::from(
        "| scenario | cache-tower | peer | peer's figure | ratio (ours / peer) |\n|---|---:|---|---:|---:|\n",
    );
    for row in rows {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {:.2}x |\n",
            row.scenario,
            row.ours,
            row.peer,
            row.theirs,
            row.ratio()
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_the_five_columns_and_the_ratio() {
        let rows = [Row {
            scenario: "get (ns/op, lower is better)".into(),
            ours: Figure::NsPerOp(60.0),
            peer: "peer".into(),
            theirs: Figure::NsPerOp(40.0),
        }];
        let table = markdown_table(&rows);
        assert!(table.starts_with("| scenario | cache-tower | peer | peer's figure | ratio (ours / peer) |"));
        assert!(table.contains("| get (ns/op, lower is better) | 60.0 ns/op | peer | 40.0 ns/op | 1.50x |"));
    }
}
