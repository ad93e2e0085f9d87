//! Real framework apps deploy unchanged (issue 11): build commands run in the app's own
//! environment; a `django-admin startproject` site and a Flask app, from wheels that
//! `.ci/fetch-wheels.sh` downloads from PyPI once (test nodes cannot reach PyPI).

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use crate::support::{TestEnv, TestNode, nodes_available};
use crate::update::{apache_log, deploy, edit, fixture, get, ok};

/// The wheel cache `.ci/fetch-wheels.sh` fills: `SKIFF_WHEELS` or /var/cache/skiff/wheels.
fn wheel_cache_root() -> PathBuf {
    std::env::var_os("SKIFF_WHEELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/skiff/wheels"))
}

/// The cached wheels of `name` (`django`, `flask`: `*.whl` and the pins in
/// requirements.txt), or None after saying why (a panic under CI=true).
pub fn cached_wheels(name: &str) -> Option<PathBuf> {
    let dir = wheel_cache_root().join(name);
    if dir.join(".complete").is_file() {
        return Some(dir);
    }
    let msg = format!(
        "the {name} wheels are not cached at {} (run `.ci/run`, or `bash .ci/fetch-wheels.sh`, which downloads them from PyPI once)",
        dir.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// Copies the cached wheels into `app/wheels/` and their pins into
/// `app/requirements.txt`, as a user vendoring them would.
pub fn vendor_wheels(cache: &Path, app: &Path) {
    let wheels = app.join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    for entry in std::fs::read_dir(cache).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "whl") {
            std::fs::copy(&path, wheels.join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::copy(cache.join("requirements.txt"), app.join("requirements.txt")).unwrap();
}

/// `django-admin startproject mysite DIR` with the cached Django wheels: pure-Python
/// wheels are zip files, so they are unpacked onto `PYTHONPATH` (no pip or venv needed on
/// the machine running the tests).
pub fn startproject(cache: &Path, work: &Path, dir: &Path) {
    let lib = work.join("django-lib");
    std::fs::create_dir_all(&lib).unwrap();
    for entry in std::fs::read_dir(cache).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "whl") {
            let ok = StdCommand::new("python3")
                .args(["-m", "zipfile", "-e"])
                .arg(&path)
                .arg(&lib)
                .status()
                .unwrap()
                .success();
            assert!(ok, "could not unpack {}", path.display());
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    let out = StdCommand::new("python3")
        .args(["-m", "django", "startproject", "mysite"])
        .arg(dir)
        .env("PYTHONPATH", &lib)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "django-admin startproject failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `django-admin startproject` site (Django 4.2 LTS), changed only as its user would
/// for production (`DEBUG = False`, `ALLOWED_HOSTS` its domains only, `STATIC_ROOT`) and
/// for skiff (app.toml, vendored wheels): deployed, redeployed and rolled back on one
/// node, HOST, `N.HOST` and `prev.HOST` answering, the admin's CSS collected by
/// `python manage.py collectstatic --noinput` as a build command and served by NGINX.
/// Then a minimal Flask app, from its wheels, on the same node.
#[test]
fn django_site_and_flask_app_deploy_unchanged() {
    if !nodes_available() {
        return;
    }
    let (Some(django), Some(flask)) = (cached_wheels("django"), cached_wheels("flask")) else {
        return;
    };
    let env = TestEnv::new();
    let dir = env.root().join("mysite");
    startproject(&django, env.root(), &dir);
    let settings = dir.join("mysite/settings.py");
    edit(&settings, "DEBUG = True", "DEBUG = False");
    edit(
        &settings,
        "ALLOWED_HOSTS = []",
        "ALLOWED_HOSTS = [\"site.test\", \".site.test\"]",
    );
    // skiff's NGINX serves the release's static/ at /: STATIC_URL /static/ is static/static/
    edit(
        &settings,
        "STATIC_URL = 'static/'",
        "STATIC_URL = 'static/'\nSTATIC_ROOT = BASE_DIR / 'static' / 'static'",
    );
    vendor_wheels(&django, &dir);
    std::fs::write(
        dir.join("app.toml"),
        r#"name = "mysite"
runtime = "python"
hostnames = ["site.test", "www.site.test"]

[python]
wsgi = "mysite.wsgi:application"
requirements = "requirements.txt"
wheels = "wheels"

[health]
path = "/admin/login/"

[build]
commands = ["python manage.py collectstatic --noinput"]
"#,
    )
    .unwrap();

    let node = TestNode::launch_set_up(&env);
    let report = deploy(&env, &node, &dir);
    assert_eq!(report["version"], 1, "{report}");
    let login = |host: &str| {
        let (code, body) = get(&node.address, host, "/admin/login/");
        assert_eq!(code, 200, "{host}: {body}");
        assert!(
            body.contains("/static/admin/css/base.css"),
            "{host}: the login page links the admin CSS: {body}"
        );
        body
    };
    let css = |host: &str| {
        let (code, body) = get(&node.address, host, "/static/admin/css/base.css");
        assert_eq!(code, 200, "{host}: {body}");
        assert!(body.contains("DJANGO Admin styles"), "{host}: {body}");
    };
    assert!(login("site.test").contains("Django administration"));
    login("www.site.test");
    css("site.test");
    // NGINX served it (DEBUG = False: Django serves no static files), never Apache
    assert!(
        !apache_log(&node).contains("base.css"),
        "Apache saw the CSS request"
    );

    // version 2: the admin's header changed in urls.py, as a user would
    edit(
        &dir.join("mysite/urls.py"),
        "urlpatterns = [",
        "admin.site.site_header = \"Version two\"\n\nurlpatterns = [",
    );
    let report = deploy(&env, &node, &dir);
    assert_eq!(report["version"], 2, "{report}");
    assert!(login("site.test").contains("Version two"));
    assert!(login("2.site.test").contains("Version two"));
    assert!(login("1.site.test").contains("Django administration"));
    assert!(login("prev.site.test").contains("Django administration"));
    css("site.test");
    css("prev.site.test");
    assert_eq!(
        node.exec("ls /srv/skiff/apps/mysite/venvs | wc -l").trim(),
        "1",
        "the same requirements reuse the venv"
    );
    // the venv has its own pip (installed from the node's pip wheel with the app's)
    node.exec("/srv/skiff/apps/mysite/venvs/*/bin/pip --version");

    // rollback: HOST is version 1 again, prev.HOST version 2
    let out = env
        .skiff()
        .args(["rollback", "site.test"])
        .output()
        .unwrap();
    ok(&out);
    assert!(login("site.test").contains("Django administration"));
    assert!(login("prev.site.test").contains("Version two"));
    css("site.test");
    assert!(
        !apache_log(&node).contains("base.css"),
        "Apache saw a CSS request"
    );

    // a minimal Flask app from its wheels, beside it on the same node
    let app = env.root().join("hello-flask");
    std::fs::create_dir_all(&app).unwrap();
    vendor_wheels(&flask, &app);
    std::fs::write(
        app.join("app.py"),
        "import os\n\nfrom flask import Flask, request\n\napp = Flask(__name__)\n\n\n@app.route(\"/\")\ndef index():\n    return f\"hello from Flask at {request.host}, version {os.environ['SKIFF_VERSION']}\"\n",
    )
    .unwrap();
    std::fs::write(
        app.join("app.toml"),
        r#"name = "hello-flask"
runtime = "python"
hostnames = ["flask.test"]

[python]
wsgi = "app:app"
requirements = "requirements.txt"
wheels = "wheels"
"#,
    )
    .unwrap();
    let report = deploy(&env, &node, &app);
    assert_eq!(report["version"], 1, "{report}");
    let flask_says = |host: &str, version: u32| {
        let (code, body) = get(&node.address, host, "/");
        assert_eq!(code, 200, "{host}: {body}");
        assert_eq!(
            body,
            format!("hello from Flask at {host}, version {version}")
        );
    };
    flask_says("flask.test", 1);
    flask_says("1.flask.test", 1);
    // redeployed and rolled back like the Django site
    assert_eq!(deploy(&env, &node, &app)["version"], 2);
    flask_says("flask.test", 2);
    flask_says("1.flask.test", 1);
    flask_says("prev.flask.test", 1);
    let out = env
        .skiff()
        .args(["rollback", "flask.test"])
        .output()
        .unwrap();
    ok(&out);
    flask_says("flask.test", 1);
    flask_says("prev.flask.test", 2);
    let (code, body) = get(&node.address, "flask.test", "/missing");
    assert_eq!(code, 404, "Flask's own 404: {body}");
    assert!(body.contains("Not Found"), "{body}");
    // the Django site still serves
    assert!(login("site.test").contains("Django administration"));
}

/// Build commands find the app's venv first (`python` and `python3` are the venv's, with
/// `VIRTUAL_ENV` set), so `python manage.py collectstatic` as Django's docs write it
/// works; without requirements, `python` is the system python3.
#[test]
fn build_commands_run_in_the_apps_environment() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "python");
    let toml = dir.join("app.toml");
    let base = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        format!(
            "{base}\n[build]\ncommands = [\"python -c 'import skiff_greeting, sys, os; print(skiff_greeting.hello(), sys.prefix == os.environ[\\\"VIRTUAL_ENV\\\"])' > static/built.txt\", \"python3 -c 'import skiff_greeting' && echo ok > static/python3.txt\"]\n"
        ),
    )
    .unwrap();
    deploy(&env, &node, &dir);
    let (code, body) = get(&node.address, "pyapp.test", "/built.txt");
    assert_eq!(code, 200, "{body}");
    let words: Vec<&str> = body.split_whitespace().collect();
    assert_eq!(words.last(), Some(&"True"), "python is the venv's: {body}");
    assert_eq!(
        get(&node.address, "pyapp.test", "/python3.txt").1.trim(),
        "ok"
    );

    // no requirements: no venv, and `python` still runs (the system python3)
    std::fs::write(
        &toml,
        base.replace("requirements = \"requirements.txt\"\n", "")
            .replace("wheels = \"wheels\"\n", "")
            + "\n[build]\ncommands = [\"python --version > static/version.txt 2>&1\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("app.py"),
        "def application(environ, start_response):\n    start_response(\"200 OK\", [(\"Content-Type\", \"text/plain\")])\n    return [b\"ok\\n\"]\n",
    )
    .unwrap();
    deploy(&env, &node, &dir);
    let (code, body) = get(&node.address, "pyapp.test", "/version.txt");
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("Python 3."), "{body}");
}

