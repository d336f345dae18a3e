//! Browser terminals: a websocket bridged to an endpoint's ssh presentation.
//!
//! Frames (DESIGN §9): the first byte says what follows — `0` data (both ways), `1` a resize
//! `{"cols":N,"rows":N}` (browser → server). The platform logs in with the image's
//! credentials over the backend's management path, so the learner never types a password
//! and the endpoint needs no route from the browser.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::session::Learner;
use crate::backend::ssh;
use crate::livelesson::Livelesson;
use antidote_telemetry::event::{Event, kind};
use antidote_telemetry::metrics::metrics;
use antidote_telemetry::rows::Severity;

/// Largest websocket message accepted from a browser (a paste of a long snippet fits).
pub const MAX_FRAME: usize = 64 * 1024;

const FRAME_DATA: u8 = 0;
const FRAME_RESIZE: u8 = 1;

/// Query of the terminal route.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TerminalQuery {
    /// The ssh presentation (default: the endpoint's first one).
    pub presentation: Option<String>,
    /// Initial size; the browser sends a resize frame when it changes.
    pub cols: Option<u16>,
    pub rows: Option<u16>,
}

#[derive(Debug, Deserialize)]
struct Resize {
    cols: u16,
    rows: u16,
}

/// What a terminal connects to, resolved before the upgrade so errors are plain HTTP.
struct Target {
    livelesson: Livelesson,
    endpoint: String,
    instance: String,
    port: u16,
    user: String,
    password: String,
    presentation: String,
}

fn resolve(
    state: &AppState,
    ll: Livelesson,
    endpoint: &str,
    presentation: Option<&str>,
) -> Result<Target, ApiError> {
    let ep = super::livelessons::reachable_endpoint(&ll, endpoint)?;
    let p = match presentation {
        Some(name) => ep.presentations.iter().find(|p| p.name == name),
        None => ep.presentations.iter().find(|p| p.kind == "ssh"),
    }
    .ok_or_else(|| {
        ApiError::not_found(format!(
            "endpoint `{endpoint}` has no {} presentation",
            presentation.map_or("ssh".to_owned(), |n| format!("`{n}`"))
        ))
    })?;
    if p.kind != "ssh" {
        return Err(ApiError::bad_request(format!(
            "presentation `{}` of `{endpoint}` is {}, not ssh; open it through its http route",
            p.name, p.kind
        )));
    }
    let image = state.curriculum.images.get(&ep.image).ok_or_else(|| {
        ApiError::internal(format!("image `{}` is not in the curriculum", ep.image))
    })?;
    let (user, password) = image.ssh_credentials();
    Ok(Target {
        endpoint: endpoint.to_owned(),
        instance: ep.instance.clone(),
        port: p.port,
        user: user.to_owned(),
        password: password.to_owned(),
        presentation: p.name.clone(),
        livelesson: ll,
    })
}

/// Opens a terminal (websocket) on an endpoint's ssh presentation.
#[utoipa::path(
    get,
    path = "/api/v1/livelessons/{id}/endpoints/{endpoint}/terminal",
    tag = "terminals",
    params(
        ("id" = String, Path, description = "Livelesson ID"),
        ("endpoint" = String, Path, description = "Endpoint name"),
        TerminalQuery,
    ),
    responses(
        (status = 101, description = "Websocket: frames `0`+data both ways, `1`+`{\"cols\":N,\"rows\":N}` to resize"),
        (status = 400, description = "Not a websocket request, or not an ssh presentation", body = ErrorBody),
        (status = 401, description = "No session", body = ErrorBody),
        (status = 403, description = "The page that asked is another site's", body = ErrorBody),
        (status = 404, description = "Not a livelesson of this session, or no such endpoint", body = ErrorBody),
        (status = 409, description = "The endpoint is not reachable yet", body = ErrorBody),
    )
)]
pub async fn open(
    State(state): State<AppState>,
    learner: Learner,
    Path((id, endpoint)): Path<(String, String)>,
    Query(query): Query<TerminalQuery>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    if !same_origin(&headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "terminals open only from this site's own pages",
        ));
    }
    let ll = state.own_livelesson(&learner, &id).await?;
    let target = resolve(&state, ll, &endpoint, query.presentation.as_deref())?;
    let upgrade = upgrade.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "not_a_websocket",
            format!("this route speaks websocket only: {e}"),
        )
    })?;
    let cols = u32::from(query.cols.unwrap_or(80).clamp(10, 500));
    let rows = u32::from(query.rows.unwrap_or(24).clamp(5, 200));
    Ok(upgrade
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| async move {
            bridge(state, target, socket, cols, rows).await;
        }))
}

/// Counts a terminal in `antidote_terminals_open` for as long as it lives, however the
/// bridge ends.
struct OpenTerminal;

impl OpenTerminal {
    fn count() -> OpenTerminal {
        metrics().terminals_open.inc();
        OpenTerminal
    }
}

impl Drop for OpenTerminal {
    fn drop(&mut self) {
        metrics().terminals_open.dec();
    }
}

/// Browsers send `Origin` on websocket handshakes; another site's page must not open a
/// learner's terminal with the learner's cookie. Clients that send no `Origin` (API clients,
/// tests) are not browsers and pass.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'));
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

