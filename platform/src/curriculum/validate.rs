//! Loading and validating a curriculum directory.
//!
//! Each file goes through three steps: YAML syntax (with lines), the JSON Schema derived from
//! the model (unknown keys, types, patterns, enums, lengths), then the rules a schema cannot
//! express (unique names, references between files, files a lesson needs on disk, prereq
//! cycles). Every problem is kept; a lesson with any problem is not served.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use regex::Regex;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use super::model::{self, Lesson};
use super::schema_check;
use super::yaml::{self, Node, Seg};
use super::{Counts, Curriculum, InvalidLesson, LoadError, LoadedLesson, Problem, relative};

/// Loads and validates the curriculum in `root`.
///
/// Problems inside the curriculum never make this fail: they are listed in the result and the
/// lessons they concern are left out of [`Curriculum::lessons`].
pub fn load(root: &Path) -> Result<Curriculum, LoadError> {
    if !root.is_dir() {
        return Err(LoadError::NotADirectory(root.to_path_buf()));
    }
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let mut loader = Loader {
        root: root.clone(),
        problems: Vec::new(),
    };

    let meta_path = root.join("curriculum.meta.yaml");
    let meta = if meta_path.is_file() {
        loader
            .parse_file::<model::CurriculumMeta>(&meta_path)
            .map(|(m, _)| m)
    } else {
        loader.problem(
            &meta_path,
            0,
            "missing curriculum.meta.yaml (name, description, ...)",
        );
        None
    };

    let (images, image_files) =
        loader.load_keyed("images", "image.meta.yaml", |i: &model::Image| {
            i.slug.clone()
        });
    let (collections, collection_files) = loader.load_keyed(
        "collections",
        "collection.meta.yaml",
        |c: &model::Collection| c.slug.clone(),
    );
    let context = LessonContext {
        images: &images,
        image_files: &image_files,
        collections: &collections,
        collection_files: &collection_files,
    };
    let (lessons, invalid_lessons, lesson_files) = loader.load_lessons(&context);

    let mut problems = loader.problems;
    for invalid in &invalid_lessons {
        problems.extend(invalid.problems.iter().cloned());
    }
    problems.sort();
    problems.dedup();
    Ok(Curriculum {
        root,
        meta,
        lessons,
        invalid_lessons,
        images: images.into_iter().map(|(k, (v, _))| (k, v)).collect(),
        collections: collections.into_iter().map(|(k, (v, _))| (k, v)).collect(),
        counts: Counts {
            lessons: lesson_files,
            images: image_files.len(),
            collections: collection_files.len(),
        },
        problems,
    })
}

/// Valid definitions by slug, with the file each came from.
type Keyed<T> = BTreeMap<String, (T, PathBuf)>;

struct LessonContext<'a> {
    images: &'a Keyed<model::Image>,
    /// Every image file found by slug-ish name (directory), valid or not.
    image_files: &'a HashMap<String, PathBuf>,
    collections: &'a Keyed<model::Collection>,
    collection_files: &'a HashMap<String, PathBuf>,
}

struct Loader {
    root: PathBuf,
    problems: Vec<Problem>,
}

/// A parsed lesson file before cross-lesson checks.
struct Candidate {
    lesson: Lesson,
    doc: Node,
    file: PathBuf,
    dir: PathBuf,
    problems: Vec<Problem>,
}

impl Loader {
    fn problem(&mut self, file: &Path, line: usize, message: impl Into<String>) {
        self.problems.push(Problem {
            file: relative(&self.root, file),
            line,
            message: message.into(),
        });
    }

    /// Reads, parses and schema-checks one file. Problems go to `self.problems`.
    /// Reads, parses and schema-checks one file; `None` unless it is wholly valid.
    fn parse_file<T: DeserializeOwned + JsonSchema>(&mut self, path: &Path) -> Option<(T, Node)> {
        let mut problems = Vec::new();
        let parsed = parse_into::<T>(&self.root, path, &mut problems);
        self.problems.extend(problems);
        parsed.filter(|p| p.clean).map(|p| (p.item, p.doc))
    }

