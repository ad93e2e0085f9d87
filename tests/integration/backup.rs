//! `skiff backup` and `skiff restore` on a real node: the PostgreSQL app of services.rs
//! (a database and a files folder) backed up into one archive, its table dropped, and
//! restored; damaged archives and a restore without `--yes` refused with nothing changed;
//! a restore killed midway leaves the old data serving.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::services::{pg_app, update};
use crate::support::{TestEnv, TestNode, nodes_available};
use crate::update::{get, ok, wait_until};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn restore(env: &TestEnv, archive: &Path, yes: bool) -> std::process::Output {
    let mut cmd = env.skiff();
    cmd.arg("restore").arg(archive).arg("notes.test");
    if yes {
        cmd.arg("--yes");
    }
    cmd.output().unwrap()
}

/// `skiff backup notes.test --json --to DIR`: its report.
fn backup(env: &TestEnv, dir: &Path) -> serde_json::Value {
    let out = env
        .skiff()
        .args(["backup", "notes.test", "--json", "--to"])
        .arg(dir)
        .output()
        .unwrap();
    ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What the node keeps of restores: leftover databases, uploads and folders.
fn leftovers(node: &TestNode) -> String {
    node.exec(
        "runuser -u postgres -- psql -At -d postgres -c \"SELECT datname FROM pg_database WHERE datname LIKE 'notes_db_%'\"; \
         ls -A /var/lib/skiff/restore/notes 2>/dev/null; ls -A /srv/skiff/data/notes | grep '^\\.' || true",
    )
    .trim()
    .to_string()
}

/// A copy of `archive` in `dir` with `edit` applied to its bytes.
fn damaged_copy(archive: &Path, dir: &Path, name: &str, edit: impl Fn(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(archive).unwrap();
    edit(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn backup_then_restore_brings_rows_and_files_back_and_damaged_archives_change_nothing() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = pg_app(&env, true);
    ok(&update(&env, &dir, &node));
    for row in ["first", "second"] {
        let (code, body) = get(&node.address, "notes.test", &format!("/add?{row}"));
        assert_eq!(code, 200, "{body}");
    }
    let (_, body) = get(&node.address, "notes.test", "/file?kept-file");
    assert!(body.contains("rows=first,second file=kept-file"), "{body}");

    // backup: one archive, named after the app and the time, with its report
    let backups = env.root().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let report = backup(&env, &backups);
    let archive = PathBuf::from(report["path"].as_str().unwrap());
    let name = archive.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("notes-") && name.ends_with("Z.skiff-backup"),
        "{name}"
    );
    assert_eq!(
        report["bytes"].as_u64().unwrap(),
        std::fs::metadata(&archive).unwrap().len()
    );
    let parts = report["parts"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = parts
        .iter()
        .map(|p| (p["service"].as_str().unwrap(), p["type"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("db", "postgresql"), ("uploads", "files")]);
    for p in parts {
        assert_eq!(p["sha256"].as_str().unwrap().len(), 64, "{p}");
    }
    let files: Vec<String> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files,
        std::slice::from_ref(&name),
        "no temporary file is left"
    );
    // the archive is a tar: the manifest, the dump, the folder with the app's file
    let listing = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&archive)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout),
        "db.pgdump\nuploads.tar\nmanifest.json\n"
    );
    let kept = std::process::Command::new("sh")
        .arg("-c")
        .arg("tar -xOf \"$1\" uploads.tar | tar -xOf - ./kept.txt")
        .arg("sh")
        .arg(&archive)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&kept.stdout), "kept-file");
    let manifest = std::process::Command::new("tar")
        .arg("-xOf")
        .arg(&archive)
        .arg("manifest.json")
        .output()
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.stdout).unwrap();
    assert_eq!(manifest["app"], "notes");
    assert_eq!(manifest["version"], 1);
    assert!(
        manifest["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t.as_str().unwrap().starts_with("pg_dump")),
        "{manifest}"
    );

    // changes after the backup
    let (_, body) = get(&node.address, "notes.test", "/add?third");
    assert!(body.contains("rows=first,second,third"), "{body}");
    let (_, body) = get(&node.address, "notes.test", "/file?changed");
    assert!(body.contains("file=changed"), "{body}");

    // refused before anything is touched: a cut archive, an altered byte, no --yes
    let scratch = env.root().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let cut = damaged_copy(&archive, &scratch, "cut.skiff-backup", |b| {
        b.truncate(b.len() / 2)
    });
    let altered = damaged_copy(&archive, &scratch, "altered.skiff-backup", |b| {
        b[600] ^= 0x20
    });
    for bad in [&cut, &altered] {
        let out = restore(&env, bad, true);
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "{:?}: {}",
            out.status,
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("not a complete skiff backup"),
            "{}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("nothing was changed"),
            "{}",
            stderr(&out)
        );
    }
    let out = restore(&env, &archive, false);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    let (_, body) = get(&node.address, "notes.test", "/");
    assert!(
        body.contains("rows=first,second,third file=changed"),
        "{body}"
    );
    assert_eq!(leftovers(&node), "");

    // the table gone; the restore brings every row and the file back
    node.exec("runuser -u postgres -- psql -d notes_db -c 'DROP TABLE notes'");
    let (code, _) = get(&node.address, "notes.test", "/");
    assert_eq!(code, 500);
    let out = restore(&env, &archive, true);
    ok(&out);
    let (code, body) = get(&node.address, "notes.test", "/");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("rows=first,second file=kept-file user=notes_db"),
        "{body}"
    );
    // the app writes again, as its own role, into the restored table
    let (_, body) = get(&node.address, "notes.test", "/add?fourth");
    assert!(body.contains("rows=first,second,fourth"), "{body}");
    assert_eq!(
        node.exec(
            "stat -c '%U %a' /srv/skiff/data/notes/uploads /srv/skiff/data/notes/uploads/kept.txt"
        )
        .lines()
        .next()
        .unwrap(),
        "app-notes 750"
    );
    assert_eq!(leftovers(&node), "");

    // a restore killed while it uploads: the old data serves, the next one cleans up
    node.exec("head -c 64M /dev/urandom >/srv/skiff/data/notes/uploads/big.bin");
    let big = PathBuf::from(backup(&env, &backups)["path"].as_str().unwrap());
    node.exec("rm /srv/skiff/data/notes/uploads/big.bin");
    let (_, body) = get(&node.address, "notes.test", "/add?fifth");
    assert!(body.contains("rows=first,second,fourth,fifth"), "{body}");
    let mut child = env
        .skiff_std()
        .arg("restore")
        .arg(&big)
        .args(["notes.test", "--yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let uploading = wait_until(Duration::from_secs(60), || {
        node.exec("ls /var/lib/skiff/restore/notes 2>/dev/null || true")
            .contains("uploads.part.tmp")
    });
    assert!(uploading, "the upload never began");
    child.kill().unwrap();
    child.wait().unwrap();
    let (code, body) = get(&node.address, "notes.test", "/");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("rows=first,second,fourth,fifth file=kept-file"),
        "{body}"
    );
    ok(&restore(&env, &big, true));
    let (_, body) = get(&node.address, "notes.test", "/");
    assert!(
        body.contains("rows=first,second,fourth file=kept-file"),
        "{body}"
    );
    assert_eq!(
        node.exec("stat -c %s /srv/skiff/data/notes/uploads/big.bin")
            .trim(),
        (64 << 20).to_string()
    );
    assert_eq!(leftovers(&node), "");
}

