//! `docs/rules.md` stays true: one section per rule, R1 to R21 in order, an index that
//! agrees with the sections, every test and file it names existing, and every rule number
//! cited in the workspace's `.rs` files naming one of its rules.
//!
//! Nothing here runs the runtime: the tests read files under the workspace root (the facade
//! package's `CARGO_MANIFEST_DIR`) and check their text. Each check collects every problem
//! it finds and compares the list with an empty one, so a failure names all of them.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// How many rules the contract has.
const RULES: u32 = 21;

/// Where the document lives, from the workspace root.
const DOC: &str = "docs/rules.md";

/// The workspace root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// One `## Rn — title` section of the document.
struct Section {
    /// The rule's number, `n`.
    rule: u32,
    /// What follows the dash in the heading.
    title: String,
    /// The `path::name` entries of its **Tests** list, in order.
    tests: Vec<String>,
    /// Every line of the section, the heading excluded.
    body: String,
}

/// The rule sections of the document, in the order they appear. A `## R...` heading that
/// does not read `## R<n> — <title>` is a panic naming it.
fn sections(doc: &str) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    let mut in_tests = false;
    let mut in_rule = false;
    for line in doc.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            in_tests = false;
            in_rule = heading.starts_with('R');
            if in_rule {
                let (number, title) = heading[1..]
                    .split_once(" — ")
                    .unwrap_or_else(|| panic!("a rule heading is `## R<n> — <title>`: {line:?}"));
                let rule = number
                    .parse()
                    .unwrap_or_else(|_| panic!("not a rule number: {line:?}"));
                sections.push(Section {
                    rule,
                    title: title.trim().to_string(),
                    tests: Vec::new(),
                    body: String::new(),
                });
            }
            continue;
        }
        let Some(section) = sections.last_mut().filter(|_| in_rule) else {
            continue;
        };
        section.body.push_str(line);
        section.body.push('\n');
        if line.trim() == "**Tests**" {
            in_tests = true;
        } else if in_tests {
            if let Some(entry) = line.strip_prefix("- `") {
                let end = entry.find('`').expect("a test entry ends with a backtick");
                section.tests.push(entry[..end].to_string());
            }
        }
    }
    sections
}

/// The index table's rows: (rule, anchor, title, number of tests).
fn index_rows(doc: &str) -> Vec<(u32, String, String, usize)> {
    doc.lines()
        .filter(|line| line.starts_with("| [R"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let link = cells[1].strip_prefix("[R").expect("a link to the rule");
            let (number, anchor) = link.split_once("](#").expect("`[Rn](#anchor)`");
            let count = cells[3].parse().expect("a count of tests");
            (
                number.parse().expect("a rule number"),
                anchor.trim_end_matches(')').to_string(),
                cells[2].to_string(),
                count,
            )
        })
        .collect()
}

/// The anchor GitHub gives a heading: lower case, spaces to hyphens, punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Whether `source` holds a test function `name`: a `fn name(` line with `#[test]` (or
/// `#[treeloop::test ...]`) among the attribute and comment lines right above it.
fn has_test_fn(source: &str, name: &str) -> bool {
    let lines: Vec<&str> = source.lines().collect();
    let signature = format!("fn {name}(");
    lines.iter().enumerate().any(|(at, line)| {
        line.trim_start().starts_with(&signature)
            && lines[..at]
                .iter()
                .rev()
                .map(|line| line.trim())
                .take_while(|line| line.starts_with("#[") || line.starts_with("//"))
                .any(|line| line.starts_with("#[test]") || line.starts_with("#[treeloop::test"))
    })
}

/// The rule numbers cited in `text` (`R` then digits, standing alone as a word), each with
/// its line number. Digits too many for a `u32` come back as `u32::MAX`.
fn cited_rules(text: &str) -> Vec<(usize, u32)> {
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut found = Vec::new();
    let mut line = 1;
    for (at, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            line += 1;
        }
        if b != b'R' || (at > 0 && word(bytes[at - 1])) {
            continue;
        }
        let digits = bytes[at + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let end = at + 1 + digits;
        if digits > 0 && bytes.get(end).is_none_or(|&b| !word(b)) {
            let number = text[at + 1..end].parse().unwrap_or(u32::MAX);
            found.push((line, number));
        }
    }
    found
}

