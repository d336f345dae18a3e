//! The platform's SSH client: reachability checks (a full handshake and password login, what
//! a learner's terminal will do) and running commands inside an endpoint.
//!
//! Commands the platform runs inside an endpoint (stage configuration, verify checks) go
//! through the endpoint's own sshd, never through a privileged `nsenter`: a learner with sudo
//! may have replaced any binary or library in the endpoint, and what sshd starts is confined
//! to the endpoint's reduced capability set, whatever it executes.

use std::sync::Arc;
use std::time::Duration;

use russh::client;
use tokio::net::TcpStream;

/// Accepts the endpoint's host key: the connection runs over the platform's private
/// management path to an endpoint the platform itself just created.
struct PlatformClient;

impl client::Handler for PlatformClient {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// Handshake and password login on `stream`; the session stays open for the caller.
async fn login(
    stream: TcpStream,
    user: &str,
    password: &str,
    inactivity: Duration,
) -> Result<client::Handle<PlatformClient>, String> {
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(inactivity),
        ..Default::default()
    });
    let mut handle = client::connect_stream(config, stream, PlatformClient)
        .await
        .map_err(|e| format!("SSH handshake failed: {e}"))?;
    let auth = handle
        .authenticate_password(user, password)
        .await
        .map_err(|e| format!("SSH authentication failed: {e}"))?;
    if !auth.success() {
        return Err(format!("SSH login as `{user}` was refused"));
    }
    Ok(handle)
}

/// Performs the SSH handshake on `stream` and logs in with `user` / `password`.
pub async fn ssh_login(
    stream: TcpStream,
    user: &str,
    password: &str,
    timeout: Duration,
) -> Result<(), String> {
    let attempt = async {
        let handle = login(stream, user, password, timeout).await?;
        let _ = handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        Ok(())
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("no SSH login within {} ms", timeout.as_millis()))?
}

/// Logs in on `stream` and runs `command` (through `sh -c` by sshd), feeding `stdin` to it;
/// returns the exit status (`None` on timeout) and the output (stdout and stderr, the tail).
pub async fn exec(
    stream: TcpStream,
    user: &str,
    password: &str,
    command: &str,
    stdin: &[u8],
    timeout: Duration,
) -> Result<crate::backend::CommandRun, String> {
    let started = std::time::Instant::now();
    let mut output: Vec<u8> = Vec::new();
    let mut exit_code = None;
    let run = async {
        let handle = login(stream, user, password, timeout + Duration::from_secs(5)).await?;
        let mut channel = handle
            .channel_open_session()
            .await
            .map_err(|e| format!("cannot open an SSH session: {e}"))?;
        channel
            .exec(true, command)
            .await
            .map_err(|e| format!("cannot start the command: {e}"))?;
        if !stdin.is_empty() {
            channel
                .data(stdin)
                .await
                .map_err(|e| format!("cannot send the command its input: {e}"))?;
        }
        channel
            .eof()
            .await
            .map_err(|e| format!("cannot close the command's input: {e}"))?;
        while let Some(msg) = channel.wait().await {
            match msg {
                russh::ChannelMsg::Data { data } => output.extend_from_slice(&data),
                russh::ChannelMsg::ExtendedData { data, .. } => output.extend_from_slice(&data),
                russh::ChannelMsg::ExitStatus { exit_status } => {
                    exit_code = Some(i32::try_from(exit_status).unwrap_or(i32::MAX));
                }
                _ => {}
            }
        }
        let _ = handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        Ok::<(), String>(())
    };
    let timed_out = match tokio::time::timeout(timeout, run).await {
        Ok(result) => {
            result?;
            false
        }
        Err(_) => true,
    };
    let mut text = String::from_utf8_lossy(&output).into_owned();
    if timed_out {
        text.push_str(&format!("\ntimed out after {} s", timeout.as_secs()));
        exit_code = None;
    }
    Ok(crate::backend::CommandRun {
        exit_code,
        output: crate::backend::tail(&text, crate::backend::OUTPUT_LIMIT),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// An interactive shell with a pseudo-terminal (a learner's terminal), logged in with the
/// image's credentials so the learner never types them.
pub struct Shell {
    /// Kept for as long as the shell is used: dropping it ends the SSH session.
    _handle: client::Handle<PlatformClient>,
    pub channel: russh::Channel<client::Msg>,
}

/// Logs in on `stream`, asks for an `xterm-256color` terminal of `cols` × `rows` and a shell.
pub async fn open_shell(
    stream: TcpStream,
    user: &str,
    password: &str,
    cols: u32,
    rows: u32,
    timeout: Duration,
) -> Result<Shell, String> {
    let open = async {
        // Terminals may sit idle for long; keepalives tell a dead peer from a quiet one.
        let handle = login(stream, user, password, Duration::from_secs(24 * 3600)).await?;
        let channel = handle
            .channel_open_session()
            .await
            .map_err(|e| format!("cannot open an SSH session: {e}"))?;
        channel
            .request_pty(false, "xterm-256color", cols, rows, 0, 0, &[])
            .await
            .map_err(|e| format!("cannot get a terminal: {e}"))?;
        channel
            .request_shell(false)
            .await
            .map_err(|e| format!("cannot start a shell: {e}"))?;
        Ok(Shell {
            _handle: handle,
            channel,
        })
    };
    tokio::time::timeout(timeout, open)
        .await
        .map_err(|_| format!("no shell within {} ms", timeout.as_millis()))?
}
