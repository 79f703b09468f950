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
