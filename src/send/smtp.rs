//! SMTP sessions for the outbox sender: shenbao opens the TCP connection itself and hands it
//! to lettre's SMTP protocol code.
//!
//! Why not lettre's ready-made transport: it opens its sockets with Nagle's algorithm on, and
//! it writes a mail's body and the final `"\r\n.\r\n"` as two writes. The second then waits
//! for the server to acknowledge the first, which Linux delays by up to 40 ms: the benchmark
//! measured 50 ms a mail, 20 acknowledgements a second at most, however fast Postfix is. With
//! `TCP_NODELAY` a mail takes a few milliseconds. One session serves a whole burst of mails
//! (EHLO, STARTTLS and AUTH once, not per mail) and is closed when the outbox is empty.

use crate::config::{SmtpConfig, TlsMode};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error(
        "连接不上 SMTP 服务器 {addr}：{source}。请检查 [smtp] host、port，以及服务器是否在运行"
    )]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("SMTP 服务器 {0} 在规定时间内没有应答（smtp.timeout）")]
    Timeout(String),
    #[error("SMTP 的 TLS 配置有误：{0}。请检查 [smtp] tls 和 ca_file")]
    Tls(String),
    #[error("{0}")]
    Protocol(#[from] lettre::transport::smtp::Error),
    /// [`SmtpConfig::missing_password`]: never skip AUTH silently.
    #[error("{0}")]
    NoPassword(String),
}

impl SmtpError {
    /// A 5xx answer: sending the same mail again will not help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, SmtpError::Protocol(e) if e.is_permanent())
    }
}

/// An implicit-TLS stream, in the shape lettre takes.
#[derive(Debug)]
struct TlsTcp(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for TlsTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsTcp {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// lettre's TLS parameters for STARTTLS, trusting `ca_file` besides the usual roots.
fn starttls_parameters(cfg: &SmtpConfig) -> Result<TlsParameters, SmtpError> {
    let mut b = TlsParameters::builder(cfg.host.clone());
    if let Some(ca) = &cfg.ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| SmtpError::Tls(format!("读不了 CA 文件 {}：{e}", ca.display())))?;
        let cert = Certificate::from_pem(&pem).map_err(|e| SmtpError::Tls(e.to_string()))?;
        b = b.add_root_certificate(cert);
    }
    b.build_rustls().map_err(|e| SmtpError::Tls(e.to_string()))
}

/// Opens a session ready for mail: connected, secured as `smtp.tls` says, logged in when a
/// user is configured. The whole of it runs under `smtp.timeout`.
pub async fn connect(cfg: &SmtpConfig) -> Result<AsyncSmtpConnection, SmtpError> {
    let addr = format!("{}:{}", cfg.host, cfg.port);
    tokio::time::timeout(cfg.timeout, connect_inner(cfg, &addr))
        .await
        .map_err(|_| SmtpError::Timeout(addr.clone()))?
}

async fn connect_inner(cfg: &SmtpConfig, addr: &str) -> Result<AsyncSmtpConnection, SmtpError> {
    if let Some(why) = cfg.missing_password() {
        return Err(SmtpError::NoPassword(why));
    }
    let tcp = TcpStream::connect((cfg.host.as_str(), cfg.port))
        .await
        .map_err(|source| SmtpError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    tcp.set_nodelay(true).map_err(|source| SmtpError::Connect {
        addr: addr.to_string(),
        source,
    })?;
    let hello = ClientId::default();
    let mut conn = match cfg.tls {
        TlsMode::Implicit => {
            let config = crate::tls::client_config(cfg.ca_file.as_deref())
                .map_err(|e| SmtpError::Tls(e.to_string()))?;
            let name = rustls_pki_types::ServerName::try_from(cfg.host.clone())
                .map_err(|e| SmtpError::Tls(e.to_string()))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| SmtpError::Tls(format!("与 {addr} 的 TLS 握手失败：{e}")))?;
            AsyncSmtpConnection::connect_with_transport(Box::new(TlsTcp(tls)), &hello).await?
        }
        TlsMode::StartTls => {
            let mut conn =
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello).await?;
            conn.starttls(starttls_parameters(cfg)?, &hello).await?;
            conn
        }
        TlsMode::None => AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello).await?,
    };
    if let (Some(user), Some(pw)) = (&cfg.user, cfg.password.as_ref().and_then(|p| p.value())) {
        let credentials = Credentials::new(user.clone(), pw.to_string());
        conn.auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
            .await?;
    }
    Ok(conn)
}

/// `check-config --probe`: connect, log in, say goodbye.
pub async fn probe(cfg: &SmtpConfig) -> Result<(), SmtpError> {
    let mut conn = connect(cfg).await?;
    conn.quit().await?;
    Ok(())
}
