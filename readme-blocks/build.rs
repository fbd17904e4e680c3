//! Lists the programs of `src/bin/` for `tests/blocks.rs`: for each, its name, the path Cargo
//! builds it at (`CARGO_BIN_EXE_<name>`, which the test can only name at compile time) and the
//! text it was built from. Written to `$OUT_DIR/bins.rs`, which the test includes.
//!
//! Cargo finds the same files on its own (`src/bin/*.rs` are bins without a `[[bin]]` section),
//! so this list is always the set of programs it builds, whatever the README says; the test
//! compares the two.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    let manifest_dir = env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let bin_dir = Path::new(&manifest_dir).join("src").join("bin");
    // A directory: Cargo reruns this script when any file in it is added, removed or changed.
    println!("cargo::rerun-if-changed={}", bin_dir.display());

    let mut programs: Vec<(String, PathBuf)> = fs::read_dir(&bin_dir)
        .unwrap_or_else(|err| panic!("reading {}: {err}", bin_dir.display()))
        .map(|entry| entry.expect("reading src/bin/").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .map(|path| {
            let name = path.file_stem().and_then(|stem| stem.to_str()).expect("a UTF-8 file name").to_owned();
            (name, path)
        })
        .collect();
    programs.sort();

    let mut out = String::from("/// The programs of `src/bin/`, as this test was built.\nconst BINS: &[Bin] = &[\n");
    for (name, path) in &programs {
        let path = path.to_str().expect("a UTF-8 path");
        writeln!(
            out,
            "    Bin {{ name: {name:?}, exe: env!({env:?}), source: include_str!({path:?}) }},",
            env = format!("CARGO_BIN_EXE_{name}"),
        )
        .expect("writing to a String");
    }
    out.push_str("];\n");

    let out_dir = env::var_os("OUT_DIR").expect("cargo sets OUT_DIR");
    fs::write(Path::new(&out_dir).join("bins.rs"), out).expect("writing $OUT_DIR/bins.rs");
}
