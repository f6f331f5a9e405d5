//! Who may use the master API, checked on every request before anything else:
//! - the `Host` header must name this master (its listen or advertise address, a loopback
//!   name, or one of `api-hosts`): a web page cannot reach a loopback API through DNS
//!   rebinding;
//! - a POST must carry `Content-Type: application/json`: a browser cannot send one across
//!   origins without asking first (and the API never says yes), so a page cannot pause a
//!   task or skip a transaction with a form;
//! - with `auth.tokens`, every request needs `Authorization: Bearer <token>`; a `viewer`
//!   token may only read (GET), an `admin` token may do everything. Tokens are stored as
//!   their SHA-256, never in clear.
//!
//! A master that listens beyond loopback without TLS and tokens refuses to start unless the
//! user writes `insecure: true`.

pub use crate::config::{ApiAuth, ApiToken, Role};
use crate::error::{Error, Result};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// A new random token and its SHA-256 (for `auth.tokens`).
pub fn new_token() -> (String, String) {
    use aes_gcm::aead::rand_core::RngCore;
    let mut bytes = [0u8; 24];
    aes_gcm::aead::OsRng.fill_bytes(&mut bytes);
    let token = format!("dm_{}", hex::encode(bytes));
    let hash = token_hash(&token);
    (token, hash)
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Equal without telling, through its time, where two hashes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The web console's files (`master::console`): the same for everyone and holding no data,
/// they load without a token (the page asks for one, and sends it with each API call); the
/// Host check still applies.
fn is_console_asset(path: &str) -> bool {
    matches!(path, "/" | "/console/app.js" | "/console/app.css")
}

/// Why a request is refused; each has a stable code and HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NoCredentials,
    NotAllowed,
    WrongHost,
    NotJson,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::NoCredentials => crate::error::codes::NO_CREDENTIALS,
            Refusal::NotAllowed => crate::error::codes::NOT_ALLOWED,
            Refusal::WrongHost => crate::error::codes::WRONG_HOST,
            Refusal::NotJson => crate::error::codes::NOT_JSON,
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Refusal::NoCredentials => StatusCode::UNAUTHORIZED,
            Refusal::NotAllowed | Refusal::WrongHost => StatusCode::FORBIDDEN,
            Refusal::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    pub fn hint(self) -> &'static str {
        match self {
            Refusal::NoCredentials => "pass a token: `dm ctl --token <token>` or DM_TOKEN (`dm ctl token new` makes one for the master's `auth.tokens`)",
            Refusal::NotAllowed => "this token may only read; use an admin token",
            Refusal::WrongHost => "reach the master by a name in its `api-hosts` (or its master-addr / advertise-addr)",
            Refusal::NotJson => "send the request body as JSON with `Content-Type: application/json`",
        }
    }
}

/// What the API checks, built once from the config.
#[derive(Debug, Clone)]
pub struct ApiGuard {
    /// Serves beyond loopback without TLS and authentication (the user said `insecure`).
    pub insecure: bool,
    hosts: Vec<String>,
    tokens: Vec<ApiToken>,
    /// Mutual TLS: the client certificate names that may use the API (as admins).
    allowed_cn: Vec<String>,
}

/// The host part of `host:port`, `[v6]:port`, or a bare host, lower-cased.
pub(crate) fn host_of(addr: &str) -> String {
    let addr = addr
        .trim()
        .trim_start_matches("http://")
        .trim_start_matches("https://");
    let host = if let Some(rest) = addr.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        match addr.rsplit_once(':') {
            Some((h, port)) if !h.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => addr,
        }
    };
    host.to_ascii_lowercase()
}

