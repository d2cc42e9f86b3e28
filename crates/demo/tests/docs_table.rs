//! The results tables of README.md and docs/demo.md are the demo's own
//! output: each file holds one generated block with two tables, the
//! comparison and the lanes measurement, whose header rows are exactly the
//! report's columns today, so a column change without regenerating the
//! docs (`--update-docs`, see docs/demo.md) fails here.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::with_watchdog;
use compute_demo::docs_table::{self, BEGIN, DOC_FILES, END};
use compute_demo::lanes::LanesReport;
use compute_demo::report::RunReport;

fn workspace_file(name: &str) -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, text)
}

#[test]
fn each_doc_has_one_generated_table_with_the_report_columns() {
    with_watchdog(Duration::from_secs(30), || {
        for name in DOC_FILES {
            let (_, text) = workspace_file(name);
            assert_eq!(text.matches(BEGIN).count(), 1, "{name}: one {BEGIN}");
            assert_eq!(text.matches(END).count(), 1, "{name}: one {END}");
            let block = docs_table::block_of(&text).expect("markers in order");
            let headers = docs_table::headers_of(block);
            assert_eq!(
                headers,
                vec![RunReport::columns(), LanesReport::columns()],
                "{name}: the tables' columns differ from the demo's (the comparison, then the lanes measurement); regenerate them with the command in docs/demo.md"
            );
            assert!(
                block.contains("commit "),
                "{name}: the block names its commit"
            );
        }
    });
}

#[test]
fn docs_demo_has_no_other_results_table() {
    with_watchdog(Duration::from_secs(30), || {
        let (_, text) = workspace_file("docs/demo.md");
        let block = docs_table::block_of(&text).expect("markers");
        let outside = text.replacen(block, "", 1);
        // Any other table with a requests/s column would be a second set of
        // figures that could disagree with the generated one.
        let stray: Vec<&str> = outside
            .lines()
            .filter(|l| l.trim_start().starts_with('|') && l.contains("req/s"))
            .collect();
        assert!(stray.is_empty(), "a second results table: {stray:?}");
    });
}
