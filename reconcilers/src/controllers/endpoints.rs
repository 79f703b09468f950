//! Endpoints (placeholder; written next).
use super::Context;
/// Runs the endpoints controller until `ctx` shuts down.
pub async fn run(ctx: Context) {
    ctx.stopped().await;
}