/// `mysql -N -B -e SQL` on the node, as root.
fn mysql(node: &TestNode, sql: &str) -> String {
    node.exec(&format!("mysql -N -B -e \"{sql}\""))
}

#[test]
fn a_mariadb_database_is_backed_up_and_restored_by_one_table_rename() {
    if !nodes_available() {
        return;
    }
    let env = TestEnv::new();
    let node = TestNode::launch_set_up(&env);
    let dir = env.root().join("shop");
    std::fs::create_dir_all(dir.join("static")).unwrap();
    std::fs::write(dir.join("static/index.html"), "shop\n").unwrap();
    std::fs::write(
        dir.join("app.toml"),
        "name = \"shop\"\nruntime = \"static\"\nhostnames = [\"shop.test\"]\n[services]\ndb = \"mysql\"\n",
    )
    .unwrap();
    ok(&env
        .skiff()
        .arg("update")
        .arg(&dir)
        .args(["--node", &node.name])
        .output()
        .unwrap());
    mysql(
        &node,
        "CREATE TABLE shop_db.items (id int PRIMARY KEY, name varchar(20)); \
         INSERT INTO shop_db.items VALUES (1, 'boat'), (2, 'oar');",
    );
    let backups = env.root().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let out = env
        .skiff()
        .args(["backup", "shop.test", "--json", "--to"])
        .arg(&backups)
        .output()
        .unwrap();
    ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["parts"][0]["type"], "mysql", "{report}");
    let archive = PathBuf::from(report["path"].as_str().unwrap());

    mysql(
        &node,
        "INSERT INTO shop_db.items VALUES (3, 'sail'); CREATE TABLE shop_db.later (x int); \
         DROP TABLE shop_db.items;",
    );
    ok(&env
        .skiff()
        .arg("restore")
        .arg(&archive)
        .args(["shop.test", "--yes"])
        .output()
        .unwrap());
    assert_eq!(
        mysql(&node, "SELECT id, name FROM shop_db.items ORDER BY id")
            .lines()
            .collect::<Vec<_>>(),
        ["1\tboat", "2\toar"]
    );
    // the database is the backup's: a table made since is gone, the app's user reads it
    assert_eq!(mysql(&node, "SHOW TABLES FROM shop_db").trim(), "items");
    assert_eq!(
        mysql(&node, "SHOW DATABASES LIKE 'shop_db%'").trim(),
        "shop_db"
    );
    let creds = "/etc/skiff/services/shop/db.env";
    let count = node.exec(&format!(
        ". {creds}; mysql -N -B -h 127.0.0.1 -u \"$MYSQL_USER\" -p\"$MYSQL_PASSWORD\" \"$MYSQL_DATABASE\" -e 'SELECT COUNT(*) FROM items'"
    ));
    assert_eq!(count.trim(), "2");
}
