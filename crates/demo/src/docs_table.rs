//! The results block the README and `docs/demo.md` show, written by the demo
//! itself (`--update-docs`) so that both come from one run and cannot
//! disagree.
//!
//! The block sits between [`BEGIN`] and [`END`]; everything outside the
//! markers is left as it is. The block names the command, the commit the
//! run was built from and the load average of the machine, then the
//! settings line and the table, then (when it ran) the lanes measurement's
//! line and table.

use std::path::{Path, PathBuf};

use crate::report::RunReport;

/// The line before the generated block.
pub const BEGIN: &str = "<!-- demo-table:begin -->";
/// The line after the generated block.
pub const END: &str = "<!-- demo-table:end -->";
/// The files `--update-docs` rewrites, relative to the workspace root.
pub const DOC_FILES: [&str; 2] = ["README.md", "docs/demo.md"];

/// What was true of the machine and the source when the figures were taken.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Provenance {
    /// `git rev-parse --short HEAD`, with ` (uncommitted changes)` when the
    /// tracked files differ from it; `unknown` without git.
    pub commit: String,
    /// The 1, 5 and 15 minute load averages before the run, if known.
    pub load_before: Option<String>,
    /// The same after the run.
    pub load_after: Option<String>,
}

/// The commit the working directory is at, or `unknown`.
pub fn current_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(hash) if !hash.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{hash} (uncommitted changes)")
            } else {
                hash
            }
        }
        _ => "unknown".to_string(),
    }
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`), where the
/// platform has them.
pub fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    (fields.len() == 3).then(|| fields.join(" "))
}

/// The generated block, markers included.
pub fn block(report: &RunReport, provenance: &Provenance) -> String {
    let mut out = format!("{BEGIN}\n");
    if let Some(command) = &report.settings.command {
        out.push_str(&format!("`{command}`, "));
    }
    out.push_str(&format!("commit {}", provenance.commit));
    match (&provenance.load_before, &provenance.load_after) {
        (Some(before), Some(after)) => out.push_str(&format!(
            ", load average (1, 5, 15 min) {before} before the run and {after} after it"
        )),
        (Some(only), None) | (None, Some(only)) => {
            out.push_str(&format!(", load average (1, 5, 15 min) {only}"))
        }
        (None, None) => {}
    }
    out.push_str(&format!(
        ".\n{}.\n\n{}",
        report.settings_line(),
        report.table()
    ));
    if let (Some(line), Some(lanes)) = (report.lanes_line(), &report.lanes) {
        out.push_str(&format!("\n{line}.\n\n{}", lanes.table()));
    }
    out.push_str(END);
    out.push('\n');
    out
}

/// Why a document could not be updated.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The file could not be read or written.
    #[error("--update-docs {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file does not hold the markers once each, in order.
    #[error("--update-docs {}: expected {BEGIN} once, then {END} once", path.display())]
    Markers {
        /// The file.
        path: PathBuf,
    },
}

/// `text` with the lines from [`BEGIN`] to [`END`] replaced by `block`, or
/// `None` if the markers are not there once each, in order.
pub fn replace_block(text: &str, block: &str) -> Option<String> {
    if text.matches(BEGIN).count() != 1 || text.matches(END).count() != 1 {
        return None;
    }
    let start = text.find(BEGIN)?;
    let end_marker = text.find(END)?;
    if end_marker < start {
        return None;
    }
    let after = end_marker + END.len();
    let after = after + usize::from(text[after..].starts_with('\n'));
    Some(format!("{}{block}{}", &text[..start], &text[after..]))
}

/// The lines between the markers of `text`, if it has them.
pub fn block_of(text: &str) -> Option<&str> {
    let start = text.find(BEGIN)? + BEGIN.len();
    let end = start + text[start..].find(END)?;
    Some(&text[start..end])
}

/// The cells of the first Markdown table row in `block`, trimmed.
pub fn header_of(block: &str) -> Option<Vec<String>> {
    headers_of(block).into_iter().next()
}

/// The header cells of every Markdown table in `block`, in order: the
/// first row of each run of lines that start with `|`.
pub fn headers_of(block: &str) -> Vec<Vec<String>> {
    let mut headers = Vec::new();
    let mut in_table = false;
    for line in block.lines() {
        let is_row = line.trim_start().starts_with('|');
        if is_row && !in_table {
            let line = line.trim();
            if let Some(inner) = line.strip_prefix('|').and_then(|l| l.strip_suffix('|')) {
                headers.push(inner.split('|').map(|c| c.trim().to_string()).collect());
            }
        }
        in_table = is_row;
    }
    headers
}

/// Replaces the block in each of `files` (checking every file before
/// writing any); returns the files written.
pub fn update(files: &[PathBuf], block: &str) -> Result<Vec<PathBuf>, UpdateError> {
    let mut updated = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path).map_err(|source| UpdateError::Io {
            path: path.clone(),
            source,
        })?;
        let new = replace_block(&text, block)
            .ok_or_else(|| UpdateError::Markers { path: path.clone() })?;
        updated.push((path, new));
    }
    let mut written = Vec::new();
    for (path, text) in updated {
        write(path, &text)?;
        written.push(path.clone());
    }
    Ok(written)
}

fn write(path: &Path, text: &str) -> Result<(), UpdateError> {
    std::fs::write(path, text).map_err(|source| UpdateError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_block_between_the_markers_is_replaced_and_the_rest_kept() {
        let text = format!("intro\n{BEGIN}\nold\n{END}\nafter\n");
        let new = replace_block(&text, &format!("{BEGIN}\nnew\n{END}\n")).unwrap();
        assert_eq!(new, format!("intro\n{BEGIN}\nnew\n{END}\nafter\n"));
        assert_eq!(block_of(&new), Some("\nnew\n"));
        assert!(replace_block("no markers", "x").is_none());
        assert!(replace_block(&format!("{END}\n{BEGIN}\n"), "x").is_none());
        assert!(replace_block(&format!("{BEGIN}{BEGIN}{END}"), "x").is_none());
    }

    #[test]
    fn the_header_row_is_split_into_cells() {
        let block = "text\n\n| mode | a b  |\n| --- | --: |\n| pool | 1 |\n";
        assert_eq!(header_of(block), Some(vec!["mode".into(), "a b".into()]));
        assert_eq!(header_of("no table"), None);
        let two = "| a |\n| - |\n| 1 |\n\ntext\n\n| b | c |\n| - | - |\n";
        assert_eq!(
            headers_of(two),
            vec![vec!["a".to_string()], vec!["b".into(), "c".into()]]
        );
    }

    #[test]
    fn the_load_average_has_three_fields_where_known() {
        if let Some(load) = load_average() {
            assert_eq!(load.split(' ').count(), 3, "{load}");
        }
        assert!(!current_commit().is_empty());
    }
}
