//! Output formats shared by commands: `-o text|json` and exit codes.

use std::process::ExitCode;

use clap::ValueEnum;

/// How a command prints its result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    #[default]
    Text,
    /// One JSON document on stdout.
    Json,
}

/// Exit status: all good.
pub const OK: u8 = 0;
/// Exit status: the command found something (invalid manifests, drift).
pub const FOUND: u8 = 1;
/// Exit status: usage or I/O error.
pub const ERROR: u8 = 2;

/// Prints a value as pretty JSON on stdout.
pub fn print_json(v: &serde_json::Value) -> ExitCode {
    match serde_json::to_string_pretty(v) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("korral: cannot encode JSON output: {e}");
            ExitCode::from(ERROR)
        }
    }
}

/// A kubectl-style table: upper-case headers, columns left-aligned and
/// separated by three spaces, no borders.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 < widths.len() {
                let pad = widths[i] - cell.chars().count();
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 3));
            } else {
                out.push_str(cell);
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(&mut header.iter().copied());
    out.push('\n');
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
        out.push('\n');
    }
    out
}

/// How a list prints: a table, or the objects as JSON or YAML.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// A kubectl-style table.
    #[default]
    Table,
    /// One JSON document.
    Json,
    /// One YAML document.
    Yaml,
}

/// Prints a value as JSON or YAML (a table is the caller's).
pub fn print_structured(v: &serde_json::Value, format: ListFormat) -> ExitCode {
    match format {
        ListFormat::Yaml => match serde_saphyr::to_string(v) {
            Ok(s) => {
                print!("{s}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("korral: cannot encode YAML output: {e}");
                ExitCode::from(ERROR)
            }
        },
        _ => print_json(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_padded_like_kubectl() {
        let t = table(
            &["NAME", "SIZE"],
            &[
                vec!["a".into(), "1".into()],
                vec!["longer-name".into(), "22".into()],
            ],
        );
        assert_eq!(t, "NAME          SIZE\na             1\nlonger-name   22\n");
    }
}
