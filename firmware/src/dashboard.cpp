#include "anju/firmware/dashboard.hpp"
#include "anju/edge/thread_name.hpp"

#include <httplib.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "anju/edge/evidence_store.hpp"
#include "anju/edge/journal.hpp"
#include "anju/edge/lifecycle.hpp"
#include "anju/edge/sqlite.hpp"
#include "anju/edge/uuid.hpp"

namespace anju::firmware {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr std::string_view kCookie = "anju_session";
// A hash no password matches, verified for unknown user names so that a login takes as long for
// them as for real users (no user enumeration by timing).
constexpr std::string_view kDummyHash =
    "$scrypt$ln=15,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

std::string random_hex(std::size_t bytes = 32) {
  std::vector<unsigned char> buf(bytes);
  if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1)
    throw std::runtime_error("RAND_bytes failed");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes * 2);
  for (unsigned char c : buf) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

void reply(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(body.dump(), "application/json");
}

void refuse(httplib::Response& res, int status, const std::string& reason) {
  reply(res, status, json{{"ok", false}, {"error", reason}});
}

std::int64_t file_size_or_zero(const std::string& path) {
  std::error_code ec;
  auto n = fs::file_size(path, ec);
  return ec ? 0 : static_cast<std::int64_t>(n);
}

std::string content_type_for(std::string_view path) {
  if (path.ends_with(".html")) return "text/html; charset=utf-8";
  if (path.ends_with(".js")) return "text/javascript; charset=utf-8";
  if (path.ends_with(".css")) return "text/css; charset=utf-8";
  if (path.ends_with(".svg")) return "image/svg+xml";
  if (path.ends_with(".png")) return "image/png";
  if (path.ends_with(".json")) return "application/json";
  return "application/octet-stream";
}

json alert_view(const edge::Alert& a) {
  return to_json(a);
}

}  // namespace

DashboardOptions dashboard_options(const Config& c) {
  DashboardOptions o;
  split_listen(c.dashboard.listen, o.host, o.port);
  o.tls_cert = c.dashboard.tls_cert;
  o.tls_key = c.dashboard.tls_key;
  o.users_file =
      c.dashboard.users_file.empty() ? c.data_dir + "/users.json" : c.dashboard.users_file;
  o.assets_dir = c.dashboard.assets_dir;
  o.session_ttl_ms = static_cast<std::int64_t>(c.dashboard.session_ttl_s) * 1000;
  o.lockout_after = c.dashboard.lockout_after;
  o.lockout_ms = static_cast<std::int64_t>(c.dashboard.lockout_s) * 1000;
  o.site = c.site.id;
  o.grid_code = c.site.grid_code;
  o.db_path = c.data_dir + "/anju.db";
  o.evidence_dir = c.data_dir + "/evidence";
  for (const auto& [id, d] : c.zigbee2mqtt.devices)
    o.configured_devices[id] = {d.building, d.unit, d.room};
  for (const auto& [id, d] : c.generic_mqtt.devices)
    o.configured_devices[id] = {d.place.building, d.place.unit, d.place.room};
  for (const auto& d : c.modbus.devices)
    o.configured_devices[d.id] = {d.place.building, d.place.unit, d.place.room};
  return o;
}

Dashboard::Dashboard(DashboardOptions options, edge::Pipeline& pipeline, const edge::Clock& clock,
                     std::function<json()> status)
    : options_(std::move(options)),
      pipeline_(pipeline),
      clock_(clock),
      status_(std::move(status)),
      sessions_(options_.session_ttl_ms, [] { return random_hex(); }),
      limiter_(options_.lockout_after, options_.lockout_ms) {}

Dashboard::~Dashboard() {
  stop();
}

