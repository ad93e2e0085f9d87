//! The one integration test binary: real `skiff` runs against real throwaway nodes.
//!
//! Shared helpers live in `support/`; each area has a file in `integration/`, declared
//! here with `#[path]` (this file is the crate root, so plain `mod x;` would look in
//! `tests/x.rs`).

#[path = "support/mod.rs"]
mod support;

#[path = "integration/nodes.rs"]
mod nodes;

#[path = "integration/init.rs"]
mod init;

#[path = "integration/cli.rs"]
mod cli;

#[path = "integration/state.rs"]
mod state;

#[path = "integration/files_and_output.rs"]
mod files_and_output;

#[path = "integration/hardening.rs"]
mod hardening;
#[path = "integration/serve.rs"]
mod serve;
#[path = "integration/setup_node.rs"]
mod setup_node;
#[path = "integration/sync.rs"]
mod sync;

#[path = "integration/update.rs"]
mod update;

#[path = "integration/deploy_user.rs"]
mod deploy_user;

#[path = "integration/env.rs"]
mod env;

#[path = "integration/zero_downtime.rs"]
mod zero_downtime;

#[path = "integration/claims.rs"]
mod claims;
#[path = "integration/debian13.rs"]
mod debian13;
#[path = "integration/defects.rs"]
mod defects;
#[path = "integration/faults.rs"]
mod faults;
#[path = "integration/hostile.rs"]
mod hostile;
#[path = "integration/isolation.rs"]
mod isolation;
#[path = "integration/load.rs"]
mod load;
#[path = "integration/security.rs"]
mod security;

#[path = "integration/node_scripts.rs"]
mod node_scripts;

#[path = "integration/frameworks.rs"]
mod frameworks;

#[path = "integration/pool.rs"]
mod pool;

#[path = "integration/hosts.rs"]
mod hosts;

#[path = "integration/rollout.rs"]
mod rollout;

#[path = "integration/deps.rs"]
mod deps;

#[path = "integration/workers.rs"]
mod workers;

#[path = "integration/services.rs"]
mod services;

#[path = "integration/backup.rs"]
mod backup;
#[path = "integration/operate.rs"]
mod operate;
#[path = "integration/tls.rs"]
mod tls;
