//! Curriculum: the NRE Labs–compatible model, its loader and validator.
//!
//! [`load`] reads a curriculum directory, checks every file and reports every problem at once
//! as [`Problem`]s (`file:line: message`). Valid lessons are served; invalid ones are listed
//! with their problems — the server and `antidote validate` use the same code.

pub mod model;
pub(crate) mod schema_check;
mod validate;
pub mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use model::{Collection, CurriculumMeta, Image, Lesson};
pub use validate::{find_config_file, load};

/// One problem in a curriculum, located in a file (relative to the curriculum root).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based line; 0 when the problem concerns the file as a whole (e.g. unreadable).
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

/// A lesson that passed every check, with where it lives.
#[derive(Debug, Clone)]
pub struct LoadedLesson {
    pub lesson: Lesson,
    /// Absolute directory of the lesson (holds `stage<N>/`).
    pub dir: PathBuf,
}

/// A lesson file that failed one or more checks; not served.
#[derive(Debug, Clone)]
pub struct InvalidLesson {
    /// The lesson's slug when it could be read, else its directory name.
    pub name: String,
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

/// The result of loading a curriculum directory.
#[derive(Debug, Clone)]
pub struct Curriculum {
    pub root: PathBuf,
    pub meta: Option<CurriculumMeta>,
    /// Valid lessons by slug.
    pub lessons: BTreeMap<String, LoadedLesson>,
    pub invalid_lessons: Vec<InvalidLesson>,
    /// Valid images by slug.
    pub images: BTreeMap<String, Image>,
    /// Valid collections by slug.
    pub collections: BTreeMap<String, Collection>,
    /// Lesson, image and collection files found, valid or not.
    pub counts: Counts,
    /// Every problem, sorted by file and line.
    pub problems: Vec<Problem>,
}

/// How many definition files of each kind were found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub lessons: usize,
    pub images: usize,
    pub collections: usize,
}

impl Curriculum {
    /// The one-line summary `antidote validate` ends with.
    pub fn summary(&self) -> String {
        format!(
            "{} ({} valid), {}, {}, {}",
            plural(self.counts.lessons, "lesson"),
            self.lessons.len(),
            plural(self.counts.images, "image"),
            plural(self.counts.collections, "collection"),
            plural(self.problems.len(), "problem")
        )
    }

    /// Whether the curriculum has no problem at all.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Failure to read a curriculum at all (as opposed to problems inside it).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("curriculum directory {0} does not exist or is not a directory")]
    NotADirectory(PathBuf),
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Relative path of `path` below `root`, for messages.
fn relative(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root).unwrap_or(path).to_path_buf()
}
