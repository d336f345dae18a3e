//! The local backend: every endpoint an isolated instance on this Linux machine.
//!
//! An endpoint instance is a named network namespace `ad<installation>-<livelesson>-<endpoint>`
//! whose first process (`endpoint-init.sh`, under `unshare`) lives in fresh mount, PID, UTS and
//! IPC namespaces over a private copy-on-write view of the host's root filesystem. Connections
//! are veth pairs created directly inside the two endpoints' namespaces, so interface names
//! never meet in the host namespace. A per-livelesson namespace `ad<installation>-<livelesson>`
//! holds a bridge that gives endpoints each other's names (as NRE Labs' cluster DNS did).
//! The platform reaches a presentation by connecting from inside the endpoint's namespace
//! ([`netns::connect`]); endpoints have no route to the host at all.
//!
//! Every name carries the installation ID (kept in the state directory), so a sweep removes
//! only what this installation created.

pub mod netns;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::process::Command;

use super::{
    Backend, BackendError, CommandRun, EndpointInstance, InstanceInfo, LivelessonSpec, tail,
};
use crate::curriculum::model::{Image, Lesson, LocalImage, LocalKind};
use crate::curriculum::{find_config_file, schema_check, yaml};

const INIT_SCRIPT: &str = include_str!("endpoint-init.sh");
const REALISATIONS: &str = include_str!("realisations.yaml");
/// Addresses of endpoints on their livelesson's name network.
const NAME_NET: &str = "198.18.0";

/// Settings of the local backend.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Where instances keep their copy-on-write layers, logs and the installation ID.
    pub state_dir: PathBuf,
    /// Host paths replaced by empty directories inside every endpoint (besides /root, /home
    /// and /var/log, which are always masked).
    pub masks: Vec<PathBuf>,
    /// How long an endpoint may take from start to running sshd and daemons.
    pub start_timeout: Duration,
}

impl LocalConfig {
    /// Defaults for `state_dir`: masks the state directory, the git checkout holding it or the
    /// running binary, and the usual service data directories.
    pub fn new(state_dir: impl Into<PathBuf>) -> LocalConfig {
        let state_dir = state_dir.into();
        let mut masks = vec![
            state_dir.clone(),
            PathBuf::from("/var/cache/antidote"),
            PathBuf::from("/var/lib/antidote"),
            PathBuf::from("/var/lib/clickhouse"),
            PathBuf::from("/etc/clickhouse-server"),
        ];
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        for start in [Some(state_dir.clone()), exe_dir.clone()]
            .into_iter()
            .flatten()
        {
            if let Some(repo) = start.ancestors().find(|a| a.join(".git").exists()) {
                masks.push(repo.to_path_buf());
            }
        }
        masks.extend(exe_dir);
        LocalConfig {
            state_dir,
            masks,
            start_timeout: Duration::from_secs(30),
        }
    }
}

