//! The outbox sender: takes due mails from the durable outbox and hands them to SMTP.
//!
//! A mail is marked sent only after the server accepted it; a transient failure (connection
//! refused, 4xx) is retried with exponential backoff, a permanent one (5xx) or the last of
//! `smtp.max_attempts` attempts moves it to the dead letters that `status` shows.
//!
//! A crash while a mail is being handed over leaves it unknown whether the server took it.
//! SMTP offers no way to ask, so every mail is also addressed (in the same transaction, so
//! both copies or neither are accepted) to the intake mailbox: the copy comes back through IMAP,
//! is recognised as ours and recorded. A send that was in flight at a crash is marked
//! `unconfirmed`; after `smtp.confirm_grace` the sender looks for that copy and sends again
//! only when it did not arrive. That is what turns "at least once" into "exactly once".

use crate::clock::Clock;
use crate::config::{SmtpConfig, TlsMode};
use crate::store::{OutboxRow, Store};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("SMTP 配置错误：{0}")]
    Config(String),
    #[error("{0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("收件地址无效：{0}")]
    Address(String),
}

pub type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// Builds the SMTP transport from the config.
pub fn transport(cfg: &SmtpConfig) -> Result<Transport, SendError> {
    let tls_params = || -> Result<TlsParameters, SendError> {
        let mut b = TlsParameters::builder(cfg.host.clone());
        if let Some(ca) = &cfg.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| SendError::Config(format!("读不了 {}：{e}", ca.display())))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| SendError::Config(e.to_string()))?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls()
            .map_err(|e| SendError::Config(e.to_string()))
    };
    let tls = match cfg.tls {
        TlsMode::None => Tls::None,
        TlsMode::StartTls => Tls::Required(tls_params()?),
        TlsMode::Implicit => Tls::Wrapper(tls_params()?),
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.clone())
        .port(cfg.port)
        .tls(tls)
        .timeout(Some(cfg.timeout));
    if let (Some(user), Some(pw)) = (&cfg.user, cfg.password.as_ref().and_then(|p| p.value())) {
        b = b.credentials(Credentials::new(user.clone(), pw.to_string()));
    }
    Ok(b.build())
}

/// Backoff before attempt `attempts + 1`: 10 s, 20 s, 40 s … capped at 30 minutes.
pub fn backoff(attempts: i64) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 16)).unwrap_or(16);
    Duration::from_secs((10u64 << exp).min(30 * 60))
}

pub struct Sender {
    pub store: Store,
    pub clock: Clock,
    pub cfg: SmtpConfig,
    pub transport: Transport,
    pub wake: Arc<Notify>,
    copy_to: Option<lettre::Address>,
}

impl Sender {
    pub fn new(
        store: Store,
        clock: Clock,
        cfg: SmtpConfig,
        intake: &str,
        wake: Arc<Notify>,
    ) -> Result<Sender, SendError> {
        let transport = transport(&cfg)?;
        let copy_to = if cfg.copy_to_intake {
            Some(
                intake
                    .parse()
                    .map_err(|_| SendError::Config(format!("intake_address {intake} 无效")))?,
            )
        } else {
            None
        };
        Ok(Sender {
            store,
            clock,
            cfg,
            transport,
            wake,
            copy_to,
        })
    }

    /// Recovers from a crash: sends that were in flight become `unconfirmed`.
    pub async fn recover(&self) -> anyhow::Result<()> {
        let n = self
            .store
            .outbox_recover(self.clock.now(), self.cfg.confirm_grace)
            .await?;
        if n > 0 {
            tracing::warn!(count = n, grace = ?self.cfg.confirm_grace, "sends were in flight at the last stop; checking for their copies before sending again");
        }
        Ok(())
    }

    async fn send_one(&self, row: &OutboxRow) -> Result<(), SendError> {
        let from = self.cfg.from_address.parse().map_err(|_| {
            SendError::Config(format!("from_address {} 无效", self.cfg.from_address))
        })?;
        let to = row
            .to_addr
            .parse()
            .map_err(|_| SendError::Address(row.to_addr.clone()))?;
        let mut rcpt = vec![to];
        if let Some(copy) = &self.copy_to {
            rcpt.push(copy.clone());
        }
        let envelope =
            Envelope::new(Some(from), rcpt).map_err(|e| SendError::Address(e.to_string()))?;
        self.transport.send_raw(&envelope, &row.raw).await?;
        Ok(())
    }

    /// Sends everything due now; returns how many were sent.
    pub async fn drain(&self) -> anyhow::Result<usize> {
        let mut sent = 0;
        loop {
            let due = self.store.due_outbox(self.clock.now(), 50).await?;
            if due.is_empty() {
                return Ok(sent);
            }
            for row in &due {
                if row.unconfirmed && self.store.has_message_id(&row.message_id).await? {
                    tracing::info!(id = row.id, message_id = %row.message_id, "our copy arrived: the interrupted send went through");
                    self.store.outbox_sent(row.id, self.clock.now()).await?;
                    continue;
                }
                self.store.outbox_sending(row.id).await?;
                match self.send_one(row).await {
                    Ok(()) => {
                        self.store.outbox_sent(row.id, self.clock.now()).await?;
                        sent += 1;
                        tracing::info!(id = row.id, kind = %row.kind, to = %row.to_addr, message_id = %row.message_id, "sent");
                    }
                    Err(e) => {
                        let permanent = matches!(&e, SendError::Smtp(s) if s.is_permanent())
                            || matches!(e, SendError::Address(_));
                        let attempts = row.attempts + 1;
                        let give_up = permanent || attempts >= i64::from(self.cfg.max_attempts);
                        let retry_at = (!give_up).then(|| {
                            self.clock.now()
                                + chrono::Duration::from_std(backoff(row.attempts))
                                    .unwrap_or_default()
                        });
                        tracing::warn!(id = row.id, to = %row.to_addr, attempts, permanent, error = %e, "send failed");
                        self.store
                            .outbox_failed(row.id, &e.to_string(), retry_at)
                            .await?;
                        if !permanent {
                            // The server is probably down: do not hammer it with the rest now.
                            return Ok(sent);
                        }
                    }
                }
            }
        }
    }

    /// Runs until `shutdown` turns true: drains on wake-ups and when retries fall due.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        if let Err(e) = self.recover().await {
            tracing::error!(error = %format!("{e:#}"), "outbox recovery failed");
        }
        loop {
            if let Err(e) = self.drain().await {
                tracing::error!(error = %format!("{e:#}"), "outbox sender error; retrying shortly");
            }
            let wait = match self.store.next_outbox_due().await {
                Ok(Some(t)) => (t - self.clock.now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .max(Duration::from_millis(200)),
                _ => Duration::from_secs(30),
            }
            .min(Duration::from_secs(30));
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(0), Duration::from_secs(10));
        assert_eq!(backoff(1), Duration::from_secs(20));
        assert_eq!(backoff(3), Duration::from_secs(80));
        assert_eq!(backoff(20), Duration::from_secs(1800));
        assert_eq!(backoff(-1), Duration::from_secs(10));
    }
}