/// A project with a pyproject.toml and no requirements file: its `[project] dependencies`
/// are installed into the venv from the shipped wheels (the node has no index), the venv
/// is keyed by that list (editing another table keeps it, a new dependency list builds
/// another), and a bad list stops `update` on the laptop, naming the file and key.
#[test]
fn pyproject_dependencies_install_into_the_venv() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = fixture(&env, "python");
    edit(
        &dir.join("app.toml"),
        "requirements = \"requirements.txt\"\n",
        "",
    );
    std::fs::remove_file(dir.join("requirements.txt")).unwrap();
    let pyproject = dir.join("pyproject.toml");
    std::fs::write(
        &pyproject,
        "[project]\nname = \"pyapp\"\nversion = \"1.0\"\ndependencies = [\"skiff-greeting==1.0\"]\n\n[tool.ruff]\nline-length = 100\n",
    )
    .unwrap();
    deploy(&env, &node, &dir);
    let (code, body) = get(&node.address, "pyapp.test", "/");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("greeting=hi-from-wheel"), "{body}");
    let venvs = |n: &str| {
        let listed = node.exec("ls /srv/skiff/apps/pyapp/venvs");
        assert_eq!(listed.lines().count().to_string(), n, "{listed}");
        listed
    };
    let first = venvs("1");
    assert_eq!(
        node.exec(&format!(
            "cat /srv/skiff/apps/pyapp/venvs/{}/skiff-requirements.txt",
            first.trim()
        )),
        "skiff-greeting==1.0\n"
    );

    // another table changed: the same venv
    edit(&pyproject, "line-length = 100", "line-length = 88");
    deploy(&env, &node, &dir);
    venvs("1");
    // the dependency list changed: a new venv
    edit(
        &pyproject,
        "\"skiff-greeting==1.0\"",
        "\"skiff-greeting>=1.0\"",
    );
    deploy(&env, &node, &dir);
    venvs("2");
    assert!(
        get(&node.address, "pyapp.test", "/")
            .1
            .contains("greeting=hi-from-wheel")
    );

    // a dependency no shipped wheel provides: the deploy fails, naming it; live untouched
    edit(
        &pyproject,
        "\"skiff-greeting>=1.0\"",
        "\"skiff-greeting==2.0\"",
    );
    let out = crate::update::run_update(&env, &dir, &node);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pip could not install pyproject.toml's dependencies from wheels"),
        "{err}"
    );
    assert_eq!(get(&node.address, "pyapp.test", "/").0, 200);
    venvs("2");

    // dependencies a build backend computes: refused on the laptop, naming file and key
    edit(
        &pyproject,
        "version = \"1.0\"",
        "version = \"1.0\"\ndynamic = [\"dependencies\"]",
    );
    let out = crate::update::run_update(&env, &dir, &node);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pyproject.toml") && err.contains("project.dynamic"),
        "{err}"
    );
}

