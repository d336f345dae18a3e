//! Network namespaces and processes on this machine: `ip` commands, finding the processes of
//! a namespace, and connecting to a port inside one (the platform's management path).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sched::{CloneFlags, setns};
use tokio::process::Command;

use crate::backend::BackendError;

/// Where `ip netns` keeps named namespaces.
pub const NETNS_DIR: &str = "/run/netns";

pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Runs a command; a non-zero exit is an error carrying its stderr.
pub async fn run(program: &str, args: &[&str]) -> Result<String, BackendError> {
    let out = Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(BackendError::io(format!("running {program}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(BackendError::Command {
            what: format!("{program} {}", args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// `ip` with arguments.
pub async fn ip(args: &[&str]) -> Result<String, BackendError> {
    run("ip", args).await
}

/// Names of every named network namespace.
pub fn list() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(NETNS_DIR)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Host PIDs of every process whose network namespace is `name`.
pub fn pids(name: &str) -> Vec<i32> {
    let Ok(target) = fs::metadata(netns_path(name)) else {
        return Vec::new();
    };
    let (dev, ino) = (target.dev(), target.ino());
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| {
            fs::metadata(format!("/proc/{pid}/ns/net"))
                .map(|m| m.dev() == dev && m.ino() == ino)
                .unwrap_or(false)
        })
        .collect()
}

/// The process of namespace `name` that is PID 1 of its own PID namespace (an endpoint's init).
pub fn init_pid(name: &str) -> Option<i32> {
    pids(name).into_iter().find(|pid| is_pid_one(*pid))
}

/// Whether `pid` is PID 1 of a PID namespace of its own.
fn is_pid_one(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .is_some_and(|s| {
            s.lines()
                .find(|l| l.starts_with("NSpid:"))
                .is_some_and(|l| {
                    let ids: Vec<&str> = l.split_whitespace().skip(1).collect();
                    ids.len() > 1 && ids.last() == Some(&"1")
                })
        })
}

/// Kills every process of namespace `name` and waits (up to `timeout`) until they are gone.
pub async fn kill_all(name: &str, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let pids = pids(name);
        if pids.is_empty() {
            return true;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills every process whose environment contains `marker` (e.g. `AD_DIR=<dir>/`): catches
/// processes that were joining a namespace while it was being deleted.
pub fn kill_marked(marker: &str) -> usize {
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for pid in entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
    {
        let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if environ
            .split(|b| *b == 0)
            .any(|var| var.starts_with(marker.as_bytes()))
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            killed += 1;
        }
    }
    killed
}

/// Connects to `127.0.0.1:port` inside network namespace `name`.
///
/// The socket is created by a fresh thread that joins the namespace (a namespace switch
/// applies to one thread only, and a fresh thread never serves other work), then handed to
/// tokio. The endpoint needs no route to the host: nothing on the host is exposed to it.
pub async fn connect(
    name: &str,
    port: u16,
    timeout: Duration,
) -> Result<tokio::net::TcpStream, std::io::Error> {
    let path = netns_path(name);
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("netns-connect-{port}"))
        .spawn(move || {
            let result = (|| -> std::io::Result<std::net::TcpStream> {
                let ns = fs::File::open(&path)?;
                setns(&ns, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                let stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
                stream.set_nonblocking(true)?;
                Ok(stream)
            })();
            let _ = tx.send(result);
        })?;
    let stream = rx
        .await
        .map_err(|_| std::io::Error::other("connect thread ended without an answer"))??;
    tokio::net::TcpStream::from_std(stream)
}
