//! Reading usage from `/proc`: the node's CPU time (`/proc/stat`) and
//! memory (`/proc/meminfo`), and a process group's CPU time and resident
//! memory (the process runtime's container: the shim starts each container
//! in its own process group).

use std::path::Path;

use crate::runtime::ContainerUsage;

/// Clock ticks per second (`_SC_CLK_TCK`), for `/proc` CPU times.
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|t| *t > 0).unwrap_or(100)
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(p).ok().filter(|p| *p > 0).unwrap_or(4096)
}

fn ticks_to_ns(ticks: u64) -> u64 {
    ticks.saturating_mul(1_000_000_000) / ticks_per_second()
}

/// The node's CPU time in nanoseconds: the busy fields of `/proc/stat`'s
/// `cpu` line (user, nice, system, irq, softirq, steal — not idle, iowait
/// or the guest times already counted in user).
pub fn node_cpu_ns(root: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(root.join("stat")).ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|i| f.get(*i))
        .sum::<u64>();
    Some(ticks_to_ns(busy))
}

/// The node's memory: (total, available, working set = total − available).
pub fn node_memory(root: &Path) -> Option<(u64, u64, u64)> {
    let text = std::fs::read_to_string(root.join("meminfo")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    let total = field("MemTotal:")?;
    let available = field("MemAvailable:")?;
    Some((total, available, total.saturating_sub(available)))
}

/// One process's `stat` fields we need: (process group, CPU ticks of it and its reaped children).
fn process_stat(text: &str) -> Option<(i32, u64)> {
    // the command name may hold spaces and parentheses: fields follow the last ')'
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // after ')': state(0) ppid(1) pgrp(2) ... utime(11) stime(12) cutime(13) cstime(14)
    let pgrp = f.get(2)?.parse().ok()?;
    let ticks = [11, 12, 13, 14]
        .iter()
        .filter_map(|i| f.get(*i)?.parse::<u64>().ok())
        .sum();
    Some((pgrp, ticks))
}

/// The usage of every process in the process group `pgid` (a process
/// runtime container): CPU time of the live processes and of the children
/// they reaped, and their resident memory summed (its working set).
pub fn process_group_usage(root: &Path, pgid: i32) -> Option<ContainerUsage> {
    let mut found = false;
    let (mut ticks, mut rss_pages) = (0u64, 0u64);
    for entry in std::fs::read_dir(root).ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let dir = root.join(pid);
        let Some((pgrp, t)) = std::fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|s| process_stat(&s))
        else {
            continue;
        };
        if pgrp != pgid {
            continue;
        }
        found = true;
        ticks += t;
        rss_pages += std::fs::read_to_string(dir.join("statm"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    found.then(|| {
        let rss = rss_pages * page_size();
        ContainerUsage {
            cpu_ns: ticks_to_ns(ticks),
            working_set_bytes: rss,
            usage_bytes: rss,
            rss_bytes: rss,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_figures_from_proc_files() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(
            dir.path().join("stat"),
            "cpu  100 20 30 5000 40 6 7 8 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n",
        )
        .expect("stat");
        std::fs::write(
            dir.path().join("meminfo"),
            "MemTotal:        8000 kB\nMemFree:   1000 kB\nMemAvailable:    3000 kB\n",
        )
        .expect("meminfo");
        // busy = user + nice + system + irq + softirq + steal, not idle or iowait
        assert_eq!(
            node_cpu_ns(dir.path()),
            Some(ticks_to_ns(100 + 20 + 30 + 6 + 7 + 8))
        );
        assert_eq!(
            node_memory(dir.path()),
            Some((8000 * 1024, 3000 * 1024, 5000 * 1024))
        );
    }

    #[test]
    fn a_process_group_is_summed() {
        let dir = tempfile::tempdir().expect("dir");
        for (pid, comm, pgrp, utime, rss) in [
            (10, "sh", 10, 50, 100),
            (11, "busy (loop)", 10, 150, 20),
            (12, "other", 12, 999, 999),
        ] {
            let d = dir.path().join(pid.to_string());
            std::fs::create_dir(&d).expect("pid dir");
            std::fs::write(
                d.join("stat"),
                format!(
                    "{pid} ({comm}) R 1 {pgrp} {pgrp} 0 -1 0 0 0 0 0 {utime} 5 1 1 20 0 1 0 0 0 0"
                ),
            )
            .expect("stat");
            std::fs::write(d.join("statm"), format!("1000 {rss} 0 0 0 0 0")).expect("statm");
        }
        let u = process_group_usage(dir.path(), 10).expect("group");
        assert_eq!(u.cpu_ns, ticks_to_ns(50 + 5 + 1 + 1 + 150 + 5 + 1 + 1));
        assert_eq!(u.rss_bytes, 120 * page_size());
        assert!(process_group_usage(dir.path(), 99).is_none());
    }
}
