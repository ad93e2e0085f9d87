//! `skiff setup-node`: provision a node as a skiff web host (see [`crate::provision`]).
//!
//! Status lines (one per step, with its time) go to stderr, above a live line on a
//! terminal; the plan (`--dry-run`) and the `--json` document go to stdout.

use std::time::{Instant, SystemTime};

use crate::cli::SetupNodeArgs;
use crate::cluster::{SetupStamp, StateFile};
use crate::error::Result;
use crate::printer::Printer;
use crate::provision::{self, Choices, Event, Plan};
use crate::transport::{self, Session};

/// Runs setup-node for the named (or default) node.
pub fn run(state: &StateFile, args: &SetupNodeArgs, printer: &Printer) -> Result<()> {
    let cluster = state.load()?;
    provision::render::set_override_dir(state.dir().join("templates"));
    // setup-node takes the node by position, not `--node` (issue 17)
    let name = cluster
        .pick_node(args.name.as_deref())
        .map_err(|e| match e {
            crate::Error::NoNode => crate::Error::usage(
                "no node given and no default node set",
                "name it: `skiff setup-node NAME` (see `skiff list-nodes`), or set a default with `skiff default-node NAME`",
            ),
            other => other,
        })?;
    let node = cluster.node(&name)?.clone();
    let choices = Choices {
        apt_proxy: args
            .apt_proxy
            .as_deref()
            .map(provision::check_apt_proxy)
            .transpose()?,
        python_slots: args.python_slots.map(usize::from),
        ruby_slots: args.ruby_slots.map(usize::from),
        operator_keys: provision::operator_keys(node.identity.as_deref()),
        skiff_version: env!("CARGO_PKG_VERSION").into(),
        firewall: !args.no_firewall,
    };
    let login = provision::KeyLogin {
        target: transport::Target::admin_for_node(&name, &node),
        ssh_dir: state.dir(),
    };
    let started = Instant::now();
    // on a terminal, a live line with the node, its current step and the time; status
    // lines print above it
    let live = printer.live_line(&name);
    if let Some(bar) = &live {
        bar.set_message("connecting");
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
    }
    let say = |verb: &str, message: String| match &live {
        Some(bar) => bar.suspend(|| printer.status(verb, message)),
        None => printer.status(verb, message),
    };
    let outcome = transport::block_on(async {
        let t = Instant::now();
        let session = Session::admin_for_node(&name, &node, state).await?;
        say(
            "Connected",
            format!(
                "to `{name}` ({}@{}) in {:.2} s",
                node.user,
                node.address,
                t.elapsed().as_secs_f64()
            ),
        );
        if let Some(bar) = &live {
            bar.set_message("probing");
        }
        let mut on_event = |e: Event| match e {
            Event::Started { step, detail } => {
                if let Some(bar) = &live {
                    bar.set_message(step);
                }
                say("Installing", detail)
            }
            Event::Done(s) => say(&verb(&s.step), format!("{} ({:.2} s)", s.detail, s.seconds)),
        };
        let result =
            provision::setup_node(&session, &login, &choices, args.dry_run, &mut on_event).await;
        let closed = session.close().await;
        let outcome = result?;
        closed?;
        Ok::<_, crate::Error>(outcome)
    });
    if let Some(bar) = &live {
        bar.finish_and_clear();
    }
    let outcome = outcome??;

    if !args.dry_run {
        let stale = node.setup.as_ref().is_none_or(|s| {
            s.digest != outcome.digest || s.skiff_version != env!("CARGO_PKG_VERSION")
        });
        // deploys log in as the deploy user only once setup-node confirmed it works
        let deploy_user = match &outcome.deploy_login {
            Some(Ok(user)) => Some(user.clone()),
            Some(Err(why)) => {
                printer.status(
                    "Note",
                    format!(
                        "deploys keep logging in as `{}`: {why} (run `skiff setup-node {name}` \
                         again once that works)",
                        node.user
                    ),
                );
                None
            }
            None => node.deploy_user.clone(),
        };
        if deploy_user != node.deploy_user {
            state.update(&mut super::waiting_notice(printer), |c| {
                if let Some(n) = c.nodes.get_mut(&name) {
                    n.deploy_user = deploy_user.clone();
                }
                Ok(())
            })?;
        }
        if outcome.changed || stale {
            let stamp = SetupStamp {
                time: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
                skiff_version: env!("CARGO_PKG_VERSION").into(),
                digest: outcome.digest.clone(),
            };
            state.update(&mut super::waiting_notice(printer), |c| {
                if let Some(n) = c.nodes.get_mut(&name) {
                    n.setup = Some(stamp);
                }
                Ok(())
            })?;
        }
    }
    let total = started.elapsed().as_secs_f64();

    if printer.json() {
        let doc = serde_json::json!({
            "node": name,
            "dry_run": args.dry_run,
            "os": outcome.os,
            "changed": outcome.changed,
            "empty_plan": outcome.plan.is_empty(),
            "plan": outcome.plan,
            "steps": outcome.steps,
            "seconds": (total * 1000.0).round() / 1000.0,
            "digest": outcome.digest,
            "deploy_user": outcome.deploy_login.as_ref().and_then(|r| r.as_ref().ok()),
        });
        printer.json_value("setup-node", &doc);
        return Ok(());
    }
    if args.dry_run {
        print_plan(&outcome.plan, printer);
        return Ok(());
    }
    for note in &outcome.plan.notes {
        printer.status("Note", note);
    }
    let what = if outcome.changed {
        "set up"
    } else {
        "already set up: nothing changed"
    };
    printer.status("Finished", format!("`{name}` {what} in {total:.2} s"));
    Ok(())
}

