//! What `skiff init` writes: app.toml, `static/` and a runtime entry point that `serve`
//! and `update` run unchanged.
