//! The README's code blocks, read as a newcomer reads them: the model `tests/blocks.rs` checks
//! them with, and the rewriting of `src/bin/`.
//!
//! Every ```` ```rust ```` block of `README.md` is a program of this package,
//! `src/bin/<NN>_<slug>.rs`, byte for byte the block's text: `NN` is the block's place among the
//! README's Rust blocks (01, 02, …), `slug` the heading it sits under (`## The Redis layer` →
//! `the_redis_layer`). Line `n` of the file is line `n` after the block's opening fence.
//!
//! After changing the README's blocks, rewrite `src/bin/` with
//!
//! ```sh
//! UPDATE_README_BLOCKS=1 cargo test -p readme-blocks --lib
//! ```
//!
//! This library's test does it without building the programs, so it works even when one of them
//! does not compile. (`tests/blocks.rs` rewrites them with that variable too, but building it
//! builds every program first.)
//!
//! The programs do not use this library: they are what the README shows, and nothing else.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Set to anything to rewrite `src/bin/` from the README instead of failing.
pub const UPDATE_VARIABLE: &str = "UPDATE_README_BLOCKS";

/// The command that rewrites `src/bin/` from the README.
pub const UPDATE_COMMAND: &str = "UPDATE_README_BLOCKS=1 cargo test -p readme-blocks --lib";

/// Whether [`UPDATE_VARIABLE`] is set.
pub fn updating() -> bool {
    std::env::var_os(UPDATE_VARIABLE).is_some()
}

// ===== the README =====

/// A fenced code block of the README.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// What follows the opening fence: the language, such as `rust` or `toml`.
    pub info: String,
    /// The lines between the fences, each ending with `\n`.
    pub text: String,
    /// The line of the opening fence (1-based).
    pub line: usize,
    /// The text of the closest heading above it (`""` when there is none).
    pub heading: String,
    /// Whether the opening fence is indented (a block inside a list item).
    pub indented: bool,
}

/// This package's directory.
pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The repository's `README.md`.
pub fn readme_path() -> PathBuf {
    manifest_dir().join("..").join("README.md")
}

/// Where the programs are: `src/bin/`.
pub fn bin_dir() -> PathBuf {
    manifest_dir().join("src").join("bin")
}

/// The code blocks of `README.md`.
///
/// # Panics
/// When the README cannot be read, or a block is never closed.
pub fn readme_blocks() -> Vec<Block> {
    let path = readme_path();
    let readme = fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    parse_blocks(&readme)
}

/// The fenced code blocks of a Markdown text (```` ``` ```` fences, as the README uses).
///
/// # Panics
/// When a block is never closed.
pub fn parse_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut heading = String::new();
    let mut open: Option<Block> = None;
    for (index, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match open.as_mut() {
            Some(_) if trimmed.starts_with("```") && trimmed.trim_end() == "```" => {
                blocks.extend(open.take());
            }
            Some(block) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            None if trimmed.starts_with("```") => {
                open = Some(Block {
                    info: trimmed.trim_start_matches('`').trim().to_owned(),
                    text: String::new(),
                    line: index + 1,
                    heading: heading.clone(),
                    indented: trimmed.len() != line.len(),
                });
            }
            None if line.starts_with('#') => heading = line.trim_start_matches('#').trim().to_owned(),
            None => {}
        }
    }
    if let Some(block) = open {
        panic!("README.md line {}: a code block is never closed", block.line);
    }
    blocks
}

/// A heading as a file name: `The Redis layer` → `the_redis_layer`,
/// ``Memoize functions: `#[cached_tower]` `` → `memoize_functions_cached_tower`.
pub fn slug(heading: &str) -> String {
    let words: Vec<String> = heading
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    if words.is_empty() { "readme".to_owned() } else { words.join("_") }
}

/// The Rust blocks by program name (`01_quick_start`).
pub fn rust_programs(blocks: &[Block]) -> BTreeMap<String, &Block> {
    blocks
        .iter()
        .filter(|block| block.info == "rust")
        .enumerate()
        .map(|(index, block)| (format!("{:02}_{}", index + 1, slug(&block.heading)), block))
        .collect()
}