/// `[packages] apt`: installed on the node before the build (once: a later deploy finds
/// them installed), recorded per app in the node state; apps without a venv see Debian's
/// Python packages, a venv only with `[python] system_packages = true`; an unknown
/// package fails the deploy before anything switches, naming it.
#[test]
fn apt_packages_are_installed_before_the_build_and_unknown_ones_fail_first() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    // a package no set-up node has (python3-six came with unattended-upgrades' deps)
    assert!(
        node.exec_output("python3 -c 'import simplejson'")
            .status
            .code()
            != Some(0)
    );
    let dir = fixture(&env, "python");
    let toml = dir.join("app.toml");
    let base = std::fs::read_to_string(&toml).unwrap();
    // a venv app that needs a Debian package in its build: system_packages
    std::fs::write(
        &toml,
        base.replace("wheels = \"wheels\"\n", "wheels = \"wheels\"\nsystem_packages = true\n")
            + "\n[packages]\napt = [\"python3-simplejson\"]\n[build]\ncommands = [\"python -c 'import simplejson; print(simplejson.__version__)' > static/sj.txt\"]\n",
    )
    .unwrap();
    let report = deploy(&env, &node, &dir);
    assert_eq!(report["version"], 1);
    let (code, body) = get(&node.address, "pyapp.test", "/sj.txt");
    assert_eq!(code, 200, "{body}");
    assert!(body.trim().starts_with("3."), "{body}");
    let state: toml::Table = toml::from_str(&node.exec("cat /var/lib/skiff/state.toml")).unwrap();
    assert_eq!(
        state["apps"]["pyapp"]["packages"].as_array().unwrap()[0].as_str(),
        Some("python3-simplejson")
    );
    // installed once: the next deploy finds it there
    let out = env
        .skiff()
        .args(["-v", "update"])
        .arg(&dir)
        .args(["--node", &node.name])
        .output()
        .unwrap();
    ok(&out);

    // an unknown package: the deploy fails before the switch, naming it
    std::fs::write(
        &toml,
        base.clone() + "\n[packages]\napt = [\"python3-simplejson\", \"no-such-package-skiff\"]\n",
    )
    .unwrap();
    let out = env
        .skiff()
        .args(["update"])
        .arg(&dir)
        .args(["--node", &node.name])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no-such-package-skiff"), "{stderr}");
    assert!(stderr.contains("[packages]"), "{stderr}");
    let (code, body) = get(&node.address, "pyapp.test", "/");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("version=2"),
        "the live version serves: {body}"
    );
}

