//! TLS to PostgreSQL as libpq's `sslmode` and `sslrootcert` ask (managed PostgreSQL services
//! require it), over rustls. tokio-postgres reads neither `verify-ca`, `verify-full` nor
//! `sslrootcert`: they are taken off the URL here, and the connector verifies accordingly.
//!
//! | `sslmode` | encrypted | server checked |
//! |---|---|---|
//! | (none), `disable` | no | — |
//! | `prefer` | when the server offers it | no |
//! | `require` | yes | no (as libpq without a root certificate) |
//! | `verify-ca` | yes | its chain leads to a trusted CA |
//! | `verify-full` | yes | that, and it is the certificate of the host connected to |
//!
//! Trusted CAs: the PEM file `sslrootcert` names (`TOCSIN_DATABASE_CA_FILE` sets it), else the
//! bundled Mozilla roots. A CA given without `sslmode` means `verify-full`, and with `require`
//! means `verify-ca`, so that a CA set up is never silently left unchecked.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// What `sslmode` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A PostgreSQL URL read: the driver's configuration and the TLS it needs.
#[derive(Debug)]
pub struct PgOptions {
    pub config: tokio_postgres::Config,
    pub mode: TlsMode,
    pub root_cert: Option<PathBuf>,
}

/// Reads a `postgres://` URL, taking libpq's TLS parameters off it.
pub fn parse(url: &str) -> Result<PgOptions, String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut mode = None;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                mode = Some(match value {
                    "disable" => TlsMode::Disable,
                    "prefer" | "allow" => TlsMode::Prefer,
                    "require" => TlsMode::Require,
                    "verify-ca" => TlsMode::VerifyCa,
                    "verify-full" => TlsMode::VerifyFull,
                    other => {
                        return Err(format!(
                            "sslmode={other}: must be disable, prefer, require, verify-ca or verify-full"
                        ))
                    }
                })
            }
            "sslrootcert" => root_cert = Some(PathBuf::from(percent_decoded(value)?)),
            _ => kept.push(pair),
        }
    }
    // A CA given is a CA to check against: with no sslmode, the full check; with `require`, the
    // chain (libpq's reading of require with a root certificate).
    let mode = match (mode, &root_cert) {
        (None, Some(_)) => TlsMode::VerifyFull,
        (Some(TlsMode::Require), Some(_)) => TlsMode::VerifyCa,
        (Some(mode), _) => mode,
        (None, None) => TlsMode::Disable,
    };
    let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    let mut config: tokio_postgres::Config = rest.parse().map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?;
    config.ssl_mode(match mode {
        TlsMode::Disable => tokio_postgres::config::SslMode::Disable,
        TlsMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    Ok(PgOptions { config, mode, root_cert })
}

fn percent_decoded(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or("sslrootcert: bad %-escape")?;
                out.push(byte);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "sslrootcert: not UTF-8".to_string())
}

/// The rustls configuration for `mode` (None: no TLS at all).
pub fn client_config(options: &PgOptions) -> Result<Option<rustls::ClientConfig>, String> {
    if options.mode == TlsMode::Disable {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    match &options.root_cert {
        Some(path) => {
            use rustls::pki_types::pem::PemObject;
            let pem = std::fs::read(path).map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                roots.add(cert).map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("sslrootcert {}: no certificate in it", path.display()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match options.mode {
        TlsMode::VerifyFull => builder.with_webpki_verifier(webpki).with_no_client_auth(),
        mode => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Lenient { webpki, check_chain: mode == TlsMode::VerifyCa }))
            .with_no_client_auth(),
    };
    Ok(Some(config))
}

/// `verify-ca`: the chain must lead to a trusted CA, whatever host it names; `prefer` and
/// `require`: the connection is encrypted, the certificate not checked (libpq's meaning).
/// Handshake signatures are checked in every mode.
#[derive(Debug)]
struct Lenient {
    webpki: Arc<WebPkiServerVerifier>,
    check_chain: bool,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.check_chain {
            return Ok(ServerCertVerified::assertion());
        }
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_parameters_come_off_the_url() {
        let o = parse("postgres://u:p@db.example.com:5432/tocsin?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=t")
            .unwrap();
        assert_eq!(o.mode, TlsMode::VerifyFull);
        assert_eq!(o.root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(o.config.get_application_name(), Some("t"));
        assert_eq!(parse("postgres://u@h/db").unwrap().mode, TlsMode::Disable);
        assert_eq!(parse("postgres://u@h/db?sslrootcert=/ca.pem").unwrap().mode, TlsMode::VerifyFull);
        assert_eq!(parse("postgres://u@h/db?sslmode=require&sslrootcert=/ca.pem").unwrap().mode, TlsMode::VerifyCa);
        assert!(parse("postgres://u@h/db?sslmode=sometimes").unwrap_err().contains("verify-full"));
        assert!(client_config(&parse("postgres://u@h/db?sslmode=require").unwrap()).unwrap().is_some());
        let missing = parse("postgres://u@h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem").unwrap();
        assert!(client_config(&missing).unwrap_err().contains("/nonexistent/ca.pem"));
    }
}