void Dashboard::seed(std::vector<edge::Alert> open_alerts) {
  {
    std::lock_guard lock(mu_);
    for (auto& a : open_alerts)
      if (a.open()) open_[a.alert_id] = std::move(a);
    ++alerts_gen_;
    alerts_body_.reset();
  }
  try {
    seed_devices();
  } catch (const std::exception& e) {
    spdlog::warn("dashboard: cannot read the devices from the journal: {}", e.what());
  }
}

// The journal's `devices` table (one row per device: where it is, when it last reported, its
// state and battery), read once; after_commit keeps it current from then on.
void Dashboard::seed_devices() {
  auto db = edge::open_reader(options_.db_path);
  auto st = db.prepare(
      "SELECT device_id, kind, name, gb28181, building, unit, room, last_seen_ms, state, battery "
      "FROM devices");
  std::lock_guard lock(mu_);
  while (st.step()) {
    Device d;
    d.ref = {st.str(0), st.str(1), st.str(2), st.str(3)};
    d.location = {st.str(4), st.str(5), st.str(6)};
    d.last_seen_ms = st.i64(7);
    const std::string state = st.str(8);
    if (state == "online") d.online = true;
    if (state == "offline") d.online = false;
    if (!st.is_null(9)) d.battery = st.f64(9);
    devices_[d.ref.id] = std::move(d);
  }
}

// mu_ held. What a device reported: its own events; people's actions on its alerts (transitions,
// maintenance) are not a sign of life, and an offline event is the silence itself.
void Dashboard::note_device(const edge::Event& e) {
  if (e.device.id.empty()) return;
  using K = edge::EventKind;
  if (e.kind == K::alert_transition || e.kind == K::maintenance || e.kind == K::audit) return;
  auto& d = devices_[e.device.id];
  d.ref = e.device;
  if (!e.location.building.empty() || !e.location.room.empty()) d.location = e.location;
  if (e.kind == K::device_offline) {
    d.online = false;
    return;
  }
  d.online = true;
  if (e.ts_ms >= d.last_seen_ms) {
    d.last_seen_ms = e.ts_ms;
    d.last_kind = std::string(edge::to_string(e.kind));
  }
  if (auto* v = e.value("battery")) d.battery = v->value;
}

json Dashboard::device_json(const Device& d) const {
  json j{{"id", d.ref.id},
         {"name", d.ref.name},
         {"kind", d.ref.kind},
         {"location", edge::to_json(d.location)},
         {"last_seen_ms", d.last_seen_ms},
         {"last_event", d.last_kind}};
  j["battery"] = d.battery ? json(*d.battery) : json(nullptr);
  j["online"] = d.online ? json(*d.online) : json(nullptr);
  return j;
}

void Dashboard::after_commit(const std::vector<edge::Event>& events,
                             const std::vector<edge::AlertChange>& changes) {
  last_commit_mono_ms_.store(clock_.mono_ms(), std::memory_order_relaxed);
  if (events.empty() && changes.empty()) return;
  // SSE frames only for pages that are watching: most of the time none is, and building them
  // cost 3 % of the pipeline thread in bench_e2e. Built before taking the lock when a page is
  // watching; when one started watching in between (rare), under the lock, so that no change
  // falls between its snapshot and its frames.
  auto any_watching = [&] {
    for (const auto& client : clients_)
      if (!client->dropped) return true;
    return false;
  };
  auto build_frames = [&] {
    std::vector<std::string> frames;
    frames.reserve(changes.size());
    for (const auto& c : changes) {
      const std::string& body = c.json.empty() ? to_json(c.alert).dump() : c.json;
      frames.push_back(sse_frame("alert", R"({"change":")" + std::string(to_string(c.type)) +
                                              R"(","alert":)" + body + "}"));
    }
    return frames;
  };
  bool watched = false;
  if (!changes.empty()) {
    std::lock_guard lock(mu_);
    watched = any_watching();
  }
  std::vector<std::string> frames;
  if (watched) frames = build_frames();
  std::lock_guard lock(mu_);
  for (const auto& e : events) {
    ++events_by_kind_[std::string(edge::to_string(e.kind))];
    note_device(e);
  }
  for (const auto& c : changes) {
    if (c.alert.open())
      open_[c.alert.alert_id] = c.alert;
    else
      open_.erase(c.alert.alert_id);
  }
  if (!changes.empty()) {
    ++alerts_gen_;
    alerts_body_.reset();
  }
  if (changes.empty() || !any_watching()) return;
  if (!watched) frames = build_frames();
  for (const auto& client : clients_) {
    if (client->dropped) continue;
    if (client->frames.size() + frames.size() > options_.client_queue) {
      client->dropped = true;  // it falls behind: its worker ends the stream, the page reconnects
      ++sse_dropped_;
      continue;
    }
    client->frames.insert(client->frames.end(), frames.begin(), frames.end());
  }
  stream_cv_.notify_all();
}

