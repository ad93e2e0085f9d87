# skiff: the Rack entry of one Passenger slot (installed by `skiff setup-node`).
#
# setup-node declares a fixed pool of Passenger vhosts (rb01.skiff, rb02.skiff, ...) whose
# app root is /srv/skiff/slots/ruby/rbNN (this file's folder), so Apache's config never
# changes when an app is deployed. What the slot runs comes from slot.json beside this file:
#   {"release": "/srv/skiff/apps/APP/releases/N", "rackup": "config.ru",
#    "env": {"NAME": "value"}, "env_file": "/path/to/KEY=VALUE file",
#    "bundle": "/srv/skiff/apps/APP/bundles/KEY"}
# No slot.json: the slot is idle and answers 503 with skiff's "not running" page.
# Deploy = write slot.json, then `skiff-node passenger-restart rbNN`.
require "json"

slot = File.join(__dir__, "slot.json")
if !File.exist?(slot)
  page = File.read("/usr/local/share/skiff/www/not-running.html") rescue "skiff: not running\n"
  run lambda { |_env| [503, { "content-type" => "text/html; charset=utf-8", "cache-control" => "no-store" }, [page]] }
else
  cfg = JSON.parse(File.read(slot))
  release = File.realpath(cfg.fetch("release"))
  if cfg["env_file"] && File.exist?(cfg["env_file"])
    # KEY=VALUE lines, values escaped (src/deploy/env_file.rs): \\ \n \r
    File.foreach(cfg["env_file"], encoding: "UTF-8") do |line|
      line = line.chomp
      next if line.strip.empty? || line.start_with?("#") || !line.include?("=")
      key, value = line.split("=", 2)
      ENV[key.strip] = value.gsub(/\\([\\nr])/) { { "n" => "\n", "r" => "\r" }.fetch(Regexp.last_match(1), "\\") }
    end
  end
  (cfg["env"] || {}).each { |k, v| ENV[k.to_s] = v.to_s }
  Dir.chdir(release)
  $LOAD_PATH.unshift(release)
  rackup = File.join(release, cfg["rackup"] || "config.ru")
  if cfg["bundle"]
    # the release's bundle (bundles/KEY, made by the deploy with the same settings): its
    # gems, and the ones Debian installed; development and test groups left out
    bundle = cfg["bundle"].to_s
    ENV["GEM_HOME"] = bundle
    ENV.delete("GEM_PATH")
    ENV["BUNDLE_GEMFILE"] = File.join(release, "Gemfile")
    ENV["BUNDLE_PATH__SYSTEM"] = "true"
    ENV["BUNDLE_FROZEN"] = "true"
    ENV["BUNDLE_WITHOUT"] = "development:test"
    ENV["BUNDLE_APP_CONFIG"] = File.join(bundle, ".bundle-config")
    Gem.paths = ENV
    require "bundler/setup"
  elsif File.exist?(File.join(release, "Gemfile"))
    ENV["BUNDLE_GEMFILE"] = File.join(release, "Gemfile")
    begin
      require "bundler/setup"
    rescue LoadError
      # no bundler on the node: the app must use only system gems
    end
  end
  built = Rack::Builder.parse_file(rackup)
  inner = built.is_a?(Array) ? built.first : built
  # X-Skiff-Release / X-Skiff-Pid let `skiff update` warm the slot (NGINX hides them)
  # (the deploy's token when slot.json has one: release N and a nonce)
  release_name = (cfg["token"] || File.basename(release)).to_s
  # The app sees the request as the client made it: SERVER_NAME/SERVER_PORT from
  # X-Forwarded-Host, rack.url_scheme (and HTTPS) from X-Forwarded-Proto, never the backend
  # name (N.APP.rbNN.skiff) Apache chose this vhost by. Trusted: Apache listens on
  # 127.0.0.1 only, and NGINX (or skiff's warming request) always sets both.
  run lambda { |env|
    proto = env["HTTP_X_FORWARDED_PROTO"].to_s.strip.downcase
    if proto == "http" || proto == "https"
      env["rack.url_scheme"] = proto
      env["REQUEST_SCHEME"] = proto
      proto == "https" ? env["HTTPS"] = "on" : env.delete("HTTPS")
    end
    host = (env["HTTP_X_FORWARDED_HOST"] || env["HTTP_HOST"]).to_s.split(",").first.to_s.strip
    if (m = host.match(/\A(\[[^\]]*\]|[^:\[\]]+)(?::(\d+))?\z/))
      env["SERVER_NAME"] = m[1]
      env["SERVER_PORT"] = m[2] || (env["rack.url_scheme"] == "https" ? "443" : "80")
    end
    status, headers, body = inner.call(env)
    headers = headers.dup
    headers["x-skiff-release"] = release_name
    headers["x-skiff-pid"] = Process.pid.to_s
    [status, headers, body]
  }
end