fn verb(step: &str) -> String {
    match step {
        "inspect" => "Inspected",
        "packages" => "Installed",
        "users" => "Created",
        "folders" => "Prepared",
        "files" => "Wrote",
        "apache-modules" => "Configured",
        "config-test" => "Tested",
        "services" => "Services",
        "firewall" => "Firewall",
        "key-only-ssh" => "Hardened",
        "key-only-ssh-skipped" => "Skipped",
        "deploy-user" => "Confirmed",
        "check" => "Checked",
        "stamp" => "Stamped",
        other => other,
    }
    .to_string()
}

/// The plan for people: what would change, with unified diffs.
fn print_plan(plan: &Plan, printer: &Printer) {
    if plan.is_empty() {
        printer.data(format!(
            "Nothing to change on node `{}` ({}).",
            plan.node, plan.os
        ));
        for note in &plan.notes {
            printer.data(format!("note: {note}"));
        }
        return;
    }
    printer.data(format!("Plan for node `{}` ({}):", plan.node, plan.os));
    if plan.repair_dpkg {
        printer.data("  finish an interrupted dpkg (dpkg --configure -a)");
    }
    if !plan.packages.is_empty() {
        printer.data(format!("  install packages: {}", plan.packages.join(" ")));
    }
    if let Some(user) = &plan.create_user {
        printer.data(format!("  create user: {user}"));
    }
    if !plan.add_groups.is_empty() {
        printer.data(format!(
            "  add user {} to groups: {}",
            provision::DEPLOY_USER,
            plan.add_groups.join(" ")
        ));
    }
    for d in &plan.migrate {
        printer.data(format!(
            "  give {d}'s root-owned files to {} (deployed to as root before)",
            provision::DEPLOY_USER
        ));
    }
    for d in &plan.dirs {
        let action = match d.action {
            provision::plan::FileAction::Create => "create folder",
            _ => "fix folder",
        };
        printer.data(format!("  {action} {} ({} {})", d.path, d.mode, d.owner));
    }
    for f in &plan.files {
        let action = match f.action {
            provision::plan::FileAction::Create => "create",
            provision::plan::FileAction::Update => "update",
            provision::plan::FileAction::Chmod => "fix mode/owner of",
        };
        printer.data(format!("  {action} {} ({} {})", f.path, f.mode, f.owner));
        for line in f.diff.lines() {
            printer.data(format!("    {line}"));
        }
    }
    for r in &plan.removals {
        printer.data(format!("  remove {r}"));
    }
    let a = &plan.apache;
    if !a.disable_mods.is_empty() {
        printer.data(format!(
            "  apache: disable modules {}",
            a.disable_mods.join(" ")
        ));
    }
    if !a.enable_mods.is_empty() || a.enable_php {
        let mut mods = a.enable_mods.clone();
        if a.enable_php {
            mods.push("php".into());
        }
        printer.data(format!("  apache: enable modules {}", mods.join(" ")));
    }
    if !a.enable_confs.is_empty() {
        printer.data(format!(
            "  apache: enable conf {}",
            a.enable_confs.join(" ")
        ));
    }
    if !a.disable_sites.is_empty() {
        printer.data(format!(
            "  apache: disable sites {}",
            a.disable_sites.join(" ")
        ));
    }
    if !a.enable_sites.is_empty() {
        printer.data(format!(
            "  apache: enable sites {}",
            a.enable_sites.join(" ")
        ));
    }
    let services = plan.service_phrases();
    if !services.is_empty() {
        printer.data(format!("  services: {}", services.join(", ")));
    }
    let contract = crate::deploy::contract::FIREWALL_TABLE;
    match plan.firewall {
        provision::plan::FirewallAction::Load => printer.data(format!(
            "  firewall: check (nft -c) and load nftables table {contract}, enabled at boot \
             (--no-firewall leaves the firewall to you)"
        )),
        provision::plan::FirewallAction::Unload => printer.data(format!(
            "  firewall: delete nftables table {contract} and disable its unit (--no-firewall)"
        )),
        provision::plan::FirewallAction::None => {}
    }
    if let Some(f) = &plan.sshd {
        printer.data(format!(
            "  key-only SSH: once key logins of the login user and the deploy user work, \
             write {} ({} {}), check with sshd -t, reload sshd",
            f.path, f.mode, f.owner
        ));
        for line in f.diff.lines() {
            printer.data(format!("    {line}"));
        }
    }
    for note in &plan.notes {
        printer.data(format!("  note: {note}"));
    }
}
