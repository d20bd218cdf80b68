#include "anju/firmware/dashboard_logic.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "anju/edge/lifecycle.hpp"

namespace anju::firmware {
namespace {
using nlohmann::json;

constexpr std::size_t kMaxLoginBody = 4096;
constexpr std::size_t kMaxField = 1024;

std::optional<std::int64_t> parse_i64(std::string_view s) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// Characters (code points) of a UTF-8 string; the JSON parser has already checked the encoding.
std::size_t utf8_chars(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

}  // namespace

// ---- sessions -------------------------------------------------------------------------------

SessionStore::SessionStore(std::int64_t ttl_ms, std::function<std::string()> random_hex,
                           std::size_t max_sessions)
    : ttl_ms_(ttl_ms), random_hex_(std::move(random_hex)), max_sessions_(max_sessions) {}

Session SessionStore::create(const std::string& user, Role role, const std::string& password_hash,
                             std::int64_t now_ms) {
  // Expired sessions go first; then, if still full, the one closest to expiry.
  for (auto it = sessions_.begin(); it != sessions_.end();)
    it = it->second.expires_ms <= now_ms ? sessions_.erase(it) : std::next(it);
  while (sessions_.size() >= max_sessions_ && !sessions_.empty()) {
    auto oldest = std::min_element(sessions_.begin(), sessions_.end(), [](auto& a, auto& b) {
      return a.second.expires_ms < b.second.expires_ms;
    });
    sessions_.erase(oldest);
  }
  Session s;
  do s.id = random_hex_();
  while (sessions_.count(s.id));
  s.csrf = random_hex_();
  s.user = user;
  s.role = role;
  s.password_hash = password_hash;
  s.created_ms = now_ms;
  s.expires_ms = now_ms + ttl_ms_;
  sessions_[s.id] = s;
  return s;
}

std::optional<Session> SessionStore::touch(std::string_view id, std::int64_t now_ms) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return std::nullopt;
  if (it->second.expires_ms <= now_ms) {
    sessions_.erase(it);
    return std::nullopt;
  }
  it->second.expires_ms = now_ms + ttl_ms_;
  return it->second;
}

bool SessionStore::remove(std::string_view id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return false;
  sessions_.erase(it);
  return true;
}

void SessionStore::remove_user(std::string_view user) {
  for (auto it = sessions_.begin(); it != sessions_.end();)
    it = it->second.user == user ? sessions_.erase(it) : std::next(it);
}

std::string cookie_value(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    auto semi = header.find(';');
    std::string_view part = header.substr(0, semi);
    header = semi == std::string_view::npos ? std::string_view{} : header.substr(semi + 1);
    while (!part.empty() && (part.front() == ' ' || part.front() == '\t')) part.remove_prefix(1);
    auto eq = part.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view k = part.substr(0, eq);
    while (!k.empty() && (k.back() == ' ' || k.back() == '\t')) k.remove_suffix(1);
    if (k != name) continue;
    std::string_view v = part.substr(eq + 1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    return std::string(v);
  }
  return {};
}

bool csrf_matches(std::string_view expected, std::string_view given) {
  if (expected.empty() || expected.size() != given.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < expected.size(); ++i)
    diff |= static_cast<unsigned char>(expected[i] ^ given[i]);
  return diff == 0;
}

// ---- login lockout --------------------------------------------------------------------------

LoginLimiter::LoginLimiter(int max_failures, std::int64_t window_ms, std::size_t max_keys)
    : max_failures_(std::max(1, max_failures)), window_ms_(window_ms), max_keys_(max_keys) {}

std::int64_t LoginLimiter::locked_for(const std::string& key, std::int64_t now_ms) const {
  auto it = failures_.find(key);
  if (it == failures_.end()) return 0;
  const auto& q = it->second;
  // Only the latest max_failures are kept; all of them within the window lock the key.
  if (q.size() < static_cast<std::size_t>(max_failures_)) return 0;
  const std::int64_t until = q.front() + window_ms_;
  return until > now_ms ? until - now_ms : 0;
}

std::int64_t LoginLimiter::retry_after_ms(std::string_view user, std::string_view ip,
                                          std::int64_t now_ms) const {
  return std::max(locked_for("u:" + std::string(user), now_ms),
                  locked_for("a:" + std::string(ip), now_ms));
}

void LoginLimiter::add(const std::string& key, std::int64_t now_ms) {
  if (!failures_.count(key) && failures_.size() >= max_keys_) {
    // Forget keys whose failures are all out of the window; if none, the map stays bounded by
    // refusing to track new keys until some age out (their logins still need the password).
    for (auto it = failures_.begin(); it != failures_.end();)
      it = (it->second.empty() || it->second.back() + window_ms_ <= now_ms) ? failures_.erase(it)
                                                                            : std::next(it);
    if (failures_.size() >= max_keys_) return;
  }
  auto& q = failures_[key];
  while (!q.empty() && q.front() + window_ms_ <= now_ms) q.pop_front();
  q.push_back(now_ms);
  while (q.size() > static_cast<std::size_t>(max_failures_)) q.pop_front();
}

void LoginLimiter::failure(std::string_view user, std::string_view ip, std::int64_t now_ms) {
  add("u:" + std::string(user), now_ms);
  add("a:" + std::string(ip), now_ms);
}

void LoginLimiter::success(std::string_view user) {
  failures_.erase("u:" + std::string(user));
}

// ---- request parsers ------------------------------------------------------------------------

LoginParse parse_login(std::string_view body) {
  LoginParse r;
  if (body.size() > kMaxLoginBody) {
    r.error = "request too large";
    return r;
  }
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    r.error = "expected a JSON object {\"user\",\"password\"}";
    return r;
  }
  for (const auto& [k, v] : j.items())
    if (k != "user" && k != "password") {
      r.error = "unknown field '" + k + "'";
      return r;
    }
  LoginRequest req;
  for (const char* f : {"user", "password"}) {
    auto it = j.find(f);
    if (it == j.end() || !it->is_string()) {
      r.error = std::string("'") + f + "' must be a string";
      return r;
    }
    const auto& s = it->get_ref<const std::string&>();
    if (s.empty() || s.size() > kMaxField) {
      r.error = std::string("'") + f + "' must be 1 to 1024 bytes";
      return r;
    }
    (std::string_view(f) == "user" ? req.user : req.password) = s;
  }
  r.request = std::move(req);
  return r;
}