bool Dashboard::start() {
  tls_ = !options_.tls_cert.empty() && !options_.tls_key.empty();
  if (tls_) {
    auto s =
        std::make_unique<httplib::SSLServer>(options_.tls_cert.c_str(), options_.tls_key.c_str());
    if (!s->is_valid()) {
      spdlog::error("dashboard: cannot use tls_cert {} / tls_key {}; dashboard not started",
                    options_.tls_cert, options_.tls_key);
      return false;
    }
    server_ = std::move(s);
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  const int workers = options_.worker_threads;
  server_->new_task_queue = [workers] {
    return new httplib::ThreadPool(static_cast<std::size_t>(workers));
  };
  // Small writes (SSE frames, JSON answers) must not wait for the peer's delayed ACK (Nagle).
  server_->set_tcp_nodelay(true);
  server_->set_keep_alive_timeout(2);
  server_->set_read_timeout(10);
  server_->set_write_timeout(10);
  server_->set_payload_max_length(64 * 1024);
  routes();
  if (!server_->bind_to_port(options_.host, options_.port)) {
    spdlog::error("dashboard: cannot listen on {}:{}; dashboard not started", options_.host,
                  options_.port);
    server_.reset();
    return false;
  }
  bound_port_ = options_.port;
  refresh_users();
  thread_ = std::thread([this] {
    edge::name_this_thread("anju-dashboard");
    server_->listen_after_bind();
  });
  spdlog::info("dashboard on {}://{}:{} ({} users in {})", tls_ ? "https" : "http", options_.host,
               bound_port_, users_.size(), options_.users_file);
  return true;
}

void Dashboard::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  stream_cv_.notify_all();
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

// ---- users and sessions ---------------------------------------------------------------------

// Re-reads the users file when its mtime or size changed (`anju user ...` edits it while anjud
// runs). A malformed file keeps the previous list and says so once. auth_mu_ held or not started.
void Dashboard::refresh_users() {
  struct stat st {};
  std::string stamp = "missing";
  if (::stat(options_.users_file.c_str(), &st) == 0)
    stamp = std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + "/" +
            std::to_string(st.st_size) + "/" + std::to_string(st.st_ino);
  if (stamp == users_stamp_) return;
  users_stamp_ = stamp;
  auto r = load_users_file(options_.users_file);
  if (!r.users) {
    spdlog::error("dashboard: {} (keeping the previous users)", r.error);
    return;
  }
  users_ = std::move(*r.users);
}

std::optional<User> Dashboard::find_user(const std::string& name) {
  refresh_users();
  for (const auto& u : users_)
    if (u.name == name) return u;
  return std::nullopt;
}

std::optional<Session> Dashboard::session_of(const httplib::Request& req) {
  const std::string id = cookie_value(req.get_header_value("Cookie"), kCookie);
  if (id.empty()) return std::nullopt;
  std::lock_guard lock(auth_mu_);
  auto s = sessions_.touch(id, clock_.wall_ms());
  if (!s) return std::nullopt;
  // The user must still exist with the same password; a role change applies at once.
  auto u = find_user(s->user);
  if (!u || u->password_hash != s->password_hash) {
    sessions_.remove(id);
    return std::nullopt;
  }
  s->role = u->role;
  return s;
}

std::optional<Session> Dashboard::require(const httplib::Request& req, httplib::Response& res,
                                          bool state_change, Role at_least) {
  auto s = session_of(req);
  if (!s) {
    refuse(res, 401, "not logged in");
    return std::nullopt;
  }
  if (state_change && !csrf_matches(s->csrf, req.get_header_value("X-CSRF-Token"))) {
    refuse(res, 403, "missing or wrong X-CSRF-Token");
    return std::nullopt;
  }
  if (s->role < at_least) {
    refuse(res, 403, "the role " + std::string(to_string(s->role)) + " may not do this");
    return std::nullopt;
  }
  return s;
}

void Dashboard::audit(const std::string& action, const std::string& user, const std::string& ip,
                      bool ok, const std::string& alert_id, const std::string& reason) {
  edge::Event e = edge::gateway_event(edge::EventKind::audit, clock_);
  e.site = options_.site;
  e.grid_code = options_.grid_code;
  e.severity = 4;
  e.source = "dashboard";
  e.attrs = {{"user", user}, {"action", action}, {"ip", ip}, {"ok", ok}};
  if (!alert_id.empty()) e.attrs["alert_id"] = alert_id;
  if (!reason.empty()) e.attrs["reason"] = reason;
  if (!pipeline_.submit(std::move(e)))
    spdlog::warn("dashboard: audit of {} by {} not journaled (stopping)", action, user);
}

// ---- routes ---------------------------------------------------------------------------------

void Dashboard::routes() {
  auto& s = *server_;
  s.set_default_headers({{"X-Content-Type-Options", "nosniff"},
                         {"X-Frame-Options", "DENY"},
                         {"Referrer-Policy", "no-referrer"},
                         {"Content-Security-Policy",
                          "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"}});
  s.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown error";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        spdlog::warn("dashboard: {} {}: {}", req.method, req.path, what);
        refuse(res, 500, "internal error");
      });
  auto bind = [this](void (Dashboard::*m)(const httplib::Request&, httplib::Response&)) {
    return [this, m](const httplib::Request& req, httplib::Response& res) { (this->*m)(req, res); };
  };
  s.Post("/api/login", bind(&Dashboard::on_login));
  s.Post("/api/logout", bind(&Dashboard::on_logout));
  s.Get("/api/session", bind(&Dashboard::on_session));
  s.Get("/api/alerts", bind(&Dashboard::on_alerts));
  s.Get(R"(/api/alerts/([0-9A-Za-z-]{1,64}))", bind(&Dashboard::on_alert));
  s.Get(R"(/api/evidence/([0-9A-Fa-f-]{1,64})/(snapshot\.jpg|evidence\.json|frames/[0-9]{6}\.jpg))",
        bind(&Dashboard::on_evidence));
  s.Post(R"(/api/alerts/([0-9A-Za-z-]{1,64})/([a-z_-]{1,32}))", bind(&Dashboard::on_action));
  s.Get("/api/events", bind(&Dashboard::on_events));
  s.Get("/api/devices", bind(&Dashboard::on_devices));
  s.Get("/api/status", bind(&Dashboard::on_status));
  s.Get("/api/stream", bind(&Dashboard::on_stream));
  s.Get("/healthz", bind(&Dashboard::on_healthz));
  s.Get("/metrics", bind(&Dashboard::on_metrics));
  s.Get(R"(/([A-Za-z0-9_.-]*))", bind(&Dashboard::on_asset));
}

