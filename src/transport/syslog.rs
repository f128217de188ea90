//! Syslog transports: UDP (RFC 5426, one message per datagram, cut safely at a configurable
//! size), TCP (RFC 6587 octet counting) and TLS (RFC 5425, rustls, with the extra CA bundle and
//! an optional client certificate). Stream connections are pooled per destination and replaced
//! after a failure; the SSRF guard checks every address connected to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::http::{ConnectError, GuardedConnector, Resolve, SendError};
use super::ssrf::AddressPolicy;
use crate::domain::text::clip_bytes;
use crate::domain::webhook::TransportKind;

type Stream = Box<dyn AsyncWrite + Send + Unpin>;

pub struct SyslogTransport {
    connector: GuardedConnector,
    tls: tokio_rustls::TlsConnector,
    /// Largest UDP datagram; longer messages are cut on a character boundary.
    udp_max: usize,
    /// Idle stream connections by (kind, host, port).
    pool: Mutex<HashMap<(TransportKind, String, u16), Vec<Stream>>>,
}

fn failed(e: impl std::fmt::Display) -> SendError {
    SendError::Failed(e.to_string())
}

fn connect_error(e: ConnectError) -> SendError {
    match e {
        ConnectError::Refused(why) => SendError::Refused(why),
        other => failed(other),
    }
}

/// RFC 6587 octet counting: `MSG-LEN SP SYSLOG-MSG`.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = format!("{} ", message.len()).into_bytes();
    out.extend_from_slice(message);
    out
}

/// What a syslog send did with its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The message was cut to fit one UDP datagram: its length before, in bytes.
    pub cut_from: Option<usize>,
}

impl SyslogTransport {
    pub fn new(
        policy: AddressPolicy,
        resolver: Arc<dyn Resolve>,
        tls: Arc<rustls::ClientConfig>,
        udp_max: usize,
    ) -> Self {
        Self {
            connector: GuardedConnector::new(policy, resolver),
            tls: tokio_rustls::TlsConnector::from(tls),
            udp_max,
            pool: Mutex::new(HashMap::new()),
        }
    }

    /// Sends one message; the whole send is bounded by `timeout`.
    pub async fn send(
        &self,
        kind: TransportKind,
        host: &str,
        port: u16,
        message: &[u8],
        timeout: Duration,
    ) -> Result<Written, SendError> {
        let work = async {
            match kind {
                TransportKind::SyslogUdp => self.send_udp(host, port, message).await,
                TransportKind::SyslogTcp | TransportKind::SyslogTls => {
                    self.send_stream(kind, host, port, message).await.map(|()| Written { cut_from: None })
                }
                TransportKind::Http => Err(failed("not a syslog destination")),
            }
        };
        tokio::time::timeout(timeout, work).await.unwrap_or(Err(SendError::Timeout(timeout.as_millis() as u64)))
    }

    async fn send_udp(&self, host: &str, port: u16, message: &[u8]) -> Result<Written, SendError> {
        let addr = self.connector.allowed_addresses(host, port).await.map_err(connect_error)?[0];
        let bind: SocketAddr = if addr.is_ipv4() { "0.0.0.0:0".parse().unwrap() } else { "[::]:0".parse().unwrap() };
        let socket = UdpSocket::bind(bind).await.map_err(failed)?;
        // Cut deliberately, never inside a UTF-8 character.
        let text = String::from_utf8_lossy(message);
        let datagram = clip_bytes(&text, self.udp_max);
        socket.send_to(datagram.as_bytes(), addr).await.map_err(|e| failed(format!("send to {addr} failed: {e}")))?;
        Ok(Written { cut_from: (datagram.len() < message.len()).then_some(message.len()) })
    }

    async fn connect(&self, kind: TransportKind, host: &str, port: u16) -> Result<Stream, SendError> {
        let tcp: TcpStream = self.connector.connect(host, port).await.map_err(connect_error)?;
        if kind == TransportKind::SyslogTls {
            let name =
                rustls::pki_types::ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_string())
                    .map_err(|_| failed(format!("'{host}' is not a valid TLS server name")))?;
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| failed(format!("TLS handshake with {host}:{port} failed: {e}")))?;
            Ok(Box::new(tls))
        } else {
            Ok(Box::new(tcp))
        }
    }

    async fn send_stream(&self, kind: TransportKind, host: &str, port: u16, message: &[u8]) -> Result<(), SendError> {
        let key = (kind, host.to_string(), port);
        let framed = frame(message);
        // A pooled connection may have been closed by the peer: on failure, retry once on a new one.
        let pooled = self.pool.lock().ok().and_then(|mut p| p.get_mut(&key).and_then(Vec::pop));
        if let Some(mut stream) = pooled {
            if stream.write_all(&framed).await.is_ok() && stream.flush().await.is_ok() {
                self.give_back(key, stream);
                return Ok(());
            }
        }
        let mut stream = self.connect(kind, host, port).await?;
        stream.write_all(&framed).await.map_err(|e| failed(format!("write to {host}:{port} failed: {e}")))?;
        stream.flush().await.map_err(|e| failed(format!("write to {host}:{port} failed: {e}")))?;
        self.give_back(key, stream);
        Ok(())
    }

    fn give_back(&self, key: (TransportKind, String, u16), stream: Stream) {
        if let Ok(mut pool) = self.pool.lock() {
            let idle = pool.entry(key).or_default();
            if idle.len() < 8 {
                idle.push(stream);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn octet_counting() {
        assert_eq!(super::frame("<13>1 - - - - - - é".as_bytes()), "20 <13>1 - - - - - - é".as_bytes());
    }
}