NoteParse parse_action_body(std::string_view body) {
  NoteParse r;
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    r.note = std::string();
    return r;
  }
  if (body.size() > edge::kMaxCommandBytes) {
    r.error = "request too large";
    return r;
  }
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    r.error = "expected a JSON object {\"note\"}";
    return r;
  }
  for (const auto& [k, v] : j.items())
    if (k != "note") {
      r.error = "unknown field '" + k + "'";
      return r;
    }
  std::string note;
  if (auto it = j.find("note"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) {
      r.error = "'note' must be a string";
      return r;
    }
    note = it->get<std::string>();
    if (utf8_chars(note) > edge::kMaxNoteChars) {
      r.error = "'note' is longer than " + std::to_string(edge::kMaxNoteChars) + " characters";
      return r;
    }
  }
  r.note = std::move(note);
  return r;
}

EventSearchParse parse_event_search(const std::multimap<std::string, std::string>& params) {
  EventSearchParse r;
  EventSearch s;
  std::map<std::string, int> seen;
  for (const auto& [k, v] : params) {
    if (++seen[k] > 1) {
      r.error = "parameter '" + k + "' given twice";
      return r;
    }
    if (v.size() > 256) {
      r.error = "parameter '" + k + "' is too long";
      return r;
    }
    if (k == "from" || k == "to") {
      if (v.empty()) continue;
      auto n = parse_i64(v);
      if (!n || *n < 0) {
        r.error = "'" + k + "' must be a time in ms since the epoch";
        return r;
      }
      (k == "from" ? s.from_ms : s.to_ms) = *n;
    } else if (k == "kind") {
      if (v.empty()) continue;
      s.kind = edge::event_kind_from_string(v);
      if (!s.kind) {
        r.error = "unknown event kind '" + v + "'";
        return r;
      }
    } else if (k == "device") {
      s.device = v;
    } else if (k == "building") {
      s.building = v;
    } else if (k == "limit") {
      if (v.empty()) continue;
      auto n = parse_i64(v);
      if (!n || *n < 1 || *n > 1000) {
        r.error = "'limit' must be 1..1000";
        return r;
      }
      s.limit = static_cast<int>(*n);
    } else {
      r.error = "unknown parameter '" + k + "'";
      return r;
    }
  }
  if (s.from_ms && s.to_ms && *s.to_ms <= *s.from_ms) {
    r.error = "'to' must be after 'from'";
    return r;
  }
  r.search = std::move(s);
  return r;
}

