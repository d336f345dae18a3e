//! A YAML document as a tree whose every node knows its line.
//!
//! The validator reports problems as `file:line: message`, so it cannot use a plain
//! `serde_yaml`-style deserializer that forgets positions and stops at the first error.
//! This module builds a small tree from yaml-rust2's marked event stream; scalars keep their
//! raw text so the schema check can decide how to read them (YAML `22` is a port number in one
//! place and a name in another).

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// One node of a YAML document.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// 1-based line where the node starts.
    pub line: usize,
    pub value: Value,
}

/// The value of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `~`, `null` or nothing at all.
    Null,
    /// A scalar, with whether it was written plain (unquoted, so `true` or `22` are not strings).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Entries in document order; keys are unique (duplicates are a parse error).
    Map(Vec<(Key, Node)>),
}

/// A mapping key with its line.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub line: usize,
}

/// A YAML syntax error with its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl std::fmt::Display for Seg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seg::Key(k) => write!(f, "{k}"),
            Seg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// Renders a path the way a lesson author reads it: `endpoints[1].presentations[0].port`.
pub fn path_to_string(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Parses one YAML document. An empty file is a `Null` node on line 1.
pub fn parse(source: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(source);
    parser.load(&mut builder, false).map_err(|e| {
        let mut line = e.marker().line().max(1);
        // The scanner reports tab errors where the scalar being read started, which can be
        // lines before the tab itself; point at the tab.
        if e.info().contains("tab")
            && let Some(offset) = source
                .lines()
                .skip(line - 1)
                .take(100)
                .position(|l| l.contains('\t'))
        {
            line += offset;
        }
        SyntaxError {
            line,
            message: format!("YAML syntax error: {}", e.info()),
        }
    })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.root.unwrap_or(Node {
        line: 1,
        value: Value::Null,
    }))
}

impl Node {
    /// The child at `seg`, if this node is a mapping with that key or a sequence that long.
    pub fn child(&self, seg: &Seg) -> Option<&Node> {
        match (&self.value, seg) {
            (Value::Map(entries), Seg::Key(k)) => entries
                .iter()
                .find(|(key, _)| &key.name == k)
                .map(|(_, n)| n),
            (Value::Seq(items), Seg::Index(i)) => items.get(*i),
            _ => None,
        }
    }

    /// The line that best locates `path`: the key's own line for mapping entries, and the
    /// deepest existing ancestor when the path does not exist (a missing key is reported
    /// where its parent starts).
    pub fn line_of(&self, path: &[Seg]) -> usize {
        let mut node = self;
        let mut line = self.line;
        for seg in path {
            match (&node.value, seg) {
                (Value::Map(entries), Seg::Key(k)) => {
                    match entries.iter().find(|(key, _)| &key.name == k) {
                        Some((key, child)) => {
                            line = key.line;
                            node = child;
                        }
                        None => return line,
                    }
                }
                _ => match node.child(seg) {
                    Some(child) => {
                        line = child.line;
                        node = child;
                    }
                    None => return line,
                },
            }
        }
        line
    }

