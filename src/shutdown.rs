//! The daemon's stop signal, shared by its tasks (intake, sender, scheduler): a
//! `watch::Receiver<bool>` that turns `true` on SIGTERM or Ctrl-C. Its own module because
//! every task waits on it and none of them owns it.

use tokio::sync::watch;

/// Resolves when shutdown was asked for (or whoever could ask is gone).
pub async fn requested(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}
