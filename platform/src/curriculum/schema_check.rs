//! Checks a located YAML tree against a JSON Schema and converts it to JSON in the same walk.
//!
//! The schema is the one `schemars` derives from the model types in [`super::model`], so the
//! JSON Schema that `antidote schema` prints and the rules the validator enforces can never
//! drift apart. Only the keywords those derived schemas use are understood: `type`,
//! `properties`, `required`, `additionalProperties`, `items`, `enum`, `const`, `anyOf`, `oneOf`,
//! `pattern`, `minLength`, `minItems`, `minimum`, `maximum`. Every violation is collected with
//! its line; nothing stops at the first one.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use regex::Regex;
use serde_json::{Map, Value as Json, json};

use super::yaml::{Node, Seg, Value, path_to_string};

/// One schema violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub line: usize,
    pub message: String,
}

/// Walks `node` against `schema`; returns the JSON value (meaningful when no violations)
/// and every violation found.
pub fn check(node: &Node, schema: &Json) -> (Json, Vec<Violation>) {
    let mut checker = Checker {
        violations: Vec::new(),
    };
    let mut path = Vec::new();
    let value = checker.walk(node, schema, &mut path);
    (value, checker.violations)
}

struct Checker {
    violations: Vec<Violation>,
}

fn compiled(pattern: &str) -> Option<Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    cache
        .entry(pattern.to_owned())
        .or_insert_with(|| Regex::new(pattern).ok())
        .clone()
}

fn types_of(schema: &Json) -> Vec<&str> {
    match schema.get("type") {
        Some(Json::String(t)) => vec![t.as_str()],
        Some(Json::Array(ts)) => ts.iter().filter_map(Json::as_str).collect(),
        _ => Vec::new(),
    }
}

fn describe(path: &[Seg]) -> String {
    if path.is_empty() {
        "the document".to_owned()
    } else {
        format!("`{}`", path_to_string(path))
    }
}

/// The allowed values of an enum-like schema (`enum`, `const`, or a `oneOf` of consts).
fn allowed_values(schema: &Json) -> Option<Vec<String>> {
    if let Some(Json::Array(values)) = schema.get("enum") {
        return Some(values.iter().map(json_to_text).collect());
    }
    if let Some(c) = schema.get("const") {
        return Some(vec![json_to_text(c)]);
    }
    let branches = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))?
        .as_array()?;
    let mut all = Vec::new();
    for branch in branches {
        all.extend(allowed_values(branch)?);
    }
    Some(all)
}

