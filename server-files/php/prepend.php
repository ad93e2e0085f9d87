<?php
// skiff: prepended to every PHP request of the catch-all vhost (installed by `skiff setup-node`).
//
// NGINX routes host HOST of app APP, release N, to Apache with the backend host
// `N.APP.php.skiff`; mod_vhost_alias maps it to /srv/skiff/apps/APP/docroots/N (a symlink to
// the release's docroot that never changes, so PHP's realpath and opcache caches stay right).
// This file gives the app the environment snapshotted for that release, from
// /srv/skiff/apps/APP/docroots/N.json: {"env": {"NAME": "value"}, "env_file": "/path"}.
//
// First, the request as the client made it: SERVER_NAME/SERVER_PORT from
// X-Forwarded-Host, HTTPS and REQUEST_SCHEME from X-Forwarded-Proto, never the backend
// name Apache chose the vhost by. Trusted: Apache listens on 127.0.0.1 only and NGINX
// always sets both (`skiff serve` prepends this file to `php -S` too, behind its proxy).
(static function () {
    $proto = strtolower(trim((string) ($_SERVER['HTTP_X_FORWARDED_PROTO'] ?? '')));
    if ($proto === 'http' || $proto === 'https') {
        $_SERVER['REQUEST_SCHEME'] = $proto;
        if ($proto === 'https') {
            $_SERVER['HTTPS'] = 'on';
        } else {
            unset($_SERVER['HTTPS']);
        }
    }
    $host = trim(explode(',', (string) ($_SERVER['HTTP_X_FORWARDED_HOST'] ?? $_SERVER['HTTP_HOST'] ?? ''))[0]);
    if (preg_match('/^(\[[^\]]*\]|[^:\[\]]+)(?::([0-9]+))?$/', $host, $m)) {
        $_SERVER['SERVER_NAME'] = $m[1];
        $_SERVER['SERVER_PORT'] = $m[2] ?? (($_SERVER['REQUEST_SCHEME'] ?? '') === 'https' ? '443' : '80');
    }
})();
(static function () {
    $root = $_SERVER['DOCUMENT_ROOT'] ?? '';
    if (!preg_match('~^/srv/skiff/apps/([a-z][a-z0-9-]*)/docroots/([0-9]+)$~', $root, $m)) {
        return;
    }
    $file = "/srv/skiff/apps/{$m[1]}/docroots/{$m[2]}.json";
    if (!is_readable($file)) {
        return;
    }
    $cfg = json_decode((string) file_get_contents($file), true);
    if (!is_array($cfg)) {
        return;
    }
    $env = [];
    if (!empty($cfg['env_file']) && is_readable($cfg['env_file'])) {
        // KEY=VALUE lines, values escaped (src/deploy/env_file.rs): \\ \n \r
        foreach (file($cfg['env_file'], FILE_IGNORE_NEW_LINES) as $line) {
            if (trim($line) === '' || $line[0] === '#' || strpos($line, '=') === false) {
                continue;
            }
            [$k, $v] = explode('=', $line, 2);
            $env[trim($k)] = preg_replace_callback('/\\\\([\\\\nr])/', function ($m) {
                return ['n' => "\n", 'r' => "\r"][$m[1]] ?? '\\';
            }, $v);
        }
    }
    foreach (($cfg['env'] ?? []) as $k => $v) {
        $env[(string) $k] = (string) $v;
    }
    foreach ($env as $k => $v) {
        putenv("$k=$v");
        $_ENV[$k] = $v;
        $_SERVER[$k] = $v;
    }
})();
