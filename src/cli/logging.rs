//! Structured logging setup: `tracing` events to stderr, filtered by `--log`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; an unparsable filter falls back to `warn`.
pub fn init(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("korral: invalid --log filter {filter:?} ({e}); using \"warn\"");
        EnvFilter::new("warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
