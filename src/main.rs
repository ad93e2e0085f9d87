//! The `skiff` binary: everything lives in the library so tests and the binary share it.

fn main() {
    std::process::exit(skiff::run());
}
