//! One IMAP connection: TCP, TLS (implicit or STARTTLS, or none for loopback tests), LOGIN and
//! the `ID` command (Coremail and NetEase servers refuse SELECT from clients that do not
//! identify themselves).

use crate::config::{ImapConfig, TlsMode};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("连接 IMAP 服务器 {addr} 失败：{source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("连接 IMAP 服务器 {0} 超时")]
    Timeout(String),
    #[error(
        "TLS 握手失败：{0}。请检查 imap.tls 与端口是否对应、证书是否可信（私有 CA 请设置 imap.ca_file）。"
    )]
    Tls(String),
    #[error("IMAP 登录失败：{0}。请检查 imap.user 与密码。")]
    Login(String),
    #[error("IMAP 服务器没有打招呼（greeting），这可能不是 IMAP 端口")]
    NoGreeting,
    #[error("IMAP 错误：{0}")]
    Imap(#[from] async_imap::error::Error),
    #[error("{0}")]
    Config(#[from] crate::tls::TlsError),
}

/// A plain or TLS stream, so one session type serves every `imap.tls` mode.
#[derive(Debug)]
pub enum ImapStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for ImapStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ImapStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

pub type Session = async_imap::Session<ImapStream>;
type Client = async_imap::Client<ImapStream>;

async fn tls_wrap(cfg: &ImapConfig, tcp: TcpStream) -> Result<ImapStream, ConnError> {
    let config = crate::tls::client_config(cfg.ca_file.as_deref())?;
    let name = rustls_pki_types::ServerName::try_from(cfg.host.clone())
        .map_err(|e| ConnError::Tls(e.to_string()))?;
    let tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| ConnError::Tls(e.to_string()))?;
    Ok(ImapStream::Tls(Box::new(tls)))
}

async fn greeting(client: &mut Client) -> Result<(), ConnError> {
    match client.read_response().await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ConnError::NoGreeting),
        Err(e) => Err(ConnError::Imap(e.into())),
    }
}

/// Connects, secures, logs in and identifies; the session is ready for SELECT.
pub async fn connect(cfg: &ImapConfig) -> Result<Session, ConnError> {
    tokio::time::timeout(cfg.timeout, connect_inner(cfg))
        .await
        .map_err(|_| ConnError::Timeout(format!("{}:{}", cfg.host, cfg.port)))?
}

async fn connect_inner(cfg: &ImapConfig) -> Result<Session, ConnError> {
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let tcp = TcpStream::connect((cfg.host.as_str(), cfg.port))
        .await
        .map_err(|source| ConnError::Connect { addr, source })?;
    let _ = tcp.set_nodelay(true);
    let client = match cfg.tls {
        TlsMode::Implicit => {
            let mut c = Client::new(tls_wrap(cfg, tcp).await?);
            greeting(&mut c).await?;
            c
        }
        TlsMode::None => {
            let mut c = Client::new(ImapStream::Plain(tcp));
            greeting(&mut c).await?;
            c
        }
        TlsMode::StartTls => {
            let mut c = Client::new(ImapStream::Plain(tcp));
            greeting(&mut c).await?;
            c.run_command_and_check_ok("STARTTLS", None).await?;
            let ImapStream::Plain(tcp) = c.into_inner() else {
                return Err(ConnError::Tls("STARTTLS on a TLS stream".to_string()));
            };
            // After STARTTLS there is no second greeting.
            Client::new(tls_wrap(cfg, tcp).await?)
        }
    };
    let password = cfg.password.value().unwrap_or_default();
    let mut session = client
        .login(&cfg.user, password)
        .await
        .map_err(|(e, _)| ConnError::Login(e.to_string()))?;
    // RFC 2971 ID. Servers without it answer BAD; that is fine, the ones that need it have it.
    if let Err(e) = session
        .id([
            ("name", Some("shenbao")),
            ("version", Some(env!("CARGO_PKG_VERSION"))),
            ("vendor", Some("shenbao")),
        ])
        .await
    {
        tracing::debug!(error = %e, "服务器不接受 IMAP ID 命令");
    }
    Ok(session)
}