    /// Subdirectories of `root/dir`, sorted, each expected to hold `file_name`.
    fn definition_files(&mut self, dir: &str, file_name: &str) -> Vec<PathBuf> {
        let base = self.root.join(dir);
        let Ok(entries) = fs::read_dir(&base) else {
            return Vec::new();
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        let mut files = Vec::new();
        for d in dirs {
            let f = d.join(file_name);
            if f.is_file() {
                files.push(f);
            } else {
                let msg = format!("directory has no {file_name}");
                self.problem(&d, 0, msg);
            }
        }
        files
    }

    /// Loads every `dir/*/file_name` keyed by slug; duplicates are problems.
    fn load_keyed<T: DeserializeOwned + JsonSchema>(
        &mut self,
        dir: &str,
        file_name: &str,
        slug: impl Fn(&T) -> String,
    ) -> (Keyed<T>, HashMap<String, PathBuf>) {
        let mut valid: Keyed<T> = BTreeMap::new();
        let mut found = HashMap::new();
        for file in self.definition_files(dir, file_name) {
            let dir_name = file
                .parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            found.insert(dir_name, file.clone());
            let Some((item, doc)) = self.parse_file::<T>(&file) else {
                continue;
            };
            let key = slug(&item);
            if let Some((_, first)) = valid.get(&key) {
                let msg = format!(
                    "duplicate slug `{key}` (already defined in {})",
                    relative(&self.root, first).display()
                );
                let line = doc.line_of(&[Seg::Key("slug".into())]);
                self.problem(&file, line, msg);
                continue;
            }
            found.insert(key.clone(), file.clone());
            valid.insert(key, (item, file));
        }
        (valid, found)
    }

    fn load_lessons(
        &mut self,
        ctx: &LessonContext<'_>,
    ) -> (BTreeMap<String, LoadedLesson>, Vec<InvalidLesson>, usize) {
        let files = self.definition_files("lessons", "lesson.meta.yaml");
        let count = files.len();
        let mut invalid = Vec::new();
        let mut candidates: Vec<Candidate> = Vec::new();
        for file in files {
            let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
            let mut problems = Vec::new();
            match parse_into::<Lesson>(&self.root, &file, &mut problems) {
                Some(Parsed {
                    item: lesson, doc, ..
                }) => {
                    check_lesson(&self.root, &lesson, &doc, &file, &dir, ctx, &mut problems);
                    candidates.push(Candidate {
                        lesson,
                        doc,
                        file,
                        dir,
                        problems,
                    });
                }
                None => invalid.push(InvalidLesson {
                    name: dir
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    file: relative(&self.root, &file),
                    problems,
                }),
            }
        }

        check_duplicate_slugs(&self.root, &mut candidates);
        check_prereqs(&self.root, &mut candidates, &invalid);

        let mut lessons = BTreeMap::new();
        for c in candidates {
            if c.problems.is_empty() {
                let slug = c.lesson.slug.clone();
                lessons.insert(
                    slug,
                    LoadedLesson {
                        lesson: c.lesson,
                        dir: c.dir,
                    },
                );
            } else {
                invalid.push(InvalidLesson {
                    name: c.lesson.slug,
                    file: relative(&self.root, &c.file),
                    problems: c.problems,
                });
            }
        }
        (lessons, invalid, count)
    }
}

/// Reads, parses and schema-checks one file into `T`.
fn parse_into<T: DeserializeOwned + JsonSchema>(
    root: &Path,
    path: &Path,
    problems: &mut Vec<Problem>,
) -> Option<Parsed<T>> {
    let file = relative(root, path);
    let push = |problems: &mut Vec<Problem>, line: usize, message: String| {
        problems.push(Problem {
            file: file.clone(),
            line,
            message,
        })
    };
    let source = match fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            push(problems, 0, format!("cannot read: {e}"));
            return None;
        }
    };
    let doc = match yaml::parse(&source) {
        Ok(doc) => doc,
        Err(e) => {
            push(problems, e.line, e.message);
            return None;
        }
    };
    let (json, violations) = schema_check::check(&doc, &model::schema_of::<T>());
    let clean = violations.is_empty();
    for v in violations {
        push(problems, v.line, v.message);
    }
    match serde_json::from_value::<T>(json) {
        Ok(item) => Some(Parsed { item, doc, clean }),
        // With schema violations the value is often incomplete; those are reported already.
        Err(_) if !clean => None,
        Err(e) => {
            push(problems, doc.line, format!("invalid definition: {e}"));
            None
        }
    }
}

