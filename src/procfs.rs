//! What Linux's `/proc` says about a process: its CPU time (the window's statistics, the
//! benchmarks).

/// User + system CPU seconds of this process so far (Linux /proc; None elsewhere).
#[must_use]
pub fn process_cpu_secs() -> Option<f64> {
    cpu_secs_of("self")
}

/// User + system CPU seconds of process `pid` ("self" for this one), from `/proc/<pid>/stat`.
#[must_use]
pub fn cpu_secs_of(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Clock ticks are 100 per second on every Linux this runs on (USER_HZ).
    Some((utime + stime) / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn cpu_time_of_this_process_and_of_none() {
        // Spend some CPU so the count (in 10 ms ticks) cannot be zero.
        let spin = Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(process_cpu_secs().is_some_and(|c| c > 0.0));
        assert!(cpu_secs_of("no-such-pid").is_none());
    }
}