std::optional<std::string> normalise_action(std::string_view s) {
  std::string a(s);
  std::replace(a.begin(), a.end(), '-', '_');
  if (auto act = edge::alert_action_from_string(a)) return std::string(edge::to_string(*act));
  return std::nullopt;
}

void sort_for_display(std::vector<edge::Alert>& alerts) {
  std::stable_sort(alerts.begin(), alerts.end(), [](const edge::Alert& a, const edge::Alert& b) {
    if (a.severity != b.severity) return a.severity < b.severity;
    if (a.first_seen_ms != b.first_seen_ms) return a.first_seen_ms < b.first_seen_ms;
    return a.alert_id < b.alert_id;
  });
}

// ---- SSE ------------------------------------------------------------------------------------

std::string sse_frame(std::string_view event, std::string_view data) {
  std::string out = "event: ";
  for (char c : event) out += (c == '\n' || c == '\r') ? ' ' : c;
  out += '\n';
  std::size_t start = 0;
  for (;;) {
    auto nl = data.find_first_of("\r\n", start);
    out += "data: ";
    out += data.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    out += '\n';
    if (nl == std::string_view::npos) break;
    start = nl + 1;
    if (data[nl] == '\r' && start < data.size() && data[start] == '\n') ++start;
  }
  out += '\n';
  return out;
}

// ---- Prometheus -----------------------------------------------------------------------------

std::string prom_escape(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

void PromWriter::family(const std::string& name, const std::string& help, const std::string& type) {
  out_ += "# HELP " + name + " ";
  for (char c : help) {
    if (c == '\\')
      out_ += "\\\\";
    else if (c == '\n')
      out_ += "\\n";
    else
      out_ += c;
  }
  out_ += "\n# TYPE " + name + " " + type + "\n";
}

void PromWriter::sample(const std::string& name, double value,
                        const std::vector<std::pair<std::string, std::string>>& labels) {
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (i) out_ += ',';
      out_ += labels[i].first + "=\"" + prom_escape(labels[i].second) + "\"";
    }
    out_ += '}';
  }
  out_ += ' ';
  if (std::isnan(value))
    out_ += "NaN";
  else if (std::isinf(value))
    out_ += value > 0 ? "+Inf" : "-Inf";
  else if (value == std::floor(value) && std::fabs(value) < 9.0e15)
    out_ += std::to_string(static_cast<std::int64_t>(value));
  else {
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
    out_.append(buf, ec == std::errc() ? end : buf);
  }
  out_ += '\n';
}

