//! The one thread-count rule, for every engine and command: a count of 0 means one thread per core, a count
//! asked for is capped at [`max_threads`], and work split over several workers shares the cores among them.
//! `--threads` values are parsed here ([`parse_threads`]) so that every command refuses the same numbers.

/// Cores this process may use (1 when the system cannot tell).
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Environment variable that sets the thread cap instead of 4 × cores.
pub const MAX_THREADS_VAR: &str = "TICKET_MAX_THREADS";

/// The most threads any `--threads` may ask for: 4 × the cores (more only adds switching), or
/// `TICKET_MAX_THREADS` when set to a number.
pub fn max_threads() -> usize {
    std::env::var(MAX_THREADS_VAR).ok().and_then(|v| v.trim().parse::<usize>().ok()).filter(|&n| n > 0).unwrap_or(4 * cores())
}

/// The number of threads `n` stands for: 0 is one per core; never more than [`max_threads`].
pub fn resolve(n: usize) -> usize {
    if n == 0 {
        cores()
    } else {
        n.min(max_threads())
    }
}

/// Threads for each of `workers` jobs run side by side: the cores shared among them, at least one each.
pub fn per_worker(workers: usize) -> usize {
    (cores() / workers.max(1)).max(1)
}

/// A `--threads` value, checked once for every command that takes one (tract's matmul threads, ORT's
/// intra-op threads): a number (0 where the command means one per core) of at most [`max_threads`], so that
/// `--threads 10000` is refused before anything starts instead of spawning ten thousand threads.
pub fn parse_threads(s: &str) -> std::result::Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|e| format!("'{s}' is not a thread count: {e}"))?;
    let max = max_threads();
    if n > max {
        let why = if max == 4 * cores() { format!("4 × {} cores", cores()) } else { format!("{MAX_THREADS_VAR}={max}") };
        return Err(format!("{n} threads is more than the {max} allowed ({why}); set {MAX_THREADS_VAR}={n} to allow it"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_one_per_core_and_workers_share_the_cores() {
        assert_eq!(resolve(0), cores());
        assert_eq!(resolve(1), 1);
        assert_eq!(per_worker(1), cores());
        assert_eq!(per_worker(0), cores());
        assert_eq!(per_worker(cores() + 1), 1);
        assert_eq!(parse_threads(" 1 "), Ok(1));
        assert!(parse_threads("x").unwrap_err().contains("'x' is not a thread count"));
    }
}