void Dashboard::on_login(const httplib::Request& req, httplib::Response& res) {
  // A JSON body only: a cross-site form cannot send one without a CORS preflight we never allow.
  if (req.get_header_value("Content-Type").rfind("application/json", 0) != 0)
    return refuse(res, 415, "send the login as application/json");
  auto parsed = parse_login(req.body);
  if (!parsed.request) return refuse(res, 400, parsed.error);
  const auto& [name, password] = *parsed.request;
  const std::string ip = req.remote_addr;
  std::optional<User> user;
  std::int64_t wait = 0;
  {
    std::lock_guard lock(auth_mu_);
    wait = limiter_.retry_after_ms(name, ip, clock_.wall_ms());
    if (wait > 0)
      ++logins_locked_;
    else
      user = find_user(name);
  }
  if (wait > 0) {
    res.set_header("Retry-After", std::to_string((wait + 999) / 1000));
    audit("login", name, ip, false, {}, "locked out");
    return refuse(res, 429, "too many failed logins; try again later");
  }
  // The KDF (about 0.1 s) runs outside the lock; unknown users cost the same.
  const bool ok = verify_password(password, user ? user->password_hash : kDummyHash) && user;
  if (!ok) {
    {
      std::lock_guard lock(auth_mu_);
      limiter_.failure(name, ip, clock_.wall_ms());
      ++logins_failed_;
    }
    audit("login", name, ip, false, {}, "wrong user name or password");
    return refuse(res, 401, "wrong user name or password");
  }
  Session s;
  {
    std::lock_guard lock(auth_mu_);
    limiter_.success(name);
    ++logins_ok_;
    s = sessions_.create(user->name, user->role, user->password_hash, clock_.wall_ms());
  }
  std::string cookie = std::string(kCookie) + "=" + s.id +
                       "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" +
                       std::to_string(options_.session_ttl_ms / 1000);
  if (tls_) cookie += "; Secure";
  res.set_header("Set-Cookie", cookie);
  audit("login", user->name, ip, true);
  reply(res, 200,
        {{"ok", true},
         {"user", s.user},
         {"role", to_string(s.role)},
         {"csrf", s.csrf},
         {"expires_ms", s.expires_ms}});
}

