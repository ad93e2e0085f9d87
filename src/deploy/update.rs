//! `skiff update`: sync, build and check release N on every node, then switch every
//! node or none (see docs/architecture.md).

use super::*;
use crate::cluster::Cluster;
use std::collections::BTreeSet;

/// What `skiff update` was asked to do.
#[derive(Debug, Clone)]
pub struct UpdateRequest {
    /// The app folder.
    pub dir: PathBuf,
    /// Host names (empty: app.toml's).
    pub hosts: Vec<String>,
    /// Nodes (empty: the default node).
    pub nodes: Vec<String>,
}

/// Per-node result of an update.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    /// Node name.
    pub node: String,
    /// Daemon slot the release runs in, if any.
    pub slot: Option<String>,
    /// Seconds per phase.
    pub phases: BTreeMap<String, f64>,
    /// The sync summary.
    pub sync: SyncSummary,
    /// Releases removed by pruning.
    pub pruned: Vec<u32>,
    /// Commands (round trips) run over the node's SSH session, the sync's included.
    pub round_trips: u64,
}

/// The result of an update (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct UpdateReport {
    /// App name.
    pub app: String,
    /// The new version.
    pub version: u32,
    /// The version it replaced.
    pub previous: Option<u32>,
    /// Per node.
    pub nodes: Vec<NodeReport>,
    /// URLs: HOST, `N.HOST`, `prev.HOST`.
    pub urls: Vec<String>,
    /// Seconds from start until HOST served the new version on every node.
    pub served_after: f64,
    /// Seconds in all.
    pub seconds: f64,
    /// With `[tls] acme = true`: each node's certificate (node name -> its expiry).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub certificates: BTreeMap<String, super::status::CertView>,
}

/// The hosts to deploy: `--hostname`s (validated) or app.toml's.
pub(super) fn hosts_for(config: &AppConfig, requested: &[String]) -> Result<Vec<String>> {
    let hosts = if requested.is_empty() {
        config.hostnames.clone()
    } else {
        for h in requested {
            crate::names::check_hostname(h).map_err(|e| {
                Error::usage(
                    format!("invalid `--hostname`: {e}"),
                    "pass a host name like `blog.example.com`",
                )
            })?;
        }
        requested.to_vec()
    };
    if hosts.is_empty() {
        return Err(Error::usage(
            format!("app `{}` has no host names", config.name),
            "add `hostnames = [\"blog.example.com\"]` to app.toml or pass `--hostname`",
        ));
    }
    if routing::main_host(&hosts).is_none() {
        return Err(Error::usage(
            "every host name is a wildcard; the first plain one is the main host",
            "add a plain host name first, e.g. `blog.example.com`",
        ));
    }
    Ok(hosts)
}

/// The plain environment of a release: `[env]` then skiff's own variables.
pub(super) fn release_env(config: &AppConfig, n: u32, main: &str) -> BTreeMap<String, String> {
    let mut env = config.env.clone();
    env.insert("SKIFF_APP".into(), config.name.clone());
    env.insert("SKIFF_VERSION".into(), n.to_string());
    env.insert("SKIFF_HOST".into(), main.to_string());
    env.insert("SKIFF_CANONICAL_HOST".into(), main.to_string());
    env
}

/// Key of the venv for a requirements file: its sha256, the node's OS, and whether it
/// sees the system's packages (`[python] system_packages`).
pub(super) fn venv_key(requirements_sha256: &[u8], os: &str, system_packages: bool) -> String {
    let mut h = sha2::Sha256::new();
    h.update(os.as_bytes());
    h.update(b"\0");
    if system_packages {
        h.update(b"system-site-packages\0");
    }
    h.update(requirements_sha256);
    hex::encode(h.finalize())[..16].to_string()
}