/// A file that could be read into its type. `clean` is false when it has schema violations
/// (an unknown key, say) that did not stop it from being read: the rules beyond the schema
/// still run on it, so an author sees every problem at once, but it is not valid.
struct Parsed<T> {
    item: T,
    doc: Node,
    clean: bool,
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_owned())
}

/// The rules of one lesson that a schema cannot express.
fn check_lesson(
    root: &Path,
    lesson: &Lesson,
    doc: &Node,
    file: &Path,
    dir: &Path,
    ctx: &LessonContext<'_>,
    problems: &mut Vec<Problem>,
) {
    let rel = relative(root, file);
    let mut report = |path: &[Seg], message: String| {
        problems.push(Problem {
            file: rel.clone(),
            line: doc.line_of(path),
            message,
        });
    };

    if let Some(collection) = &lesson.collection
        && !ctx.collections.contains_key(collection)
    {
        let msg = match ctx.collection_files.get(collection) {
            Some(f) => format!(
                "collection `{collection}` is invalid (see {})",
                relative(root, f).display()
            ),
            None => format!("unknown collection `{collection}` (no collections/{collection}/)"),
        };
        report(&[key("collection")], msg);
    }

    let mut endpoint_names: HashMap<&str, usize> = HashMap::new();
    for (i, ep) in lesson.endpoints.iter().enumerate() {
        let at = |k: &str| vec![key("endpoints"), Seg::Index(i), key(k)];
        if let Some(first) = endpoint_names.insert(&ep.name, i) {
            report(
                &at("name"),
                format!(
                    "duplicate endpoint name `{}` (also endpoints[{first}])",
                    ep.name
                ),
            );
            endpoint_names.insert(&ep.name, first);
        }
        if !ctx.images.contains_key(&ep.image) {
            let msg = match ctx.image_files.get(&ep.image) {
                Some(f) => format!(
                    "endpoint `{}` uses image `{}`, which is invalid (see {})",
                    ep.name,
                    ep.image,
                    relative(root, f).display()
                ),
                None => format!(
                    "endpoint `{}` uses unknown image `{}` (no images/{}/image.meta.yaml)",
                    ep.name, ep.image, ep.image
                ),
            };
            report(&at("image"), msg);
        }
        if ep.presentations.is_empty() && ep.additional_ports.is_empty() {
            report(
                &[key("endpoints"), Seg::Index(i)],
                format!(
                    "endpoint `{}` has no presentations and no additionalPorts: nothing could reach it",
                    ep.name
                ),
            );
        }
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (j, p) in ep.presentations.iter().enumerate() {
            if let Some(first) = seen.insert(&p.name, j) {
                report(
                    &[
                        key("endpoints"),
                        Seg::Index(i),
                        key("presentations"),
                        Seg::Index(j),
                        key("name"),
                    ],
                    format!(
                        "duplicate presentation name `{}` on endpoint `{}` (also presentations[{first}])",
                        p.name, ep.name
                    ),
                );
                seen.insert(&p.name, first);
            }
        }
        if let Some(kind) = &ep.configuration_type {
            for stage in 0..lesson.stages.len() {
                if find_config_file(dir, stage, &ep.name, kind).is_none() {
                    report(
                        &at("configurationType"),
                        format!(
                            "endpoint `{}` has configurationType `{kind}` but stage{stage}/configs/ has no {}",
                            ep.name,
                            config_file_hint(&ep.name, kind)
                        ),
                    );
                }
            }
        }
    }

    for (i, conn) in lesson.connections.iter().enumerate() {
        for (end, name) in [("a", &conn.a), ("b", &conn.b)] {
            if !endpoint_names.contains_key(name.as_str()) {
                report(
                    &[key("connections"), Seg::Index(i), key(end)],
                    format!("connection to unknown endpoint `{name}`"),
                );
            }
        }
        if conn.a == conn.b {
            report(
                &[key("connections"), Seg::Index(i)],
                format!("connection from endpoint `{}` to itself", conn.a),
            );
        }
        if let Some(subnet) = &conn.subnet
            && let Err(why) = check_subnet(subnet)
        {
            report(
                &[key("connections"), Seg::Index(i), key("subnet")],
                format!("subnet `{subnet}`: {why}"),
            );
        }
    }

    for (i, stage) in lesson.stages.iter().enumerate() {
        let guide = dir
            .join(format!("stage{i}"))
            .join(stage.guide_type.file_name());
        if !guide.is_file() {
            report(
                &[key("stages"), Seg::Index(i), key("guideType")],
                format!(
                    "stage {i} is missing its guide {}",
                    relative(root, &guide).display()
                ),
            );
        }
        if let Some(verify) = &stage.verify
            && !endpoint_names.contains_key(verify.endpoint.as_str())
        {
            report(
                &[key("stages"), Seg::Index(i), key("verify"), key("endpoint")],
                format!("verify runs on unknown endpoint `{}`", verify.endpoint),
            );
        }
    }

    for (i, prereq) in lesson.prereqs.iter().enumerate() {
        if prereq == &lesson.slug {
            report(
                &[key("prereqs"), Seg::Index(i)],
                "a lesson cannot be its own prereq".to_owned(),
            );
        }
    }
}