void Dashboard::on_logout(const httplib::Request& req, httplib::Response& res) {
  auto s = require(req, res, true);
  if (!s) return;
  {
    std::lock_guard lock(auth_mu_);
    sessions_.remove(s->id);
  }
  std::string cookie = std::string(kCookie) + "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0";
  if (tls_) cookie += "; Secure";
  res.set_header("Set-Cookie", cookie);
  audit("logout", s->user, req.remote_addr, true);
  reply(res, 200, {{"ok", true}});
}

void Dashboard::on_session(const httplib::Request& req, httplib::Response& res) {
  auto s = require(req, res, false);
  if (!s) return;
  reply(res, 200,
        {{"ok", true},
         {"user", s->user},
         {"role", to_string(s->role)},
         {"csrf", s->csrf},
         {"expires_ms", s->expires_ms},
         {"site", options_.site}});
}

void Dashboard::on_alerts(const httplib::Request& req, httplib::Response& res) {
  if (!require(req, res, false)) return;
  std::shared_ptr<const std::string> body;
  std::vector<edge::Alert> list;
  std::uint64_t gen = 0;
  {
    std::lock_guard lock(mu_);
    body = alerts_body_;
    gen = alerts_gen_;
    if (!body)
      for (const auto& [id, a] : open_) list.push_back(a);
  }
  if (!body) {
    sort_for_display(list);
    json out = json::array();
    for (const auto& a : list) out.push_back(alert_view(a));
    body = std::make_shared<const std::string>(json{{"alerts", out}}.dump());
    std::lock_guard lock(mu_);
    if (alerts_gen_ == gen) alerts_body_ = body;  // nothing changed while it was rendered
  }
  res.status = 200;
  res.set_header("Cache-Control", "no-store");
  res.set_content(*body, "application/json");
}