/// The local backend.
pub struct LocalBackend {
    config: LocalConfig,
    installation: String,
    script: PathBuf,
    node: String,
    realisations: BTreeMap<String, LocalImage>,
    /// One lock per livelesson, so its endpoints (created concurrently) set up the name
    /// network once, without making other livelessons wait.
    name_net_locks: std::sync::Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl LocalBackend {
    /// Prepares the state directory (installation ID, init script).
    pub fn new(config: LocalConfig) -> Result<LocalBackend, BackendError> {
        fs::create_dir_all(config.state_dir.join("instances")).map_err(BackendError::io(
            format!("creating {}", config.state_dir.display()),
        ))?;
        let state_dir = config
            .state_dir
            .canonicalize()
            .map_err(BackendError::io(format!(
                "resolving {}",
                config.state_dir.display()
            )))?;
        let config = LocalConfig {
            state_dir,
            ..config
        };
        let id_file = config.state_dir.join("installation-id");
        let installation = match fs::read_to_string(&id_file) {
            Ok(id) if is_id(id.trim(), 6) => id.trim().to_owned(),
            _ => {
                let id = random_id(6);
                fs::write(&id_file, &id)
                    .map_err(BackendError::io(format!("writing {}", id_file.display())))?;
                id
            }
        };
        let script = config.state_dir.join("endpoint-init.sh");
        fs::write(&script, INIT_SCRIPT)
            .map_err(BackendError::io(format!("writing {}", script.display())))?;
        let node = fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        Ok(LocalBackend {
            config,
            installation,
            script,
            node,
            realisations: builtin_realisations(),
            name_net_locks: std::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// The ID in every name this installation creates.
    pub fn installation_id(&self) -> &str {
        &self.installation
    }

    fn prefix(&self) -> String {
        format!("ad{}-", self.installation)
    }

    fn name_netns(&self, livelesson: &str) -> String {
        format!("ad{}-{livelesson}", self.installation)
    }

    /// The instance (network namespace) name of an endpoint.
    pub fn instance_name(&self, livelesson: &str, endpoint: &str) -> String {
        format!("ad{}-{livelesson}-{endpoint}", self.installation)
    }

    fn livelesson_dir(&self, livelesson: &str) -> PathBuf {
        self.config.state_dir.join("instances").join(livelesson)
    }

    /// How `image` is realised locally: its own `local:` key, else the built-in table.
    pub fn realisation(&self, image: &Image) -> Option<LocalImage> {
        image
            .local
            .clone()
            .or_else(|| self.realisations.get(&image.slug).cloned())
    }

    async fn ensure_name_net(&self, livelesson: &str) -> Result<(), BackendError> {
        let lock = {
            let mut locks = self
                .name_net_locks
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            Arc::clone(locks.entry(livelesson.to_owned()).or_default())
        };
        let _guard = lock.lock().await;
        let ns = self.name_netns(livelesson);
        if netns::netns_path(&ns).exists() {
            return Ok(());
        }
        netns::ip(&["netns", "add", &ns]).await?;
        netns::ip(&["-n", &ns, "link", "add", "br0", "type", "bridge"]).await?;
        netns::ip(&["-n", &ns, "link", "set", "br0", "up"]).await?;
        Ok(())
    }

    async fn start_init(
        &self,
        spec: &LivelessonSpec,
        endpoint: &str,
        index: usize,
        realisation: &LocalImage,
        image: &Image,
    ) -> Result<i32, BackendError> {
        let ns = self.instance_name(&spec.livelesson_id, endpoint);
        let dir = self.livelesson_dir(&spec.livelesson_id).join(endpoint);
        fs::create_dir_all(&dir)
            .map_err(BackendError::io(format!("creating {}", dir.display())))?;
        let log_path = dir.join("init.log");
        let log = fs::File::create(&log_path)
            .map_err(BackendError::io(format!("creating {}", log_path.display())))?;
        let log2 = log
            .try_clone()
            .map_err(BackendError::io("duplicating the log handle"))?;
        let hosts: String = spec
            .lesson
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{NAME_NET}.{} {}\n", 10 + i, e.name))
            .collect();
        // The curriculum the lesson comes from (and the checkout holding it) is the platform's,
        // not the learner's: only this lesson's own directory shows up, at /antidote.
        let curriculum_root = spec
            .lesson_dir
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf);
        let checkout = curriculum_root
            .as_deref()
            .and_then(|c| c.ancestors().find(|a| a.join(".git").exists()))
            .map(Path::to_path_buf);
        let masks: Vec<String> = self
            .config
            .masks
            .iter()
            .cloned()
            .chain(curriculum_root)
            .chain(checkout)
            .map(|m| m.display().to_string())
            .collect();
        let kind = match realisation.kind {
            LocalKind::Linux => "linux",
            LocalKind::Frr => "frr",
        };
        // setsid -f: the init leaves our process group and session, so it outlives a restart
        // of this process; the platform finds it again through its network namespace.
        // nsenter joins only the network namespace; `ip netns exec` would also copy the
        // whole mount table and remount /sys, which the init does for itself anyway.
        let netns_arg = format!("--net={}", netns::netns_path(&ns).display());
        let status = Command::new("setsid")
            .args(["-f", "nsenter", &netns_arg])
            .args([
                "unshare", "--mount", "--pid", "--uts", "--ipc", "--fork", "bash",
            ])
            .arg(&self.script)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("AD_DIR", &dir)
            .env("AD_HOSTNAME", endpoint)
            .env("AD_KIND", kind)
            .env("AD_SSH_USER", image.ssh_credentials().0)
            .env("AD_SSH_PASSWORD", image.ssh_credentials().1)
            .env("AD_LESSON_DIR", &spec.lesson_dir)
            .env("AD_MASKS", masks.join(":"))
            .env(
                "AD_FORWARDING",
                if image.enable_forwarding || realisation.kind == LocalKind::Frr {
                    "1"
                } else {
                    "0"
                },
            )
            .env("AD_HOSTS", hosts)
            .env("AD_INDEX", index.to_string())
            .env("AD_DAEMONS", realisation.daemons.join(" "))
            .env("AD_SERVICES", realisation.services.join("\n"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .status()
            .await
            .map_err(BackendError::io("starting setsid"))?;
        if !status.success() {
            return Err(BackendError::EndpointFailed {
                endpoint: endpoint.to_owned(),
                message: format!("setsid exited with {status}"),
            });
        }

        let started = Instant::now();
        let pid_file = dir.join("init.pid");
        let mut seen_init = None;
        loop {
            // Cheap checks only: this loop runs for every endpoint being started.
            if seen_init.is_none() {
                seen_init = fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|p| p.trim().parse::<i32>().ok());
            }
            let init = seen_init.filter(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if let Some(pid) = init
                && Path::new(&format!("/proc/{pid}/root/run/antidote-ready")).exists()
            {
                end_waiting_unshare(pid);
                return Ok(pid);
            }
            let gone = seen_init.is_some() && init.is_none();
            let stuck = started.elapsed() > self.config.start_timeout;
            if gone || stuck || (seen_init.is_none() && started.elapsed() > Duration::from_secs(5))
            {
                let tail = tail_of_file(&log_path, 2000);
                let message = if stuck {
                    format!(
                        "not ready within {}s; last output:\n{tail}",
                        self.config.start_timeout.as_secs()
                    )
                } else {
                    format!("init exited; last output:\n{tail}")
                };
                return Err(BackendError::EndpointFailed {
                    endpoint: endpoint.to_owned(),
                    message,
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Runs `script` inside the endpoint as root, through the endpoint's sshd with the
    /// image's configuration account (and sudo unless that is root), feeding it `stdin`.
    async fn run_inside(
        &self,
        spec: &LivelessonSpec,
        endpoint: &str,
        script: &str,
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<CommandRun, BackendError> {
        let image = spec.image_of(endpoint)?;
        let (user, password) = image.config_credentials();
        let command = if user == "root" {
            format!("sh -c {}", shell_quote(script))
        } else {
            format!("sudo -n sh -c {}", shell_quote(script))
        };
        let stream = self.connect(&spec.livelesson_id, endpoint, 22).await?;
        super::ssh::exec(stream, user, password, &command, stdin, timeout)
            .await
            .map_err(|message| BackendError::Command {
                what: format!("running a command in `{endpoint}`"),
                message,
            })
    }

    /// Removes every livelesson of this installation that is not in `keep`; returns the IDs
    /// removed. Only names carrying this installation's ID are touched.
    pub async fn sweep(&self, keep: &HashSet<String>) -> Result<Vec<String>, BackendError> {
        let mut found: HashSet<String> = HashSet::new();
        let prefix = self.prefix();
        for name in netns::list() {
            if let Some(rest) = name.strip_prefix(&prefix) {
                let ll = rest.split('-').next().unwrap_or(rest);
                if is_id(ll, 10) {
                    found.insert(ll.to_owned());
                }
            }
        }
        if let Ok(entries) = fs::read_dir(self.config.state_dir.join("instances")) {
            for e in entries.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().into_owned();
                if is_id(&name, 10) {
                    found.insert(name);
                }
            }
        }
        let mut removed: Vec<String> = found.difference(keep).cloned().collect();
        removed.sort();
        for ll in &removed {
            self.delete(ll).await?;
        }
        Ok(removed)
    }
}

#[async_trait::async_trait]
impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    fn unavailable_reason(
        &self,
        lesson: &Lesson,
        images: &BTreeMap<String, Image>,
    ) -> Option<String> {
        unavailable_reason(&self.realisations, lesson, images)
    }

    async fn create_endpoint(
        &self,
        spec: &LivelessonSpec,
        endpoint: &str,
    ) -> Result<EndpointInstance, BackendError> {
        let index = spec
            .lesson
            .endpoints
            .iter()
            .position(|e| e.name == endpoint)
            .ok_or_else(|| BackendError::UnknownEndpoint(endpoint.to_owned()))?;
        let image = spec.image_of(endpoint)?;
        let realisation = self.realisation(image).ok_or_else(|| {
            BackendError::Unavailable(format!("image `{}` has no local realisation", image.slug))
        })?;
        self.ensure_name_net(&spec.livelesson_id).await?;
        let ns = self.instance_name(&spec.livelesson_id, endpoint);
        netns::ip(&["netns", "add", &ns]).await?;
        // The name network: mgmt0 inside the endpoint, its peer on the livelesson's bridge.
        let name_ns = self.name_netns(&spec.livelesson_id);
        let peer = format!("n{index}");
        netns::ip(&[
            "-n", &ns, "link", "add", "mgmt0", "type", "veth", "peer", "name", &peer, "netns",
            &name_ns,
        ])
        .await?;
        netns::ip(&["-n", &name_ns, "link", "set", &peer, "master", "br0", "up"]).await?;
        let addr = format!("{NAME_NET}.{}/24", 10 + index);
        netns::ip(&["-n", &ns, "addr", "add", &addr, "dev", "mgmt0"]).await?;
        netns::ip(&["-n", &ns, "link", "set", "mgmt0", "up"]).await?;

        self.start_init(spec, endpoint, index, &realisation, image)
            .await?;
        Ok(EndpointInstance {
            endpoint: endpoint.to_owned(),
            instance: ns,
            node: self.node.clone(),
        })
    }

    async fn create_links(&self, spec: &LivelessonSpec) -> Result<(), BackendError> {
        let mut used: BTreeMap<&str, usize> = BTreeMap::new();
        for conn in &spec.lesson.connections {
            let (na, nb) = {
                let a = used.entry(conn.a.as_str()).or_insert(0);
                let na = *a;
                *a += 1;
                let b = used.entry(conn.b.as_str()).or_insert(0);
                let nb = *b;
                *b += 1;
                (na, nb)
            };
            let (if_a, if_b) = (
                spec.interface_name(&conn.a, na),
                spec.interface_name(&conn.b, nb),
            );
            let (ns_a, ns_b) = (
                self.instance_name(&spec.livelesson_id, &conn.a),
                self.instance_name(&spec.livelesson_id, &conn.b),
            );
            netns::ip(&[
                "-n", &ns_a, "link", "add", &if_a, "type", "veth", "peer", "name", &if_b, "netns",
                &ns_b,
            ])
            .await?;
            if let Some(subnet) = &conn.subnet {
                let (first, second, len) = host_addresses(subnet)
                    .ok_or_else(|| BackendError::Unavailable(format!("bad subnet `{subnet}`")))?;
                netns::ip(&[
                    "-n",
                    &ns_a,
                    "addr",
                    "add",
                    &format!("{first}/{len}"),
                    "dev",
                    &if_a,
                ])
                .await?;
                netns::ip(&[
                    "-n",
                    &ns_b,
                    "addr",
                    "add",
                    &format!("{second}/{len}"),
                    "dev",
                    &if_b,
                ])
                .await?;
            }
            netns::ip(&["-n", &ns_a, "link", "set", &if_a, "up"]).await?;
            netns::ip(&["-n", &ns_b, "link", "set", &if_b, "up"]).await?;
        }
        Ok(())
    }

    async fn check_reachable(
        &self,
        spec: &LivelessonSpec,
        endpoint: &str,
        port: u16,
        ssh: bool,
    ) -> Result<(), BackendError> {
        let unreachable = |message: String| BackendError::Unreachable {
            endpoint: endpoint.to_owned(),
            port,
            message,
        };
        let stream = self
            .connect(&spec.livelesson_id, endpoint, port)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if ssh {
            let image = spec.image_of(endpoint)?;
            let (user, password) = image.ssh_credentials();
            super::ssh::ssh_login(stream, user, password, Duration::from_secs(5))
                .await
                .map_err(unreachable)?;
        }
        Ok(())
    }

    async fn configure(
        &self,
        spec: &LivelessonSpec,
        endpoint: &str,
        stage: usize,
        timeout: Duration,
    ) -> Result<CommandRun, BackendError> {
        let ep = spec.endpoint(endpoint)?;
        let image = spec.image_of(endpoint)?;
        let config_error = |message: String| BackendError::Configuration {
            endpoint: endpoint.to_owned(),
            message,
        };
        let kind = ep
            .configuration_type
            .as_deref()
            .ok_or_else(|| config_error("the endpoint has no configurationType".into()))?;
        let file = find_config_file(&spec.lesson_dir, stage, endpoint, kind).ok_or_else(|| {
            config_error(format!("stage{stage}/configs/ has no file for `{kind}`"))
        })?;
        let contents =
            fs::read(&file).map_err(BackendError::io(format!("reading {}", file.display())))?;
        let ext = file
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (user, password) = image.config_credentials();
        let runner = match kind.split('-').next().unwrap_or(kind) {
            "frr" => "vtysh -f \"$f\"".to_owned(),
            "shell" => "sh \"$f\"".to_owned(),
            "python" => "python3 \"$f\"".to_owned(),
            "ansible" => format!(
                "command -v ansible-playbook >/dev/null || {{ echo 'ansible-playbook is not installed on this machine (apt-get install ansible-core)'; exit 127; }}; \
                 ansible-playbook -c local -i {}, \"$f\"",
                shell_quote(endpoint)
            ),
            other => {
                return Err(config_error(format!(
                    "configurationType `{other}` is not supported by the local backend"
                )));
            }
        };
        // The file travels as the command's input into a fresh private file: nothing is
        // written through a path the learner controls.
        let script = format!(
            "f=$(mktemp --suffix=.{ext} /tmp/antidote-stage{stage}.XXXXXX) || exit 1; cat >\"$f\"; \
             export ANTIDOTE_TARGET_HOST={} ANTIDOTE_TARGET_USERNAME={} ANTIDOTE_TARGET_PASSWORD={}; \
             {runner}; rc=$?; rm -f \"$f\"; exit $rc",
            shell_quote(endpoint),
            shell_quote(user),
            shell_quote(password),
        );
        self.run_inside(spec, endpoint, &script, &contents, timeout)
            .await
    }

    async fn exec(
        &self,
        spec: &LivelessonSpec,
        endpoint: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<CommandRun, BackendError> {
        self.run_inside(spec, endpoint, command, &[], timeout).await
    }

    async fn connect(
        &self,
        livelesson_id: &str,
        endpoint: &str,
        port: u16,
    ) -> Result<tokio::net::TcpStream, BackendError> {
        let ns = self.instance_name(livelesson_id, endpoint);
        if !netns::netns_path(&ns).exists() {
            return Err(BackendError::NotRunning {
                endpoint: endpoint.to_owned(),
            });
        }
        netns::connect(&ns, port, Duration::from_secs(2))
            .await
            .map_err(|e| BackendError::Unreachable {
                endpoint: endpoint.to_owned(),
                port,
                message: e.to_string(),
            })
    }

    async fn delete(&self, livelesson_id: &str) -> Result<(), BackendError> {
        self.name_net_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(livelesson_id);
        let name_ns = self.name_netns(livelesson_id);
        let endpoint_prefix = format!("{name_ns}-");
        let namespaces: Vec<String> = netns::list()
            .into_iter()
            .filter(|n| n.starts_with(&endpoint_prefix) || *n == name_ns)
            .collect();
        for ns in &namespaces {
            if !netns::kill_all(ns, Duration::from_secs(10)).await {
                return Err(BackendError::Command {
                    what: format!("stopping the processes of {ns}"),
                    message: "some survived SIGKILL for 10 s".into(),
                });
            }
        }
        for ns in &namespaces {
            // Deleting the namespace destroys its veth ends; their peers go with them.
            if netns::netns_path(ns).exists() {
                netns::ip(&["netns", "del", ns]).await?;
            }
        }
        let dir = self.livelesson_dir(livelesson_id);
        // A process that was entering a namespace while it was deleted (e.g. an endpoint
        // start of a scheduler that was killed) is found by the state directory in its
        // environment.
        let marker = format!("AD_DIR={}/", dir.display());
        for _ in 0..50 {
            if netns::kill_marked(&marker) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if dir.exists() {
            fs::remove_dir_all(&dir)
                .map_err(BackendError::io(format!("removing {}", dir.display())))?;
        }
        Ok(())
    }

    async fn list_instances(&self) -> Result<Vec<InstanceInfo>, BackendError> {
        let prefix = self.prefix();
        Ok(netns::list()
            .into_iter()
            .filter_map(|name| {
                let rest = name.strip_prefix(&prefix)?;
                let (ll, endpoint) = rest.split_once('-')?;
                is_id(ll, 10).then(|| InstanceInfo {
                    livelesson_id: ll.to_owned(),
                    endpoint: endpoint.to_owned(),
                    instance: name.clone(),
                })
            })
            .collect())
    }
}

/// For every valid lesson of `curriculum`: `None` when the local backend can run it, else why
/// not. Needs no state directory (for catalogs and the API's lesson list).
pub fn availability(
    curriculum: &crate::curriculum::Curriculum,
) -> BTreeMap<String, Option<String>> {
    let realisations = builtin_realisations();
    curriculum
        .lessons
        .iter()
        .map(|(slug, loaded)| {
            (
                slug.clone(),
                unavailable_reason(&realisations, &loaded.lesson, &curriculum.images),
            )
        })
        .collect()
}

fn unavailable_reason(
    realisations: &BTreeMap<String, LocalImage>,
    lesson: &Lesson,
    images: &BTreeMap<String, Image>,
) -> Option<String> {
    for ep in &lesson.endpoints {
        let Some(image) = images.get(&ep.image) else {
            return Some(format!("image `{}` is not in the curriculum", ep.image));
        };
        if image.local.is_none() && !realisations.contains_key(&image.slug) {
            return Some(format!(
                "image `{}` (endpoint `{}`) has no local realisation",
                ep.image, ep.name
            ));
        }
        if let Some(kind) = &ep.configuration_type
            && kind.starts_with("napalm")
        {
            return Some(format!(
                "endpoint `{}` uses configurationType `{kind}`, which needs a network OS the local backend cannot run",
                ep.name
            ));
        }
    }
    None
}

/// `unshare --fork` stays around only to wait for the init (ignoring TERM while it does);
/// the init is not its `--kill-child`, so ending it costs nothing and saves a process per
/// endpoint. Only a parent that really is `unshare` is touched.
fn end_waiting_unshare(init: i32) {
    let Ok(stat) = fs::read_to_string(format!("/proc/{init}/stat")) else {
        return;
    };
    // Fields after the parenthesised command name: state, ppid, ...
    let Some(ppid) = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse::<i32>().ok())
    else {
        return;
    };
    let is_unshare =
        fs::read_to_string(format!("/proc/{ppid}/comm")).is_ok_and(|c| c.trim() == "unshare");
    if is_unshare {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(ppid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

fn builtin_realisations() -> BTreeMap<String, LocalImage> {
    // The table is part of the binary; a malformed table is a build-time mistake that the
    // unit test below catches, so an empty table is a safe fallback here.
    let Ok(doc) = yaml::parse(REALISATIONS) else {
        return BTreeMap::new();
    };
    let schema = crate::curriculum::model::schema_of::<BTreeMap<String, LocalImage>>();
    let (json, violations) = schema_check::check(&doc, &schema);
    if !violations.is_empty() {
        return BTreeMap::new();
    }
    serde_json::from_value(json).unwrap_or_default()
}

/// `s` as one single-quoted shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Whether `s` is `len` characters of `[a-z0-9]`.
pub fn is_id(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A random `[a-z0-9]` string (IDs of DESIGN §4).
pub fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; len];
    // /dev/urandom never fails on Linux once the system is up; fall back to time-based
    // entropy rather than panic.
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_err()
    {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (seed >> (i * 5)) as u8;
        }
    }
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// The first and second host address of an IPv4 subnet, and its prefix length.
fn host_addresses(subnet: &str) -> Option<(std::net::Ipv4Addr, std::net::Ipv4Addr, u32)> {
    let (addr, len) = subnet.split_once('/')?;
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    let len: u32 = len.parse().ok()?;
    if len > 30 {
        return None;
    }
    let base = u32::from(addr) & u32::MAX.checked_shl(32 - len).unwrap_or(0);
    Some((
        base.wrapping_add(1).into(),
        base.wrapping_add(2).into(),
        len,
    ))
}

fn tail_of_file(path: &Path, limit: usize) -> String {
    fs::read_to_string(path)
        .map(|t| tail(t.trim_end(), limit))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_realisations_parse() {
        let r = builtin_realisations();
        assert_eq!(r["utility"].kind, LocalKind::Linux);
        assert_eq!(r["frr"].kind, LocalKind::Frr);
        assert!(
            r["frr"].daemons.is_empty(),
            "the init's default daemons apply"
        );
    }

    #[test]
    fn host_addresses_are_the_first_two() {
        assert_eq!(
            host_addresses("10.12.0.0/24"),
            Some((
                "10.12.0.1".parse().unwrap(),
                "10.12.0.2".parse().unwrap(),
                24
            ))
        );
        assert_eq!(host_addresses("10.12.0.0/31"), None);
    }

    #[test]
    fn ids() {
        let id = random_id(10);
        assert!(is_id(&id, 10), "{id}");
        assert!(!is_id("ABCDEFGHIJ", 10));
        assert!(!is_id("abc", 10));
    }

    #[test]
    fn quoting_survives_the_shell() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        assert_eq!(tail("héllo", 3), "llo");
        assert_eq!(tail("ab", 5), "ab");
        assert_eq!(tail("aé", 1), "");
    }
}
