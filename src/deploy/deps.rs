//! Ruby's Bundler and PHP's Composer: which shipped files decide a release's bundle
//! (`bundles/KEY`) or Composer vendor folder (`vendors/KEY`) on the node, like the venv
//! per requirements hash. Keys are computed here once, from the manifest's hashes and the
//! node's OS; node.sh only checks their grammar.

use sha2::Digest;

use crate::app_config::{AppConfig, Runtime};
use crate::error::{Error, Result};
use crate::sync::manifest::Manifest;

/// The dependency folders release N needs on one node ("" = none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deps {
    /// Bundler bundle key (Ruby with `Gemfile` + `Gemfile.lock`).
    pub bundle: String,
    /// The app ships `vendor/cache`: `bundle install --local`, no gem index.
    pub bundle_local: bool,
    /// Composer vendor key (PHP with `composer.json` + `composer.lock`, no `vendor/`).
    pub composer: String,
}

/// Which dependency folders release N needs, from the shipped tree (`manifest`, whose
/// root is the app folder) and the node's OS. Errors name the file and what to do.
pub fn plan(config: &AppConfig, manifest: &Manifest, os: &str) -> Result<Deps> {
    let mut deps = Deps::default();
    let has = |p: &str| manifest.entries.get(p).is_some_and(|e| e.is_file());
    let under = |prefix: &str| {
        manifest
            .entries
            .range(prefix.to_string()..)
            .take_while(|(p, _)| p.starts_with(prefix))
            .any(|(_, e)| e.is_file())
    };
    match config.runtime {
        Runtime::Ruby => {
            if has("Gemfile.lock") && !has("Gemfile") {
                return Err(Error::usage(
                    "`Gemfile.lock` is shipped without `Gemfile`",
                    "ship the Gemfile beside its lock (check .skiffignore), or remove Gemfile.lock",
                ));
            }
            if has("Gemfile") && !has("Gemfile.lock") {
                return Err(Error::usage(
                    "`Gemfile` has no `Gemfile.lock` beside it: the node installs exactly what the lock says",
                    "run `bundle lock` (or `bundle install`) in the app folder and ship Gemfile.lock",
                ));
            }
            if has("Gemfile") {
                let cache = "vendor/cache/";
                deps.bundle = key(manifest, "bundle", os, |p| {
                    p == "Gemfile" || p == "Gemfile.lock" || p.starts_with(cache)
                });
                deps.bundle_local = under(cache);
            }
        }
        Runtime::Php => {
            // a shipped vendor/ is used as is
            let install = has("composer.json") && !under("vendor/");
            if install
                && let Some(prefixes) = composer_plan(config, manifest, has("composer.lock"))?
            {
                deps.composer = key(manifest, "composer", os, |p| {
                    p == "composer.json"
                        || p == "composer.lock"
                        || prefixes.iter().any(|pre| p.starts_with(pre.as_str()))
                });
            }
        }
        _ => {}
    }
    Ok(deps)
}

/// Reads composer.json: `None` when it needs no install (no package in `require`), else
/// the path repositories' folders (whose files go into the key: Composer's lock does not
/// change when their code does).
fn composer_plan(
    config: &AppConfig,
    manifest: &Manifest,
    locked: bool,
) -> Result<Option<Vec<String>>> {
    let Some(root) = &manifest.root else {
        return Ok(None);
    };
    let path = root.join("composer.json");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::usage(
            format!("`composer.json` is not valid JSON: {e}"),
            "fix composer.json (`composer validate` says where)",
        )
    })?;
    let packages = json["require"].as_object().map_or(0, |r| {
        r.keys()
            .filter(|k| k.contains('/') && !k.starts_with("ext-") && !k.starts_with("lib-"))
            .count()
    });
    if packages == 0 && !locked {
        return Ok(None);
    }
    if !locked {
        return Err(Error::usage(
            format!(
                "`composer.json` of {} requires packages, but no `composer.lock` is shipped (and no `vendor/`)",
                config.name
            ),
            "run `composer update` in the app folder and ship composer.lock (or ship vendor/ as it is)",
        ));
    }
    if let Some(dir) = json["config"]["vendor-dir"].as_str()
        && dir.trim_end_matches('/') != "vendor"
    {
        return Err(Error::usage(
            format!(
                "`composer.json` sets config.vendor-dir = \"{dir}\": skiff installs into `vendor/`"
            ),
            "remove config.vendor-dir from composer.json, or run Composer yourself and ship the folder",
        ));
    }
    let mut prefixes = Vec::new();
    for repo in json["repositories"].as_array().into_iter().flatten() {
        if repo["type"].as_str() != Some("path") {
            continue;
        }
        let url = repo["url"].as_str().unwrap_or_default();
        let clean = url.trim_start_matches("./");
        if clean.starts_with('/') || clean.split('/').any(|c| c == "..") {
            return Err(Error::usage(
                format!("the path repository `{url}` in composer.json is outside the app folder"),
                "move the package into the app folder (e.g. packages/NAME) and point the repository there",
            ));
        }
        // the folder before the first wildcard (`packages/*` → `packages/`)
        let fixed = clean.split(['*', '?', '[', '{']).next().unwrap_or_default();
        let folder = match fixed.rfind('/') {
            Some(i) if fixed.len() != clean.len() => &fixed[..=i],
            _ => fixed,
        };
        let folder = folder.trim_end_matches('/');
        prefixes.push(if folder.is_empty() {
            String::new()
        } else {
            format!("{folder}/")
        });
    }
    Ok(Some(prefixes))
}

