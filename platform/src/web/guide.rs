//! Stage guides as safe HTML: Markdown (pulldown-cmark) and Jupyter notebooks (their markdown
//! and code cells, read-only).
//!
//! NRE Labs guides embed `<button onclick="runSnippetInTab('linux1', this)">` after a code
//! block; those become `<button class="snippet" data-endpoint="linux1">`, which the page's
//! script wires to the endpoint's terminal. Everything else goes through ammonia, so a guide
//! cannot run script in the learner's page.

use std::path::Path;
use std::sync::LazyLock;

use pulldown_cmark::{Options, Parser, html};
use regex::Regex;
use serde::Deserialize;

use crate::curriculum::model::GuideType;

/// Failures to produce a guide (the page shows them in place of the guide).
#[derive(Debug, thiserror::Error)]
pub enum GuideError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a notebook this page can show: {message}")]
    Notebook { path: String, message: String },
}

static SNIPPET_BUTTON: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?is)<button\b[^>]*?\bonclick\s*=\s*["']\s*runSnippetInTab\(\s*['"]([A-Za-z0-9_.-]+)['"]\s*,\s*this\s*\)\s*;?\s*["'][^>]*>"#)
        .unwrap_or_else(|e| panic!("snippet button pattern: {e}"))
});

/// The guide of `stage` in `lesson_dir`, as sanitised HTML.
pub fn render(lesson_dir: &Path, stage: usize, kind: GuideType) -> Result<String, GuideError> {
    let path = lesson_dir
        .join(format!("stage{stage}"))
        .join(kind.file_name());
    let text = std::fs::read_to_string(&path).map_err(|source| GuideError::Read {
        path: path.display().to_string(),
        source,
    })?;
    match kind {
        GuideType::Markdown => Ok(markdown(&text)),
        GuideType::Jupyter => notebook(&text).map_err(|message| GuideError::Notebook {
            path: path.display().to_string(),
            message,
        }),
    }
}

/// Markdown → sanitised HTML with snippet buttons.
pub fn markdown(source: &str) -> String {
    let mut raw = String::new();
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES;
    html::push_html(&mut raw, Parser::new_ext(source, options));
    sanitize(&raw)
}

/// A short Markdown text (a hint) as sanitised inline HTML, without the paragraph around it.
pub fn inline(source: &str) -> String {
    let html = markdown(source);
    let trimmed = html.trim();
    trimmed
        .strip_prefix("<p>")
        .and_then(|t| t.strip_suffix("</p>"))
        .filter(|inner| !inner.contains("<p>"))
        .unwrap_or(trimmed)
        .to_owned()
}

fn sanitize(raw: &str) -> String {
    let with_buttons = SNIPPET_BUTTON.replace_all(
        raw,
        r#"<button type="button" class="snippet" data-endpoint="$1">"#,
    );
    ammonia::Builder::default()
        .add_tags(["button"])
        .add_tag_attributes("button", ["type", "class", "data-endpoint"])
        .add_tag_attributes("code", ["class"])
        .add_tag_attributes("pre", ["class"])
        .clean(&with_buttons)
        .to_string()
}

#[derive(Deserialize)]
struct Notebook {
    cells: Vec<Cell>,
}

#[derive(Deserialize)]
struct Cell {
    cell_type: String,
    #[serde(default)]
    source: Source,
    #[serde(default)]
    outputs: Vec<serde_json::Value>,
}

/// Notebook text: one string or a list of lines.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Source {
    #[default]
    Empty,
    One(String),
    Lines(Vec<String>),
}

impl Source {
    fn text(&self) -> String {
        match self {
            Source::Empty => String::new(),
            Source::One(s) => s.clone(),
            Source::Lines(lines) => lines.concat(),
        }
    }
}

/// A notebook's markdown and code cells (with their text outputs), read-only.
pub fn notebook(source: &str) -> Result<String, String> {
    let nb: Notebook = serde_json::from_str(source).map_err(|e| e.to_string())?;
    let mut md = String::new();
    for cell in &nb.cells {
        let text = cell.source.text();
        match cell.cell_type.as_str() {
            "markdown" => {
                md.push_str(&text);
                md.push_str("\n\n");
            }
            "code" => {
                md.push_str(&fenced(&text, "python"));
                for output in &cell.outputs {
                    let out = output
                        .get("text")
                        .or_else(|| output.get("data").and_then(|d| d.get("text/plain")))
                        .map(|v| match v {
                            serde_json::Value::Array(lines) => {
                                lines.iter().filter_map(|l| l.as_str()).collect::<String>()
                            }
                            serde_json::Value::String(s) => s.clone(),
                            _ => String::new(),
                        })
                        .unwrap_or_default();
                    if !out.is_empty() {
                        md.push_str(&fenced(&out, "output"));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(markdown(&md))
}

/// A fenced code block that survives backticks inside `text`.
fn fenced(text: &str, info: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!(
        "{fence}{info}\n{}\n{fence}\n\n",
        text.trim_end_matches('\n')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_buttons_survive_and_scripts_do_not() {
        let html = markdown(
            "```\npwd\n```\n<button type=\"button\" class=\"btn btn-primary btn-sm\" onclick=\"runSnippetInTab('linux1', this)\">Run this snippet</button>\n\n<script>alert(1)</script><img src=x onerror=alert(2)><button onclick=\"alert(3)\">x</button>",
        );
        assert!(html.contains("<pre><code>pwd\n</code></pre>"), "{html}");
        assert!(
            html.contains(
                r#"<button type="button" class="snippet" data-endpoint="linux1">Run this snippet</button>"#
            ),
            "{html}"
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("onerror"), "{html}");
        assert!(!html.contains("alert(3)"), "{html}");
    }

    #[test]
    fn hints_render_inline_and_safely() {
        assert_eq!(
            inline("`mkdir notes` makes it"),
            "<code>mkdir notes</code> makes it"
        );
        assert!(!inline("<script>x</script>hi").contains("<script"));
    }

    #[test]
    fn notebooks_show_markdown_code_and_text_output() {
        let nb = r##"{"cells":[
            {"cell_type":"markdown","source":["# Title\n","Some *text*"]},
            {"cell_type":"code","source":"print('```')","outputs":[{"text":["```\n"]}]},
            {"cell_type":"raw","source":"ignored"}]}"##;
        let html = notebook(nb).unwrap();
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(html.contains("<em>text</em>"), "{html}");
        assert!(html.contains("print('```')"), "{html}");
        assert!(!html.contains("ignored"), "{html}");
        assert!(notebook("{not json").is_err());
    }

    #[test]
    fn every_fixture_guide_renders() {
        let root =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/nrelabs-curriculum");
        let curriculum = crate::curriculum::load(&root).unwrap();
        let mut buttons = 0;
        for l in curriculum.lessons.values() {
            for (i, st) in l.lesson.stages.iter().enumerate() {
                let html = render(&l.dir, i, st.guide_type).unwrap();
                assert!(!html.is_empty(), "{} stage {i}", l.lesson.slug);
                buttons += html.matches("class=\"snippet\"").count();
            }
        }
        assert!(buttons > 10, "only {buttons} snippet buttons found");
    }
}