fn json_to_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Checker {
    fn violation(&mut self, line: usize, message: String) {
        self.violations.push(Violation { line, message });
    }

    fn walk(&mut self, node: &Node, schema: &Json, path: &mut Vec<Seg>) -> Json {
        if schema == &Json::Bool(true) {
            return plain_json(node);
        }
        if let Some(values) = allowed_values(schema) {
            return self.walk_enum(node, schema, &values, path);
        }
        if let Some(Json::Array(branches)) = schema.get("anyOf").or_else(|| schema.get("oneOf")) {
            return self.walk_any_of(node, branches, path);
        }
        let types = types_of(schema);
        match &node.value {
            Value::Null if types.contains(&"null") => Json::Null,
            Value::Map(_) if types.contains(&"object") => self.walk_object(node, schema, path),
            Value::Seq(_) if types.contains(&"array") => self.walk_array(node, schema, path),
            Value::Scalar { text, plain } => self.walk_scalar(node, text, *plain, schema, path),
            _ => {
                let expected = expected_name(&types);
                let msg = format!(
                    "{} must be {expected}, found {}",
                    describe(path),
                    node.kind_name()
                );
                self.violation(node.line, msg);
                Json::Null
            }
        }
    }

    fn walk_enum(&mut self, node: &Node, schema: &Json, values: &[String], path: &[Seg]) -> Json {
        let text = match &node.value {
            Value::Scalar { text, .. } => Some(text.as_str()),
            _ => None,
        };
        match text {
            Some(t) if values.iter().any(|v| v == t) => Json::String(t.to_owned()),
            _ if matches!(node.value, Value::Null) && types_of(schema).contains(&"null") => {
                Json::Null
            }
            _ => {
                let found = text.map_or_else(|| node.kind_name().to_owned(), |t| format!("`{t}`"));
                let msg = format!(
                    "{} must be one of {}, found {found}",
                    describe(path),
                    values.join(", ")
                );
                self.violation(node.line, msg);
                Json::Null
            }
        }
    }

    fn walk_any_of(&mut self, node: &Node, branches: &[Json], path: &mut Vec<Seg>) -> Json {
        // The first branch that fits wholly wins; otherwise report against the branch whose
        // type matches the node (that is the one the author meant), or a type mismatch.
        let mut fitting_type = None;
        for branch in branches {
            let mut trial = Checker {
                violations: Vec::new(),
            };
            let value = trial.walk(node, branch, path);
            if trial.violations.is_empty() {
                return value;
            }
            if fitting_type.is_none() && type_fits(node, branch) {
                fitting_type = Some(branch);
            }
        }
        match fitting_type {
            Some(branch) => self.walk(node, branch, path),
            None => {
                let mut names: Vec<&str> = branches.iter().flat_map(types_of).collect();
                names.dedup();
                let msg = format!(
                    "{} must be {}, found {}",
                    describe(path),
                    expected_name(&names),
                    node.kind_name()
                );
                self.violation(node.line, msg);
                Json::Null
            }
        }
    }

    fn walk_object(&mut self, node: &Node, schema: &Json, path: &mut Vec<Seg>) -> Json {
        let Value::Map(entries) = &node.value else {
            return Json::Null;
        };
        let empty = Map::new();
        let properties = schema
            .get("properties")
            .and_then(Json::as_object)
            .unwrap_or(&empty);
        let closed = schema.get("additionalProperties") == Some(&Json::Bool(false));
        let mut out = Map::new();
        for (key, child) in entries {
            match properties.get(&key.name) {
                Some(prop_schema) => {
                    // A key with nothing after it means the same as no key, as in NRE Labs.
                    if matches!(child.value, Value::Null)
                        && !types_of(prop_schema).contains(&"null")
                    {
                        continue;
                    }
                    path.push(Seg::Key(key.name.clone()));
                    let v = self.walk(child, prop_schema, path);
                    path.pop();
                    out.insert(key.name.clone(), v);
                }
                None if closed => {
                    let mut known: Vec<&str> = properties.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    let at = if path.is_empty() {
                        String::new()
                    } else {
                        format!(" in {}", describe(path))
                    };
                    let hint = match closest(&key.name, &known) {
                        Some(k) => format!("did you mean `{k}`?"),
                        None => format!("known keys: {}", known.join(", ")),
                    };
                    let msg = format!("unknown key `{}`{at} ({hint})", key.name);
                    self.violation(key.line, msg);
                }
                None => {
                    out.insert(key.name.clone(), plain_json(child));
                }
            }
        }
        if let Some(Json::Array(required)) = schema.get("required") {
            for name in required.iter().filter_map(Json::as_str) {
                if !out.contains_key(name) {
                    let msg = format!("{} is missing required key `{name}`", describe(path));
                    self.violation(node.line, msg);
                }
            }
        }
        Json::Object(out)
    }

    fn walk_array(&mut self, node: &Node, schema: &Json, path: &mut Vec<Seg>) -> Json {
        let Value::Seq(items) = &node.value else {
            return Json::Null;
        };
        if let Some(min) = schema.get("minItems").and_then(Json::as_u64)
            && (items.len() as u64) < min
        {
            let msg = format!("{} needs at least {min} item(s)", describe(path));
            self.violation(node.line, msg);
        }
        let item_schema = schema.get("items").cloned().unwrap_or(Json::Bool(true));
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            path.push(Seg::Index(i));
            out.push(self.walk(item, &item_schema, path));
            path.pop();
        }
        Json::Array(out)
    }

    fn walk_scalar(
        &mut self,
        node: &Node,
        text: &str,
        plain: bool,
        schema: &Json,
        path: &[Seg],
    ) -> Json {
        let types = types_of(schema);
        let numeric = types.contains(&"integer") || types.contains(&"number");
        if numeric && plain {
            let parsed = if types.contains(&"integer") {
                text.parse::<i64>().ok().map(Json::from)
            } else {
                text.parse::<f64>().ok().map(Json::from)
            };
            if let Some(v) = parsed {
                return self.check_range(node, v, schema, path);
            }
        }
        if types.contains(&"boolean") && plain {
            match text {
                "true" | "True" | "TRUE" => return Json::Bool(true),
                "false" | "False" | "FALSE" => return Json::Bool(false),
                _ => {}
            }
        }
        if types.contains(&"string") {
            // Like NRE Labs (Go's yaml.v2), a plain `22` or `true` is accepted where text is.
            return self.check_string(node, text, schema, path);
        }
        let shown = if plain {
            format!("`{text}`")
        } else {
            format!("the quoted text \"{text}\"")
        };
        let msg = format!(
            "{} must be {}, found {shown}",
            describe(path),
            expected_name(&types)
        );
        self.violation(node.line, msg);
        Json::Null
    }

    fn check_range(&mut self, node: &Node, v: Json, schema: &Json, path: &[Seg]) -> Json {
        let n = v.as_f64().unwrap_or(0.0);
        if let Some(min) = schema.get("minimum").and_then(Json::as_f64)
            && n < min
        {
            let msg = format!("{} must be at least {min}, found {v}", describe(path));
            self.violation(node.line, msg);
        }
        if let Some(max) = schema.get("maximum").and_then(Json::as_f64)
            && n > max
        {
            let msg = format!("{} must be at most {max}, found {v}", describe(path));
            self.violation(node.line, msg);
        }
        v
    }

    fn check_string(&mut self, node: &Node, text: &str, schema: &Json, path: &[Seg]) -> Json {
        if let Some(min) = schema.get("minLength").and_then(Json::as_u64)
            && (text.chars().count() as u64) < min
        {
            let msg = format!(
                "{} must be at least {min} character(s) long",
                describe(path)
            );
            self.violation(node.line, msg);
        }
        if let Some(pattern) = schema.get("pattern").and_then(Json::as_str)
            && let Some(re) = compiled(pattern)
            && !re.is_match(text)
        {
            let msg = match super::model::pattern_hint(pattern) {
                Some(hint) => format!("{} `{text}` is not valid: {hint}", describe(path)),
                None => format!(
                    "{} `{text}` does not match the pattern {pattern}",
                    describe(path)
                ),
            };
            self.violation(node.line, msg);
        }
        Json::String(text.to_owned())
    }
}