    /// A short name for the kind of value, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Null => "nothing",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

enum Frame {
    Seq(Node),
    Map {
        node: Node,
        pending_key: Option<Key>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    anchors: std::collections::HashMap<usize, Node>,
    /// Anchor ids of the containers currently open, to register them when they close.
    open_anchors: Vec<usize>,
    error: Option<SyntaxError>,
}

impl Builder {
    fn push_value(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq(seq)) => {
                if let Value::Seq(items) = &mut seq.value {
                    items.push(node);
                }
            }
            Some(Frame::Map {
                node: map,
                pending_key,
            }) => match pending_key.take() {
                None => {
                    let name = match &node.value {
                        Value::Scalar { text, .. } => text.clone(),
                        Value::Null => String::new(),
                        _ => {
                            self.error.get_or_insert(SyntaxError {
                                line: node.line,
                                message: "mapping keys must be plain values".into(),
                            });
                            String::new()
                        }
                    };
                    if let Value::Map(entries) = &map.value
                        && let Some((first, _)) = entries.iter().find(|(k, _)| k.name == name)
                    {
                        self.error.get_or_insert(SyntaxError {
                            line: node.line,
                            message: format!(
                                "duplicate key `{name}` (first on line {})",
                                first.line
                            ),
                        });
                    }
                    *pending_key = Some(Key {
                        name,
                        line: node.line,
                    });
                }
                Some(key) => {
                    if let Value::Map(entries) = &mut map.value {
                        entries.push((key, node));
                    }
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line().max(1);
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = style == TScalarStyle::Plain;
                let value = if plain && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL")
                {
                    Value::Null
                } else {
                    Value::Scalar { text, plain }
                };
                let node = Node { line, value };
                if anchor > 0 {
                    self.anchors.insert(anchor, node.clone());
                }
                self.push_value(node);
            }
            Event::SequenceStart(anchor, _) => {
                self.open_anchors.push(anchor);
                self.stack.push(Frame::Seq(Node {
                    line,
                    value: Value::Seq(Vec::new()),
                }));
            }
            Event::MappingStart(anchor, _) => {
                self.open_anchors.push(anchor);
                self.stack.push(Frame::Map {
                    node: Node {
                        line,
                        value: Value::Map(Vec::new()),
                    },
                    pending_key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let anchor = self.open_anchors.pop().unwrap_or(0);
                if let Some(frame) = self.stack.pop() {
                    let node = match frame {
                        Frame::Seq(node) | Frame::Map { node, .. } => node,
                    };
                    if anchor > 0 {
                        self.anchors.insert(anchor, node.clone());
                    }
                    self.push_value(node);
                }
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().unwrap_or(Node {
                    line,
                    value: Value::Null,
                });
                self.push_value(node);
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Seg {
        Seg::Key(k.into())
    }

    #[test]
    fn lines_are_one_based_and_point_at_keys() {
        let doc = parse("---\nname: x\nendpoints:\n- name: linux1\n  image: utility\n").unwrap();
        assert_eq!(doc.line_of(&[key("name")]), 2);
        assert_eq!(doc.line_of(&[key("endpoints")]), 3);
        assert_eq!(
            doc.line_of(&[key("endpoints"), Seg::Index(0), key("image")]),
            5
        );
        // A missing key is located at its deepest existing parent.
        assert_eq!(
            doc.line_of(&[key("endpoints"), Seg::Index(0), key("presentations")]),
            4
        );
    }

    #[test]
    fn plain_and_quoted_scalars_differ_and_null_is_nothing() {
        let doc = parse("a: 22\nb: \"22\"\nc:\nd: ~\n").unwrap();
        assert_eq!(
            doc.child(&key("a")).unwrap().value,
            Value::Scalar {
                text: "22".into(),
                plain: true
            }
        );
        assert_eq!(
            doc.child(&key("b")).unwrap().value,
            Value::Scalar {
                text: "22".into(),
                plain: false
            }
        );
        assert_eq!(doc.child(&key("c")).unwrap().value, Value::Null);
        assert_eq!(doc.child(&key("d")).unwrap().value, Value::Null);
    }

    #[test]
    fn syntax_errors_carry_their_line() {
        let err = parse("a: 1\nb: x: y\nc: 3\n").unwrap_err();
        assert_eq!(err.line, 2, "{err:?}");
        assert!(err.message.starts_with("YAML syntax error"), "{err:?}");
    }

    #[test]
    fn tab_errors_point_at_the_tab() {
        // A tab used for indentation three lines into a block.
        let src = "endpoints:\n- name: linux1\n  image: utility\n  presentations:\n  - name: cli\n    port: 22\n\ttype: ssh\n";
        let err = parse(src).unwrap_err();
        assert_eq!(err.line, 7, "{err:?}");
        assert!(err.message.contains("tab"), "{err:?}");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.message.contains("duplicate key `a` (first on line 1)"));
    }

    #[test]
    fn aliases_resolve_to_their_anchor() {
        let doc = parse("a: &x [1, 2]\nb: *x\n").unwrap();
        assert!(matches!(&doc.child(&key("b")).unwrap().value, Value::Seq(v) if v.len() == 2));
    }

    #[test]
    fn empty_document_is_null() {
        assert_eq!(parse("").unwrap().value, Value::Null);
        assert_eq!(parse("# only a comment\n").unwrap().value, Value::Null);
    }
}
