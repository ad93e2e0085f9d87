//! The one integration test binary: the real `skiff` binary, run with a temp HOME and
//! `--state` in a temp folder.
//!
//! Each area has a file in `integration/`, declared here with `#[path]` (this file is the
//! crate root, so a plain `mod x;` would look for `tests/x.rs`).

#[path = "integration/init.rs"]
mod init;

#[path = "integration/state.rs"]
mod state;