std::string render_metrics(const json& status, const DashboardCounters& c) {
  PromWriter w;
  auto num = [](const json& j, const char* key) -> double {
    if (!j.is_object()) return 0;
    auto it = j.find(key);
    if (it == j.end()) return 0;
    if (it->is_boolean()) return it->get<bool>() ? 1 : 0;
    return it->is_number() ? it->get<double>() : 0;
  };
  const json empty = json::object();
  auto sub = [&](const json& j, const char* key) -> const json& {
    if (!j.is_object()) return empty;
    auto it = j.find(key);
    return it != j.end() && it->is_object() ? *it : empty;
  };

  w.family("anju_events_committed_total", "Events committed to the journal since anjud started.",
           "counter");
  for (const auto& [kind, n] : c.events_by_kind)
    w.sample("anju_events_committed_total", static_cast<double>(n), {{"kind", kind}});

  w.family("anju_alerts_open", "Open alerts by state and severity.", "gauge");
  for (const auto& [key, n] : c.open_alerts)
    w.sample("anju_alerts_open", static_cast<double>(n),
             {{"state", key.first}, {"severity", std::to_string(key.second)}});

  const json& p = sub(status, "pipeline");
  w.family("anju_pipeline_queue_depth", "Events waiting in the ingest queue.", "gauge");
  w.sample("anju_pipeline_queue_depth", num(p, "queue_depth"));
  w.family("anju_pipeline_queue_capacity", "Capacity of the ingest queue.", "gauge");
  w.sample("anju_pipeline_queue_capacity", num(p, "queue_capacity"));
  w.family("anju_pipeline_committed_total", "Events committed by the pipeline since start.",
           "counter");
  w.sample("anju_pipeline_committed_total", num(p, "committed"));
  w.family("anju_pipeline_commit_failures_total", "Batches whose transaction failed.", "counter");
  w.sample("anju_pipeline_commit_failures_total", num(p, "commit_failures"));
  w.family("anju_pipeline_replayed_total", "Events replayed from the inbox at start.", "counter");
  w.sample("anju_pipeline_replayed_total", num(p, "replayed"));
  w.family("anju_journal_last_seq", "Sequence number of the latest journaled event.", "gauge");
  w.sample("anju_journal_last_seq", num(p, "last_seq"));
  w.family("anju_journal_file_bytes", "Size of the journal's database and WAL files.", "gauge");
  w.sample("anju_journal_file_bytes", static_cast<double>(c.journal_bytes));

  const json& ob = sub(status, "outbox");
  w.family("anju_outbox_rows", "Messages waiting in the outbox for the city, by class.", "gauge");
  for (const auto& [cls, v] : ob.items())
    w.sample("anju_outbox_rows", num(v, "rows"), {{"class", cls}});
  w.family("anju_outbox_bytes", "Bytes waiting in the outbox, by class.", "gauge");
  for (const auto& [cls, v] : ob.items())
    w.sample("anju_outbox_bytes", num(v, "bytes"), {{"class", cls}});
  w.family("anju_outbox_evicted_total", "Outbox messages evicted over budget, by class.",
           "counter");
  for (const auto& [cls, v] : ob.items())
    w.sample("anju_outbox_evicted_total", num(v, "evicted"), {{"class", cls}});
  w.family("anju_outbox_sent_total", "Outbox messages acknowledged by the city, by class.",
           "counter");
  for (const auto& [cls, v] : ob.items())
    w.sample("anju_outbox_sent_total", num(v, "sent"), {{"class", cls}});

  const json& up = sub(status, "uplink");
  const bool uplink_enabled = !up.contains("enabled") || up.value("enabled", true);
  w.family("anju_uplink_enabled", "1 when the city uplink is configured.", "gauge");
  w.sample("anju_uplink_enabled", uplink_enabled ? 1 : 0);
  w.family("anju_uplink_connected", "1 while connected to the city broker.", "gauge");
  w.sample("anju_uplink_connected", num(up, "connected"));
  w.family("anju_uplink_connects_total", "Successful connections to the city broker.", "counter");
  w.sample("anju_uplink_connects_total", num(up, "connects"));
  w.family("anju_uplink_connect_failures_total", "Failed connection attempts to the city broker.",
           "counter");
  w.sample("anju_uplink_connect_failures_total", num(up, "connect_failures"));
  w.family("anju_uplink_inflight", "QoS 1 messages awaiting the city's PUBACK.", "gauge");
  w.sample("anju_uplink_inflight", num(up, "inflight"));
  w.family("anju_uplink_window",
           "QoS 1 messages the uplink keeps in flight at most on this connection (the city "
           "broker's Receive Maximum when lower); 0 while disconnected.",
           "gauge");
  w.sample("anju_uplink_window", num(up, "window"));

  const json& lb = sub(status, "local_bus");
  w.family("anju_local_bus_connected", "1 while connected to the local broker.", "gauge");
  w.sample("anju_local_bus_connected", num(lb, "connected"));
  w.family("anju_local_bus_messages_total", "Messages received from the local broker.", "counter");
  w.sample("anju_local_bus_messages_total", num(lb, "messages_in"));
  w.family("anju_local_bus_redeliveries_dropped_total",
           "Redelivered messages dropped as already journaled.", "counter");
  w.sample("anju_local_bus_redeliveries_dropped_total", num(lb, "redeliveries_dropped"));
  w.family("anju_local_bus_window",
           "QoS 1 publishes anjud keeps in flight at most on the local broker (its Receive "
           "Maximum when lower).",
           "gauge");
  w.sample("anju_local_bus_window", num(lb, "window"));
  w.family("anju_local_bus_publish_queued", "Publishes queued for the local broker.", "gauge");
  w.sample("anju_local_bus_publish_queued", num(lb, "publish_queued"));
  w.family("anju_local_bus_publish_dropped_total",
           "Publishes dropped from a full local queue (the oldest first).", "counter");
  w.sample("anju_local_bus_publish_dropped_total", num(lb, "publish_dropped"));

  // Drivers' counters, one family at a time (a family's samples follow its # TYPE line).
  static constexpr const char* kDrivers[] = {"zigbee2mqtt", "chirpstack", "generic_mqtt", "modbus"};
  std::string families;
  {
    PromWriter d;
    d.family("anju_driver_messages_total", "Messages handled, by driver.", "counter");
    for (const char* driver : kDrivers)
      if (!sub(status, driver).empty())
        d.sample("anju_driver_messages_total", num(sub(status, driver), "messages"),
                 {{"driver", driver}});
    d.family("anju_driver_parse_errors_total", "Messages a driver could not parse, by driver.",
             "counter");
    for (const char* driver : kDrivers)
      if (!sub(status, driver).empty())
        d.sample("anju_driver_parse_errors_total", num(sub(status, driver), "parse_errors"),
                 {{"driver", driver}});
    d.family("anju_driver_devices", "Devices a driver knows, by driver.", "gauge");
    for (const char* driver : kDrivers)
      if (sub(status, driver).contains("devices"))
        d.sample("anju_driver_devices", num(sub(status, driver), "devices"), {{"driver", driver}});
    families = d.text();
  }

  w.family("anju_dashboard_sse_clients", "Browsers following the live alert stream.", "gauge");
  w.sample("anju_dashboard_sse_clients", static_cast<double>(c.sse_clients));
  w.family("anju_dashboard_sse_dropped_total", "Stream clients dropped for falling behind.",
           "counter");
  w.sample("anju_dashboard_sse_dropped_total", static_cast<double>(c.sse_dropped));
  w.family("anju_dashboard_sessions", "Live dashboard sessions.", "gauge");
  w.sample("anju_dashboard_sessions", static_cast<double>(c.sessions));
  w.family("anju_dashboard_logins_total", "Dashboard login attempts by result.", "counter");
  w.sample("anju_dashboard_logins_total", static_cast<double>(c.logins_ok), {{"result", "ok"}});
  w.sample("anju_dashboard_logins_total", static_cast<double>(c.logins_failed),
           {{"result", "failed"}});
  w.sample("anju_dashboard_logins_total", static_cast<double>(c.logins_locked),
           {{"result", "locked"}});
  return w.text() + families;
}

}  // namespace anju::firmware
