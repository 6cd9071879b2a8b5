//! `hotline serve`: loads the config and engines, starts the transports, and runs until Ctrl-C.
//!
//! Each transport is a task given the shared [`Engines`] and a shutdown signal; a transport that
//! fails to start is reported and the others keep serving.

use std::sync::Arc;

use tokio::sync::watch;

use crate::call::Engines;

/// Tells transports to stop: they see `true` on the channel.
pub type Shutdown = watch::Receiver<bool>;

/// Runs the server until Ctrl-C.
pub async fn serve(engines: Arc<Engines>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks: tokio::task::JoinSet<()> = tokio::task::JoinSet::new();
    let _ = &stop_rx;
    // Transports: each line starts one.
    tasks.spawn(crate::web::run(engines.clone(), stop_rx.clone()));
    tasks.spawn(crate::phone::run(engines.clone(), stop_rx.clone()));
    let _ = &mut tasks;
    tracing::info!(
        asr = engines.asr.engine_name(),
        max_calls = engines.config.server.max_calls,
        "hotline is ready"
    );
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
}