/// Every `.rs` file under the workspace root, `target` and `.git` directories left out.
/// An explicit work list, not recursion; symbolic links are not followed.
fn rust_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![root().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.expect("a directory entry");
            let kind = entry.file_type().expect("a file type");
            let path = entry.path();
            if kind.is_dir() {
                if !matches!(entry.file_name().to_str(), Some("target" | ".git")) {
                    dirs.push(path);
                }
            } else if kind.is_file() && path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn there_is_one_section_per_rule_in_order_each_saying_where_it_is_implemented() {
    let sections = sections(&read(DOC));
    let numbers: Vec<u32> = sections.iter().map(|s| s.rule).collect();
    assert_eq!(numbers, (1..=RULES).collect::<Vec<_>>());
    let incomplete: Vec<u32> = sections
        .iter()
        .filter(|s| s.title.is_empty() || !s.body.contains("Implemented"))
        .map(|s| s.rule)
        .collect();
    assert_eq!(
        incomplete,
        Vec::<u32>::new(),
        "a title and an `Implemented` line"
    );
}

#[test]
fn every_rule_lists_three_to_ten_distinct_tests_and_the_index_agrees() {
    let doc = read(DOC);
    let sections = sections(&doc);
    let mut problems = Vec::new();
    for s in &sections {
        let distinct: BTreeSet<&String> = s.tests.iter().collect();
        if !(3..=10).contains(&s.tests.len()) || distinct.len() != s.tests.len() {
            problems.push(format!(
                "R{}: {} tests, {} distinct",
                s.rule,
                s.tests.len(),
                distinct.len()
            ));
        }
    }
    assert_eq!(problems, Vec::<String>::new());
    let expected: Vec<(u32, String, String, usize)> = sections
        .iter()
        .map(|s| {
            let heading = format!("R{} — {}", s.rule, s.title);
            (s.rule, anchor(&heading), s.title.clone(), s.tests.len())
        })
        .collect();
    assert_eq!(
        index_rows(&doc),
        expected,
        "the index: rule, anchor, title, count"
    );
}

#[test]
fn every_listed_test_exists_as_a_test_function_in_its_file() {
    let mut problems = Vec::new();
    let mut listed = 0;
    for s in sections(&read(DOC)) {
        for entry in &s.tests {
            listed += 1;
            let Some((file, name)) = entry.rsplit_once("::") else {
                problems.push(format!("R{}: `{entry}` is not `path::name`", s.rule));
                continue;
            };
            match fs::read_to_string(root().join(file)) {
                Ok(source) if has_test_fn(&source, name) => {}
                Ok(_) => problems.push(format!("R{}: no test `fn {name}(` in {file}", s.rule)),
                Err(e) => problems.push(format!("R{}: {file}: {e}", s.rule)),
            }
        }
    }
    assert_eq!(problems, Vec::<String>::new());
    assert!(listed >= 3 * RULES as usize, "{listed} tests listed");
}

/// A quoted word that starts with a letter and has a `/` in it (and no space or `::`) is a
/// path from the workspace root: `executor/src/tree.rs`, `reactor/src/signal/`.
#[test]
fn every_path_the_document_names_exists() {
    let doc = read(DOC);
    let missing: Vec<&str> = doc
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|quoted| quoted.starts_with(|c: char| c.is_ascii_alphabetic()))
        .filter(|quoted| quoted.contains('/') && !quoted.contains([' ', ':']))
        .filter(|path| !root().join(path).exists())
        .collect();
    assert_eq!(missing, Vec::<&str>::new());
}

#[test]
fn every_rule_number_in_the_workspace_code_is_one_of_the_rules() {
    let files = rust_files();
    let relative: Vec<PathBuf> = files
        .iter()
        .map(|f| {
            f.strip_prefix(root())
                .expect("under the root")
                .to_path_buf()
        })
        .collect();
    // The walk reaches the member crates and the tests, and never a build directory.
    for expected in [
        "executor/src/tree.rs",
        "scope/src/scope.rs",
        "tests/rules_doc.rs",
    ] {
        assert!(
            relative.contains(&PathBuf::from(expected)),
            "{expected} not walked"
        );
    }
    assert!(!relative.iter().any(|p| p.starts_with("target")));
    let mut outside = Vec::new();
    let mut citations = 0;
    for (path, shown) in files.iter().zip(&relative) {
        let Ok(text) = fs::read_to_string(path) else {
            continue;
        };
        for (line, rule) in cited_rules(&text) {
            citations += 1;
            if !(1..=RULES).contains(&rule) {
                outside.push(format!("{}:{line}: R{rule}", shown.display()));
            }
        }
    }
    assert_eq!(outside, Vec::<String>::new(), "rules are R1 to R{RULES}");
    assert!(citations > 0);
}

#[test]
fn rule_numbers_are_found_only_as_whole_words() {
    let text = "see R7, (R13–R15) and R21.\nnot FR1, R2x, R_3 or R\n`R1`";
    assert_eq!(
        cited_rules(text),
        [(1, 7), (1, 13), (1, 15), (1, 21), (3, 1)]
    );
    let zero = format!("R{}", 0);
    assert_eq!(cited_rules(&zero), [(1, 0)]);
    assert_eq!(
        anchor("R3 — `block_on` waits, for the tree"),
        "r3--block_on-waits-for-the-tree"
    );
}
