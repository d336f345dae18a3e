//! Reachability checks: a full SSH handshake and password login for ssh presentations (what a
//! learner's terminal will do), a TCP connect for the rest.

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

/// Performs the SSH handshake on `stream` and logs in with `user` / `password`.
pub async fn ssh_login(
    stream: TcpStream,
    user: &str,
    password: &str,
    timeout: Duration,
) -> Result<(), String> {
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(timeout),
        ..Default::default()
    });
    let attempt = async {
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
        let _ = handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        Ok(())
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("no SSH login within {} ms", timeout.as_millis()))?
}
