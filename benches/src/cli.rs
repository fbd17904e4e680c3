//! Command-line options.

/// How to run: from `--quick` and `--filter <substring>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Fewer, shorter samples: rough figures in a few seconds.
    pub quick: bool,
    /// Run only the scenarios whose id contains this.
    pub filter: Option<String>,
    /// Print the usage and stop.
    pub help: bool,
}

/// The usage text.
pub const USAGE: &str = "\
usage: cargo run --release -p cache-tower-benches -- [--quick] [--filter <substring>]

  --quick               fewer, shorter samples (rough figures, under a minute;
                        coherence/staleness times 200 writes of each kind instead of
                        1,000, memory/bounded-rss runs 300,000 ops instead of 1,000,000,
                        redis/clear clears a namespace of 100,000 keys instead of
                        1,000,000 and follows 200 clears from another instance instead
                        of 1,000, redis/invalidate-tag follows 200 invalidations instead
                        of 1,000; its tag covers 10,000 entries in both)
  --filter <substring>  run only the scenarios whose id contains <substring>
                        (ids: memory/get-hit, memory/get-hit-arc, memory/get-miss,
                        memory/set-overwrite, memory/insert-evict, memory/get-2-threads,
                        memory/get-or-set-hit, memory/zipf-0.9, memory/zipf-1.1, memory/scan,
                        redis/get-hit, redis/mget-100, redis/mset-100, redis/get-backfill,
                        redis/mget-backfill, redis/get-or-set-many, redis/clear,
                        redis/invalidate-tag, cluster/get, cluster/mget-1000,
                        cluster/mset-1000, memoize/hit, memoize/hit-over-redis,
                        memoize/refreshing-hit, memoize/stampede-64,
                        redis/distributed-stampede, coherence/staleness,
                        coherence/cluster-staleness, memory/bounded-rss)

The Redis scenarios start a redis-server of their own on a free loopback port (no persistence;
stopped at the end), or use the server of REDIS_URL when it is set (its `user:*` keys are
overwritten). Without either, they are skipped with a note. The cluster scenarios start a
3-master / 3-replica Redis Cluster of their own the same way (redis-server and redis-cli), or
use the nodes of REDIS_CLUSTER_NODES (comma-separated host:port).
  -h, --help            show this text";

/// Parses the arguments after the program name.
///
/// # Errors
/// A message naming the argument that is unknown or lacks its value.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "-h" | "--help" => options.help = true,
            "--filter" => {
                let value = args.next().ok_or("`--filter` needs a value: --filter <substring>")?;
                options.filter = Some(value);
            }
            _ => match arg.strip_prefix("--filter=") {
                Some(value) => options.filter = Some(value.to_string()),
                None => return Err(format!("unknown argument `{arg}`")),
            },
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Options, String> {
        parse(args.iter().map(|arg| arg.to_string()))
    }

    #[test]
    fn parses_quick_and_filter_in_both_forms() {
        assert_eq!(parse_strs(&[]), Ok(Options::default()));
        let expected = Options { quick: true, filter: Some("get".into()), help: false };
        assert_eq!(parse_strs(&["--quick", "--filter", "get"]), Ok(expected.clone()));
        assert_eq!(parse_strs(&["--filter=get", "--quick"]), Ok(expected));
    }

    #[test]
    fn rejects_unknown_arguments_and_a_missing_filter() {
        assert_eq!(parse_strs(&["--fast"]), Err("unknown argument `--fast`".to_string()));
        assert!(parse_strs(&["--filter"]).unwrap_err().contains("needs a value"));
    }
}
