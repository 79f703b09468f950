//! `korral snapshot save|ls|delete|restore`: cluster snapshots, as k3s's
//! `etcd-snapshot`. save, ls and delete ask a running server (its
//! `/korral/v1/snapshots` endpoint, admin only) — the server writes the
//! snapshot of its store into its snapshot directory while it keeps
//! serving; restore works offline on a file ([`restore`]).

mod api;
pub mod restore;

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Value, json};

use crate::cli::output::{self, ListFormat};
use api::{Api, PATH};

/// The kubeconfig flag every server-side subcommand takes.
#[derive(clap::Args)]
pub struct Target {
    /// The kubeconfig to use (default: $KUBECONFIG, then ./.korral/kubeconfig.yaml); its user must be in system:masters.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

/// Arguments of `korral snapshot save`.
#[derive(clap::Args)]
pub struct SaveArgs {
    /// The snapshot's name (letters, digits, '.', '_', '-'); default `on-demand-<UTC time>`.
    name: Option<String>,
    /// Also download the snapshot into this local file (it must not exist).
    #[arg(long, value_name = "FILE")]
    download: Option<PathBuf>,
    /// Gzip-compress it (default: as the server's --snapshot-compress says).
    #[arg(long, conflicts_with = "no_compress")]
    compress: bool,
    /// Do not compress it, whatever the server's default.
    #[arg(long)]
    no_compress: bool,
    /// Output format of what was saved (table: one line).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ListFormat::Table)]
    output: ListFormat,
    #[command(flatten)]
    target: Target,
}

/// Arguments of `korral snapshot ls`.
#[derive(clap::Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ListFormat::Table)]
    output: ListFormat,
    #[command(flatten)]
    target: Target,
}

/// Arguments of `korral snapshot delete`.
#[derive(clap::Args)]
pub struct DeleteArgs {
    /// The snapshots to delete.
    #[arg(required = true)]
    names: Vec<String>,
    #[command(flatten)]
    target: Target,
}

/// Arguments of `korral snapshot prune`.
#[derive(clap::Args)]
pub struct PruneArgs {
    /// How many of the newest snapshots to keep (at least 1).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    retention: u64,
    /// Prune the snapshots whose names start with this (e.g. `on-demand-`), on-demand ones
    /// included; default: only the scheduled snapshots.
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
    #[command(flatten)]
    target: Target,
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    crate::cli::sources::runtime("snapshot")
}

fn fail(command: &str, e: impl std::fmt::Display) -> ExitCode {
    eprintln!("korral snapshot {command}: {e}");
    ExitCode::from(output::ERROR)
}

/// `korral snapshot save`.
pub fn save(args: SaveArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = rt.block_on(async {
        let api = Api::new(args.target.kubeconfig.as_deref())?;
        let compress = match (args.compress, args.no_compress) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        };
        let body = json!({"name": args.name, "compress": compress});
        let info = api.call(reqwest::Method::POST, PATH, Some(&body)).await?;
        if let Some(dest) = &args.download {
            let name = info["name"].as_str().unwrap_or_default();
            let bytes = api.download(&format!("{PATH}/{name}"), dest).await?;
            eprintln!("downloaded {name} to {} ({bytes} bytes)", dest.display());
        }
        Ok::<Value, String>(info)
    });
    match result {
        Ok(info) => match args.output {
            ListFormat::Table => {
                println!(
                    "saved snapshot {} ({}, revision {}) at {} on the server",
                    info["name"].as_str().unwrap_or("?"),
                    human_size(info["size"].as_u64().unwrap_or(0)),
                    info["revision"],
                    info["path"].as_str().unwrap_or("?")
                );
                ExitCode::SUCCESS
            }
            format => output::print_structured(&info, format),
        },
        Err(e) => fail("save", e),
    }
}