/// The file applying `kind` configuration to `endpoint` in `stage`, as NRE Labs looked it up.
pub fn find_config_file(
    lesson_dir: &Path,
    stage: usize,
    endpoint: &str,
    kind: &str,
) -> Option<PathBuf> {
    let configs = lesson_dir.join(format!("stage{stage}")).join("configs");
    let e = regex::escape(endpoint);
    let pattern = match kind.split('-').next().unwrap_or(kind) {
        "python" => format!("^{e}\\.py$"),
        "ansible" => format!("^{e}\\.ya?ml$"),
        "napalm" => format!("^{e}(-(junos|eos|iosxr|nxos|nxos_ssh|ios))?\\.txt$"),
        "frr" => format!("^{e}\\.conf$"),
        "shell" => format!("^{e}\\.sh$"),
        _ => return None,
    };
    let re = Regex::new(&pattern).ok()?;
    let mut names: Vec<PathBuf> = fs::read_dir(&configs)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| re.is_match(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    names.sort();
    names.into_iter().next()
}

fn config_file_hint(endpoint: &str, kind: &str) -> String {
    match kind.split('-').next().unwrap_or(kind) {
        "python" => format!("{endpoint}.py"),
        "ansible" => format!("{endpoint}.yml"),
        "napalm" => format!("{endpoint}-<driver>.txt"),
        "frr" => format!("{endpoint}.conf"),
        _ => format!("{endpoint}.sh"),
    }
}

fn check_subnet(subnet: &str) -> Result<(), String> {
    let (addr, prefix) = subnet.split_once('/').ok_or("missing /prefix")?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| "not an IPv4 address".to_owned())?;
    let prefix: u32 = prefix.parse().map_err(|_| "bad prefix length".to_owned())?;
    if prefix > 30 {
        return Err(format!(
            "prefix /{prefix} leaves no room for two hosts (at most /30)"
        ));
    }
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    if u32::from(addr) & !mask != 0 {
        return Err(format!(
            "host bits are set (did you mean {}/{prefix}?)",
            Ipv4Addr::from(u32::from(addr) & mask)
        ));
    }
    Ok(())
}

fn check_duplicate_slugs(root: &Path, candidates: &mut [Candidate]) {
    let mut first: HashMap<String, PathBuf> = HashMap::new();
    for c in candidates.iter_mut() {
        match first.get(&c.lesson.slug) {
            Some(f) => c.problems.push(Problem {
                file: relative(root, &c.file),
                line: c.doc.line_of(&[key("slug")]),
                message: format!(
                    "duplicate lesson slug `{}` (already defined in {})",
                    c.lesson.slug,
                    relative(root, f).display()
                ),
            }),
            None => {
                first.insert(c.lesson.slug.clone(), c.file.clone());
            }
        }
    }
}

