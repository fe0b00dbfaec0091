//! The admin HTTP port (`admin_port`): read-only, unauthenticated endpoints for load
//! balancers and monitoring, in the style of Patroni and etcd.
//!
//! - `GET /health`: 200 unless a check is failing (503); JSON with every check's reason.
//! - `GET /ready`: 200 when this node can serve: a primary is known and nothing fails.
//! - `GET /primary`: 200 only on the primary holding its lease (HAProxy's
//!   `option httpchk GET /primary`); 503 elsewhere.
//! - `GET /replica[?lag=N]`: 200 on a standby following a primary, within N entries.
//! - `GET /metrics`: Prometheus / OpenMetrics text.
//! - `GET /`: the live dashboard (HTML, [`super::dashboard`]).
//!
//! Other methods get 405, other paths 404, a bad `lag` 400. Connections are bounded in
//! number and must send their headers within a few seconds.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::dashboard;
use super::health::role_name;
use super::Server;
use crate::health::{json_escape, Status};

/// Admin connections served at once; more are closed at once.
const CONNECTIONS_MAX: usize = 64;
/// A connection must send a request's headers within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// No connection stays longer than this.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);

const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=utf-8";
const METRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves the admin endpoints on `listener` for as long as the server lives.
pub async fn serve(server: &Arc<Server>, listener: TcpListener) {
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let weak = Arc::downgrade(server);
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("admin accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else { continue };
        let weak = weak.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let srv = weak.upgrade();
                async move {
                    Ok::<_, Infallible>(match srv {
                        Some(srv) => route(&srv, req.method(), req.uri().path(), req.uri().query()),
                        None => respond(StatusCode::SERVICE_UNAVAILABLE, JSON, "{\"error\":\"shutting down\"}".into()),
                    })
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
        });
    }
}

fn respond(code: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn json(ok: bool, body: String) -> Response<Full<Bytes>> {
    respond(if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, JSON, body)
}

fn error(code: StatusCode, message: &str) -> Response<Full<Bytes>> {
    respond(code, JSON, format!("{{\"error\":\"{}\"}}", json_escape(message)))
}

/// The `lag` parameter of `/replica`: `Ok(None)` when absent, `Err` when not a count.
pub fn lag_param(query: Option<&str>) -> Result<Option<u64>, String> {
    let Some(query) = query else { return Ok(None) };
    let Some(value) = query.split('&').find_map(|kv| kv.strip_prefix("lag=")) else { return Ok(None) };
    value.parse::<u64>().map(Some).map_err(|_| format!("lag must be a number of entries, not {value:?}"))
}

pub fn route(srv: &Server, method: &Method, path: &str, query: Option<&str>) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
        r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let role = role_name(srv);
    match path {
        "/health" => {
            let report = srv.health.lock().unwrap_or_else(|e| e.into_inner()).clone();
            json(report.status != Status::Failing, report.json(role))
        }
        "/ready" => {
            let status = srv.health.lock().unwrap_or_else(|e| e.into_inner()).status;
            let primary_known = srv.cluster.as_ref().is_none_or(|c| c.role().leader.is_some());
            let ready = primary_known && status != Status::Failing;
            json(ready, format!("{{\"ready\":{ready},\"role\":\"{role}\",\"health\":\"{}\"}}", status.as_str()))
        }
        "/primary" => {
            let primary = srv.cluster.as_ref().is_none_or(|c| c.is_primary());
            let term = srv.cluster.as_ref().map_or(0, |c| c.role().term);
            json(primary, format!("{{\"primary\":{primary},\"role\":\"{role}\",\"term\":{term}}}"))
        }
        "/replica" => replica(srv, role, query),
        "/metrics" => respond(StatusCode::OK, METRICS, srv.metrics.encode()),
        "/" => respond(StatusCode::OK, HTML, dashboard::html::render(&dashboard::gather(srv))),
        _ => error(StatusCode::NOT_FOUND, "no such endpoint: try /, /health, /ready, /primary, /replica, /metrics"),
    }
}

fn replica(srv: &Server, role: &str, query: Option<&str>) -> Response<Full<Bytes>> {
    let max = match lag_param(query) {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let Some(c) = &srv.cluster else {
        return json(false, format!("{{\"replica\":false,\"role\":\"{role}\"}}"));
    };
    let following = c.role().leader.is_some();
    let lag = c.standby_lag_entries();
    let ok = following && lag.is_some_and(|l| max.is_none_or(|m| l <= m));
    let lag_text = lag.map_or("null".to_string(), |l| l.to_string());
    json(ok, format!("{{\"replica\":{ok},\"role\":\"{role}\",\"following\":{following},\"lag_entries\":{lag_text}}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_parameter() {
        assert_eq!(lag_param(None), Ok(None));
        assert_eq!(lag_param(Some("x=1")), Ok(None));
        assert_eq!(lag_param(Some("lag=10")), Ok(Some(10)));
        assert_eq!(lag_param(Some("a=b&lag=0")), Ok(Some(0)));
        assert!(lag_param(Some("lag=10MB")).is_err());
        assert!(lag_param(Some("lag=-1")).is_err());
    }
}