// Camera evidence: images of people, so a login is needed and each look at an alert's evidence
// (its index or its snapshot; not every frame of the clip) is an audit event.
void Dashboard::on_evidence(const httplib::Request& req, httplib::Response& res) {
  auto s = require(req, res, false);
  if (!s) return;
  const std::string id = req.matches[1];
  const std::string file = req.matches[2];
  if (!edge::evidence_id_ok(id)) return refuse(res, 404, "no evidence " + id);
  std::ifstream in(options_.evidence_dir + "/" + id + "/" + file, std::ios::binary);
  if (!in) return refuse(res, 404, "no evidence " + id + "/" + file);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!file.starts_with("frames/"))
    audit("evidence_view", s->user, req.remote_addr, true, "", "evidence " + id + "/" + file);
  res.set_header("Cache-Control", "private, no-store");
  res.set_content(std::move(data), file.ends_with(".json") ? "application/json" : "image/jpeg");
}

void Dashboard::on_alert(const httplib::Request& req, httplib::Response& res) {
  if (!require(req, res, false)) return;
  const std::string id = req.matches[1];
  auto db = edge::open_reader(options_.db_path);
  auto st = db.prepare("SELECT body FROM alerts WHERE alert_id=?1");
  st.bind(1, id);
  if (!st.step()) return refuse(res, 404, "no alert " + id);
  const json aj = json::parse(st.str(0), nullptr, false);
  auto alert = edge::alert_from_json(aj);
  if (!alert) return refuse(res, 500, "the stored alert cannot be read");
  const auto events = edge::alert_events(db, *alert);
  json list = json::array();
  for (const auto& [seq, e] : events) {
    json j = edge::to_json(e);
    j["seq"] = seq;
    list.push_back(std::move(j));
  }
  const auto evidence = edge::alert_evidence(*alert, events, options_.evidence_dir);
  reply(res, 200, {{"alert", aj}, {"events", list}, {"evidence", evidence}});
}

void Dashboard::on_action(const httplib::Request& req, httplib::Response& res) {
  auto s = require(req, res, true, Role::viewer);
  if (!s) return;
  const std::string id = req.matches[1];
  const auto action = normalise_action(req.matches[2].str());
  if (!action) return refuse(res, 404, "unknown action " + req.matches[2].str());
  if (s->role < Role::operator_) {
    audit(*action, s->user, req.remote_addr, false, id, "viewer may not act on alerts");
    return refuse(res, 403, "the role viewer may not act on alerts");
  }
  auto note = parse_action_body(req.body);
  if (!note.note) return refuse(res, 400, note.error);
  {
    std::lock_guard lock(mu_);
    if (!open_.count(id)) return refuse(res, 404, "no open alert " + id);
  }
  edge::AlertCommand cmd;
  cmd.request_id = edge::uuid_v7(clock_.wall_ms());
  cmd.alert_id = id;
  cmd.action = *edge::alert_action_from_string(*action);
  cmd.user = s->user;
  cmd.via = "dashboard";
  cmd.note = *note.note;
  struct Wait {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    edge::CommandResult result;
  };
  auto w = std::make_shared<Wait>();
  const bool accepted = pipeline_.submit_command(
      std::move(cmd), [w](const edge::CommandResult& r, bool /*duplicate*/) {
        {
          std::lock_guard lock(w->mu);
          w->result = r;
          w->done = true;
        }
        w->cv.notify_all();
      });
  if (!accepted) return refuse(res, 503, "anjud is stopping");
  std::unique_lock lock(w->mu);
  if (!w->cv.wait_for(lock, std::chrono::milliseconds(options_.command_timeout_ms),
                      [&] { return w->done; }))
    return refuse(res, 504, "no answer from the pipeline in time; the action may still apply");
  const edge::CommandResult r = w->result;
  lock.unlock();
  audit(*action, s->user, req.remote_addr, r.ok, id, r.error);
  json body{{"ok", r.ok}};
  if (!r.error.empty()) body["error"] = r.error;
  if (r.alert) body["alert"] = alert_view(*r.alert);
  reply(res, r.ok ? 200 : 409, body);
}