/// The known key closest to `name` by edit distance, when it is close enough to be a typo.
fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_lowercase()), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 5))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn type_fits(node: &Node, schema: &Json) -> bool {
    let types = types_of(schema);
    match &node.value {
        Value::Null => types.contains(&"null"),
        Value::Scalar { .. } => types
            .iter()
            .any(|t| matches!(*t, "string" | "integer" | "number" | "boolean")),
        Value::Seq(_) => types.contains(&"array"),
        Value::Map(_) => types.contains(&"object"),
    }
}

fn expected_name(types: &[&str]) -> String {
    let names: Vec<&str> = types
        .iter()
        .filter(|t| **t != "null")
        .map(|t| match *t {
            "object" => "a mapping",
            "array" => "a list",
            "string" => "text",
            "integer" => "a whole number",
            "number" => "a number",
            "boolean" => "true or false",
            other => other,
        })
        .collect();
    if names.is_empty() {
        "a value".to_owned()
    } else {
        names.join(" or ")
    }
}

/// Converts a node to JSON without a schema (for schema-less parts like `true` schemas).
fn plain_json(node: &Node) -> Json {
    match &node.value {
        Value::Null => Json::Null,
        Value::Scalar { text, plain } => {
            if *plain {
                if let Ok(i) = text.parse::<i64>() {
                    return json!(i);
                }
                match text.as_str() {
                    "true" => return Json::Bool(true),
                    "false" => return Json::Bool(false),
                    _ => {}
                }
            }
            Json::String(text.clone())
        }
        Value::Seq(items) => Json::Array(items.iter().map(plain_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (k.name.clone(), plain_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curriculum::yaml::parse;

    fn schema() -> Json {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["slug", "port"],
            "properties": {
                "slug": {"type": "string", "pattern": "^[a-z0-9-]+$", "minLength": 1},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "tier": {"type": "string", "enum": ["local", "ptr", "prod"]},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "nested": {"anyOf": [
                    {"type": "object", "additionalProperties": false,
                     "properties": {"a": {"type": "string"}}},
                    {"type": "null"}
                ]}
            }
        })
    }

    fn check_doc(src: &str) -> (Json, Vec<(usize, String)>) {
        let node = parse(src).unwrap();
        let (v, errs) = check(&node, &schema());
        (v, errs.into_iter().map(|e| (e.line, e.message)).collect())
    }

    #[test]
    fn valid_document_converts_to_json() {
        let (v, errs) = check_doc("slug: a-b\nport: 22\ntier: prod\ntags: [x, 1]\n");
        assert_eq!(errs, vec![]);
        assert_eq!(
            v,
            json!({"slug": "a-b", "port": 22, "tier": "prod", "tags": ["x", "1"]})
        );
    }

    #[test]
    fn every_violation_is_reported_with_its_line() {
        let (_, errs) = check_doc(
            "slug: Bad_Slug\nport: 70000\ntier: gold\ntags: []\nextra: 1\nnested:\n  b: 2\n",
        );
        let lines: Vec<usize> = errs.iter().map(|e| e.0).collect();
        assert_eq!(lines, vec![1, 2, 3, 4, 5, 7], "{errs:#?}");
        assert!(errs[0].1.contains("does not match the pattern"));
        assert!(errs[4].1.contains("(known keys: "), "{errs:#?}");
        assert!(errs[1].1.contains("at most 65535"));
        assert!(
            errs[2]
                .1
                .contains("must be one of local, ptr, prod, found `gold`")
        );
        assert!(errs[3].1.contains("at least 1 item"));
        assert!(errs[4].1.starts_with("unknown key `extra`"));
        assert!(errs[5].1.contains("unknown key `b` in `nested`"));
    }

    #[test]
    fn missing_required_keys_and_wrong_types() {
        let (_, errs) = check_doc("port: \"22\"\n");
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(
            errs.iter()
                .any(|e| e.1.contains("`port` must be a whole number"))
        );
        assert!(
            errs.iter()
                .any(|e| e.1.contains("missing required key `slug`"))
        );
    }

    #[test]
    fn typos_get_a_suggestion_and_quoted_numbers_are_shown_quoted() {
        let (_, errs) = check_doc("slug: a\nprot: 1\nport: \"22\"\n");
        assert!(
            errs.iter()
                .any(|e| e.1 == "unknown key `prot` (did you mean `port`?)"),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.1.contains("found the quoted text \"22\"")),
            "{errs:#?}"
        );
    }

    #[test]
    fn a_key_without_value_is_absent() {
        let (v, errs) = check_doc("slug: a\nport: 1\ntags:\n");
        assert_eq!(errs, vec![]);
        assert_eq!(v, json!({"slug": "a", "port": 1}));
    }
}
