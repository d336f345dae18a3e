//! A whole Antidote in the test process: the scheduler with a [`Lab`]'s local backend and
//! the api role on a free loopback port, on a NATS prefix of its own, against the real NATS
//! server. What the API, terminal and browser tests talk to over real HTTP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use antidote_platform::api::AppState;
use antidote_platform::bus::{self, Layout};
use antidote_platform::curriculum::Curriculum;
use antidote_platform::livelesson::client::Client;
use antidote_platform::scheduler::{Scheduler, SchedulerConfig};
use antidote_platform::web::Vendor;
use tokio_util::sync::CancellationToken;

use super::{Lab, nats_url, repo_root};

/// The maintainer token every test stack accepts.
pub const MAINTAINER_TOKEN: &str = "maintainer-test-token";

pub struct Stack {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub client: Client,
    pub lab: Lab,
    shutdown: CancellationToken,
    scheduler: tokio::task::JoinHandle<anyhow::Result<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn nats() -> async_nats::Client {
    let url = nats_url();
    async_nats::connect(&url).await.unwrap_or_else(|e| {
        panic!("cannot reach NATS at {url}: {e}; run deploy/local/services.sh start")
    })
}

impl Stack {
    pub async fn start(curriculum: Curriculum) -> Stack {
        Stack::start_with(curriculum, |_| {}).await
    }

    /// Like [`Stack::start`], with the scheduler's settings adjusted by `tune`.
    pub async fn start_with(
        curriculum: Curriculum,
        tune: impl FnOnce(&mut SchedulerConfig),
    ) -> Stack {
        Stack::start_full(curriculum, tune, None).await
    }

    /// Like [`Stack::start`], with the maintainers' views reading `telemetry` (a ClickHouse
    /// client pointing at a migrated database).
    pub async fn start_with_telemetry(
        curriculum: Curriculum,
        telemetry: clickhouse::Client,
    ) -> Stack {
        Stack::start_full(curriculum, |_| {}, Some(telemetry)).await
    }

    pub async fn start_full(
        curriculum: Curriculum,
        tune: impl FnOnce(&mut SchedulerConfig),
        telemetry: Option<clickhouse::Client>,
    ) -> Stack {
        Stack::start_inner(curriculum, tune, telemetry, None).await
    }

    /// Like [`Stack::start_with_telemetry`], with the api role reaching NATS through a
    /// [`Relay`] the test can cut (the scheduler keeps its own connection).
    pub async fn start_cuttable(
        curriculum: Curriculum,
        telemetry: clickhouse::Client,
    ) -> (Stack, Relay) {
        let target = nats_url()
            .trim_start_matches("nats://")
            .trim_end_matches('/')
            .to_owned();
        let relay = Relay::new(target);
        relay.up().await;
        let url = format!("nats://127.0.0.1:{}", relay.port);
        let api_nats = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .reconnect_delay_callback(|_| Duration::from_millis(200))
            .connect(&url)
            .await
            .expect("NATS through the relay");
        let stack = Stack::start_inner(curriculum, |_| {}, Some(telemetry), Some(api_nats)).await;
        (stack, relay)
    }

