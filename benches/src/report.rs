//! The result table: one row per (scenario, peer), as markdown.

use std::fmt;

/// A measured figure, with its unit.
#[derive(Debug, Clone, Copy)]
pub enum Figure {
    /// Nanoseconds per operation on one thread (lower is better).
    NsPerOp(f64),
    /// Millions of operations per second, all threads together (higher is better).
    MopsPerSec(f64),
    /// Microseconds per operation on one thread, for operations that cross the network (lower
    /// is better).
    MicrosPerOp(f64),
    /// Microseconds of wall time for a whole event, such as many callers served (lower is
    /// better).
    WallMicros(f64),
    /// Mebibytes of memory, such as a process's peak RSS growth (lower is better).
    MiB(f64),
}

impl Figure {
    /// The number, in the figure's unit.
    pub fn value(self) -> f64 {
        match self {
            Self::NsPerOp(v) | Self::MopsPerSec(v) | Self::MicrosPerOp(v) | Self::WallMicros(v) | Self::MiB(v) => v,
        }
    }

    /// `value` formatted as this figure's numbers are, without the unit (for ranges).
    pub fn number(self, value: f64) -> String {
        match self {
            Self::MopsPerSec(_) => format!("{value:.2}"),
            Self::WallMicros(_) => format!("{value:.0}"),
            Self::NsPerOp(_) | Self::MicrosPerOp(_) | Self::MiB(_) => format!("{value:.1}"),
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Self::NsPerOp(_) => "ns/op",
            Self::MopsPerSec(_) => "Mops/s",
            Self::MicrosPerOp(_) => "µs/op",
            Self::WallMicros(_) => "µs",
            Self::MiB(_) => "MiB",
        }
    }
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.number(self.value()), self.unit())
    }
}

/// What a cell of the table says besides the median: the spread of the samples and, for
/// read-through scenarios, the hit ratio.
#[derive(Debug, Clone, Copy, Default)]
pub struct Detail {
    /// The 10th and 90th percentiles of the samples, in the figure's unit.
    pub p10_p90: Option<(f64, f64)>,
    /// Operations answered from the cache / all operations.
    pub hit_ratio: Option<f64>,
}

impl Detail {
    /// The cell: the figure, then its p10–p90 and hit ratio when known.
    fn cell(self, figure: Figure) -> String {
        let mut cell = figure.to_string();
        if let Some((p10, p90)) = self.p10_p90 {
            cell.push_str(&format!(" ({}–{})", figure.number(p10), figure.number(p90)));
        }
        if let Some(ratio) = self.hit_ratio {
            cell.push_str(&format!(", **hits {:.1}%**", ratio * 100.0));
        }
        cell
    }
}

/// One line of the table: cache-tower against one peer in one scenario.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured, with the unit and which way is better.
    pub scenario: String,
    /// cache-tower's figure.
    pub ours: Figure,
    /// Its spread and hit ratio.
    pub ours_detail: Detail,
    /// The peer and the call measured, e.g. "moka 0.12 `get`".
    pub peer: String,
    /// The peer's figure, in the same unit as `ours`.
    pub theirs: Figure,
    /// Its spread and hit ratio.
    pub theirs_detail: Detail,
    /// The 10th and 90th percentiles of the ratios ours / peer of each round (the two were sampled
    /// in the same rounds), when there were samples.
    pub ratio_p10_p90: Option<(f64, f64)>,
}

impl Row {
    /// A row of two single figures (no samples to spread).
    pub fn single(scenario: impl Into<String>, ours: Figure, peer: impl Into<String>, theirs: Figure) -> Self {
        Self {
            scenario: scenario.into(),
            ours,
            ours_detail: Detail::default(),
            peer: peer.into(),
            theirs,
            theirs_detail: Detail::default(),
            ratio_p10_p90: None,
        }
    }

    /// ours / peer (of the medians): below 1 is better for times, above 1 is better for
    /// throughputs (the scenario name says which).
    pub fn ratio(&self) -> f64 {
        self.ours.value() / self.theirs.value()
    }

    /// The ratio cell: the ratio of the medians, then the p10–p90 of the per-round ratios.
    fn ratio_cell(&self) -> String {
        let ratio = ratio_number(self.ratio());
        match self.ratio_p10_p90 {
            Some((p10, p90)) => format!("{ratio}x ({}–{})", ratio_number(p10), ratio_number(p90)),
            None => format!("{ratio}x"),
        }
    }
}

/// A ratio with two decimals, or with two significant digits below 0.01 (`redis/clear` sets a
/// call of microseconds against one of seconds), so that it never reads `0.00`.
fn ratio_number(ratio: f64) -> String {
    if ratio.is_finite() && ratio > 0.0 && ratio < 0.01 {
        let decimals = (-ratio.log10()).floor() as usize + 2;
        format!("{ratio:.decimals$}")
    } else {
        format!("{ratio:.2}")
    }
}

