//! Compile errors of `#[cached_tower]`: one `ui/<problem>.rs` per diagnostic, with the expected
//! compiler output beside it in `ui/<problem>.stderr`. Each error must say what is wrong and point
//! at the token that is wrong.
//!
//! The expected output depends on the compiler version; after a toolchain upgrade, regenerate it
//! with `TRYBUILD=overwrite cargo test -p cache-tower-tests --test ui` and read the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/*.rs");
}
