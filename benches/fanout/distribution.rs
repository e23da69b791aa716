//! Percentiles of a set of measurements, formatted for a results row;
//! shared by the fan-out and live benches.

/// The `p`-quantile (0..=1, nearest rank) of sorted `values`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `value` with two decimals below 10 and one above.
fn decimals(value: f64) -> String {
    if value.abs() < 10.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.1}")
    }
}

/// Sorts `values` and formats p50 / p99 / max with `unit`.
pub(crate) fn distribution(mut values: Vec<f64>, unit: &str) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "p50 {} {unit}, p99 {} {unit}, max {} {unit} (n={})",
        decimals(percentile(&values, 0.5)),
        decimals(percentile(&values, 0.99)),
        decimals(percentile(&values, 1.0)),
        values.len()
    )
}

/// A results table: a title line, then one `name  value` line per
/// quantity, names aligned.
pub(crate) struct Table(String);

impl Table {
    /// A table titled `title` whose first rows are the command that
    /// reproduces the run, the server's command line and the machine
    /// (its cores, then `placement`: where the processes ran).
    pub(crate) fn new(title: &str, command: String, server: String, placement: &str) -> Table {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut table = Table(format!("{title}\n"));
        table.row("command", command);
        table.row("server", server);
        table.row(
            "machine",
            format!("{cores} cores (available_parallelism); {placement}"),
        );
        table
    }

    /// Appends a row.
    pub(crate) fn row(&mut self, name: &str, value: String) {
        self.0.push_str(&format!("  {name:<24} {value}\n"));
    }

    /// The table's text.
    pub(crate) fn finish(self) -> String {
        self.0
    }
}