/// What one contender of a Redis scenario cost the server per operation, counted over a fixed
/// number of operations.
#[derive(Debug, Clone)]
pub struct Trips {
    /// The scenario id, e.g. `redis/get-hit`.
    pub scenario: String,
    /// The contender, as in the timing table.
    pub contender: String,
    /// Round trips per operation: times the client sent a request after having received
    /// something, counted by a relay between client and server (`None`: not counted).
    pub round_trips: Option<f64>,
    /// `total_reads_processed` per operation: the server's socket reads. One per request of up to
    /// 16 KiB; a larger request takes several reads in the same round trip.
    pub reads: f64,
    /// `total_net_input_bytes` per operation: what the client sent.
    pub bytes_in: f64,
    /// The server process's CPU time per operation (`used_cpu_user` + `used_cpu_sys`), in µs.
    pub server_cpu_micros: f64,
    /// Calls per operation of each command (`INFO commandstats`), commands run inside a Lua script
    /// included, most frequent first.
    pub commands: Vec<(String, f64)>,
}

/// What a scenario reports: its rows, and notes to print under the table (baselines, caveats).
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// One row per peer.
    pub rows: Vec<Row>,
    /// Sentences for the reader of the table.
    pub notes: Vec<String>,
    /// What each contender cost the Redis server (Redis scenarios only).
    pub trips: Vec<Trips>,
    /// Markdown sections of their own (a heading and a table, say), printed after the tables, for
    /// figures that are not one contender against another (staleness percentiles, RSS samples).
    pub sections: Vec<String>,
}

impl From<Vec<Row>> for Outcome {
    fn from(rows: Vec<Row>) -> Self {
        Self { rows, ..Self::default() }
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
            "| {} | {} | {} | {} | {} |\n",
            row.scenario,
            row.ours_detail.cell(row.ours),
            row.peer,
            row.theirs_detail.cell(row.theirs),
            row.ratio_cell()
        ));
    }
    table
}

/// The Redis costs as a markdown table with the columns
/// `scenario | contender | round trips/op | server reads/op | bytes sent/op | server CPU/op | commands/op`.
pub fn trips_table(trips: &[Trips]) -> String {
    let mut table = String::from(
        "| scenario | contender | round trips/op | server reads/op | bytes sent/op | server CPU/op | commands/op |\n\
         |---|---|---:|---:|---:|---:|---|\n",
    );
    for trip in trips {
        let round_trips = trip.round_trips.map_or_else(|| "n/a (no relay)".to_string(), |n| format!("{n:.2}"));
        let commands = if trip.commands.is_empty() {
            "none".to_string()
        } else {
            trip.commands.iter().map(|(name, per_op)| format!("{name} {per_op:.2}")).collect::<Vec<_>>().join(", ")
        };
        table.push_str(&format!(
            "| {} | {} | {round_trips} | {:.2} | {:.0} | {:.1} µs | {commands} |\n",
            trip.scenario, trip.contender, trip.reads, trip.bytes_in, trip.server_cpu_micros
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_the_five_columns_and_the_ratio() {
        let mut row = Row::single("get (ns/op, lower is better)", Figure::NsPerOp(60.0), "peer", Figure::NsPerOp(40.0));
        let table = markdown_table(std::slice::from_ref(&row));
        assert!(table.starts_with("| scenario | cache-tower | peer | peer's figure | ratio (ours / peer) |"));
        assert!(table.contains("| get (ns/op, lower is better) | 60.0 ns/op | peer | 40.0 ns/op | 1.50x |"));
        row.ours_detail = Detail { p10_p90: Some((55.0, 70.0)), hit_ratio: Some(0.5) };
        row.ratio_p10_p90 = Some((1.25, 1.75));
        let table = markdown_table(&[row]);
        assert!(
            table.contains("| 60.0 ns/op (55.0–70.0), **hits 50.0%** | peer | 40.0 ns/op | 1.50x (1.25–1.75) |"),
            "{table}"
        );
    }

    #[test]
    fn tiny_ratios_keep_two_significant_digits() {
        assert_eq!(ratio_number(1.5), "1.50");
        assert_eq!(ratio_number(0.01), "0.01");
        assert_eq!(ratio_number(0.005), "0.0050");
        assert_eq!(ratio_number(0.000_041_2), "0.000041");
        assert_eq!(ratio_number(0.0), "0.00");
        let row = Row::single("clear", Figure::MicrosPerOp(50.0), "flush", Figure::MicrosPerOp(2_000_000.0));
        assert!(markdown_table(&[row]).contains("| 0.000025x |"));
    }

    #[test]
    fn trips_table_lists_commands_per_op() {
        let trips = [Trips {
            scenario: "redis/get-hit".into(),
            contender: "ours".into(),
            round_trips: Some(1.0),
            reads: 1.0,
            bytes_in: 31.0,
            server_cpu_micros: 2.5,
            commands: vec![("get".into(), 1.0)],
        }];
        let table = trips_table(&trips);
        assert!(table.contains("| redis/get-hit | ours | 1.00 | 1.00 | 31 | 2.5 µs | get 1.00 |"), "{table}");
    }
}
