//! `antidote validate` and `antidote schema` as a lesson author runs them: on the real NRE Labs
//! fixture, on the bundled curriculum, and on a broken copy with one defect of every kind.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("platform/ has a parent")
        .to_path_buf()
}

/// The real NRE Labs subset in ../shared/fixtures (read-only: tests copy it).
fn fixture() -> PathBuf {
    let dir = std::env::var_os("ANTIDOTE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/fixtures"))
        .join("nrelabs-curriculum");
    assert!(
        dir.join("curriculum.meta.yaml").is_file(),
        "NRE Labs fixture not found at {} (set ANTIDOTE_FIXTURES)",
        dir.display()
    );
    dir
}

fn antidote(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_antidote"))
        .args(args)
        .output()
        .expect("run antidote")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
            let mut perms = fs::metadata(&target).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            fs::set_permissions(&target, perms).unwrap();
        }
    }
}

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

#[test]
fn nrelabs_fixture_is_valid_with_the_expected_counts() {
    let dir = fixture();
    let out = antidote(&["validate", dir.to_str().unwrap()]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let last = text.lines().last().unwrap();
    assert!(
        last.ends_with("5 lessons (5 valid), 14 images, 6 collections, 0 problems"),
        "{last}"
    );
}

#[test]
fn bundled_curriculum_is_valid() {
    let dir = repo_root().join("curriculum");
    let out = antidote(&["validate", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stdout(&out));
}

#[test]
fn missing_directory_is_a_one_line_error() {
    let out = antidote(&["validate", "/nonexistent/curriculum"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/curriculum"), "{err}");
}

/// A lesson that is valid apart from what each test adds to it.
const GOOD_ENDPOINT: &str = "
- name: linux1
  image: utility
  presentations:
  - name: cli
    port: 22
    type: ssh
";

#[test]
fn every_kind_of_defect_is_reported_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("broken");
    copy_dir(&fixture(), &root);

    // YAML syntax error (line 3).
    write(
        &root,
        "images/salt/image.meta.yaml",
        "slug: salt\ndescription: salt\nsshUser: antidote: x\n",
    );

    // Schema violations, all in one file: bad slug pattern (2), bad enum (4), unknown key (6).
    write(
        &root,
        "lessons/schema-errors/lesson.meta.yaml",
        &format!(
            "name: Schema errors\nslug: Schema_Errors\ncategory: fundamentals\ntier: gold\n\
             description: d\ndifficulty: easy\nstages:\n- description: s\n  guideType: markdown\n\
             endpoints:{GOOD_ENDPOINT}"
        ),
    );
    write(&root, "lessons/schema-errors/stage0/guide.md", "# s\n");

    // Rules beyond the schema, in one schema-valid lesson. Line numbers are in the comments.
    let semantic = "\
name: Semantic errors
slug: semantic-errors
category: tools
tier: prod
description: d
prereqs:
- no-such-lesson
endpoints:
- name: linux1
  image: utility
  presentations:
  - name: cli
    port: 22
    type: ssh
  - name: cli
    port: 2222
    type: ssh
- name: linux1
  image: utility
  additionalPorts: [80]
- name: r1
  image: no-such-image
  configurationType: python
  presentations:
  - name: cli
    port: 22
    type: ssh
- name: silent
  image: utility
connections:
- a: r1
  b: ghost
stages:
- description: s0
  guideType: markdown
- description: s1
  guideType: markdown
";
    // 1 name, 7 prereq, 15 duplicate presentation, 18 duplicate endpoint, 22 unknown image,
    // 23 missing config (stage1 has none), 28 no presentation, 32 unknown endpoint,
    // 37 missing guide (stage1 has none).
    write(&root, "lessons/semantic-errors/lesson.meta.yaml", semantic);
    write(&root, "lessons/semantic-errors/stage0/guide.md", "# s0\n");
    write(
        &root,
        "lessons/semantic-errors/stage0/configs/r1.py",
        "print('ok')\n",
    );

    // Duplicate slug: a second copy of linux-basics (slug on line 3 of the copy).
    let linux = fs::read_to_string(root.join("lessons/linux-basics/lesson.meta.yaml")).unwrap();
    write(&root, "lessons/linux-basics-copy/lesson.meta.yaml", &linux);
    write(
        &root,
        "lessons/linux-basics-copy/stage0/guide.md",
        "# copy\n",
    );

    // Prereq cycle: cycle-a -> cycle-b -> cycle-a (prereq entries on line 7).
    for (me, other) in [("cycle-a", "cycle-b"), ("cycle-b", "cycle-a")] {
        write(
            &root,
            &format!("lessons/{me}/lesson.meta.yaml"),
            &format!(
                "name: {me}\nslug: {me}\ncategory: tools\ntier: prod\ndescription: d\nprereqs:\n\
                 - {other}\nstages:\n- description: s\n  guideType: markdown\nendpoints:{GOOD_ENDPOINT}"
            ),
        );
        write(&root, &format!("lessons/{me}/stage0/guide.md"), "# s\n");
    }

    let out = antidote(&["validate", root.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");

    let prefix = format!("{}/", root.display());
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect();
    let expect = |file_line: &str, needle: &str| {
        let wanted = format!("{file_line}: ");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&wanted) && l.contains(needle)),
            "expected `{file_line}: …{needle}…` in:\n{text}"
        );
    };
    expect(
        "images/salt/image.meta.yaml:3",
        "YAML syntax error: mapping values are not allowed",
    );
    let schema = "lessons/schema-errors/lesson.meta.yaml";
    expect(
        &format!("{schema}:2"),
        "`slug` `Schema_Errors` is not valid: use lower-case letters",
    );
    expect(
        &format!("{schema}:4"),
        "`tier` must be one of local, ptr, prod, found `gold`",
    );
    expect(&format!("{schema}:6"), "unknown key `difficulty`");
    let sem = "lessons/semantic-errors/lesson.meta.yaml";
    expect(&format!("{sem}:7"), "unknown prereq `no-such-lesson`");
    expect(
        &format!("{sem}:15"),
        "duplicate presentation name `cli` on endpoint `linux1`",
    );
    expect(&format!("{sem}:18"), "duplicate endpoint name `linux1`");
    expect(&format!("{sem}:22"), "unknown image `no-such-image`");
    expect(
        &format!("{sem}:23"),
        "configurationType `python` but stage1/configs/ has no r1.py",
    );
    expect(
        &format!("{sem}:28"),
        "endpoint `silent` has no presentations and no additionalPorts",
    );
    expect(
        &format!("{sem}:32"),
        "connection to unknown endpoint `ghost`",
    );
    expect(
        &format!("{sem}:37"),
        "stage 1 is missing its guide lessons/semantic-errors/stage1/guide.md",
    );
    expect(
        "lessons/linux-basics-copy/lesson.meta.yaml:3",
        "duplicate lesson slug `linux-basics` (already defined in lessons/linux-basics/lesson.meta.yaml)",
    );
    expect(
        "lessons/cycle-a/lesson.meta.yaml:7",
        "prereq cycle: cycle-a -> cycle-b -> cycle-a",
    );
    expect(
        "lessons/cycle-b/lesson.meta.yaml:7",
        "prereq cycle: cycle-b -> cycle-a -> cycle-b",
    );

    // The untouched fixture lessons are still valid: 5 fixture lessons + 5 added, 5 valid.
    let last = text.lines().last().unwrap();
    assert!(last.contains("10 lessons (5 valid)"), "{last}");
}

#[test]
fn schema_command_prints_the_lesson_schema() {
    let out = antidote(&["schema"]);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["title"], "Antidote lesson");
    assert_eq!(schema["additionalProperties"], false);
    let required = schema["required"].as_array().unwrap();
    for key in ["name", "slug", "category", "tier", "stages", "endpoints"] {
        assert!(required.iter().any(|r| r == key), "{key} not required");
    }
    assert!(schema["properties"]["stages"]["items"]["properties"]["verify"].is_object());
    let image = antidote(&["schema", "image"]);
    let image: serde_json::Value = serde_json::from_slice(&image.stdout).unwrap();
    assert!(image["properties"]["local"].is_object());
}

#[test]
fn a_closed_stdout_is_not_a_crash() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_antidote"))
        .args(["schema"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once, like `| head -0`
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.success(), "{err}");
}

#[test]
fn catalog_lists_nre_labs_lessons_with_local_availability() {
    let dir = fixture();
    let out = antidote(&["lesson", "catalog", "--curriculum", dir.to_str().unwrap()]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let line = |slug: &str| {
        text.lines()
            .find(|l| l.starts_with(slug))
            .unwrap_or_else(|| panic!("{slug} missing in:\n{text}"))
            .to_owned()
    };
    assert!(line("linux-basics").contains(" available"));
    assert!(line("yaml-introduction").contains(" available"));
    let napalm = line("napalm-multi-vendor-network-automation");
    assert!(napalm.contains("unavailable"), "{napalm}");
    assert!(napalm.contains("vqfx-snap1"), "{napalm}");
}
