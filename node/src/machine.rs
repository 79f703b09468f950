//! Facts read from the machine: cpu and memory capacity, disk of the data
//! directory, system identifiers for `nodeInfo`, and the pressure signals
//! behind the MemoryPressure/DiskPressure/PIDPressure conditions.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;

/// Resources of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Millicores.
    pub cpu_millis: i64,
    /// Bytes of memory.
    pub memory_bytes: i64,
    /// Bytes of the filesystem holding the data directory.
    pub ephemeral_storage_bytes: i64,
}

/// Reads `MemTotal`/`MemAvailable` (kB) from `/proc/meminfo`.
fn meminfo(field: &str) -> Option<i64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse::<i64>().ok()
    })
}

/// (total, available) bytes of the filesystem holding `path`.
pub fn disk(path: &Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    let frsize = i64::try_from(st.f_frsize).ok()?;
    let total = i64::try_from(st.f_blocks).ok()?.saturating_mul(frsize);
    let avail = i64::try_from(st.f_bavail).ok()?.saturating_mul(frsize);
    Some((total, avail))
}

/// The machine's capacity; the data directory decides which disk counts.
pub fn capacity(data_dir: &Path) -> Capacity {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    Capacity {
        cpu_millis: i64::try_from(cpus).unwrap_or(1) * 1000,
        memory_bytes: meminfo("MemTotal").unwrap_or(0) * 1024,
        ephemeral_storage_bytes: disk(data_dir).map(|d| d.0).unwrap_or(0),
    }
}

/// Pressure signals, as the kubelet's eviction manager sees them (its
/// default hard thresholds: memory.available < 100Mi, nodefs.available < 10%).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pressure {
    /// Available memory below 100 MiB.
    pub memory: bool,
    /// Less than 10% of the data directory's disk free.
    pub disk: bool,
    /// More than 90% of the pid limit in use.
    pub pid: bool,
}

/// Reads the pressure signals now.
pub fn pressure(data_dir: &Path) -> Pressure {
    let memory = meminfo("MemAvailable").is_some_and(|kb| kb < 100 * 1024);
    let disk = disk(data_dir).is_some_and(|(total, avail)| total > 0 && avail * 10 < total);
    let pid = (|| {
        let max: i64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let used = std::fs::read_dir("/proc")
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
            .count();
        Some(i64::try_from(used).ok()? * 10 > max * 9)
    })()
    .unwrap_or(false);
    Pressure { memory, disk, pid }
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `nodeInfo` facts: (machineID, bootID, kernelVersion, osImage, architecture).
pub fn system_info() -> (String, String, String, String, String) {
    let os_image = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into());
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    (
        read_trim("/etc/machine-id"),
        read_trim("/proc/sys/kernel/random/boot_id"),
        read_trim("/proc/sys/kernel/osrelease"),
        os_image,
        arch.to_string(),
    )
}

/// The machine's hostname.
pub fn hostname() -> String {
    let h = read_trim("/proc/sys/kernel/hostname");
    if h.is_empty() { "localhost".into() } else { h }
}

/// The local address the kernel would use to reach `server` (no packet is sent).
pub fn address_towards(server: &str) -> Option<IpAddr> {
    let host_port = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()?;
    let addr: SocketAddr = match host_port.parse() {
        Ok(a) => a,
        Err(_) => {
            use std::net::ToSocketAddrs;
            host_port.to_socket_addrs().ok()?.next()?
        }
    };
    let bind = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let s = UdpSocket::bind(bind).ok()?;
    s.connect(addr).ok()?;
    Some(s.local_addr().ok()?.ip())
}

/// Whether this process runs as root (effective user 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Where `program` is found on `PATH`, if it is.
pub fn on_path(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine() {
        let c = capacity(Path::new("/"));
        assert!(c.cpu_millis >= 1000);
        assert!(c.memory_bytes > 0);
        assert!(c.ephemeral_storage_bytes > 0);
        let (_, _, kernel, os, arch) = system_info();
        assert!(!kernel.is_empty() && !os.is_empty() && !arch.is_empty());
        assert_eq!(
            address_towards("https://127.0.0.1:6443"),
            Some(IpAddr::from([127, 0, 0, 1]))
        );
    }
}