pub(crate) fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl ApiGuard {
    /// The guard of a master listening on `listen` (reached at `advertise`); refuses a
    /// listener beyond loopback without TLS and tokens unless `insecure`.
    pub fn new(
        listen: &str,
        advertise: Option<&str>,
        auth: Option<&ApiAuth>,
        api_hosts: &[String],
        tls: Option<&crate::api_tls::ApiTls>,
        insecure: bool,
    ) -> Result<ApiGuard> {
        let allowed_cn = tls.map(|t| t.cert_allowed_cn.clone()).unwrap_or_default();
        let tokens = auth.map(|a| a.tokens.clone()).unwrap_or_default();
        for t in &tokens {
            if t.sha256.len() != 64 || hex::decode(&t.sha256).is_err() {
                return Err(Error::Invalid(format!(
                    "auth.tokens `{}`: sha256 must be 64 hex digits (the SHA-256 of the token; `dm ctl token new` prints both)",
                    t.name
                )));
            }
        }
        let listen_host = host_of(listen);
        let protected = tls.is_some() && !(tokens.is_empty() && allowed_cn.is_empty());
        if !is_loopback(&listen_host) && !protected {
            if !insecure {
                return Err(Error::Invalid(format!(
                    "refusing to serve the API on {listen} without TLS and tokens: anyone who reaches it could run any migration with the stored passwords. Set `tls` (cert, key) and `auth.tokens` or `tls.cert-allowed-cn` (see docs/security.md), listen on 127.0.0.1, or set `insecure: true` to accept the risk"
                )));
            }
            tracing::warn!(addr = listen, "INSECURE: the API is served beyond loopback without TLS and tokens (insecure: true)");
        }
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .iter()
            .map(|h| h.to_string())
            .collect();
        hosts.extend(
            [Some(listen), advertise]
                .into_iter()
                .flatten()
                .map(host_of)
                .filter(|h| h != "0.0.0.0" && h != "::"),
        );
        hosts.extend(api_hosts.iter().map(|h| host_of(h)));
        Ok(ApiGuard {
            insecure: !is_loopback(&listen_host) && !protected,
            hosts,
            tokens,
            allowed_cn,
        })
    }

    /// Whether the API asks for tokens.
    pub fn has_tokens(&self) -> bool {
        !self.tokens.is_empty()
    }

    fn check(&self, req: &Request) -> std::result::Result<(), (Refusal, String)> {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_default();
        if !self.hosts.contains(&host_of(&host)) {
            return Err((
                Refusal::WrongHost,
                format!("this master does not answer to the host `{host}`"),
            ));
        }
        let path = req.uri().path();
        if matches!(*req.method(), Method::GET | Method::HEAD) && is_console_asset(path) {
            return Ok(());
        }
        // How to reach etcd (and its user's sealed password) is for workers, which hold an
        // admin token; stored files (encrypted passwords) for admins: not for viewers.
        let reads = matches!(*req.method(), Method::GET | Method::HEAD)
            && path != "/api/v1/cluster/etcd"
            && path != "/api/v1/config"
            && !path.starts_with("/api/v1/config/");
        if *req.method() == Method::POST {
            let json = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|c| c.to_str().ok())
                .is_some_and(|c| {
                    c.trim()
                        .to_ascii_lowercase()
                        .starts_with("application/json")
                });
            if !json {
                return Err((
                    Refusal::NotJson,
                    "a POST must carry a JSON body (Content-Type: application/json)".into(),
                ));
            }
        }
        if !self.allowed_cn.is_empty() {
            // The TLS handshake verified the certificate; its name decides.
            let cn = req
                .extensions()
                .get::<crate::api_tls::PeerCn>()
                .and_then(|p| p.0.clone());
            return match cn {
                Some(cn) if self.allowed_cn.contains(&cn) => Ok(()),
                other => Err((
                    Refusal::NotAllowed,
                    format!(
                        "the client certificate `{}` is not in cert-allowed-cn",
                        other.unwrap_or_default()
                    ),
                )),
            };
        }
        if self.tokens.is_empty() {
            return Ok(());
        }
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|a| a.to_str().ok())
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(presented) = presented else {
            return Err((
                Refusal::NoCredentials,
                "this master requires a token".into(),
            ));
        };
        let hash = token_hash(presented);
        let Some(token) = self
            .tokens
            .iter()
            .find(|t| same(t.sha256.to_ascii_lowercase().as_bytes(), hash.as_bytes()))
        else {
            return Err((
                Refusal::NoCredentials,
                "the token is not one of this master's".into(),
            ));
        };
        if token.role == Role::Viewer && !reads {
            return Err((
                Refusal::NotAllowed,
                format!(
                    "the token `{}` is a viewer's: it may not {} {}",
                    token.name,
                    req.method(),
                    req.uri().path()
                ),
            ));
        }
        Ok(())
    }
}

