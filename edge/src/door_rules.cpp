// Door rules (see door_rules.hpp).
#include "anju/edge/door_rules.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "anju/edge/uuid.hpp"

namespace anju::edge {
namespace {

void prune(std::deque<std::int64_t>& times, std::int64_t since) {
  while (!times.empty() && times.front() < since) times.pop_front();
}

bool is_door_kind(EventKind k) {
  switch (k) {
    case EventKind::door_open:
    case EventKind::passage_granted:
    case EventKind::passage_denied:
    case EventKind::exit_request:
      return true;
    default:
      return false;
  }
}

// An operator's remote open that anjud carried out: the audit of a door command
// (firmware/door_commands.cpp) with action door_open and ok true. It authorises one opening.
bool is_remote_open(const Event& e) {
  if (e.kind != EventKind::audit) return false;
  const auto action = e.attrs.find("action");
  const auto ok = e.attrs.find("ok");
  return action != e.attrs.end() && *action == "door_open" && ok != e.attrs.end() && *ok == true &&
         e.attrs.contains("door");
}

}  // namespace

std::string validate(const DoorRuleSettings& s) {
  std::string out;
  auto add = [&](const std::string& e) { out += (out.empty() ? "" : "; ") + e; };
  if (s.forced_window_ms < 0) add("forced_window_ms: must be >= 0");
  if (s.held_open_ms <= 0) add("held_open_ms: must be > 0");
  for (const auto& [door, ms] : s.held_open_overrides)
    if (ms < 0) add("held_open_overrides." + door + ": must be >= 0 (0 = not supervised)");
  if (s.passage_grace_ms < 0) add("passage_grace_ms: must be >= 0");
  if (s.denial_count < 1) add("denial_count: must be >= 1");
  if (s.denial_window_ms <= 0) add("denial_window_ms: must be > 0");
  for (int sev :
       {s.forced_severity, s.held_open_severity, s.tailgating_severity, s.repeated_denial_severity})
    if (sev < 1 || sev > 4) {
      add("severities must be 1..4");
      break;
    }
  return out;
}

DoorRules::DoorRules(DoorRuleSettings settings, const Clock& clock)
    : s_(std::move(settings)), clock_(clock) {
  if (auto err = validate(s_); !err.empty()) throw std::invalid_argument("door rules: " + err);
}

std::string DoorRules::door_key(const Event& e) {
  if (auto it = e.attrs.find("door"); it != e.attrs.end() && it->is_string())
    return it->get<std::string>();
  if (e.location.building.empty() && e.location.unit.empty() && e.location.room.empty()) return "";
  return e.location.building + "/" + e.location.unit + "/" + e.location.room;
}

std::int64_t DoorRules::held_limit(const std::string& door) const {
  if (auto it = s_.held_open_overrides.find(door); it != s_.held_open_overrides.end())
    return it->second;
  return s_.held_open_ms;
}

bool DoorRules::is_open(const std::string& door) const {
  auto it = doors_.find(door);
  return it != doors_.end() && it->second.open;
}

Event DoorRules::make(const Origin& o, const std::string& door, EventKind kind, int severity,
                      std::int64_t ts_ms, const char* rule) const {
  Event e;
  e.id = uuid_v7(clock_.wall_ms());
  e.ts_ms = ts_ms;
  e.mono_ns = clock_.mono_ns();
  e.boot_id = boot_id();
  e.clock_synced = clock_.synced();
  e.site = o.site;
  e.grid_code = o.grid_code;
  e.location = o.location;
  e.device = o.device;
  e.kind = kind;
  e.severity = severity;
  e.source = "door_rules";
  e.attrs["door"] = door;
  e.attrs["rule"] = rule;
  return e;
}

void DoorRules::end_cycle(Door& d) {
  d.cycle_closed = false;
  d.cycle_authorised = 0;
  d.cycle_passages = 0;
  d.tailgate_reported = false;
}

void DoorRules::expire(const std::string& key, Door& d, std::int64_t now_ms,
                       std::vector<Event>& out) {
  const std::int64_t limit = held_limit(key);
  if (d.open && !d.held_reported && limit > 0 && now_ms - d.opened_ms >= limit) {
    d.held_reported = true;
    Event e = make(d.origin, key, EventKind::door_held_open, s_.held_open_severity,
                   d.opened_ms + limit, "door_held_open");
    e.active = true;
    e.attrs["limit_s"] = static_cast<double>(limit) / 1000.0;
    out.push_back(std::move(e));
  }
  if (d.cycle_closed && now_ms > d.closed_ms + s_.passage_grace_ms) end_cycle(d);
}

void DoorRules::check_tailgating(const std::string& key, Door& d, std::int64_t ts_ms,
                                 std::vector<Event>& out) {
  if (d.tailgate_reported || !(d.open || d.cycle_closed)) return;
  if (d.cycle_passages <= d.cycle_authorised) return;
  d.tailgate_reported = true;
  Event e = make(d.origin, key, EventKind::tailgating, s_.tailgating_severity, ts_ms, "tailgating");
  e.active = true;
  e.attrs["passages"] = d.cycle_passages;
  e.attrs["authorised"] = d.cycle_authorised;
  out.push_back(std::move(e));
}

void DoorRules::denial(const Event& e, const std::string& key, Door& d, std::vector<Event>& out) {
  const std::int64_t t = e.ts_ms;
  const Origin from_reader{e.site, e.grid_code, e.location, e.device};
  prune(d.denials, t - s_.denial_window_ms);
  d.denials.push_back(t);
  if (static_cast<int>(d.denials.size()) >= s_.denial_count) {
    Event r = make(from_reader, key, EventKind::repeated_denial, s_.repeated_denial_severity, t,
                   "repeated_denial");
    r.active = true;
    r.attrs["scope"] = "door";
    r.attrs["count"] = d.denials.size();
    r.attrs["window_s"] = static_cast<double>(s_.denial_window_ms) / 1000.0;
    out.push_back(std::move(r));
  }
  const std::string cred = e.attrs.value("credential", "");
  if (cred.empty()) return;
  auto& streak = credentials_[cred].denials;
  prune(streak, t - s_.denial_window_ms);
  streak.push_back(t);
  if (static_cast<int>(streak.size()) >= s_.denial_count) {
    Event r = make(from_reader, key, EventKind::repeated_denial, s_.repeated_denial_severity, t,
                   "repeated_denial");
    r.active = true;
    r.attrs["scope"] = "credential";
    r.attrs["credential"] = cred;  // the pseudonym
    r.attrs["count"] = streak.size();
    r.attrs["window_s"] = static_cast<double>(s_.denial_window_ms) / 1000.0;
    out.push_back(std::move(r));
  }
}

std::vector<Event> DoorRules::on_event(const Event& e) {
  std::vector<Event> out;
  const Measurement* passages = e.value("passages");
  const bool remote_open = is_remote_open(e);
  if (!is_door_kind(e.kind) && !passages && !remote_open) return out;
  const std::string key = door_key(e);
  if (key.empty()) return out;
  Door& d = doors_[key];
  const std::int64_t t = e.ts_ms;
  expire(key, d, t, out);

  if (e.kind == EventKind::door_open) {
    d.origin = {e.site, e.grid_code, e.location, e.device};
    d.have_contact_origin = true;
  } else if (!d.have_contact_origin && !remote_open) {
    d.origin = {e.site, e.grid_code, e.location, e.device};
  }
  if (remote_open) {  // counted like a grant, without ending a credential's streak
    if (d.cycle_closed) end_cycle(d);
    d.grants.push_back(t);
    if (d.open) ++d.cycle_authorised;
    return out;
  }

  switch (e.kind) {
    case EventKind::passage_granted: {
      if (d.cycle_closed) end_cycle(d);
      d.grants.push_back(t);
      if (d.open) ++d.cycle_authorised;
      d.denials.clear();  // a grant ends the door's streak ...
      const std::string cred = e.attrs.value("credential", "");
      if (!cred.empty()) credentials_.erase(cred);  // ... and the credential's
      break;
    }
    case EventKind::exit_request:
      if (e.active == false) break;  // button released
      if (d.cycle_closed) end_cycle(d);
      d.exits.push_back(t);
      if (d.open) ++d.cycle_authorised;
      break;
    case EventKind::passage_denied:
      denial(e, key, d, out);
      break;
    case EventKind::door_open:
      if (e.active == true && !d.open) {
        if (d.cycle_closed) end_cycle(d);
        if (d.cycle_passages > 0 && t - d.early_passage_ms > s_.passage_grace_ms)
          d.cycle_passages = 0;  // a stray count long before the opening
        d.open = true;
        d.opened_ms = t;
        d.held_reported = false;
        const std::int64_t since = t - s_.forced_window_ms;
        prune(d.grants, since);
        prune(d.exits, since);
        d.cycle_authorised = static_cast<int>(d.grants.size() + d.exits.size());
        if (!d.grants.empty()) {
          d.grants.pop_front();
        } else if (!d.exits.empty()) {
          d.exits.pop_front();
        } else {
          d.forced = true;
          Event f =
              make(d.origin, key, EventKind::door_forced, s_.forced_severity, t, "door_forced");
          f.active = true;
          out.push_back(std::move(f));
        }
        check_tailgating(key, d, t, out);  // passages counted just before the contact opened
      } else if (e.active == false && d.open) {
        d.open = false;
        d.closed_ms = t;
        if (d.forced) {
          Event f =
              make(d.origin, key, EventKind::door_forced, s_.forced_severity, t, "door_forced");
          f.active = false;
          out.push_back(std::move(f));
          d.forced = false;
        }
        if (d.held_reported) {
          Event h = make(d.origin, key, EventKind::door_held_open, s_.held_open_severity, t,
                         "door_held_open");
          h.active = false;
          h.attrs["open_s"] = static_cast<double>(t - d.opened_ms) / 1000.0;
          out.push_back(std::move(h));
          d.held_reported = false;
        }
        d.cycle_closed = true;
      }
      break;
    default:
      break;
  }

  if (passages && std::isfinite(passages->value) && passages->value > 0) {
    if (!d.open && !d.cycle_closed) {
      // The counter reported before the contact: start the cycle's count now, it opens next.
      if (d.cycle_passages == 0) d.early_passage_ms = t;
      d.cycle_passages += static_cast<int>(std::lround(passages->value));
    } else {
      d.cycle_passages += static_cast<int>(std::lround(passages->value));
      check_tailgating(key, d, t, out);
    }
  }
  return out;
}

std::vector<Event> DoorRules::on_tick(std::int64_t now_ms) {
  std::vector<Event> out;
  for (auto& [key, d] : doors_) expire(key, d, now_ms, out);
  for (auto it = credentials_.begin(); it != credentials_.end();) {
    prune(it->second.denials, now_ms - s_.denial_window_ms);
    it = it->second.denials.empty() ? credentials_.erase(it) : std::next(it);
  }
  return out;
}

std::int64_t DoorRules::next_deadline_ms() const {
  std::int64_t next = std::numeric_limits<std::int64_t>::max();
  for (const auto& [key, d] : doors_) {
    const std::int64_t limit = held_limit(key);
    if (d.open && !d.held_reported && limit > 0) next = std::min(next, d.opened_ms + limit);
    if (d.cycle_closed) next = std::min(next, d.closed_ms + s_.passage_grace_ms + 1);
  }
  return next;
}

}  // namespace anju::edge