/// Unknown prereqs and prereq cycles.
fn check_prereqs(root: &Path, candidates: &mut [Candidate], invalid: &[InvalidLesson]) {
    let known: HashSet<String> = candidates
        .iter()
        .map(|c| c.lesson.slug.clone())
        .chain(invalid.iter().map(|i| i.name.clone()))
        .collect();
    for c in candidates.iter_mut() {
        for (i, prereq) in c.lesson.prereqs.iter().enumerate() {
            if !known.contains(prereq) {
                c.problems.push(Problem {
                    file: relative(root, &c.file),
                    line: c.doc.line_of(&[key("prereqs"), Seg::Index(i)]),
                    message: format!("unknown prereq `{prereq}` (no lesson has that slug)"),
                });
            }
        }
    }

    // Depth-first search for cycles; each lesson on a cycle gets a problem at the prereq
    // entry that leads along the cycle.
    let index: HashMap<String, usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (c.lesson.slug.clone(), i))
        .collect();
    let edges: Vec<Vec<usize>> = candidates
        .iter()
        .map(|c| {
            c.lesson
                .prereqs
                .iter()
                .filter_map(|p| index.get(p).copied())
                .collect()
        })
        .collect();
    let mut on_cycle: BTreeMap<usize, (usize, String)> = BTreeMap::new();
    let mut state = vec![0u8; candidates.len()]; // 0 new, 1 on stack, 2 done
    let mut stack: Vec<usize> = Vec::new();
    fn visit(
        n: usize,
        edges: &[Vec<usize>],
        state: &mut [u8],
        stack: &mut Vec<usize>,
        found: &mut Vec<Vec<usize>>,
    ) {
        state[n] = 1;
        stack.push(n);
        for &m in &edges[n] {
            if state[m] == 1 {
                if let Some(pos) = stack.iter().position(|&s| s == m) {
                    found.push(stack[pos..].to_vec());
                }
            } else if state[m] == 0 {
                visit(m, edges, state, stack, found);
            }
        }
        stack.pop();
        state[n] = 2;
    }
    let mut cycles = Vec::new();
    for n in 0..candidates.len() {
        if state[n] == 0 {
            visit(n, &edges, &mut state, &mut stack, &mut cycles);
        }
    }
    for cycle in cycles {
        let names: Vec<&str> = cycle
            .iter()
            .map(|&i| candidates[i].lesson.slug.as_str())
            .collect();
        for (pos, &member) in cycle.iter().enumerate() {
            let next = cycle[(pos + 1) % cycle.len()];
            let mut path: Vec<&str> = names[pos..].to_vec();
            path.extend_from_slice(&names[..pos]);
            path.push(names[pos]);
            on_cycle.insert(member, (next, path.join(" -> ")));
        }
    }
    for (member, (next, path)) in on_cycle {
        let next_slug = candidates[next].lesson.slug.clone();
        let c = &mut candidates[member];
        let entry = c
            .lesson
            .prereqs
            .iter()
            .position(|p| p == &next_slug)
            .unwrap_or(0);
        c.problems.push(Problem {
            file: relative(root, &c.file),
            line: c.doc.line_of(&[key("prereqs"), Seg::Index(entry)]),
            message: format!("prereq cycle: {path}"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        assert!(check_subnet("10.12.0.0/24").is_ok());
        assert!(
            check_subnet("10.12.0.1/24")
                .unwrap_err()
                .contains("10.12.0.0/24")
        );
        assert!(check_subnet("10.12.0.0/31").is_err());
        assert!(check_subnet("300.1.1.1/24").is_err());
    }

    #[test]
    fn napalm_config_files_match_nre_labs_names() {
        let dir = tempfile::tempdir().unwrap();
        let configs = dir.path().join("stage0/configs");
        fs::create_dir_all(&configs).unwrap();
        fs::write(configs.join("vqfx1-junos.txt"), "").unwrap();
        fs::write(configs.join("r1.conf"), "").unwrap();
        assert!(find_config_file(dir.path(), 0, "vqfx1", "napalm").is_some());
        assert!(find_config_file(dir.path(), 0, "vqfx1", "napalm-junos").is_some());
        assert!(find_config_file(dir.path(), 0, "vqfx", "napalm").is_none());
        assert!(find_config_file(dir.path(), 0, "r1", "frr").is_some());
        assert!(find_config_file(dir.path(), 1, "r1", "frr").is_none());
    }
}
