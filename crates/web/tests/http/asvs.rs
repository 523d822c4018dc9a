//! Keeps docs/security/asvs-5.0.md honest: every test it names exists, every row that
//! says "meets" names at least one test, and the summary counts match the rows.
//!
//! A test reference is a backticked `path::name`: `crates/….rs::function_name` (a `fn`
//! in that file, or a name listed in one of its `both_stores!(…)` invocations) or
//! `e2e/tests/….mjs::title words` (the title appears in that file).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const DOC: &str = "docs/security/asvs-5.0.md";
const STATUSES: [&str; 5] = ["meets", "partial", "gap", "untested", "n/a"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every backticked `path::name` on a line.
fn references(line: &str) -> Vec<(String, String)> {
    line.split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| span.starts_with("crates/") || span.starts_with("e2e/"))
        .filter_map(|span| span.split_once("::"))
        .filter(|(path, _)| path.ends_with(".rs") || path.ends_with(".mjs"))
        .map(|(path, name)| (path.to_owned(), name.to_owned()))
        .collect()
}

/// The identifiers listed in the file's `both_stores!(…)` invocations.
fn both_stores_names(source: &str) -> Vec<&str> {
    source
        .split("both_stores!(")
        .skip(1)
        .filter_map(|rest| rest.split_once(')'))
        .flat_map(|(list, _)| list.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect()
}

/// Why a reference does not hold, if it does not.
fn check_reference(root: &Path, path: &str, name: &str) -> Option<String> {
    let Ok(source) = std::fs::read_to_string(root.join(path)) else {
        return Some(format!("`{path}::{name}`: no file {path}"));
    };
    let found = if path.ends_with(".rs") {
        let is_identifier = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        is_identifier && (source.contains(&format!("fn {name}(")) || both_stores_names(&source).contains(&name))
    } else {
        !name.trim().is_empty() && source.contains(name)
    };
    (!found).then(|| format!("`{path}::{name}`: no such test in {path}"))
}

/// The cells of a requirement row (`| V6.2.1 | … |`), if the line is one.
fn requirement_row(line: &str) -> Option<Vec<&str>> {
    let cells: Vec<&str> = line.trim().strip_prefix('|')?.strip_suffix('|')?.split('|').map(str::trim).collect();
    let id = cells.first()?.strip_prefix('V')?;
    id.starts_with(|c: char| c.is_ascii_digit()).then_some(cells)
}

#[test]
fn every_test_named_in_the_asvs_file_exists() {
    let root = repo_root();
    let doc = std::fs::read_to_string(root.join(DOC)).expect("docs/security/asvs-5.0.md");
    let mut problems = Vec::new();
    let mut counted: BTreeMap<&str, usize> = BTreeMap::new();
    let mut references_checked = 0;

    for (n, line) in doc.lines().enumerate() {
        for (path, name) in references(line) {
            references_checked += 1;
            if let Some(problem) = check_reference(&root, &path, &name) {
                problems.push(format!("line {}: {problem}", n + 1));
            }
        }
        let Some(cells) = requirement_row(line) else { continue };
        // | # | requirement | level | status | how | tests |
        let Some(status) = cells.get(3).map(|s| s.trim_matches('*').to_lowercase()) else {
            problems.push(format!("line {}: row {} has no status cell", n + 1, cells[0]));
            continue;
        };
        let Some(known) = STATUSES.iter().find(|s| **s == status) else {
            problems.push(format!("line {}: row {} has an unknown status {status:?}", n + 1, cells[0]));
            continue;
        };
        *counted.entry(known).or_default() += 1;
        if status == "meets" && references(line).is_empty() {
            problems.push(format!("line {}: row {} says meets but names no test", n + 1, cells[0]));
        }
    }

    // The summary table (`| meets | 12 |`) says what the rows say.
    for line in doc.lines() {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        if let [status, count] = cells[..]
            && let Some(known) = STATUSES.iter().find(|s| **s == status.trim_matches('*'))
            && let Ok(count) = count.trim_matches('*').parse::<usize>()
        {
            let actual = counted.get(known).copied().unwrap_or(0);
            if count != actual {
                problems.push(format!("summary says {count} rows are {known}, the table has {actual}"));
            }
        }
    }

    assert!(references_checked > 0, "no test references found in {DOC}");
    assert!(problems.is_empty(), "{DOC} is out of date:\n  {}", problems.join("\n  "));
}