/// A Sinatra app on Debian's `ruby-sinatra`, installed through `[packages]`: deployed,
/// redeployed and rolled back, with HOST, `1.HOST` and `prev.HOST` answering.
#[test]
fn a_sinatra_app_on_debians_package_deploys_and_rolls_back() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = env.root().join("sinatra");
    std::fs::create_dir_all(dir.join("static")).unwrap();
    std::fs::write(
        dir.join("app.toml"),
        "name = \"sing\"\nruntime = \"ruby\"\nhostnames = [\"sing.test\"]\n[packages]\napt = [\"ruby-sinatra\"]\n",
    )
    .unwrap();
    let app = |word: &str| {
        format!(
            "require \"sinatra/base\"\n\nclass Sing < Sinatra::Base\n  get \"/\" do\n    \"sinatra says {word} from #{{ENV['SKIFF_VERSION']}}\\n\"\n  end\nend\n\nrun Sing\n"
        )
    };
    std::fs::write(dir.join("config.ru"), app("hello")).unwrap();
    deploy(&env, &node, &dir);
    std::fs::write(dir.join("config.ru"), app("bonjour")).unwrap();
    deploy(&env, &node, &dir);
    let said = |host: &str| {
        let (code, body) = get(&node.address, host, "/");
        assert_eq!(code, 200, "{host}: {body}");
        body.trim().to_string()
    };
    assert_eq!(said("sing.test"), "sinatra says bonjour from 2");
    assert_eq!(said("1.sing.test"), "sinatra says hello from 1");
    assert_eq!(said("prev.sing.test"), "sinatra says hello from 1");
    let out = env
        .skiff()
        .args(["rollback", "sing.test"])
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(said("sing.test"), "sinatra says hello from 1");
}