/// What one update needs on every node, shared by the per-node steps.
pub(super) struct Plan<'a> {
    config: &'a AppConfig,
    hosts: &'a [String],
    main: &'a str,
    n: u32,
    manifest: &'a sync::manifest::Manifest,
    /// pyproject.toml's `[project] dependencies` as requirements text, when
    /// `[python] requirements` is not set.
    pyproject_deps: Option<&'a str>,
    cache: &'a Path,
    owner: &'a str,
    token: &'a str,
    events: &'a EventFn,
    /// One node only: its trial, switch and finish go in one round trip, keeping this
    /// many releases.
    one_node_keep: Option<usize>,
    /// The node whose timers run the app's cron jobs (the first by name).
    cron_node: &'a str,
    /// The run, for the deploy log.
    run: &'a history::Run,
    /// The node that holds the app's services and runs the release command.
    services_node: &'a str,
    /// For the other nodes: the services' credential files, pointing at it.
    service_files: &'a str,
    /// For the services' node: the other nodes' addresses.
    allow: &'a str,
}

/// Deploys `req.dir` as a new version to every chosen node.
pub async fn update(
    state: &StateFile,
    req: &UpdateRequest,
    events: EventFn,
) -> Result<UpdateReport> {
    let started = Instant::now();
    let mut signals = Signals::new()?;
    let config = AppConfig::load(&req.dir)?;
    config.refuse_unsupported(&req.dir.join(crate::app_config::FILE_NAME))?;
    let pyproject_deps = match &config.python {
        Some(py) if py.requirements.is_none() => crate::pyproject::dependencies(&req.dir)?,
        _ => None,
    };
    let hosts = hosts_for(&config, &req.hosts)?;
    let main = routing::main_host(&hosts).expect("checked").to_string();
    let cluster = state.load()?;
    if config.tls.as_ref().is_some_and(|t| t.acme) {
        super::tls::account_of(&cluster)?;
    }
    let nodes: Vec<String> = if req.nodes.is_empty() {
        vec![cluster.pick_node(None)?]
    } else {
        for n in &req.nodes {
            cluster.node(n)?;
        }
        req.nodes.clone()
    };
    let cache = state.dir().join("cache").join(&config.name);
    let scan_dir = req.dir.clone();
    let hash_cache = cache.join("hashes.json");
    let manifest = tokio::task::spawn_blocking(move || {
        sync::scan::scan(
            &scan_dir,
            &sync::scan::ScanOptions {
                hash_cache: Some(hash_cache),
            },
        )
    })
    .await
    .map_err(|e| Error::failed(format!("scanning the app folder failed: {e}")))??;
    events(Event::Phase {
        node: String::new(),
        phase: "scan".into(),
        seconds: started.elapsed().as_secs_f64(),
    });

    let app = config.name.as_str();
    let owner = owner_line(app);
    let targets = lock_all(state, &cluster, &nodes, app, &owner, &events).await?;
    if let Err(e) = crate::failpoint::hit("update:locked", None) {
        return Err(release_all(targets, app, &owner, e).await);
    }
    for t in &targets {
        if let Err(e) = routing::check_hosts_free(&t.begun.state, app, &hosts) {
            return Err(release_all(targets, app, &owner, e).await);
        }
    }
    let cron_node = duty_node(targets.iter().map(|t| t.name.as_str()));
    let services_node = match services_node(&config, &targets, &cron_node, &cluster) {
        Ok(n) => n,
        Err(e) => return Err(release_all(targets, app, &owner, e).await),
    };
    if crate::units::needs_systemd(&config)
        && let Some(t) = targets.iter().find(|t| !t.begun.systemd)
    {
        let what = if config.processes.is_empty() {
            "`[[cron]]`"
        } else {
            "`[processes]`"
        };
        let e = Error::usage(
            format!(
                "app `{app}` has {what}, which skiff runs as systemd units, and node `{}` has no systemd as its PID 1",
                t.name
            ),
            "deploy it to nodes that boot systemd (any Ubuntu or Debian server does), or remove the workers and cron from app.toml",
        );
        return Err(release_all(targets, app, &owner, e).await);
    }
    let n = match config.version {
        Some(v) => {
            if let Some(t) = targets.iter().find(|t| {
                t.begun
                    .state
                    .apps
                    .get(app)
                    .is_some_and(|a| a.releases.iter().any(|r| r.number == v))
            }) {
                let e = Error::usage(
                    format!("version {v} of `{app}` already exists on node `{}`", t.name),
                    "raise `version` in app.toml, or remove it to use the next number",
                );
                return Err(release_all(targets, app, &owner, e).await);
            }
            v
        }
        // never a number an interrupted run used on any node: its leftovers count too
        None => targets
            .iter()
            .map(|t| {
                let found = t.begun.found.iter().max().map_or(1, |m| m + 1);
                t.begun.state.next_number(app).max(found)
            })
            .max()
            .unwrap_or(1),
    };
    // What a dead run left (its lock was broken, or it died between switch and finish):
    // release folders no state names.
    for t in &targets {
        let left = t.begun.state.leftovers(app, &t.begun.found);
        if left.is_empty() {
            continue;
        }
        events(Event::Note {
            node: t.name.clone(),
            message: format!(
                "removing release(s) {} that an interrupted deploy left behind",
                left.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
        if let Err(e) = remote::recover(&t.session, app, &owner, &left).await {
            return Err(release_all(targets, app, &owner, e).await);
        }
    }

    // Sync, build and trial on every node in parallel; a signal or any failure aborts
    // them all (each node undoes exactly what this run did there).
    let token = new_token(n);
    let run = history::Run::start("update", &owner)
        .version(Some(n))
        .tree(manifest.digest(), &req.dir);
    // Services on an app with several nodes: made ready on their node first, for the
    // others' addresses; the others get the credentials (in memory here, never printed).
    let mut allow = String::new();
    let mut service_files = String::new();
    if !config.services.is_empty() && targets.len() > 1 {
        let others: Vec<String> = targets
            .iter()
            .filter(|t| t.name != services_node)
            .filter_map(|t| cluster.node(&t.name).ok().map(|n| n.address.clone()))
            .collect();
        allow = others.join(" ");
        let holder = targets
            .iter()
            .find(|t| t.name == services_node)
            .expect("checked");
        let address = cluster.node(&services_node)?.address.clone();
        step(&events, &holder.name, "services");
        let files = remote::services(
            &holder.session,
            app,
            &owner,
            &config.service_lines(),
            &allow,
        )
        .await;
        match files {
            Ok(files) => service_files = remote_credentials(&files, &address),
            Err(e) => return Err(release_all(targets, app, &owner, e).await),
        }
    }
    let plan = Plan {
        config: &config,
        hosts: &hosts,
        main: &main,
        n,
        manifest: &manifest,
        pyproject_deps: pyproject_deps.as_deref(),
        cache: &cache,
        owner: &owner,
        token: &token,
        events: &events,
        one_node_keep: (targets.len() == 1).then(|| config.keep.unwrap_or(DEFAULT_KEEP) as usize),
        cron_node: &cron_node,
        run: &run,
        services_node: &services_node,
        service_files: &service_files,
        allow: &allow,
    };
    let staged = tokio::select! {
        r = stage_all(&targets, &plan) => r,
        _ = signals.recv() => Err(Error::Interrupted),
    };
    let staged = match staged.and_then(|s| crate::failpoint::hit("update:staged", None).map(|()| s))
    {
        Ok(s) => s,
        Err(e) => return Err(abort_all(targets, app, &owner, Some(n), &token, &run, e).await),
    };

    // Every node passed: switch them all (routes + state), then finish (idle freed
    // slots, prune, unlock). A node refusing its switch puts the nodes already
    // switched back, so nodes never disagree on what HOST serves. Signals wait until
    // this is done: the switch is short, and stopping half-way is worse.
    let keep = config.keep.unwrap_or(DEFAULT_KEEP) as usize;
    let mut previous = None;
    let mut plans = Vec::new();
    let shared = kept_everywhere(staged.iter().map(|p| &p.state), app);
    let olds: Vec<Option<u32>> = staged
        .iter()
        .map(|p| p.before.apps.get(app).and_then(|a| a.current))
        .collect();
    let recorded = cluster.apps.get(&main).and_then(|a| a.current);
    let prev = agreed_prev(&olds, &shared, recorded, n);
    for p in &staged {
        previous = previous.or(p.before.apps.get(app).and_then(|a| a.current));
        let (st, freed, prune) = if staged.len() > 1 {
            p.state.after_switch_to(app, n, prev, keep, Some(&shared))
        } else {
            p.state.after_switch(app, n, keep)
        };
        let routes = routing::render_map(&st);
        plans.push((st, routes, freed, prune));
    }
    let mut phases: Vec<PhaseTimes> = staged.iter().map(|p| p.phases.clone()).collect();
    for (i, t) in targets.iter().enumerate() {
        let (st, routes, _, _) = &plans[i];
        if staged[i].done {
            continue; // one node: switched and finished in its trial's round trip
        }
        step(&events, &t.name, "switch");
        let switched = match crate::failpoint::hit("update:switch", Some(&t.name)) {
            Ok(()) => remote::switch(&t.session, app, &owner, st, routes).await,
            Err(e) => Err(e),
        };
        match switched {
            Ok(ph) => phases[i].extend(ph),
            Err(e) => {
                for (done, p) in targets[..i].iter().zip(&staged) {
                    let old = routing::render_map(&p.before);
                    let _ = remote::switch(&done.session, app, &owner, &p.before, &old).await;
                }
                return Err(abort_all(targets, app, &owner, Some(n), &token, &run, e).await);
            }
        }
    }
    let served_after = started.elapsed().as_secs_f64();
    // past the switch nothing is undone: a failpoint here can only kill
    let _ = crate::failpoint::hit("update:switched", None);
    let mut reports = Vec::new();
    let mut final_states = Vec::new();
    for (i, (t, p)) in targets.iter().zip(&staged).enumerate() {
        let (st, _, freed, prune) = &plans[i];
        if !p.done {
            step(&events, &t.name, "finish");
            match remote::finish(&t.session, app, &owner, freed, prune, &run.line(Ok(()))).await {
                Ok(ph) => phases[i].extend(ph),
                Err(e) => events(Event::Note {
                    node: t.name.clone(),
                    message: format!("version {n} is live, but tidying up failed: {e}"),
                }),
            }
        }
        for (k, v) in &phases[i] {
            events(Event::Phase {
                node: t.name.clone(),
                phase: k.clone(),
                seconds: *v,
            });
        }
        reports.push(NodeReport {
            node: t.name.clone(),
            slot: p.slot.clone(),
            phases: phases[i].clone(),
            sync: p.sync.clone(),
            pruned: prune.clone(),
            round_trips: t.session.round_trips(),
        });
        final_states.push((t.name.clone(), st.clone()));
    }
    let services = config
        .services
        .iter()
        .map(|(name, e)| {
            let record = crate::cluster::ServiceRecord {
                kind: e.kind().as_str().to_string(),
                node: services_node.clone(),
            };
            (name.clone(), record)
        })
        .collect();
    let _ = crate::failpoint::hit("update:finished", None);
    record(state, app, &main, &final_states, Some(services), &events)?;
    let _ = crate::failpoint::hit("update:recorded", None);
    // [tls] acme: each node orders (or keeps) its certificate now that HOST is served there
    let sessions: Vec<(&str, &crate::transport::ssh::Session)> = targets
        .iter()
        .map(|t| (t.name.as_str(), &t.session))
        .collect();
    for (name, _) in &sessions {
        if config.tls.is_some() {
            step(&events, name, "certificate");
        }
    }
    let tls = super::tls::after_update(&cluster, &sessions, &config, &hosts).await;
    let mut certificates = BTreeMap::new();
    if config.tls.is_some() {
        for (name, session) in &sessions {
            if let Ok(certs) = super::tls::info(session).await
                && let Some(c) = certs.iter().find(|c| c.app == app)
            {
                certificates.insert(name.to_string(), super::status::CertView::of(c));
            }
        }
    }
    for t in targets {
        let _ = t.session.close().await;
    }
    if let Err(e) = tls {
        let detail = e.detail().map(|d| format!("\n{d}")).unwrap_or_default();
        return Err(Error::Failed {
            message: format!(
                "version {n} of `{app}` is live over HTTP, but its certificate is not: {e}{detail}"
            ),
            hint: e.hint().or_else(|| Some("run `skiff update` again".into())),
        });
    }
    let https = config.tls.as_ref().is_some_and(|t| t.acme);
    let scheme = if https { "https" } else { "http" };
    let mut urls = vec![format!("{scheme}://{main}/"), format!("http://{n}.{main}/")];
    if previous.is_some() {
        urls.push(format!("{scheme}://prev.{main}/"));
    }
    Ok(UpdateReport {
        app: config.name.clone(),
        version: n,
        previous,
        nodes: reports,
        urls,
        served_after,
        seconds: started.elapsed().as_secs_f64(),
        certificates,
    })
}

/// A node that passed its trial, holding both locks.
pub(super) struct Staged {
    /// The node state as it was under the node lock (a refused switch elsewhere puts
    /// this back).
    before: NodeState,
    /// That state with release N kept (not current yet) and its slot.
    state: NodeState,
    slot: Option<String>,
    phases: PhaseTimes,
    sync: SyncSummary,
    /// Already switched and finished (a one-node deploy's `go`).
    done: bool,
}

/// Sync and build on every node (in parallel), then the node locks, then the trials on
/// every node (in parallel) against the truth read under those locks.
pub(super) async fn stage_all(targets: &[Target], plan: &Plan<'_>) -> Result<Vec<Staged>> {
    let built =
        futures_util::future::join_all(targets.iter().map(|t| sync_and_build(t, plan))).await;
    let mut ok = Vec::new();
    let mut first_err = None;
    for r in built {
        match r {
            Ok(b) => ok.push(b),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let got = ok.iter_mut().map(|b| b.lock.take()).collect();
    let views = lock_nodes(targets, &plan.config.name, plan.owner, plan.events, got).await?;
    let trials = futures_util::future::join_all(
        targets
            .iter()
            .zip(ok)
            .zip(views)
            .map(|((t, b), v)| trial_node(t, b, v, plan)),
    )
    .await;
    trials.into_iter().collect()
}

/// A node whose release N is synced and built, holding the app's lock.
pub(super) struct Built {
    phases: PhaseTimes,
    sync: SyncSummary,
    venv: Option<String>,
    /// The node lock, when `prepare` could take it at once.
    lock: Option<NodeView>,
}

/// Syncs release N to one node and prepares it (env snapshot, venv, build commands,
/// meta); the same round trip tries the node lock.
pub(super) async fn sync_and_build(t: &Target, plan: &Plan<'_>) -> Result<Built> {
    let config = plan.config;
    let app = &config.name;
    let n = plan.n;
    let base = t.begun.state.apps.get(app).and_then(|a| a.current);
    let releases = Releases::for_app(app)?;
    let node = t.name.clone();
    let ev = plan.events.clone();
    let progress: sync::ProgressFn = Arc::new(move |p| {
        ev(Event::Progress {
            node: node.clone(),
            progress: p,
        })
    });
    let options = sync::PushOptions {
        cache_dir: Some(plan.cache.join("manifests").join(&t.name)),
        progress: Some(progress),
        ..Default::default()
    };
    step(plan.events, &t.name, "sync");
    let summary = sync::push(&t.session, plan.manifest, &releases, base, n, &options).await?;
    crate::failpoint::hit("update:synced", Some(&t.name))?;
    let mut phases = PhaseTimes::new();
    phases.insert("connect".into(), t.connect_seconds);
    phases.insert("lock".into(), t.lock_seconds);
    phases.insert("sync".into(), summary.seconds.total);

    // The release's environment and meta.
    let env = release_env(config, n, plan.main);
    let env_lines = super::env_file::lines(&env);
    let release_dir = releases.release_dir(n);
    let mut venv = String::new();
    let mut requirements = String::new();
    let mut wheels = String::new();
    let mut requirements_text = String::new();
    let mut meta = serde_json::json!({ "release": release_dir, "env": env });
    if t.begun.has_node_config || !config.services.is_empty() {
        meta["env_file"] = contract::env_snapshot(app, n).into();
    }
    if let Some(py) = &config.python {
        meta["wsgi"] = py.wsgi.clone().into();
        if let Some(req) = &py.requirements {
            // the manifest already hashed the file: no second read
            let hash = plan
                .manifest
                .entries
                .get(req.as_str())
                .and_then(|e| e.sha256())
                .ok_or_else(|| {
                    Error::usage(
                        format!("`{req}` (python.requirements) is not in the shipped tree"),
                        "check .skiffignore: the requirements file must be shipped",
                    )
                })?;
            venv = venv_key(hash, &t.begun.os, py.system_packages);
            requirements = req.clone();
            wheels = py.wheels.clone().unwrap_or_default();
            meta["venv"] = contract::venv_dir(app, &venv).into();
        } else if let Some(deps) = plan.pyproject_deps {
            // no requirements file: pyproject.toml's dependencies, keyed by the list
            // (editing other tables of pyproject.toml keeps the venv)
            venv = venv_key(
                &sha2::Sha256::digest(deps.as_bytes()),
                &t.begun.os,
                py.system_packages,
            );
            requirements_text = deps.to_string();
            wheels = py.wheels.clone().unwrap_or_default();
            meta["venv"] = contract::venv_dir(app, &venv).into();
        }
    }
    if config.runtime == Runtime::Ruby {
        meta["rackup"] = config.ruby_rackup().into();
    }
    // Bundler's bundle and Composer's vendor folder, one per key (like the venv)
    let deps = deps::plan(config, plan.manifest, &t.begun.os)?;
    if !deps.bundle.is_empty() {
        meta["bundle"] = contract::bundle_dir(app, &deps.bundle).into();
    }
    let docroot = if config.runtime == Runtime::Php {
        config.php_docroot().to_string()
    } else {
        String::new()
    };
    let prep = remote::Prepare {
        runtime: config.runtime.as_str(),
        run_user: crate::units::run_user(config),
        packages: config.packages.apt.join(" "),
        system_site: config.python.as_ref().is_some_and(|p| p.system_packages),
        meta: meta.to_string(),
        venv: venv.clone(),
        requirements,
        requirements_text,
        wheels,
        docroot,
        bundle: deps.bundle,
        bundle_local: deps.bundle_local,
        composer: deps.composer,
        env_lines,
        commands: config.build.commands.clone(),
        build_timeout: config.build.timeout().as_secs().max(1),
        units: crate::units::for_release(config, plan.main, n, t.name == plan.cron_node)?.encode(),
        services: config.service_lines(),
        service_files: if t.name == plan.services_node {
            String::new()
        } else {
            plan.service_files.to_string()
        },
        allow: if t.name == plan.services_node {
            plan.allow.to_string()
        } else {
            String::new()
        },
        backup_first: config.deploy.backup_before_release && !config.services.is_empty(),
        release: if t.name == plan.services_node {
            config.deploy.release.clone().unwrap_or_default()
        } else {
            String::new()
        },
    };
    step(plan.events, &t.name, "build");
    let prepared = remote::prepare(&t.session, app, plan.owner, n, &prep).await?;
    crate::failpoint::hit("update:prepared", Some(&t.name))?;
    phases.extend(prepared.phases);
    Ok(Built {
        phases,
        sync: summary,
        venv: (!venv.is_empty()).then_some(venv),
        lock: match prepared.lock {
            remote::Lock::Taken(v) => Some(v),
            remote::Lock::Held(_) => None,
        },
    })
}

/// Under the node lock: decides release N's place from the truth (hosts still free, the
/// slot, slots a dead run left loaded), then loads, warms and health-checks it.
pub(super) async fn trial_node(
    t: &Target,
    built: Built,
    view: NodeView,
    plan: &Plan<'_>,
) -> Result<Staged> {
    let config = plan.config;
    let app = &config.name;
    let n = plan.n;
    routing::check_hosts_free(&view.state, app, plan.hosts)?;
    let mut st = view.state.clone();
    let entry = st.apps.entry(app.clone()).or_insert_with(|| NodeApp {
        runtime: config.runtime,
        hostnames: plan.hosts.to_vec(),
        current: None,
        prev: None,
        releases: Vec::new(),
        packages: Vec::new(),
    });
    for p in &config.packages.apt {
        if !entry.packages.contains(p) {
            entry.packages.push(p.clone());
        }
    }
    entry.runtime = config.runtime;
    entry.hostnames = plan.hosts.to_vec();
    entry.releases.retain(|r| r.number != n);
    entry.releases.push(Release {
        number: n,
        time: now_rfc3339(),
        digest: plan.manifest.digest(),
        size: plan.manifest.total_bytes(),
        venv: built.venv.clone(),
        health: Some(ReleaseHealth {
            path: config.health.path.clone(),
            timeout: config.health.timeout().as_secs_f64(),
        }),
    });
    let reset = st.stale_slots(&view.slot_files);
    if !reset.is_empty() {
        plan.events.as_ref()(Event::Note {
            node: t.name.clone(),
            message: format!(
                "resetting slot(s) {} that an interrupted run left loaded",
                reset.join(", ")
            ),
        });
    }
    let mut slot = None;
    if let Some((k, pool)) = pool_for(&t.begun, config.runtime) {
        let s = pool::choose_or_grow(
            &t.session,
            &t.name,
            &st,
            app,
            n,
            k,
            pool,
            &t.begun.slot_users,
            plan.owner,
            plan.events,
        )
        .await?;
        st.slots.insert(
            s.clone(),
            SlotUse {
                app: app.clone(),
                release: n,
            },
        );
        slot = Some((s, k));
    }
    let backend = routing::backend(&st, app, &st.apps[app.as_str()], n);
    let vhost = format!("{n}.{}", plan.main);
    let trial = remote::Trial {
        app,
        owner: plan.owner,
        n,
        slot: slot.as_ref().map(|(s, k)| (s.as_str(), *k)),
        want: SLOT_PROCESSES,
        backend: &backend,
        vhost: &vhost,
        health: &config.health.path,
        timeout: config.health.timeout().as_secs_f64(),
        token: plan.token,
        reset: &reset,
    };
    let mut phases = built.phases;
    step(plan.events, &t.name, "check");
    let after = plan.one_node_keep.map(|keep| {
        let (next, freed, prune) = st.after_switch(app, n, keep);
        let routes = routing::render_map(&next);
        (next, routes, freed, prune)
    });
    let outcome = match &after {
        Some((next, routes, freed, prune)) => {
            let history = plan.run.line(Ok(()));
            let then = remote::AndSwitch {
                state: next,
                routes,
                freed,
                prune,
                history: &history,
            };
            remote::go(&t.session, &trial, then).await?
        }
        None => remote::trial(&t.session, &trial).await?,
    };
    match outcome {
        Ok(ph) => phases.extend(ph),
        Err(h) => {
            let main = plan.main;
            let mut output = format!(
                "HTTP {} from http://{n}.{main}{}",
                h.status, config.health.path
            );
            if !h.body.trim().is_empty() {
                output.push_str(&format!("\n--- body (first lines)\n{}", h.body.trim_end()));
            }
            if !h.error_log.trim().is_empty() {
                output.push_str(&format!(
                    "\n--- error log (tail)\n{}",
                    h.error_log.trim_end()
                ));
            }
            return Err(Error::Remote {
                node: t.name.clone(),
                command: format!("health check of version {n}"),
                status: None,
                output,
                hint: Some(health_hint(n, &h.status, &config.health.path)),
            });
        }
    }
    plan.events.as_ref()(Event::Note {
        node: t.name.clone(),
        message: format!(
            "version {n} passed its health check at http://{n}.{}{}",
            plan.main, config.health.path
        ),
    });
    Ok(Staged {
        before: view.state,
        state: st,
        slot: slot.map(|(s, _)| s),
        phases,
        sync: built.sync,
        done: after.is_some(),
    })
}

/// The hint of a failed health check; a 403 or 404 at `/` (the default path) most
/// likely means the app has no page there (e.g. Debian's adminer).
pub(super) fn health_hint(n: u32, status: &str, path: &str) -> String {
    let fix = match status {
        "403" | "404" if path == "/" => format!(
            "the app answered {status} at `/`: if it has no page there, set `[health] path` in app.toml to one it answers with 2xx or 3xx (e.g. `path = \"/login\"`)"
        ),
        _ => "fix the app".to_string(),
    };
    format!(
        "version {n} was removed; HOST still serves the previous version. {}{} and run `skiff update` again",
        fix[..1].to_uppercase(),
        &fix[1..]
    )
}

/// The node that holds the app's services (and runs its release command): the one
/// app.toml names (`[services.NAME] node`), else the first of the deploy's nodes by name.
/// Refused before anything is sent: services placed on different nodes or on a node this
/// deploy leaves out, a files service on an app with several nodes (a folder lives on one
/// node), a node address the databases cannot list (not IPv4).
fn services_node(
    config: &AppConfig,
    targets: &[Target],
    first: &str,
    cluster: &Cluster,
) -> Result<String> {
    if config.services.is_empty() {
        return Ok(first.to_string());
    }
    let placed: BTreeSet<&str> = config.services.values().filter_map(|e| e.node()).collect();
    if placed.len() > 1 {
        return Err(Error::usage(
            format!(
                "the services of `{}` are placed on different nodes ({}): services on several nodes are not supported yet",
                config.name,
                placed.into_iter().collect::<Vec<_>>().join(", ")
            ),
            "place them all on one node (`node = \"NAME\"` in each `[services.NAME]`), or leave `node` out",
        ));
    }
    let node = placed.into_iter().next().unwrap_or(first).to_string();
    if !targets.iter().any(|t| t.name == node) {
        return Err(Error::usage(
            format!(
                "the services of `{}` are placed on node `{node}`, which this deploy leaves out",
                config.name
            ),
            format!("deploy to it too (`--node {node}`), or change `node` in app.toml"),
        ));
    }
    if targets.len() > 1 {
        if let Some((name, _)) = config
            .services
            .iter()
            .find(|(_, e)| !e.kind().is_database())
        {
            return Err(Error::usage(
                format!(
                    "`{name}` is a files service, a folder on one node, and `{}` is deployed to {} nodes: files services on an app with several nodes are not supported yet",
                    config.name,
                    targets.len()
                ),
                "deploy the app to one node, or keep those files in the database",
            ));
        }
        for t in targets {
            let address = &cluster.node(&t.name)?.address;
            if address.parse::<std::net::Ipv4Addr>().is_err() {
                return Err(Error::usage(
                    format!(
                        "node `{}` is at `{address}`: the databases let the app's nodes in by IPv4 address, and a name or IPv6 address is not supported yet",
                        t.name
                    ),
                    "record the node by its IPv4 address (`skiff create-node NAME --host 203.0.113.7`)",
                ));
            }
        }
    }
    Ok(node)
}

/// The services' credential files as the other nodes get them: `NAME BASE64` lines, the
/// loopback address of the services' node replaced by its address.
fn remote_credentials(files: &[(String, Vec<u8>)], address: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    files
        .iter()
        .map(|(name, bytes)| {
            let text = String::from_utf8_lossy(bytes)
                .replace("@127.0.0.1:", &format!("@{address}:"))
                .replace("HOST=127.0.0.1", &format!("HOST={address}"))
                .replace("\"host\":\"127.0.0.1\"", &format!("\"host\":\"{address}\""));
            format!("{name} {}\n", b64.encode(text))
        })
        .collect()
}

#[cfg(test)]
mod service_tests {
    use super::remote_credentials;

    #[test]
    fn credentials_point_at_the_services_node() {
        let env =
            b"PGHOST=127.0.0.1\nPGPORT=5432\nDB_URL=postgresql://a_db:pw@127.0.0.1:5432/a_db\n"
                .to_vec();
        let json = br#"{"type":"postgresql","url":"postgresql://a_db:pw@127.0.0.1:5432/a_db","host":"127.0.0.1"}"#.to_vec();
        let wire = remote_credentials(
            &[("db.env".into(), env), ("db.json".into(), json)],
            "10.0.0.5",
        );
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let decoded: Vec<String> = wire
            .lines()
            .map(|l| {
                let (_, data) = l.split_once(' ').unwrap();
                String::from_utf8(b64.decode(data).unwrap()).unwrap()
            })
            .collect();
        assert_eq!(
            decoded[0],
            "PGHOST=10.0.0.5\nPGPORT=5432\nDB_URL=postgresql://a_db:pw@10.0.0.5:5432/a_db\n"
        );
        assert!(
            decoded[1].contains("@10.0.0.5:5432") && decoded[1].contains("\"host\":\"10.0.0.5\"")
        );
        assert!(!decoded.iter().any(|d| d.contains("127.0.0.1")));
    }
}
