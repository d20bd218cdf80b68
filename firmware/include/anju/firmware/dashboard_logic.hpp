// The dashboard's pure parts: sessions, CSRF tokens and login lockout over an injected clock, the
// parsers of everything a browser sends (login and action bodies, search parameters), the SSE
// framing and the Prometheus text writer. No I/O here: the Dashboard class (dashboard.hpp) does
// the HTTP, the journal reads and the pipeline calls; these are unit-tested and fuzzed.
// Thread: SessionStore and LoginLimiter are not synchronised (the Dashboard holds a mutex);
// the rest are plain functions.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "anju/edge/alert.hpp"
#include "anju/edge/event.hpp"
#include "anju/firmware/users.hpp"

namespace anju::firmware {

// ---- sessions -------------------------------------------------------------------------------

struct Session {
  std::string id;    // 32 random bytes, hex: the cookie value
  std::string csrf;  // 32 random bytes, hex: required in X-CSRF-Token on every POST
  std::string user;
  Role role = Role::viewer;
  std::string password_hash;  // the user's hash at login: a changed password ends the session
  std::int64_t created_ms = 0;
  std::int64_t expires_ms = 0;  // sliding: every use moves it to now + ttl
};

class SessionStore {
 public:
  // `random_hex` makes a fresh 64-hex-digit token (RAND_bytes in anjud; a counter in tests).
  SessionStore(std::int64_t ttl_ms, std::function<std::string()> random_hex,
               std::size_t max_sessions = 1000);
  // A new session; the oldest one goes when there are max_sessions already.
  Session create(const std::string& user, Role role, const std::string& password_hash,
                 std::int64_t now_ms);
  // The live session with this id (its expiry moved on), or nothing (expired ones are removed).
  std::optional<Session> touch(std::string_view id, std::int64_t now_ms);
  bool remove(std::string_view id);
  void remove_user(std::string_view user);
  std::size_t size() const { return sessions_.size(); }

 private:
  std::int64_t ttl_ms_;
  std::function<std::string()> random_hex_;
  std::size_t max_sessions_;
  std::map<std::string, Session, std::less<>> sessions_;
};

// The value of cookie `name` in a Cookie header ("a=1; anju_session=ab12"), or "".
std::string cookie_value(std::string_view header, std::string_view name);

// Constant-time comparison of the session's token with the header's.
bool csrf_matches(std::string_view expected, std::string_view given);

// ---- login lockout --------------------------------------------------------------------------

// Failed logins are counted per user name and per client address; `max_failures` of either
// within `window_ms` lock that key until the oldest of them is window_ms old. A successful login
// clears the user's count (not the address's: one valid account must not reset a password spray).
class LoginLimiter {
 public:
  LoginLimiter(int max_failures, std::int64_t window_ms, std::size_t max_keys = 10000);
  // 0 when a login may be tried; otherwise how long until it may, ms.
  std::int64_t retry_after_ms(std::string_view user, std::string_view ip,
                              std::int64_t now_ms) const;
  void failure(std::string_view user, std::string_view ip, std::int64_t now_ms);
  void success(std::string_view user);
  std::size_t keys() const { return failures_.size(); }

 private:
  std::int64_t locked_for(const std::string& key, std::int64_t now_ms) const;
  void add(const std::string& key, std::int64_t now_ms);
  int max_failures_;
  std::int64_t window_ms_;
  std::size_t max_keys_;
  std::unordered_map<std::string, std::deque<std::int64_t>> failures_;
};

// ---- request parsers (pure) -----------------------------------------------------------------

struct LoginRequest {
  std::string user;
  std::string password;
};
struct LoginParse {
  std::optional<LoginRequest> request;
  std::string error;
};
// {"user":"wang","password":"..."}; both required strings, no other fields.
LoginParse parse_login(std::string_view body);

struct NoteParse {
  std::optional<std::string> note;
  std::string error;
};
// An action's body: empty, {} or {"note":"..."} (at most edge::kMaxNoteChars characters).
NoteParse parse_action_body(std::string_view body);

struct EventSearch {
  std::optional<std::int64_t> from_ms;  // ts_ms >= from
  std::optional<std::int64_t> to_ms;    // ts_ms < to
  std::optional<edge::EventKind> kind;
  std::string device;    // device id
  std::string building;  // location.building
  int limit = 100;       // 1..1000
};
struct EventSearchParse {
  std::optional<EventSearch> search;
  std::string error;
};
// Query parameters from, to (ms since the epoch), kind, device, building, limit; others are errors.
EventSearchParse parse_event_search(const std::multimap<std::string, std::string>& params);

// "ack" | "handle" | "close" | "false_alarm" | "suspend" | "resume" → the action (also accepts
// "false-alarm").
std::optional<std::string> normalise_action(std::string_view s);

// Open alerts for display: most serious first, then oldest first.
void sort_for_display(std::vector<edge::Alert>& alerts);

// ---- Server-Sent Events ---------------------------------------------------------------------

// "event: <event>\ndata: <line>\n...\n\n"; newlines in data become separate data lines.
std::string sse_frame(std::string_view event, std::string_view data);

// ---- Prometheus text format 0.0.4 -----------------------------------------------------------

// Label values: backslash, double quote and newline escaped.
std::string prom_escape(std::string_view v);

class PromWriter {
 public:
  // Starts a metric family: # HELP and # TYPE lines (type: counter, gauge, untyped).
  void family(const std::string& name, const std::string& help, const std::string& type);
  void sample(const std::string& name, double value,
              const std::vector<std::pair<std::string, std::string>>& labels = {});
  const std::string& text() const { return out_; }

 private:
  std::string out_;
};

// What the dashboard itself counts for /metrics.
struct DashboardCounters {
  std::map<std::string, std::int64_t> events_by_kind;               // committed since start
  std::map<std::pair<std::string, int>, std::int64_t> open_alerts;  // (state, severity) → count
  std::int64_t journal_bytes = 0;                                   // database + WAL files
  std::int64_t sse_clients = 0;
  std::int64_t sse_dropped = 0;
  std::int64_t sessions = 0;
  std::int64_t logins_ok = 0;
  std::int64_t logins_failed = 0;
  std::int64_t logins_locked = 0;
};
// Pure: the status JSON of anjud's status socket plus the counters, as Prometheus text.
std::string render_metrics(const nlohmann::json& status, const DashboardCounters& c);

}  // namespace anju::firmware
