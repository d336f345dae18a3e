//! The local backend on this machine, for real: namespaces, overlays, sshd, FRR, veth links.
//! Needs root and the packages `deploy/local/services.sh install` puts in place.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use antidote_platform::backend::local::{LocalBackend, random_id};
use antidote_platform::backend::{Backend, BackendError, LivelessonSpec};
use antidote_platform::curriculum::Curriculum;
use common::{Lab, assert_gone, bundled, fixture, repo_root, spec_for};

fn spec(c: &Curriculum, slug: &str) -> LivelessonSpec {
    spec_for(c, slug, &random_id(10))
}

/// Creates every endpoint and link and waits until each ssh presentation logs in.
async fn boot(backend: &LocalBackend, spec: &LivelessonSpec) {
    let creates = spec
        .lesson
        .endpoints
        .iter()
        .map(|e| backend.create_endpoint(spec, &e.name));
    for r in futures::future::join_all(creates).await {
        r.unwrap();
    }
    backend.create_links(spec).await.unwrap();
    for e in &spec.lesson.endpoints {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match backend.check_reachable(spec, &e.name, 22, true).await {
                Ok(()) => break,
                Err(err) if Instant::now() > deadline => panic!("{}: {err}", e.name),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

async fn sh(backend: &LocalBackend, spec: &LivelessonSpec, ep: &str, cmd: &str) -> (i32, String) {
    let run = backend
        .exec(spec, ep, cmd, Duration::from_secs(20))
        .await
        .unwrap();
    (run.exit_code.unwrap_or(-1), run.output)
}

async fn verify(backend: &LocalBackend, spec: &LivelessonSpec, stage: usize) -> bool {
    let v = spec.lesson.stages[stage].verify.as_ref().unwrap();
    sh(backend, spec, &v.endpoint, &v.command).await.0 == 0
}

async fn eventually_verifies(backend: &LocalBackend, spec: &LivelessonSpec, stage: usize) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while !verify(backend, spec, stage).await {
        assert!(Instant::now() < deadline, "stage {stage} never verified");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn nre_labs_utility_lessons_boot_with_their_files_and_tools() {
    let lab = Lab::new();
    let c = fixture();
    let spec = spec(&c, "yaml-introduction");
    boot(&lab.backend, &spec).await;

    let (code, out) = sh(
        &lab.backend,
        &spec,
        "linux1",
        "cat /antidote/stage0/list.yaml",
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("- "), "{out}");
    let (code, out) = sh(
        &lab.backend,
        &spec,
        "linux1",
        "su - antidote -c \"python -c 'import yaml, jinja2; print(42)'\"",
    )
    .await;
    assert_eq!((code, out.trim()), (0, "42"));
    let (code, out) = sh(
        &lab.backend,
        &spec,
        "linux1",
        "hostname; su - antidote -c pwd",
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "linux1\n/home/antidote\n");
    // The wrong password is refused: the login check is real.
    let mut wrong = spec.clone();
    wrong.images.get_mut("utility").unwrap().ssh_password = Some("nope".into());
    assert!(matches!(
        lab.backend
            .check_reachable(&wrong, "linux1", 22, true)
            .await,
        Err(BackendError::Unreachable { .. })
    ));

    lab.backend.delete(&spec.livelesson_id).await.unwrap();
    assert_gone(&lab, &spec.livelesson_id);
    // Deleting again is fine.
    lab.backend.delete(&spec.livelesson_id).await.unwrap();
}

#[tokio::test]
async fn napalm_lesson_is_unavailable_locally_naming_the_image() {
    let lab = Lab::new();
    let c = fixture();
    let l = &c.lessons["napalm-multi-vendor-network-automation"].lesson;
    let reason = lab.backend.unavailable_reason(l, &c.images).unwrap();
    assert!(reason.contains("vqfx-snap1"), "{reason}");
    assert_eq!(
        lab.backend
            .unavailable_reason(&c.lessons["linux-basics"].lesson, &c.images),
        None
    );
}

#[tokio::test]
async fn three_router_lesson_configures_verifies_and_changes_stage() {
    let lab = Lab::new();
    let c = bundled();
    let spec = spec(&c, "ospf-triangle");
    boot(&lab.backend, &spec).await;

    assert!(
        !verify(&lab.backend, &spec, 0).await,
        "verify passed before configuration"
    );
    for stage in [0, 1] {
        for ep in &spec.lesson.endpoints {
            let run = lab
                .backend
                .configure(&spec, &ep.name, stage, Duration::from_secs(30))
                .await
                .unwrap();
            assert!(run.succeeded(), "{} stage {stage}: {run:?}", ep.name);
        }
        eventually_verifies(&lab.backend, &spec, stage).await;
    }
    // The host reaches r3's loopback from linux1 through r1 and the triangle.
    let (code, out) = sh(&lab.backend, &spec, "linux1", "ping -c1 -W2 3.3.3.3").await;
    assert_eq!(code, 0, "{out}");
    // Endpoints know each other by name, as in NRE Labs.
    let (code, out) = sh(&lab.backend, &spec, "linux1", "ping -c1 -W2 r2").await;
    assert_eq!(code, 0, "{out}");

    lab.backend.delete(&spec.livelesson_id).await.unwrap();
    assert_gone(&lab, &spec.livelesson_id);
}

#[tokio::test]
async fn endpoints_are_isolated_from_the_host_and_each_other() {
    let lab = Lab::new();
    let c = bundled();
    let spec = spec(&c, "ospf-troubleshooting");
    boot(&lab.backend, &spec).await;
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();

    // Host data is masked: /root is empty and the project checkout is not there.
    let repo = repo_root().display().to_string();
    let (code, out) = sh(
        &lab.backend,
        &spec,
        "r1",
        &format!("test -z \"$(ls -A /root)\" && ! test -e {repo}/Cargo.toml"),
    )
    .await;
    assert_eq!(code, 0, "host files visible: {out}");
    // Root inside (the learner has sudo) cannot reach kernel-wide settings or devices...
    for escape in [
        "echo '|/tmp/x' > /proc/sys/kernel/core_pattern",
        "mount -o remount,rw /sys",
        "mknod /tmp/disk b 254 0",
        "mount -t tmpfs none /mnt",
    ] {
        let (code, out) = sh(&lab.backend, &spec, "r1", escape).await;
        assert_ne!(code, 0, "`{escape}` worked inside an endpoint: {out}");
    }
    // ... but keeps what a network lab needs.
    let (code, out) = sh(
        &lab.backend,
        &spec,
        "r1",
        "sysctl -w net.ipv4.conf.all.rp_filter=0 && ip link add v0 type veth peer name v1",
    )
    .await;
    assert_eq!(code, 0, "{out}");
    // A learner's symlink where configuration files once went does not redirect the
    // platform's writes onto the host.
    let target = std::env::temp_dir().join(format!("antidote-symlink-{}", spec.livelesson_id));
    let (code, out) = sh(
        &lab.backend,
        &spec,
        "r1",
        &format!(
            "for s in 0 1; do ln -s {} /tmp/antidote-stage$s-config.conf; done",
            target.display()
        ),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let run = lab
        .backend
        .configure(&spec, "r1", 0, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(run.succeeded(), "{run:?}");
    assert!(
        !target.exists(),
        "the platform wrote through a learner's symlink"
    );
    // Only the lesson's own user has a password hash; the host's are gone.
    let (_, out) = sh(
        &lab.backend,
        &spec,
        "r1",
        "awk -F: '$2 ~ /^[$]/ {print $1}' /etc/shadow",
    )
    .await;
    assert_eq!(out.trim(), "antidote", "host password hashes visible");

    // Writes stay inside the endpoint (this one last on r1: it removes the home directory).
    let marker = format!("/etc/antidote-isolation-{}", spec.livelesson_id);
    let (code, out) = sh(
        &lab.backend,
        &spec,
        "r1",
        &format!("touch {marker} && rm -rf /home/* && ls /home | wc -l"),
    )
    .await;
    assert_eq!((code, out.trim()), (0, "0"));
    assert!(!Path::new(&marker).exists(), "write reached the host");
    let (code, _) = sh(&lab.backend, &spec, "r2", &format!("test -e {marker}")).await;
    assert_ne!(code, 0, "write reached another endpoint");
    let (_, out) = sh(&lab.backend, &spec, "r2", "ls /home").await;
    assert_eq!(out.trim(), "antidote", "r2 lost its home");

    // No path to host services: neither loopback (its own) nor any host address answers.
    for addr in ["127.0.0.1".to_owned(), host_address()] {
        let (code, _) = sh(
            &lab.backend,
            &spec,
            "r1",
            &format!("timeout 3 bash -c '</dev/tcp/{addr}/{port}'"),
        )
        .await;
        assert_ne!(code, 0, "endpoint reached the host at {addr}:{port}");
    }
    drop(listener);

    lab.backend.delete(&spec.livelesson_id).await.unwrap();
    assert_gone(&lab, &spec.livelesson_id);
}

/// The host's address on its default route (or loopback when it has none).
fn host_address() -> String {
    let out = std::process::Command::new("ip")
        .args(["-4", "-o", "route", "get", "192.0.2.1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "src")
        .nth(1)
        .unwrap_or("127.0.0.1")
        .to_owned()
}

#[tokio::test]
async fn an_endpoint_that_cannot_start_fails_with_its_output() {
    let lab = Lab::new();
    let c = fixture();
    let mut spec = spec(&c, "linux-basics");
    // A user name useradd refuses: the init fails before sshd starts.
    spec.images.get_mut("utility").unwrap().ssh_user = Some("Bad User!".into());
    let err = lab
        .backend
        .create_endpoint(&spec, "linux1")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, BackendError::EndpointFailed { .. }), "{text}");
    assert!(text.contains("useradd"), "{text}");
    lab.backend.delete(&spec.livelesson_id).await.unwrap();
    assert_gone(&lab, &spec.livelesson_id);
}

#[tokio::test]
async fn sweep_removes_only_what_is_not_kept() {
    let lab = Lab::new();
    let c = fixture();
    let keep = spec(&c, "linux-basics");
    let orphan = spec(&c, "linux-basics");
    boot(&lab.backend, &keep).await;
    boot(&lab.backend, &orphan).await;
    // Another installation's instance looks alike but carries another ID: untouched.
    let other = Lab::new();
    let theirs = spec(&c, "linux-basics");
    boot(&other.backend, &theirs).await;

    let removed = lab
        .backend
        .sweep(&HashSet::from([keep.livelesson_id.clone()]))
        .await
        .unwrap();
    assert_eq!(removed, vec![orphan.livelesson_id.clone()]);
    assert_gone(&lab, &orphan.livelesson_id);
    let (code, _) = sh(&lab.backend, &keep, "linux1", "true").await;
    assert_eq!(code, 0);
    let (code, _) = sh(&other.backend, &theirs, "linux1", "true").await;
    assert_eq!(code, 0);

    lab.backend.delete(&keep.livelesson_id).await.unwrap();
    other.backend.delete(&theirs.livelesson_id).await.unwrap();
    assert_gone(&other, &theirs.livelesson_id);
}

/// A curriculum with one lesson whose endpoints use NRE Labs' `python` and `ansible`
/// configuration types and our `shell` type.
fn configuration_types_curriculum(dir: &Path) -> Curriculum {
    let write = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("curriculum.meta.yaml", "name: config-types\n");
    write(
        "images/utility/image.meta.yaml",
        "slug: utility\nsshUser: antidote\nsshPassword: antidotepassword\nconfigUser: antidote\nconfigPassword: antidotepassword\n",
    );
    let endpoint = |name: &str, kind: &str| {
        format!(
            "- name: {name}\n  image: utility\n  configurationType: {kind}\n  presentations:\n  - name: cli\n    port: 22\n    type: ssh\n"
        )
    };
    write(
        "lessons/config-types/lesson.meta.yaml",
        &format!(
            "name: Config types\nslug: config-types\ncategory: tools\ntier: local\ndescription: d\n\
             stages:\n- description: s\n  guideType: markdown\nendpoints:\n{}{}{}",
            endpoint("py1", "python"),
            endpoint("ans1", "ansible"),
            endpoint("sh1", "shell"),
        ),
    );
    write("lessons/config-types/stage0/guide.md", "# s\n");
    // NRE Labs' python configurators read the target from the environment.
    write(
        "lessons/config-types/stage0/configs/py1.py",
        "import os\nwith open('/tmp/configured', 'w') as f:\n    f.write(os.environ['ANTIDOTE_TARGET_HOST'] + ' ' + os.environ['ANTIDOTE_TARGET_USERNAME'])\n",
    );
    write(
        "lessons/config-types/stage0/configs/ans1.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n  - copy:\n      dest: /tmp/configured\n      content: \"{{ inventory_hostname }} by ansible\"\n",
    );
    write(
        "lessons/config-types/stage0/configs/sh1.sh",
        "echo \"$(hostname) by shell\" > /tmp/configured\n",
    );
    let c = antidote_platform::curriculum::load(dir).unwrap();
    assert!(c.is_valid(), "{:?}", c.problems);
    c
}

#[tokio::test]
async fn python_ansible_and_shell_configurations_run_inside_the_endpoint() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let c = configuration_types_curriculum(dir.path());
    let spec = spec(&c, "config-types");
    boot(&lab.backend, &spec).await;
    for (ep, expected) in [
        ("py1", "py1 antidote"),
        ("ans1", "ans1 by ansible"),
        ("sh1", "sh1 by shell"),
    ] {
        let run = lab
            .backend
            .configure(&spec, ep, 0, Duration::from_secs(60))
            .await
            .unwrap();
        assert!(run.succeeded(), "{ep}: {run:?}");
        let (code, out) = sh(&lab.backend, &spec, ep, "cat /tmp/configured").await;
        assert_eq!((code, out.trim()), (0, expected));
    }
    // A failing configuration keeps its exit code and output for the triage page.
    std::fs::write(
        spec.lesson_dir.join("stage0/configs/sh1.sh"),
        "echo about to fail; exit 3\n",
    )
    .unwrap();
    let run = lab
        .backend
        .configure(&spec, "sh1", 0, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(run.exit_code, Some(3));
    assert!(run.output.contains("about to fail"), "{run:?}");
    lab.backend.delete(&spec.livelesson_id).await.unwrap();
    assert_gone(&lab, &spec.livelesson_id);
}