    async fn start_inner(
        curriculum: Curriculum,
        tune: impl FnOnce(&mut SchedulerConfig),
        telemetry: Option<clickhouse::Client>,
        api_nats: Option<async_nats::Client>,
    ) -> Stack {
        let lab = Lab::new();
        let layout = Layout::new(format!(
            "t{}",
            antidote_platform::backend::local::random_id(8)
        ));
        let curriculum = Arc::new(curriculum);
        let mut config = SchedulerConfig::new(format!("test-{}", layout.prefix()));
        config.reachability_timeout = Duration::from_secs(60);
        tune(&mut config);
        let scheduler = Scheduler::new(
            config,
            nats().await,
            layout.clone(),
            Arc::clone(&curriculum),
            lab.backend.clone(),
        )
        .await
        .expect("scheduler starts");
        let shutdown = CancellationToken::new();
        let scheduler = tokio::spawn(scheduler.run(shutdown.clone()));
        let api_nats = match api_nats {
            Some(c) => c,
            None => nats().await,
        };
        let client = Client::new(api_nats, layout, "api").await.expect("client");
        let vendor = Vendor::load(&repo_root().join("web/node_modules"));
        assert!(
            vendor.missing.is_none(),
            "{:?} (scripts/test.sh runs npm ci)",
            vendor.missing
        );
        let mut state = AppState::new(client.clone(), curriculum, lab.backend.clone(), vendor)
            .with_maintainer_tokens(vec![MAINTAINER_TOKEN.to_owned()]);
        if let Some(t) = telemetry {
            state = state.with_telemetry(t);
        }
        let (addr, server) = antidote_platform::api::serve(state, "127.0.0.1:0", shutdown.clone())
            .await
            .expect("api listens");
        Stack {
            base: format!("http://{addr}"),
            client,
            lab,
            shutdown,
            scheduler,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits until `/readyz` says the api is (`true`) or is not (`false`) connected to NATS.
    pub async fn wait_readyz(&self, ready: bool) {
        let (secs, never) = if ready {
            (30, "the api never reconnected")
        } else {
            (20, "the api never noticed NATS was gone")
        };
        let deadline = Instant::now() + Duration::from_secs(secs);
        while (http()
            .get(self.url("/readyz"))
            .send()
            .await
            .expect("readyz")
            .status()
            == 200)
            != ready
        {
            assert!(Instant::now() < deadline, "{never}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Deletes every livelesson, stops both roles and removes the NATS streams and buckets.
    pub async fn stop(self) {
        let ids = self
            .client
            .store
            .livelessons
            .keys()
            .await
            .unwrap_or_default();
        for id in &ids {
            let _ = self.client.delete(id, "test").await;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let left = self
                .client
                .store
                .livelessons
                .keys()
                .await
                .unwrap_or_default();
            if left.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.shutdown.cancel();
        let _ = self.server.await;
        let _ = self.scheduler.await;
        bus::remove(&self.client.js, &self.client.layout).await;
    }
}

/// A reqwest client with its own cookie-less state; the session goes in a header.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// Creates a session; returns its ID.
pub async fn session(stack: &Stack) -> String {
    let r = http()
        .post(stack.url("/api/v1/sessions"))
        .send()
        .await
        .expect("POST /sessions");
    assert_eq!(r.status(), 201);
    let body: serde_json::Value = r.json().await.expect("json");
    body["session_id"].as_str().expect("session_id").to_owned()
}

/// Waits until livelesson `id` (of `session`) has status `want`, as the API reports it;
/// a FAILED livelesson when something else is wanted fails at once (FAILED is final).
pub async fn wait_status(stack: &Stack, session: &str, id: &str, want: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ll: serde_json::Value = http()
            .get(stack.url(&format!("/api/v1/livelessons/{id}")))
            .header("x-antidote-session", session)
            .send()
            .await
            .expect("GET livelesson")
            .json()
            .await
            .expect("json");
        if ll["status"] == want {
            return ll;
        }
        assert_ne!(ll["status"], "FAILED", "livelesson failed: {ll}");
        assert!(Instant::now() < deadline, "never {want}: {ll}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts a livelesson of `lesson` for `session` and waits until it is READY.
pub async fn ready_livelesson(stack: &Stack, session: &str, lesson: &str) -> serde_json::Value {
    let r = http()
        .post(stack.url("/api/v1/livelessons"))
        .header("x-antidote-session", session)
        .json(&serde_json::json!({"lesson": lesson, "stage": 0}))
        .send()
        .await
        .expect("POST /livelessons");
    assert_eq!(r.status(), 202, "{:?}", r.text().await);
    let body: serde_json::Value = r.json().await.expect("json");
    let id = body["id"].as_str().expect("id").to_owned();
    wait_status(stack, session, &id, "READY").await
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A terminal websocket as the browser uses it (frames of DESIGN §9).
pub struct Term {
    ws: Socket,
    /// Everything the terminal printed so far (lossy UTF-8).
    pub screen: String,
}

/// The websocket request for `endpoint`'s terminal, as `session`.
pub fn terminal_request(
    stack: &Stack,
    session: &str,
    livelesson: &str,
    endpoint: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!(
        "{}/api/v1/livelessons/{livelesson}/endpoints/{endpoint}/terminal?cols=80&rows=24",
        stack.base.replacen("http://", "ws://", 1)
    );
    let mut request = url.into_client_request().expect("ws request");
    request
        .headers_mut()
        .insert("x-antidote-session", session.parse().expect("header"));
    request
}

impl Term {
    pub async fn open(stack: &Stack, session: &str, livelesson: &str, endpoint: &str) -> Term {
        let request = terminal_request(stack, session, livelesson, endpoint);
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("terminal websocket opens");
        Term {
            ws,
            screen: String::new(),
        }
    }

    async fn frame(&mut self, kind: u8, payload: &[u8]) {
        use futures::SinkExt;
        let mut frame = vec![kind];
        frame.extend_from_slice(payload);
        self.ws
            .send(tokio_tungstenite::tungstenite::Message::Binary(
                frame.into(),
            ))
            .await
            .expect("websocket send");
    }

    /// Types `text` (a data frame).
    pub async fn send(&mut self, text: &str) {
        self.frame(0, text.as_bytes()).await;
    }

    pub async fn resize(&mut self, cols: u16, rows: u16) {
        let json = serde_json::json!({"cols": cols, "rows": rows}).to_string();
        self.frame(1, json.as_bytes()).await;
    }

    /// Reads until the screen (since the last `expect`) contains `needle`; returns that part.
    pub async fn expect(&mut self, needle: &str, secs: u64) -> String {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(at) = self.screen.find(needle) {
                let seen = self.screen[..at + needle.len()].to_owned();
                self.screen.drain(..at + needle.len());
                return seen;
            }
            let next = tokio::time::timeout_at(deadline, self.ws.next()).await;
            match next {
                Ok(Some(Ok(Message::Binary(b)))) => {
                    assert_eq!(b.first(), Some(&0), "server frames are data frames");
                    self.screen.push_str(&String::from_utf8_lossy(&b[1..]));
                }
                Ok(Some(Ok(Message::Close(c)))) => {
                    panic!(
                        "terminal closed ({c:?}) before {needle:?}; screen: {}",
                        self.screen
                    )
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => panic!("websocket error {e}; screen: {}", self.screen),
                Ok(None) => panic!("websocket ended; screen: {}", self.screen),
                Err(_) => panic!("no {needle:?} within {secs} s; screen: {}", self.screen),
            }
        }
    }
}

/// `text` as the UI escapes it in HTML.
pub fn escape_html(text: &str) -> String {
    antidote_platform::web::escape(text)
}

/// A ClickHouse database of the test's own, migrated, with the ingest role (every feed)
/// draining a stack's streams into it. [`Ingested::stop`] stops ingest and drops the database.
pub struct Ingested {
    pub url: String,
    pub database: String,
    /// Points at `database`.
    pub client: clickhouse::Client,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Ingested {
    /// Creates and migrates `<base>_<pid>` on the test ClickHouse.
    pub async fn database(base: &str) -> (String, String, clickhouse::Client) {
        let url = std::env::var("ANTIDOTE_CLICKHOUSE_URL")
            .unwrap_or_else(|_| "http://127.0.0.1:18123".into());
        let database = format!("{base}_{}", std::process::id());
        let ch = antidote_telemetry::clickhouse_client::client(&url);
        antidote_telemetry::schema::migrate(&ch, &url, &database)
            .await
            .unwrap_or_else(|e| panic!("cannot migrate {database} at {url}: {e}"));
        let client = ch.with_database(&database);
        (url, database, client)
    }

    /// Runs ingest for `stack`'s streams into the database `database()` made.
    pub async fn start(stack: &Stack, db: (String, String, clickhouse::Client)) -> Ingested {
        let url = db.0.clone();
        Ingested::start_via(stack, db, &url).await
    }

    /// Like [`Ingested::start`], with ingest reaching ClickHouse at `via` (a [`Relay`]).
    pub async fn start_via(
        stack: &Stack,
        (url, database, client): (String, String, clickhouse::Client),
        via: &str,
    ) -> Ingested {
        let stop = CancellationToken::new();
        let task = tokio::spawn(antidote_platform::ingest::run_all(
            antidote_platform::ingest::IngestConfig {
                batch_size: 1000,
                flush_interval: Duration::from_millis(200),
                database: database.clone(),
                retention_days: 0,
            },
            nats().await,
            stack.client.layout.clone(),
            antidote_telemetry::clickhouse_client::client(via),
            stop.clone(),
        ));
        Ingested {
            url,
            database,
            client,
            stop,
            task,
        }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
        let _ = antidote_telemetry::clickhouse_client::client(&self.url)
            .query(&format!("DROP DATABASE IF EXISTS {}", self.database))
            .execute()
            .await;
    }
}

/// A TCP relay to `target` on a port of its own that a test can cut (nothing listens, open
/// connections drop) and bring back: a service outage without stopping the shared server.
pub struct Relay {
    pub port: u16,
    target: String,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Relay {
    /// A relay that is down (nothing listens on `port` yet).
    pub fn new(target: String) -> Relay {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        Relay {
            port,
            target,
            task: std::sync::Mutex::new(None),
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Listens and forwards every connection.
    pub async fn up(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "cannot listen on {}: {e}",
                        self.port
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let target = self.target.clone();
        let task = tokio::spawn(async move {
            // Dropped with the task: every open connection goes with it.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        if let Some(old) = self.task.lock().expect("relay lock").replace(task) {
            old.abort();
        }
    }

    /// Stops listening and drops every open connection.
    pub async fn cut(&self) {
        let task = self.task.lock().expect("relay lock").take();
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Ok(mut t) = self.task.lock()
            && let Some(t) = t.take()
        {
            t.abort();
        }
    }
}

static TELEMETRY: std::sync::OnceLock<antidote_telemetry::Telemetry> = std::sync::OnceLock::new();

/// Sends this test process's spans and log records to `stack`'s streams, as a role does. One
/// stack per test binary gets them: the first to ask (later calls return false).
pub async fn export_telemetry_to(stack: &Stack) -> bool {
    let telemetry = TELEMETRY.get_or_init(|| antidote_telemetry::init("test"));
    let (Some(spans), Some(logs)) = (telemetry.take_spans(), telemetry.take_logs()) else {
        return false;
    };
    let js = async_nats::jetstream::new(nats().await);
    // Runs until the test process ends.
    let forever = CancellationToken::new();
    tokio::spawn(antidote_telemetry::spans::publish(
        spans,
        js.clone(),
        stack.client.layout.spans(),
        forever.clone(),
    ));
    tokio::spawn(antidote_telemetry::logs::publish(
        logs,
        js,
        stack.client.layout.logs(),
        forever,
    ));
    true
}

/// A maintainer's sign-in cookie (`antidote_maintainer=…`), from the sign-in form.
pub async fn maintainer_cookie(stack: &Stack) -> String {
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
        .post(stack.url("/triage/login"))
        .form(&[("token", MAINTAINER_TOKEN)])
        .send()
        .await
        .expect("sign in");
    assert_eq!(r.status(), 303, "sign-in answered {}", r.status());
    let set = r.headers()["set-cookie"].to_str().expect("a cookie");
    set.split(';').next().expect("name=value").to_owned()
}