/// What makes blocks unfit to paste: a block without a language, or a Rust block that is not a
/// complete program marked just `rust` (`rust,no_run`, rustdoc's hidden `# ` lines, no
/// `fn main`, indented).
pub fn block_problems(blocks: &[Block]) -> Vec<String> {
    let mut problems = Vec::new();
    for block in blocks {
        let at = format!("README.md line {}", block.line);
        let language = block.info.split([',', ' ']).next().unwrap_or_default();
        if block.info.is_empty() {
            problems.push(format!("{at}: a code block without a language: mark it (`toml`, `sh`, `json`, `text`, …)"));
        } else if language == "rust" && block.info != "rust" {
            problems.push(format!("{at}: ```{}: mark a Rust block just ```rust: a complete program", block.info));
        } else if block.info == "rust" {
            if block.indented {
                problems.push(format!("{at}: an indented Rust block: start its fence at the start of the line"));
            }
            for (offset, line) in block.text.lines().enumerate() {
                let code = line.trim_start();
                if code == "#" || code.starts_with("# ") {
                    problems.push(format!(
                        "README.md line {}: a rustdoc hidden line (`# …`): a pasted block must compile as written",
                        block.line + 1 + offset
                    ));
                }
            }
            if !block.text.contains("fn main(") {
                problems.push(format!("{at}: a Rust block without `fn main`: it must be a complete program"));
            }
        }
    }
    problems
}

// ===== src/bin/ =====

/// The `.rs` files of `src/bin/` by program name, with their text.
///
/// # Panics
/// When the directory or a file cannot be read.
pub fn bin_files() -> BTreeMap<String, String> {
    let dir = bin_dir();
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(&dir).unwrap_or_else(|err| panic!("reading {}: {err}", dir.display())) {
        let path = entry.expect("reading src/bin/").path();
        if path.extension().is_some_and(|ext| ext == "rs") {
            let name = path.file_stem().and_then(|stem| stem.to_str()).expect("a UTF-8 file name").to_owned();
            let text = fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
            files.insert(name, text);
        }
    }
    files
}

/// Checks that the README's blocks are fit to paste and that `src/bin/` holds exactly its Rust
/// blocks; with `update`, first rewrites `src/bin/` to hold them.
///
/// # Errors
/// What is wrong, and how to fix it.
///
/// # Panics
/// When the README or `src/bin/` cannot be read or written.
pub fn check_bin_dir(update: bool) -> Result<(), String> {
    let blocks = readme_blocks();
    let problems = block_problems(&blocks);
    let wanted = rust_programs(&blocks);
    let present = bin_files();

    let mut differences = Vec::new();
    for (name, block) in &wanted {
        match present.get(name) {
            None => {
                differences.push(format!("missing: src/bin/{name}.rs (the block at README.md line {})", block.line))
            }
            Some(text) if *text != block.text => differences.push(format!(
                "differs: src/bin/{name}.rs is not the text of the block at README.md line {}",
                block.line
            )),
            Some(_) => {}
        }
    }
    let extra: Vec<&String> = present.keys().filter(|name| !wanted.contains_key(*name)).collect();
    for name in &extra {
        differences.push(format!("extra: src/bin/{name}.rs is no block of README.md"));
    }

    if update && !differences.is_empty() {
        let dir = bin_dir();
        for name in extra {
            let path = dir.join(format!("{name}.rs"));
            match fs::remove_file(&path) {
                // Another test process, rewriting too, may have removed it first.
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => panic!("removing {}: {err}", path.display()),
                _ => {}
            }
        }
        for (name, block) in &wanted {
            if present.get(name) != Some(&block.text) {
                let path = dir.join(format!("{name}.rs"));
                fs::write(&path, &block.text).unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
            }
        }
        println!("rewrote src/bin/ from README.md:\n{}", differences.join("\n"));
        differences.clear();
    }

    let mut report = Vec::new();
    if !problems.is_empty() {
        report.push(format!("README.md has blocks a newcomer cannot use as written:\n{}", problems.join("\n")));
    }
    if !differences.is_empty() {
        report.push(format!(
            "src/bin/ does not hold the README's Rust blocks:\n{}\n\nrewrite it from README.md with\n    \
             {UPDATE_COMMAND}\nthen run the tests again, and commit src/bin/ with the README",
            differences.join("\n")
        ));
    }
    if report.is_empty() { Ok(()) } else { Err(report.join("\n\n")) }
}

// ===== Cargo.toml =====

