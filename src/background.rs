//! Periodic background work (the purge job, the billing job): a round every `interval`
//! until the server shuts down. Each job is driven by rows in the database, so a restart
//! simply picks up where the last round left off; a failed round is logged and retried
//! at the next tick.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Spawns `round` every `interval` (the first at once), and also whenever `wake` is
/// notified. A round answers how many things it changed; `job` names it in the logs.
pub fn every<F, Fut>(
    job: &'static str,
    interval: Duration,
    shutdown: CancellationToken,
    wake: Option<Arc<Notify>>,
    mut round: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<usize>> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let woken = async {
                match &wake {
                    Some(w) => w.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                () = woken => {}
            }
            match round().await {
                Ok(0) => {}
                Ok(changed) => tracing::info!(job, changed, "background job round"),
                Err(e) => {
                    tracing::warn!(job, error = %e, "background job failed; retrying next round")
                }
            }
        }
    })
}
