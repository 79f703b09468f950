//! Node health (placeholder; written next).
use super::Context;
/// Runs node-health until `ctx` shuts down.
pub async fn run(ctx: Context) {
    ctx.stopped().await;
}