/// sha256 over the OS, the kind and every selected manifest file's path and hash: 16 hex.
fn key(manifest: &Manifest, kind: &str, os: &str, pick: impl Fn(&str) -> bool) -> String {
    let mut h = sha2::Sha256::new();
    h.update(kind.as_bytes());
    h.update(b"\0");
    h.update(os.as_bytes());
    for (p, e) in &manifest.entries {
        if let Some(sha) = e.sha256().filter(|_| pick(p)) {
            h.update(b"\0");
            h.update(p.as_bytes());
            h.update(b"\0");
            h.update(sha);
        }
    }
    hex::encode(h.finalize())[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::scan::{ScanOptions, scan};
    use std::fs;

    fn app(runtime: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, AppConfig, Manifest) {
        let dir = tempfile::tempdir().unwrap();
        let extra = match runtime {
            "php" => "[php]\ndocroot = \".\"\n",
            _ => "",
        };
        fs::write(
            dir.path().join("app.toml"),
            format!("name = \"a\"\nruntime = \"{runtime}\"\nhostnames = [\"a.test\"]\n{extra}"),
        )
        .unwrap();
        if runtime == "ruby" {
            fs::write(dir.path().join("config.ru"), "run nil\n").unwrap();
        }
        for (p, text) in files {
            let path = dir.path().join(p);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        let config = AppConfig::load(dir.path()).unwrap();
        let manifest = scan(dir.path(), &ScanOptions::default()).unwrap();
        (dir, config, manifest)
    }

    #[test]
    fn ruby_bundle_keyed_by_gemfiles_cache_and_os() {
        let (_d, c, m) = app(
            "ruby",
            &[("Gemfile", "gem 'rack'\n"), ("Gemfile.lock", "L1")],
        );
        let a = plan(&c, &m, "debian-12").unwrap();
        assert_eq!(a.bundle.len(), 16);
        assert!(!a.bundle_local);
        assert!(a.composer.is_empty());
        assert_ne!(plan(&c, &m, "ubuntu-24.04").unwrap().bundle, a.bundle);
        let (_d, c, m) = app(
            "ruby",
            &[
                ("Gemfile", "gem 'rack'\n"),
                ("Gemfile.lock", "L1"),
                ("vendor/cache/x-1.gem", "g"),
                ("lib/app.rb", "x"),
            ],
        );
        let b = plan(&c, &m, "debian-12").unwrap();
        assert!(b.bundle_local);
        assert_ne!(a.bundle, b.bundle);
        // app code does not change the key
        let (_d, c, m) = app(
            "ruby",
            &[
                ("Gemfile", "gem 'rack'\n"),
                ("Gemfile.lock", "L1"),
                ("vendor/cache/x-1.gem", "g"),
                ("lib/app.rb", "y"),
            ],
        );
        assert_eq!(plan(&c, &m, "debian-12").unwrap(), b);
    }

    #[test]
    fn ruby_gemfile_without_lock_is_refused() {
        let (_d, c, m) = app("ruby", &[("Gemfile", "gem 'rack'\n")]);
        let e = plan(&c, &m, "debian-12").unwrap_err();
        assert!(e.to_string().contains("Gemfile.lock"), "{e}");
        assert!(e.hint().unwrap().contains("bundle lock"));
        let (_d, c, m) = app("ruby", &[]);
        assert_eq!(plan(&c, &m, "debian-12").unwrap(), Deps::default());
    }

    #[test]
    fn composer_keyed_by_lock_and_path_repositories() {
        let json = r#"{"repositories":[{"type":"path","url":"packages/*"}],"require":{"acme/greet":"^1"}}"#;
        let files = |code: &'static str, app_code: &'static str| {
            vec![
                ("composer.json", json),
                ("composer.lock", "{}"),
                ("packages/greet/src/G.php", code),
                ("src/App.php", app_code),
            ]
        };
        let (_d, c, m) = app("php", &files("a", "x"));
        let a = plan(&c, &m, "debian-12").unwrap();
        assert_eq!(a.composer.len(), 16);
        assert!(a.bundle.is_empty());
        let (_d, c, m) = app("php", &files("b", "x"));
        assert_ne!(plan(&c, &m, "debian-12").unwrap().composer, a.composer);
        let (_d, c, m) = app("php", &files("a", "y"));
        assert_eq!(plan(&c, &m, "debian-12").unwrap().composer, a.composer);
        // a shipped vendor/ is used as is
        let mut with_vendor = files("a", "x");
        with_vendor.push(("vendor/autoload.php", "<?php"));
        let (_d, c, m) = app("php", &with_vendor);
        assert!(plan(&c, &m, "debian-12").unwrap().composer.is_empty());
    }

    #[test]
    fn composer_problems_name_the_file_and_the_fix() {
        let (_d, c, m) = app("php", &[("composer.json", r#"{"require":{"a/b":"1"}}"#)]);
        let e = plan(&c, &m, "debian-12").unwrap_err();
        assert!(e.to_string().contains("composer.lock"), "{e}");
        assert!(e.hint().unwrap().contains("composer update"));
        // nothing to install: no lock needed
        let (_d, c, m) = app("php", &[("composer.json", r#"{"require":{"php":">=8"}}"#)]);
        assert!(plan(&c, &m, "debian-12").unwrap().composer.is_empty());
        let (_d, c, m) = app(
            "php",
            &[
                (
                    "composer.json",
                    r#"{"repositories":[{"type":"path","url":"../shared/x"}],"require":{"a/b":"1"}}"#,
                ),
                ("composer.lock", "{}"),
            ],
        );
        let e = plan(&c, &m, "debian-12").unwrap_err();
        assert!(e.to_string().contains("../shared/x"), "{e}");
        let (_d, c, m) = app("php", &[("composer.json", "{"), ("composer.lock", "{}")]);
        assert!(
            plan(&c, &m, "debian-12")
                .unwrap_err()
                .to_string()
                .contains("composer.json")
        );
    }
}