/// The middleware: refused requests get the API's JSON error shape.
pub async fn guard(State(g): State<Arc<ApiGuard>>, req: Request, next: Next) -> Response {
    match g.check(&req) {
        Ok(()) => next.run(req).await,
        Err((why, message)) => {
            tracing::warn!(code = why.code(), method = %req.method(), path = req.uri().path(), %message, "API request refused");
            let report = crate::error::ErrorReport {
                code: why.code().into(),
                message,
                hint: why.hint().into(),
                retryable: false,
                position: None,
            };
            (why.status(), Json(report)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> crate::api_tls::ApiTls {
        crate::api_tls::ApiTls {
            cert: "c.pem".into(),
            key: "k.pem".into(),
            ca: None,
            cert_allowed_cn: vec![],
            client_ca: None,
        }
    }

    fn req(method: Method, host: &str, ct: Option<&str>, token: Option<&str>) -> Request {
        let mut b = Request::builder()
            .method(method)
            .uri("/api/v1/tasks")
            .header(header::HOST, host);
        if let Some(ct) = ct {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn hosts_content_types_and_roles() {
        let (admin, admin_hash) = new_token();
        let (viewer, viewer_hash) = new_token();
        let auth = ApiAuth {
            tokens: vec![
                ApiToken {
                    name: "ops".into(),
                    role: Role::Admin,
                    sha256: admin_hash,
                },
                ApiToken {
                    name: "watch".into(),
                    role: Role::Viewer,
                    sha256: viewer_hash,
                },
            ],
        };
        let g = ApiGuard::new(
            "0.0.0.0:8261",
            Some("dm1.internal:8261"),
            Some(&auth),
            &["dm.example.com".into()],
            Some(&tls()),
            false,
        )
        .unwrap();
        let refused = |r: Request| g.check(&r).err().map(|(why, _)| why);
        let json = Some("application/json");
        assert_eq!(
            refused(req(Method::GET, "dm1.internal:8261", None, Some(&viewer))),
            None
        );
        assert_eq!(
            refused(req(Method::GET, "dm.example.com", None, Some(&viewer))),
            None
        );
        // How to reach etcd is for workers (admins) only.
        let etcd = |token: &str| {
            let mut r = req(Method::GET, "dm1.internal:8261", None, Some(token));
            *r.uri_mut() = "/api/v1/cluster/etcd".parse().unwrap();
            refused(r)
        };
        assert_eq!(etcd(&viewer), Some(Refusal::NotAllowed));
        assert_eq!(etcd(&admin), None);
        assert_eq!(
            refused(req(Method::GET, "evil.example:8261", None, Some(&admin))),
            Some(Refusal::WrongHost)
        );
        assert_eq!(
            refused(req(Method::GET, "127.0.0.1:8261", None, None)),
            Some(Refusal::NoCredentials)
        );
        assert_eq!(
            refused(req(Method::GET, "127.0.0.1:8261", None, Some("dm_forged"))),
            Some(Refusal::NoCredentials)
        );
        assert_eq!(
            refused(req(Method::POST, "[::1]:8261", json, Some(&viewer))),
            Some(Refusal::NotAllowed)
        );
        assert_eq!(
            refused(req(
                Method::POST,
                "localhost:8261",
                Some("text/plain"),
                Some(&admin)
            )),
            Some(Refusal::NotJson)
        );
        assert_eq!(
            refused(req(Method::POST, "localhost:8261", json, Some(&admin))),
            None
        );
        assert_eq!(
            refused(req(Method::DELETE, "localhost:8261", None, Some(&viewer))),
            Some(Refusal::NotAllowed)
        );
    }

    #[test]
    fn beyond_loopback_needs_tls_and_tokens_or_insecure() {
        let err = ApiGuard::new("0.0.0.0:8261", None, None, &[], None, false).unwrap_err();
        assert!(err.to_string().contains("insecure: true"), "{err}");
        let tls_only = ApiGuard::new("0.0.0.0:8261", None, None, &[], Some(&tls()), false);
        assert!(
            tls_only.is_err(),
            "TLS without tokens or client certificates"
        );
        let mut mtls = tls();
        mtls.cert_allowed_cn = vec!["dm-admin".into()];
        assert!(ApiGuard::new("0.0.0.0:8261", None, None, &[], Some(&mtls), false).is_ok());
        assert!(ApiGuard::new("0.0.0.0:8261", None, None, &[], None, true).is_ok());
        assert!(ApiGuard::new("127.0.0.1:8261", None, None, &[], None, false).is_ok());
        assert!(ApiGuard::new("[::1]:8261", None, None, &[], None, false).is_ok());
    }
}
