//! Shared helpers of the platform's integration tests: curricula, a local backend in a
//! throw-away state directory that cleans up even when a test panics, and checks that nothing
//! of a livelesson is left on the machine.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use antidote_platform::backend::LivelessonSpec;
use antidote_platform::backend::local::{LocalBackend, LocalConfig};
use antidote_platform::curriculum::{self, Curriculum};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("platform/ has a parent")
        .to_path_buf()
}

pub fn fixture_dir() -> PathBuf {
    std::env::var_os("ANTIDOTE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/fixtures"))
        .join("nrelabs-curriculum")
}

pub fn fixture() -> Curriculum {
    curriculum::load(&fixture_dir()).expect("fixture loads")
}

pub fn bundled() -> Curriculum {
    curriculum::load(&repo_root().join("curriculum")).expect("bundled curriculum loads")
}

/// What the scheduler would hand the backend for livelesson `id` of lesson `slug`.
pub fn spec_for(c: &Curriculum, slug: &str, id: &str) -> LivelessonSpec {
    let loaded = &c.lessons[slug];
    LivelessonSpec {
        livelesson_id: id.to_owned(),
        session_id: "testsess01".to_owned(),
        lesson: loaded.lesson.clone(),
        lesson_dir: loaded.dir.clone(),
        images: c.images.clone(),
    }
}

pub fn nats_url() -> String {
    std::env::var("ANTIDOTE_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:14222".into())
}

/// A local backend in its own state directory (so its own installation ID).
pub struct Lab {
    pub backend: Arc<LocalBackend>,
    pub state: tempfile::TempDir,
}

impl Lab {
    pub fn new() -> Lab {
        let state = tempfile::Builder::new()
            .prefix("antidote-local-test")
            .tempdir()
            .expect("temp dir");
        let backend = LocalBackend::new(LocalConfig::new(state.path())).expect("local backend");
        Lab {
            backend: Arc::new(backend),
            state,
        }
    }

    pub fn state_path(&self) -> String {
        self.state
            .path()
            .canonicalize()
            .unwrap_or_else(|_| self.state.path().to_path_buf())
            .display()
            .to_string()
    }

    /// Network namespaces of this lab's installation.
    pub fn namespaces(&self) -> Vec<String> {
        let prefix = format!("ad{}-", self.backend.installation_id());
        std::fs::read_dir("/run/netns")
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Lab {
    /// Removes whatever a failed test left behind (synchronously: Drop cannot await).
    fn drop(&mut self) {
        for ns in self.namespaces() {
            let pids = std::process::Command::new("ip")
                .args(["netns", "pids", &ns])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for pid in pids.split_whitespace() {
                let _ = std::process::Command::new("kill")
                    .args(["-9", pid])
                    .status();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        for ns in self.namespaces() {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &ns])
                .status();
        }
    }
}

/// Nothing of the livelesson is left: namespaces, interfaces, mounts, processes, files.
pub fn assert_gone(lab: &Lab, ll: &str) {
    let netns = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let netns = String::from_utf8_lossy(&netns.stdout);
    assert!(!netns.contains(ll), "namespace left: {netns}");
    let links = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("ip link");
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(
        !links.contains("mgmt0"),
        "interface left in the host: {links}"
    );
    let state = lab.state_path();
    let mounts = std::fs::read_to_string("/proc/mounts").expect("/proc/mounts");
    assert!(!mounts.contains(&state), "mount left: {mounts}");
    // Every process of an endpoint carries AD_DIR=<state>/instances/<livelesson>/<endpoint>.
    let marker = format!("AD_DIR={state}/instances/{ll}/");
    for entry in std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(Result::ok)
    {
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let environ = String::from_utf8_lossy(&environ);
        assert!(
            !environ.contains(&marker),
            "process left: {:?}",
            entry.path()
        );
    }
    assert!(!Path::new(&state).join("instances").join(ll).exists());
}

/// `bash-basics` of the bundled curriculum, a lesson whose endpoint is configured
/// (`configured-host`), one whose configuration fails (`broken-config`) and one whose http
/// presentation never answers (`never-reachable`).
pub fn broken_labs(dir: &Path) -> Curriculum {
    let root = repo_root().join("curriculum");
    for rel in [
        "curriculum.meta.yaml",
        "collections/antidote/collection.meta.yaml",
        "images/utility/image.meta.yaml",
        "lessons/bash-basics/lesson.meta.yaml",
        "lessons/bash-basics/stage0/guide.md",
        "lessons/bash-basics/stage1/guide.md",
        "lessons/bash-basics/stage1/access.log",
    ] {
        let to = dir.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root.join(rel), to).unwrap();
    }
    let write = |rel: &str, text: &str| {
        let to = dir.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, text).unwrap();
    };
    let lesson = |slug: &str, endpoint: &str| {
        format!(
            "name: {slug}\nslug: {slug}\ncategory: fundamentals\ntier: prod\n\
             description: A broken lab\nshortDescription: Broken\nendpoints:\n{endpoint}\
             stages:\n- description: Broken\n  guideType: markdown\n"
        )
    };
    write(
        "lessons/broken-config/lesson.meta.yaml",
        &lesson(
            "broken-config",
            "- name: linux1\n  image: utility\n  configurationType: shell\n  presentations:\n  - name: cli\n    port: 22\n    type: ssh\n",
        ),
    );
    write("lessons/broken-config/stage0/guide.md", "# Broken\n");
    write(
        "lessons/broken-config/stage0/configs/linux1.sh",
        "echo about to fail; exit 3\n",
    );
    write(
        "lessons/never-reachable/lesson.meta.yaml",
        &lesson(
            "never-reachable",
            "- name: web1\n  image: utility\n  presentations:\n  - name: site\n    port: 8000\n    type: http\n",
        ),
    );
    write("lessons/never-reachable/stage0/guide.md", "# Broken\n");
    write(
        "lessons/configured-host/lesson.meta.yaml",
        &lesson(
            "configured-host",
            "- name: linux1\n  image: utility\n  configurationType: shell\n  presentations:\n  - name: cli\n    port: 22\n    type: ssh\n",
        ),
    );
    write("lessons/configured-host/stage0/guide.md", "# Configured\n");
    write(
        "lessons/configured-host/stage0/configs/linux1.sh",
        "echo configured > /tmp/configured\n",
    );
    let c = antidote_platform::curriculum::load(dir).unwrap();
    assert!(c.invalid_lessons.is_empty(), "{:?}", c.invalid_lessons);
    c
}

pub mod stack;
