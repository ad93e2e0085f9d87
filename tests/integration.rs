//! The one integration test binary: each area's tests live in `tests/integration/`.
//! They run the real `skiff` binary against real processes; nothing is mocked.

#[path = "integration/serve.rs"]
mod serve;