/// The entries of the `[dependencies]` table of a `Cargo.toml` text: name → specification, with
/// comments removed and whitespace made single spaces. One entry a line, as the README writes
/// them.
///
/// # Panics
/// On a line of the table that is no `name = spec`.
pub fn dependencies(toml: &str) -> BTreeMap<String, String> {
    let mut in_dependencies = false;
    let mut entries = BTreeMap::new();
    for line in toml.lines() {
        let line = without_comment(line).trim();
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
        } else if in_dependencies && !line.is_empty() {
            let (name, spec) = line.split_once('=').unwrap_or_else(|| panic!("not a dependency line: {line}"));
            entries.insert(name.trim().to_owned(), spec.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    entries
}

/// The line without its `#` comment (a `#` inside a string is kept).
fn without_comment(line: &str) -> &str {
    let mut in_string = false;
    for (at, c) in line.char_indices() {
        match c {
            '"' => in_string = !in_string,
            '#' if !in_string => return &line[..at],
            _ => {}
        }
    }
    line
}

/// An inline table without its entry `key`: `{ path = "x", features = ["a"] }` without `path`
/// is `{ features = ["a"] }`. Anything else is returned as it is.
pub fn without_entry(spec: &str, key: &str) -> String {
    let Some(inner) = spec.strip_prefix('{').and_then(|rest| rest.strip_suffix('}')) else {
        return spec.to_owned();
    };
    // The entries are separated by the commas outside strings, arrays and tables.
    let (mut entries, mut current, mut depth, mut in_string) = (Vec::new(), String::new(), 0, false);
    for c in inner.chars() {
        match c {
            '"' => in_string = !in_string,
            '[' | '{' if !in_string => depth += 1,
            ']' | '}' if !in_string => depth -= 1,
            ',' if !in_string && depth == 0 => {
                entries.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    entries.push(current);
    let kept: Vec<&str> = entries
        .iter()
        .map(|entry| entry.trim())
        .filter(|entry| !entry.is_empty() && entry.split('=').next().map(str::trim) != Some(key))
        .collect();
    if kept.is_empty() { "{ }".to_owned() } else { format!("{{ {} }}", kept.join(", ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Also the rewriting step: with `UPDATE_README_BLOCKS=1` it rewrites `src/bin/` first.
    #[test]
    fn src_bin_holds_the_readme_rust_blocks() {
        if let Err(report) = check_bin_dir(updating()) {
            panic!("{report}");
        }
    }

    #[test]
    fn blocks_know_their_heading_line_and_language() {
        let markdown = "# Title\n\n```sh\ncargo run\n```\n\n## The Redis layer\n\n```rust\nfn main() {}\n```\n";
        let blocks = parse_blocks(markdown);
        assert_eq!(blocks.len(), 2);
        assert_eq!((blocks[0].info.as_str(), blocks[0].heading.as_str(), blocks[0].line), ("sh", "Title", 3));
        assert_eq!(blocks[1].text, "fn main() {}\n");
        assert_eq!(rust_programs(&blocks).into_keys().collect::<Vec<_>>(), ["01_the_redis_layer"]);
        assert!(block_problems(&blocks).is_empty());
    }

    #[test]
    fn unfit_blocks_are_named_with_their_line() {
        let markdown =
            "```\nplain\n```\n```rust,no_run\nlet x = 1;\n```\n```rust\n# fn main() {\nlet x = 1;\n# }\n```\n";
        let problems = block_problems(&parse_blocks(markdown));
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(problems[0].starts_with("README.md line 1: a code block without a language"));
        assert!(problems[1].starts_with("README.md line 4: ```rust,no_run"));
        assert!(problems[2].starts_with("README.md line 8: a rustdoc hidden line"));
        assert!(problems[3].starts_with("README.md line 10: a rustdoc hidden line"));
    }

    #[test]
    fn slugs_keep_the_words_of_a_heading() {
        assert_eq!(slug("Memoize functions: `#[cached_tower]`"), "memoize_functions_cached_tower");
        assert_eq!(slug("Named towers (registry)"), "named_towers_registry");
        assert_eq!(slug(""), "readme");
    }

    #[test]
    fn dependency_lines_compare_without_comments_and_location() {
        let toml = "[package]\nname = \"x\"\n\n[dependencies]\n# a comment\ncache-tower = { path = \"../a\" }  # why\n\
                    serde = { version = \"1\", features = [\"derive\"] }\n\n[dev-dependencies]\nfoo = \"1\"\n";
        let deps = dependencies(toml);
        assert_eq!(deps.keys().collect::<Vec<_>>(), ["cache-tower", "serde"]);
        assert_eq!(without_entry(&deps["cache-tower"], "path"), "{ }");
        assert_eq!(without_entry("{ workspace = true }", "workspace"), "{ }");
        assert_eq!(
            without_entry("{ path = \"a\", features = [\"tls\", \"redis\"] }", "path"),
            "{ features = [\"tls\", \"redis\"] }"
        );
        assert_eq!(without_entry(&deps["serde"], "path"), deps["serde"]);
    }
}