fn terminal_event(target: &Target, kind: &str, severity: Severity) -> Event {
    let ll = &target.livelesson;
    let mut e = Event::new(kind, "api", severity);
    e.session_id = ll.session_id.clone();
    e.lesson = ll.lesson.clone();
    e.stage = i16::try_from(ll.stage).unwrap_or(i16::MAX);
    e.livelesson_id = ll.id.clone();
    e.endpoint = target.endpoint.clone();
    e.instance = target.instance.clone();
    e.attr("presentation", &target.presentation)
}

async fn bridge(state: AppState, target: Target, mut socket: WebSocket, cols: u32, rows: u32) {
    let started = Instant::now();
    let shell = match state
        .backend
        .connect(&target.livelesson.id, &target.endpoint, target.port)
        .await
    {
        Ok(stream) => {
            ssh::open_shell(
                stream,
                &target.user,
                &target.password,
                cols,
                rows,
                Duration::from_secs(10),
            )
            .await
        }
        Err(e) => Err(e.to_string()),
    };
    let shell = match shell {
        Ok(shell) => shell,
        Err(message) => {
            tracing::warn!(livelesson.id = %target.livelesson.id, endpoint = %target.endpoint, error = %message, "terminal could not open");
            let mut text = vec![FRAME_DATA];
            text.extend_from_slice(
                format!("\r\n[antidote] cannot open the terminal: {message}\r\n").as_bytes(),
            );
            let _ = socket.send(Message::Binary(text.into())).await;
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code: 1011,
                    reason: Utf8Bytes::from_static("terminal unavailable"),
                })))
                .await;
            let e = terminal_event(&target, kind::TERMINAL_CLOSED, Severity::Warn)
                .message(format!("terminal could not open: {message}"));
            state.client.event(e).await;
            return;
        }
    };
    let _open = OpenTerminal::count();
    let opened = terminal_event(&target, kind::TERMINAL_OPENED, Severity::Info)
        .message(format!("terminal opened on {}", target.endpoint));
    state.client.event(opened).await;

    // Browser → shell and shell → browser run concurrently, so a full SSH window (a long
    // paste) never stops output from flowing; whichever side ends first ends the terminal.
    let (mut read_half, write_half) = shell.channel.split();
    let (mut ws_tx, mut ws_rx) = socket.split();
    let to_shell = async {
        loop {
            let bytes = match ws_rx.next().await {
                Some(Ok(Message::Binary(b))) => b,
                Some(Ok(Message::Text(t))) => bytes::Bytes::copy_from_slice(t.as_bytes()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_))) | None => return "browser closed the terminal",
                Some(Err(_)) => return "websocket error",
            };
            let delivered = match bytes.split_first() {
                Some((&FRAME_DATA, data)) => write_half.data(data).await.is_ok(),
                Some((&FRAME_RESIZE, json)) => {
                    if let Ok(r) = serde_json::from_slice::<Resize>(json) {
                        let cols = u32::from(r.cols.clamp(10, 500));
                        let rows = u32::from(r.rows.clamp(5, 200));
                        let _ = write_half.window_change(cols, rows, 0, 0).await;
                    }
                    true
                }
                // Unknown or empty frames are ignored: a newer browser page may send more.
                _ => true,
            };
            if !delivered {
                return "the shell went away";
            }
        }
    };
    let to_browser = async {
        loop {
            match read_half.wait().await {
                Some(russh::ChannelMsg::Data { data })
                | Some(russh::ChannelMsg::ExtendedData { data, .. }) => {
                    let mut frame = Vec::with_capacity(data.len() + 1);
                    frame.push(FRAME_DATA);
                    frame.extend_from_slice(&data);
                    if ws_tx.send(Message::Binary(frame.into())).await.is_err() {
                        return ("browser went away", ws_tx);
                    }
                }
                Some(
                    russh::ChannelMsg::ExitStatus { .. }
                    | russh::ChannelMsg::Eof
                    | russh::ChannelMsg::Close,
                )
                | None => return ("shell exited", ws_tx),
                Some(_) => {}
            }
        }
    };
    let reason = tokio::select! {
        _ = state.shutdown.cancelled() => "the server is stopping",
        reason = to_shell => reason,
        (reason, mut ws_tx) = to_browser => {
            let _ = ws_tx
                .send(Message::Close(Some(CloseFrame {
                    code: 1000,
                    reason: Utf8Bytes::from_static("shell exited"),
                })))
                .await;
            reason
        }
    };
    let _ = write_half.close().await;
    let closed = terminal_event(&target, kind::TERMINAL_CLOSED, Severity::Info)
        .message(format!("terminal closed: {reason}"))
        .attr("duration_ms", started.elapsed().as_millis());
    state.client.event(closed).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_pages_open_terminals() {
        let check = |origin: Option<&str>, host: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, host.parse().unwrap());
            if let Some(o) = origin {
                h.insert(header::ORIGIN, o.parse().unwrap());
            }
            same_origin(&h)
        };
        assert!(check(None, "127.0.0.1:8080"));
        assert!(check(Some("http://127.0.0.1:8080"), "127.0.0.1:8080"));
        assert!(check(Some("https://Labs.example"), "labs.example"));
        assert!(!check(Some("http://evil.example"), "127.0.0.1:8080"));
        assert!(!check(Some("null"), "127.0.0.1:8080"));
    }
}