/// `korral snapshot ls`.
pub fn list(args: ListArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = rt.block_on(async {
        let api = Api::new(args.target.kubeconfig.as_deref())?;
        api.call(reqwest::Method::GET, PATH, None).await
    });
    match result {
        Ok(list) => match args.output {
            ListFormat::Table => {
                let items = list["items"].as_array().cloned().unwrap_or_default();
                print!("{}", table(&items));
                ExitCode::SUCCESS
            }
            format => output::print_structured(&list, format),
        },
        Err(e) => fail("ls", e),
    }
}

/// `korral snapshot delete`.
pub fn delete(args: DeleteArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let api = match Api::new(args.target.kubeconfig.as_deref()) {
            Ok(a) => a,
            Err(e) => return fail("delete", e),
        };
        let mut code = ExitCode::SUCCESS;
        for name in &args.names {
            match api
                .call(reqwest::Method::DELETE, &format!("{PATH}/{name}"), None)
                .await
            {
                Ok(_) => println!("deleted snapshot {name}"),
                Err(e) => code = fail("delete", format!("{name}: {e}")),
            }
        }
        code
    })
}

/// `korral snapshot prune`.
pub fn prune(args: PruneArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = rt.block_on(async {
        let api = Api::new(args.target.kubeconfig.as_deref())?;
        let mut query = format!("{PATH}?retention={}", args.retention);
        if let Some(p) = &args.prefix {
            let encoded: String = form_urlencoded_value(p);
            query.push_str(&format!("&prefix={encoded}"));
        }
        api.call(reqwest::Method::DELETE, &query, None).await
    });
    match result {
        Ok(v) => {
            let pruned = v["pruned"].as_array().cloned().unwrap_or_default();
            for name in &pruned {
                println!("deleted snapshot {}", name.as_str().unwrap_or("?"));
            }
            if pruned.is_empty() {
                println!("nothing to prune");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail("prune", e),
    }
}

/// A query value with everything but unreserved characters percent-encoded.
fn form_urlencoded_value(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The rows of `korral snapshot ls`.
fn table(items: &[Value]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|s| {
            vec![
                s["name"].as_str().unwrap_or("").to_string(),
                human_size(s["size"].as_u64().unwrap_or(0)),
                s["created"].as_str().unwrap_or("").to_string(),
                s["revision"]
                    .as_i64()
                    .map_or("<unknown>".to_string(), |r| r.to_string()),
                match (s["store"].as_str(), s["compressed"].as_bool() == Some(true)) {
                    (Some(store), true) => format!("{store}/gzip"),
                    (Some(store), false) => store.to_string(),
                    (None, _) => "<unknown>".to_string(),
                },
            ]
        })
        .collect();
    output::table(&["NAME", "SIZE", "CREATED", "REVISION", "STORE"], &rows)
}

/// Bytes in binary units, as `du -h` would (`512B`, `1.5KiB`, `12MiB`).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else if value < 10.0 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.0}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_du_h() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1536), "1.5KiB");
        assert_eq!(human_size(12 * 1024 * 1024), "12MiB");
    }

    #[test]
    fn the_list_is_a_table_with_name_size_created_and_revision() {
        let t = table(&[
            json!({"name": "nightly", "size": 2048, "created": "2026-12-08T00:00:00Z", "revision": 42, "store": "embedded"}),
            json!({"name": "copied-in", "size": 10, "created": "2026-12-08T01:00:00Z", "revision": null}),
            json!({"name": "packed", "size": 10, "created": "2026-12-08T02:00:00Z", "revision": 7, "store": "etcd", "compressed": true}),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["NAME", "SIZE", "CREATED", "REVISION", "STORE"]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            [
                "nightly",
                "2.0KiB",
                "2026-12-08T00:00:00Z",
                "42",
                "embedded"
            ]
        );
        assert!(lines[2].contains("<unknown>"), "{t}");
        assert!(lines[3].ends_with("etcd/gzip"), "{t}");
    }
}
