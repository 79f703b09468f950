//! Talking to iptables: one `iptables-restore --noflush` per sync (it
//! replaces just the chains it declares, atomically), `iptables-save` to
//! find the proxy's existing chains, the jump rules from the built-in
//! chains (the `iptables` crate: check, then insert), and clean-up.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use crate::proxy::rules::{FIREWALL, FORWARD, POSTROUTING, PREFIX, SERVICES};

/// A jump from a built-in chain into one of the proxy's: (table, chain, rule).
pub type Jump = (&'static str, &'static str, String);

/// The jumps the proxy needs, in the order they are ensured.
pub fn jumps() -> Vec<Jump> {
    let portals = format!("-m comment --comment \"korral service portals\" -j {SERVICES}");
    let new_portals = format!(
        "-m conntrack --ctstate NEW -m comment --comment \"korral service portals\" -j {SERVICES}"
    );
    let firewall = format!("-m comment --comment \"korral firewall\" -j {FIREWALL}");
    vec![
        ("nat", "PREROUTING", portals.clone()),
        ("nat", "OUTPUT", portals),
        (
            "nat",
            "POSTROUTING",
            format!("-m comment --comment \"korral postrouting rules\" -j {POSTROUTING}"),
        ),
        ("filter", "INPUT", new_portals.clone()),
        ("filter", "FORWARD", new_portals.clone()),
        ("filter", "OUTPUT", new_portals),
        (
            "filter",
            "FORWARD",
            format!("-m comment --comment \"korral forwarding rules\" -j {FORWARD}"),
        ),
        // kubelet's KUBE-FIREWALL jumps: the martian guard of localhost node ports
        ("filter", "INPUT", firewall.clone()),
        ("filter", "OUTPUT", firewall),
    ]
}

async fn run(cmd: &str, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let mut child = tokio::process::Command::new(cmd)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{cmd}: {e} (install iptables)"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .await
            .map_err(|e| format!("{cmd}: writing its input: {e}"))?;
        drop(pipe);
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Applies `input` with one `iptables-restore --noflush`.
pub async fn restore(input: &str) -> Result<(), String> {
    run("iptables-restore", &["-w", "--noflush"], Some(input))
        .await
        .map(|_| ())
}

/// `iptables-save -t TABLE`.
pub async fn save(table: &str) -> Result<String, String> {
    run("iptables-save", &["-t", table], None).await
}

/// The lines of `iptables-save` output that concern the proxy: its chain
/// declarations and rules, and the jumps into them (for tests and `--cleanup` checks).
pub fn own_lines(saved: &str) -> Vec<&str> {
    saved
        .lines()
        .filter(|l| l.contains(PREFIX) && !l.starts_with('#'))
        .collect()
}

/// The proxy's chains that exist now, by table.
pub async fn existing_chains() -> Result<BTreeMap<&'static str, BTreeSet<String>>, String> {
    let mut out = BTreeMap::new();
    for table in ["filter", "nat"] {
        let text = save(table).await?;
        out.insert(table, chains_in(&text));
    }
    Ok(out)
}

/// The `KORRAL-` chains declared in `iptables-save` output.
pub fn chains_in(saved: &str) -> BTreeSet<String> {
    saved
        .lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| c.starts_with(PREFIX))
        .map(str::to_string)
        .collect()
}

fn ipt() -> Result<iptables::IPTables, String> {
    iptables::new(false).map_err(|e| format!("iptables: {e} (install iptables)"))
}

/// Inserts each missing jump at the top of its built-in chain (idempotent).
pub async fn ensure_jumps() -> Result<(), String> {
    tokio::task::spawn_blocking(|| {
        let ipt = ipt()?;
        for (table, chain, rule) in jumps() {
            let present = ipt
                .exists(table, chain, &rule)
                .map_err(|e| format!("iptables -t {table} -C {chain} {rule}: {e}"))?;
            if !present {
                ipt.insert(table, chain, &rule, 1)
                    .map_err(|e| format!("iptables -t {table} -I {chain} {rule}: {e}"))?;
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| format!("ensuring the jump rules: {e}"))?
}

/// Removes the jumps and every `KORRAL-` chain (what `korral node --cleanup` does).
pub async fn cleanup() -> Result<(), String> {
    tokio::task::spawn_blocking(|| {
        let ipt = ipt()?;
        for (table, chain, rule) in jumps() {
            while ipt.exists(table, chain, &rule).unwrap_or(false) {
                ipt.delete(table, chain, &rule)
                    .map_err(|e| format!("iptables -t {table} -D {chain} {rule}: {e}"))?;
            }
        }
        Ok::<(), String>(())
    })
    .await
    .map_err(|e| format!("removing the jump rules: {e}"))??;
    let existing = existing_chains().await?;
    if existing.values().all(BTreeSet::is_empty) {
        return Ok(());
    }
    let mut input = String::new();
    for (table, chains) in &existing {
        input.push_str(&format!("*{table}\n"));
        for c in chains {
            input.push_str(&format!(":{c} - [0:0]\n"));
        }
        for c in chains {
            input.push_str(&format!("-X {c}\n"));
        }
        input.push_str("COMMIT\n");
    }
    restore(&input).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_chains_are_found_in_saved_output() {
        let saved = "# Generated by iptables-save\n*nat\n:PREROUTING ACCEPT [0:0]\n:KORRAL-SERVICES - [0:0]\n:KORRAL-SVC-ABC - [0:0]\n:OTHER - [0:0]\n-A PREROUTING -m comment --comment \"korral service portals\" -j KORRAL-SERVICES\n-A OTHER -j ACCEPT\nCOMMIT\n";
        assert_eq!(
            chains_in(saved).into_iter().collect::<Vec<_>>(),
            vec!["KORRAL-SERVICES", "KORRAL-SVC-ABC"]
        );
        assert_eq!(own_lines(saved).len(), 3);
        assert_eq!(jumps().len(), 9);
    }
}
