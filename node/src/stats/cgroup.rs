//! Reading a container's usage from its cgroup (the containerd runtime's
//! containers, `cgroupsPath` `/korral-<node>/<id>`), v2 or v1 as the
//! machine mounts them: CPU time (v2 `cpu.stat` `usage_usec`, v1
//! `cpuacct.usage`), memory in use (v2 `memory.current`, v1
//! `memory.usage_in_bytes`), and the working set as cadvisor computes it:
//! usage minus inactive file pages (`inactive_file`, v1 `total_inactive_file`).

use std::path::Path;

use crate::runtime::ContainerUsage;

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn stat_field(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// The usage of the cgroup at `path` (relative to the hierarchy's root, e.g.
/// `/korral-n1/abc`) under the cgroup filesystem `root` (`/sys/fs/cgroup`).
pub fn usage(root: &Path, path: &str) -> Option<ContainerUsage> {
    let rel = path.trim_start_matches('/');
    if root.join("cgroup.controllers").exists() {
        // the unified hierarchy (v2)
        let dir = root.join(rel);
        let cpu_ns = stat_field(&dir.join("cpu.stat"), "usage_usec")?.saturating_mul(1000);
        let usage = read_u64(&dir.join("memory.current"))?;
        let stat = dir.join("memory.stat");
        let inactive = stat_field(&stat, "inactive_file").unwrap_or(0);
        let rss = stat_field(&stat, "anon").unwrap_or(0);
        return Some(ContainerUsage {
            cpu_ns,
            working_set_bytes: usage.saturating_sub(inactive),
            usage_bytes: usage,
            rss_bytes: rss,
        });
    }
    let cpu_ns = read_u64(&root.join("cpuacct").join(rel).join("cpuacct.usage"))?;
    let mem = root.join("memory").join(rel);
    let usage = read_u64(&mem.join("memory.usage_in_bytes"))?;
    let stat = mem.join("memory.stat");
    let inactive = stat_field(&stat, "total_inactive_file").unwrap_or(0);
    let rss = stat_field(&stat, "total_rss").unwrap_or(0);
    Some(ContainerUsage {
        cpu_ns,
        working_set_bytes: usage.saturating_sub(inactive),
        usage_bytes: usage,
        rss_bytes: rss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn v2_working_set_is_usage_minus_inactive_file() {
        let root = tempfile::tempdir().expect("dir");
        let r = root.path();
        write(&r.join("cgroup.controllers"), "cpu memory\n");
        write(
            &r.join("korral-n1/c1/cpu.stat"),
            "usage_usec 2500\nuser_usec 2000\n",
        );
        write(&r.join("korral-n1/c1/memory.current"), "10000\n");
        write(
            &r.join("korral-n1/c1/memory.stat"),
            "anon 6000\ninactive_file 3000\n",
        );
        let u = usage(r, "/korral-n1/c1").expect("usage");
        assert_eq!(
            (u.cpu_ns, u.usage_bytes, u.working_set_bytes, u.rss_bytes),
            (2_500_000, 10000, 7000, 6000)
        );
    }

    #[test]
    fn v1_reads_cpuacct_and_memory_controllers() {
        let root = tempfile::tempdir().expect("dir");
        let r = root.path();
        write(&r.join("cpuacct/korral-n1/c1/cpuacct.usage"), "123456789\n");
        write(
            &r.join("memory/korral-n1/c1/memory.usage_in_bytes"),
            "8192\n",
        );
        write(
            &r.join("memory/korral-n1/c1/memory.stat"),
            "cache 100\ntotal_rss 4096\ntotal_inactive_file 1024\n",
        );
        let u = usage(r, "/korral-n1/c1").expect("usage");
        assert_eq!(
            (u.cpu_ns, u.working_set_bytes, u.rss_bytes),
            (123_456_789, 7168, 4096)
        );
        assert!(usage(r, "/korral-n1/gone").is_none());
    }
}