void Dashboard::on_events(const httplib::Request& req, httplib::Response& res) {
  auto session = require(req, res, false);
  if (!session) return;
  std::multimap<std::string, std::string> params(req.params.begin(), req.params.end());
  auto parsed = parse_event_search(params);
  if (!parsed.search) return refuse(res, 400, parsed.error);
  const auto& q = *parsed.search;
  std::string sql = "SELECT seq, body FROM events WHERE 1=1";
  if (q.from_ms) sql += " AND ts_ms >= ?1";
  if (q.to_ms) sql += " AND ts_ms < ?2";
  if (q.kind) sql += " AND kind = ?3";
  if (!q.device.empty()) sql += " AND device_id = ?4";
  if (!q.building.empty())
    sql += " AND json_extract(anju_event_json(body),'$.location.building') = ?5";
  sql += " ORDER BY seq DESC LIMIT ?6";
  auto db = edge::open_reader(options_.db_path);
  auto st = db.prepare(sql);
  if (q.from_ms) st.bind(1, *q.from_ms);
  if (q.to_ms) st.bind(2, *q.to_ms);
  if (q.kind) st.bind(3, edge::to_string(*q.kind));
  if (!q.device.empty()) st.bind(4, q.device);
  if (!q.building.empty()) st.bind(5, q.building);
  st.bind(6, q.limit);
  json list = json::array();
  std::int64_t passages = 0;
  while (st.step()) {
    auto r = edge::decode_stored(st.str(1));
    if (!r.event) continue;
    if (r.event->kind == edge::EventKind::passage_granted ||
        r.event->kind == edge::EventKind::passage_denied)
      ++passages;
    json e = edge::to_json(*r.event);
    e["seq"] = st.i64(0);
    list.push_back(std::move(e));
  }
  // Passages carry credential pseudonyms and labels (personal data, docs/DATA.md): who looked at
  // them, and which, is an audit event.
  if (passages > 0)
    audit("events_view", session->user, req.remote_addr, true, "",
          std::to_string(passages) + " passage records (" +
              (q.kind ? std::string(edge::to_string(*q.kind)) : std::string("any kind")) +
              (q.device.empty() ? "" : ", device " + q.device) +
              (q.building.empty() ? "" : ", building " + q.building) + ")");
  reply(res, 200, {{"events", list}});
}

void Dashboard::on_devices(const httplib::Request& req, httplib::Response& res) {
  if (!require(req, res, false)) return;
  json list = json::array();
  std::set<std::string> listed;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, d] : devices_) {
      list.push_back(device_json(d));
      listed.insert(id);
      listed.insert(d.ref.name);
    }
  }
  // Configured devices that have not reported yet.
  for (const auto& [key, loc] : options_.configured_devices) {
    if (listed.count(key)) continue;
    Device d;
    d.ref.id = key;
    d.ref.name = key;
    d.location = loc;
    list.push_back(device_json(d));
  }
  const json st = status_ ? status_() : json::object();
  reply(res, 200, {{"devices", list}, {"zigbee2mqtt", st.value("zigbee2mqtt", json::object())}});
}

void Dashboard::on_status(const httplib::Request& req, httplib::Response& res) {
  if (!require(req, res, false)) return;
  json st = status_ ? status_() : json::object();
  st["journal_bytes"] =
      file_size_or_zero(options_.db_path) + file_size_or_zero(options_.db_path + "-wal");
  reply(res, 200, st);
}

void Dashboard::on_stream(const httplib::Request& req, httplib::Response& res) {
  auto s = require(req, res, false);
  if (!s) return;
  auto client = std::make_shared<StreamClient>();
  client->user = s->user;
  {
    // The snapshot and the registration happen under one lock, so no change falls between them.
    std::lock_guard lock(mu_);
    if (stopping_) return refuse(res, 503, "anjud is stopping");
    std::vector<edge::Alert> list;
    for (const auto& [id, a] : open_) list.push_back(a);
    sort_for_display(list);
    json arr = json::array();
    for (const auto& a : list) arr.push_back(alert_view(a));
    client->frames.push_back("retry: 2000\n" + sse_frame("snapshot", json{{"alerts", arr}}.dump()));
    clients_.insert(client);
  }
  res.set_header("Cache-Control", "no-store");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, client](std::size_t, httplib::DataSink& sink) {
        std::string out;
        {
          std::unique_lock lock(mu_);
          stream_cv_.wait_for(lock, std::chrono::milliseconds(options_.keepalive_ms), [&] {
            return stopping_ || client->dropped || !client->frames.empty();
          });
          if (stopping_ || client->dropped) return false;
          if (client->frames.empty()) out = ": keep-alive\n\n";
          while (!client->frames.empty()) {
            out += client->frames.front();
            client->frames.pop_front();
          }
        }
        return sink.write(out.data(), out.size());
      },
      [this, client](bool) {
        std::lock_guard lock(mu_);
        clients_.erase(client);
      });
}

void Dashboard::on_healthz(const httplib::Request&, httplib::Response& res) {
  const auto ps = pipeline_.stats();
  const std::int64_t last = last_commit_mono_ms_.load(std::memory_order_relaxed);
  const std::int64_t age = clock_.mono_ms() - last;
  std::string reason;
  if (last == 0)
    reason = "the pipeline has not committed yet";
  else if (age > options_.stale_after_ms)
    reason = "the pipeline has not committed for " + std::to_string(age) + " ms";
  else if (ps.queue_capacity > 0 && ps.queue_depth >= ps.queue_capacity)
    reason = "the ingest queue is full";
  res.set_header("Cache-Control", "no-store");
  if (reason.empty()) {
    res.status = 200;
    res.set_content("ok\n", "text/plain");
  } else {
    res.status = 503;
    res.set_content(reason + "\n", "text/plain");
  }
}

void Dashboard::on_metrics(const httplib::Request&, httplib::Response& res) {
  DashboardCounters c;
  {
    std::lock_guard lock(mu_);
    c.events_by_kind = events_by_kind_;
    for (const auto& [id, a] : open_) ++c.open_alerts[{a.state, a.severity}];
    c.sse_clients = static_cast<std::int64_t>(clients_.size());
    c.sse_dropped = sse_dropped_;
  }
  {
    std::lock_guard lock(auth_mu_);
    c.sessions = static_cast<std::int64_t>(sessions_.size());
    c.logins_ok = logins_ok_;
    c.logins_failed = logins_failed_;
    c.logins_locked = logins_locked_;
  }
  c.journal_bytes =
      file_size_or_zero(options_.db_path) + file_size_or_zero(options_.db_path + "-wal");
  const json st = status_ ? status_() : json::object();
  res.set_header("Cache-Control", "no-store");
  res.set_content(render_metrics(st, c), "text/plain; version=0.0.4; charset=utf-8");
}

void Dashboard::on_asset(const httplib::Request& req, httplib::Response& res) {
  std::string path = req.matches[1];
  if (path.empty()) path = "index.html";
  if (path.find("..") != std::string::npos) return refuse(res, 404, "not found");
  res.set_header("Cache-Control", "no-cache");
  if (!options_.assets_dir.empty()) {
    std::ifstream in(options_.assets_dir + "/" + path, std::ios::binary);
    if (!in) return refuse(res, 404, "not found");
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    res.set_content(data, content_type_for(path));
    return;
  }
  for (const auto& a : embedded_assets())
    if (a.path.substr(1) == path) {
      res.set_content(std::string(a.data), std::string(a.content_type));
      return;
    }
  refuse(res, 404, "not found");
}

}  // namespace anju::firmware
