#include "anju/bridge/city_bridge.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

#include "anju/edge/journal.hpp"
#include "anju/edge/uuid.hpp"

namespace anju::bridge {
using anju::edge::AlertChange;
using anju::edge::Event;
using anju::edge::EventKind;
using nlohmann::json;

namespace {
json common(const std::string& id, std::int64_t seq, const std::string& site,
            const std::string& grid, const std::string& division, std::int64_t ts_ms, bool synced) {
  json j{{"schema", kUplinkSchema}, {"id", id}, {"seq", seq}, {"site", site}, {"grid_code", grid}};
  if (!division.empty()) j["division_code"] = division;
  j["ts_ms"] = ts_ms;
  j["clock_synced"] = synced;
  return j;
}

std::string prefix(const std::string& site) {
  return "anju/v1/" + site + "/";  // site ids are [A-Za-z0-9_-]{1,64} (config)
}
}  // namespace

std::string topic_level(std::string_view text) {
  if (text.empty()) return "~";
  if (text == "gateway") return "%67ateway";  // "gateway" is the gateway's own status topic
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
        c == '_' || c == '-') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string period_name(std::int64_t interval_ms) {
  if (interval_ms > 0 && interval_ms % 86'400'000 == 0)
    return std::to_string(interval_ms / 86'400'000) + "d";
  if (interval_ms > 0 && interval_ms % 3'600'000 == 0)
    return std::to_string(interval_ms / 3'600'000) + "h";
  if (interval_ms > 0 && interval_ms % 60'000 == 0)
    return std::to_string(interval_ms / 60'000) + "m";
  if (interval_ms > 0 && interval_ms % 1000 == 0) return std::to_string(interval_ms / 1000) + "s";
  return std::to_string(interval_ms) + "ms";
}

std::string alert_topic(const std::string& site, EventKind kind) {
  return prefix(site) + "alert/" + std::string(to_string(kind));
}

std::string event_topic(const std::string& site, EventKind kind) {
  return prefix(site) + "event/" + std::string(to_string(kind));
}

std::string status_topic(const std::string& site, const std::string& device_id) {
  return prefix(site) + "status/" + topic_level(device_id);
}

std::string summary_topic(const std::string& site, std::int64_t interval_ms) {
  return prefix(site) + "summary/" + period_name(interval_ms);
}

std::string alert_payload(const AlertChange& c, const std::string& msg_id, bool clock_synced,
                          const std::string& division_code) {
  const auto& a = c.alert;
  json j =
      common(msg_id, a.last_seq, a.site, a.grid_code, division_code, a.updated_ms, clock_synced);
  j["alert_id"] = a.alert_id;
  j["change"] = std::string(to_string(c.type));
  std::string out = j.dump();
  // The alert object is spliced in as the pipeline serialised it, rather than built again.
  out.pop_back();
  out += ",\"alert\":";
  out += c.json.empty() ? to_json(a).dump() : c.json;
  out += '}';
  return out;
}

json event_payload(const Event& e, const std::string& division_code) {
  json j = common(e.id, e.seq, e.site, e.grid_code, division_code, e.ts_ms, e.clock_synced);
  j["mono_ns"] = e.mono_ns;
  j["boot_id"] = e.boot_id;
  j["kind"] = std::string(to_string(e.kind));
  j["severity"] = e.severity;
  j["location"] = to_json(e.location);
  j["device"] = to_json(e.device);
  if (e.active) j["active"] = *e.active;
  j["values"] = to_json(e.values);
  return j;
}

json status_payload(const Event& e, const std::string& division_code) {
  json j = common(e.id, e.seq, e.site, e.grid_code, division_code, e.ts_ms, e.clock_synced);
  j["device"] = to_json(e.device);
  j["location"] = to_json(e.location);
  j["state"] = e.kind == EventKind::device_online ? "online" : "offline";
  if (e.attrs.contains("reason")) j["reason"] = e.attrs["reason"];
  return j;
}

std::string summary_id(const std::string& site, std::int64_t interval_ms, std::int64_t start_ms,
                       const std::string& cell) {
  std::string name =
      "anju/summary/" + site + "/" + std::to_string(interval_ms) + "/" + std::to_string(start_ms);
  if (!cell.empty()) name += "/cell/" + cell;
  return anju::edge::uuid_from_name(name);
}

CityBridge::CityBridge(CityBridgeOptions options, anju::edge::Journal& journal,
                       OutboxCounters& counters, Uplink* uplink)
    : options_(std::move(options)),
      counters_(counters),
      writer_((ensure_outbox_schema(journal.db()), journal.db()), options_.budget_bytes, counters),
      uplink_(uplink) {
  load_counters(journal.db(), counters);
  delete_ = journal.db().prepare("DELETE FROM outbox WHERE oid=? RETURNING bytes");
}

void CityBridge::acked(const std::vector<std::pair<std::int64_t, MsgClass>>& rows) {
  std::lock_guard lock(acked_mu_);
  acked_.insert(acked_.end(), rows.begin(), rows.end());
}

void CityBridge::delete_acked(anju::edge::Journal&) {
  {
    std::lock_guard lock(acked_mu_);
    if (acked_.empty()) return;
    deleting_.insert(deleting_.end(), acked_.begin(), acked_.end());
    acked_.clear();
  }
  for (const auto& [oid, cls] : deleting_) {
    delete_.bind(1, oid);
    if (delete_.step()) {  // gone already if the budget evicted it meanwhile
      --counters_.rows[static_cast<int>(cls)];
      counters_.bytes[static_cast<int>(cls)] -= delete_.i64(0);
    }
    delete_.reset();
  }
}

void CityBridge::in_transaction(anju::edge::Journal& journal, const std::vector<Event>& events,
                                const std::vector<AlertChange>& changes) {
  delete_acked(journal);
  // An alert message's time is its latest event's: it is as synchronised as that event's clock
  // (an alert changed by a command or a tick: as the batch's events, all of which must be).
  // Looked up only in batches that change alerts, so routine readings pay nothing for it.
  std::unordered_map<std::string_view, bool> synced_by_id;
  bool all_synced = true;
  if (!changes.empty()) {
    synced_by_id.reserve(events.size());
    for (const auto& e : events) {
      synced_by_id.emplace(e.id, e.clock_synced);
      all_synced = all_synced && e.clock_synced;
    }
  }
  for (const auto& c : changes) {
    // Raised during a maintenance window: recorded and shown locally, not sent to the city.
    if (c.alert.suppressed) continue;
    const std::string id = anju::edge::uuid_v7(c.alert.updated_ms);
    bool clock_synced = all_synced;
    if (!c.alert.event_ids.empty())
      if (auto it = synced_by_id.find(c.alert.event_ids.back()); it != synced_by_id.end())
        clock_synced = it->second;
    const std::int64_t oid =
        writer_.put(MsgClass::alert, id, alert_topic(options_.site, c.alert.kind),
                    alert_payload(c, id, clock_synced, options_.division_code));
    if (options_.on_alert_queued) options_.on_alert_queued(c, oid);
    pending_wake_ = true;
  }
  for (const auto& e : events) {
    if (e.kind == EventKind::device_online || e.kind == EventKind::device_offline) {
      writer_.put(MsgClass::status, e.id, status_topic(options_.site, e.device.id),
                  status_payload(e, options_.division_code).dump());
      pending_wake_ = true;
    }
    if (options_.event_kinds.count(e.kind)) {
      writer_.put(MsgClass::event, e.id, event_topic(options_.site, e.kind),
                  event_payload(e, options_.division_code).dump());
      pending_wake_ = true;
    }
  }
}

void CityBridge::after_commit(const std::vector<Event>&, const std::vector<AlertChange>&) {
  if (!deleting_.empty()) {
    std::vector<std::int64_t> oids;
    oids.reserve(deleting_.size());
    for (const auto& d : deleting_) oids.push_back(d.first);
    deleting_.clear();
    if (uplink_) uplink_->forget(oids);
  }
  if (pending_wake_ && uplink_) uplink_->wake();
  pending_wake_ = false;
}

void CityBridge::on_rollback(anju::edge::Journal& journal) {
  // The counters moved with rows that were rolled back: read them again from what committed.
  // The acknowledged rows whose deletion was rolled back are deleted next time.
  {
    std::lock_guard lock(acked_mu_);
    acked_.insert(acked_.end(), deleting_.begin(), deleting_.end());
  }
  deleting_.clear();
  load_counters(journal.db(), counters_);
  pending_wake_ = false;
}

namespace {

// What one summary counts, for one grid cell or the whole compound.
struct Tally {
  std::int64_t last_seq = 0;
  std::int64_t total = 0;
  std::map<std::string, std::int64_t> by_kind;
  std::set<std::string> reporting;
  std::int64_t opened = 0, open = 0, offline = 0, low_battery = 0, signal_weak = 0, tamper = 0;
  // Devices whose online/offline state changed in the period: the last change of each.
  std::map<std::string, std::pair<std::string, std::int64_t>> changed;  // id -> (state, ts_ms)
};

// At most this many devices are listed as changed in one summary (changed_total counts all).
constexpr std::size_t kMaxChangedListed = 100;

}  // namespace

std::vector<json> CityBridge::summaries(anju::edge::Journal& journal, std::int64_t interval_ms,
                                        std::int64_t start_ms) const {
  const std::int64_t end_ms = start_ms + interval_ms;
  auto& db = journal.db();
  // A device's cell is the grid code its events carry (the site's unless configured otherwise).
  std::map<std::string, std::string> device_cell;
  {
    auto st = db.prepare(
        "SELECT device_id, coalesce(json_extract(anju_event_json(body),'$.grid_code'),'') FROM "
        "events WHERE seq IN (SELECT max(seq) FROM events WHERE ts_ms>=? AND ts_ms<? GROUP BY "
        "device_id)");
    st.bind(1, start_ms).bind(2, end_ms);
    while (st.step()) device_cell[st.str(0)] = st.str(1);
  }
  std::map<std::string, Tally> cells{{"", Tally{}}};  // "" = the whole compound
  bool by_cell = !options_.grid_cells.empty();
  for (const auto& [device, cell] : device_cell)
    if (!cell.empty() && cell != options_.grid_code) by_cell = true;
  if (by_cell) {
    cells[options_.grid_code];
    for (const auto& cell : options_.grid_cells) cells[cell];
  }
  auto tallies = [&](const std::string& cell) {
    std::vector<Tally*> out{&cells[""]};
    if (by_cell) out.push_back(&cells[cell.empty() ? options_.grid_code : cell]);
    return out;
  };
  auto cell_of = [&](const std::string& device) {
    auto it = device_cell.find(device);
    return it == device_cell.end() ? std::string() : it->second;
  };
  {
    auto st = db.prepare(
        "SELECT device_id, kind, count(*), max(seq) FROM events WHERE ts_ms>=? AND ts_ms<? "
        "GROUP BY device_id, kind");
    st.bind(1, start_ms).bind(2, end_ms);
    while (st.step()) {
      const std::string device = st.str(0);
      for (Tally* t : tallies(cell_of(device))) {
        t->by_kind[st.str(1)] += st.i64(2);
        t->total += st.i64(2);
        t->last_seq = std::max(t->last_seq, st.i64(3));
        t->reporting.insert(device);
      }
    }
  }
  {
    auto st = db.prepare(
        "SELECT coalesce(json_extract(body,'$.grid_code'),''), count(*) FROM alerts WHERE "
        "first_seen_ms>=? AND first_seen_ms<? GROUP BY 1");
    st.bind(1, start_ms).bind(2, end_ms);
    while (st.step())
      for (Tally* t : tallies(st.str(0))) t->opened += st.i64(1);
  }
  {
    // Alerts open now (when the summary is computed), and the device states they stand for.
    auto st = db.prepare(
        "SELECT coalesce(json_extract(body,'$.grid_code'),''), rule, "
        "coalesce(json_extract(body,'$.condition_cleared'),0) FROM alerts WHERE state!='closed'");
    while (st.step()) {
      const std::string rule = st.str(1);
      const bool active = st.i64(2) == 0;
      for (Tally* t : tallies(st.str(0))) {
        ++t->open;
        if (active && rule == "device_offline") ++t->offline;
        if (active && rule == "battery_low") ++t->low_battery;
        if (active && rule == "signal_weak") ++t->signal_weak;
        if (active && rule == "tamper") ++t->tamper;
      }
    }
  }
  {
    auto st = db.prepare(
        "SELECT device_id, kind, ts_ms FROM events WHERE ts_ms>=? AND ts_ms<? AND kind IN "
        "('device_online','device_offline') ORDER BY seq");
    st.bind(1, start_ms).bind(2, end_ms);
    while (st.step()) {
      const std::string device = st.str(0);
      const std::string state = st.str(1) == "device_online" ? "online" : "offline";
      for (Tally* t : tallies(cell_of(device))) t->changed[device] = {state, st.i64(2)};
    }
  }
  const auto registry = anju::edge::device_state_counts(db);
  std::vector<json> out;
  for (const auto& [cell, t] : cells) {
    json j =
        common(summary_id(options_.site, interval_ms, start_ms, cell), t.last_seq, options_.site,
               cell.empty() ? options_.grid_code : cell, options_.division_code, end_ms, true);
    j["scope"] = cell.empty() ? "compound" : "cell";
    j["period"] = {{"name", period_name(interval_ms)}, {"start_ms", start_ms}, {"end_ms", end_ms}};
    json by_kind = json::object();
    for (const auto& [k, n] : t.by_kind) by_kind[k] = n;
    j["events"] = {{"total", t.total}, {"by_kind", by_kind}};
    j["alerts"] = {{"opened", t.opened}, {"open", t.open}};
    j["devices"] = {{"reporting", static_cast<std::int64_t>(t.reporting.size())},
                    {"offline", t.offline},
                    {"low_battery", t.low_battery},
                    {"signal_weak", t.signal_weak},
                    {"tamper", t.tamper}};
    if (cell.empty()) {  // the registry has no grid cells: the compound's counts only
      j["devices"]["known"] = registry.known;
      j["devices"]["online"] = registry.online;
    }
    std::vector<std::pair<std::string, std::pair<std::string, std::int64_t>>> changed(
        t.changed.begin(), t.changed.end());
    std::stable_sort(changed.begin(), changed.end(), [](const auto& a, const auto& b) {
      return a.second.second < b.second.second;
    });
    json listed = json::array();
    for (std::size_t i = 0; i < changed.size() && i < kMaxChangedListed; ++i)
      listed.push_back({{"device", changed[i].first},
                        {"state", changed[i].second.first},
                        {"ts_ms", changed[i].second.second}});
    j["devices"]["changed"] = std::move(listed);
    j["devices"]["changed_total"] = static_cast<std::int64_t>(changed.size());
    if (cell.empty())
      out.insert(out.begin(), std::move(j));
    else
      out.push_back(std::move(j));
  }
  return out;
}

void CityBridge::on_tick(anju::edge::Journal& journal, std::int64_t now_ms) {
  delete_acked(journal);
  auto& db = journal.db();
  bool wrote = false;
  for (const std::int64_t interval : options_.summary_periods_ms) {
    if (interval <= 0) continue;
    // Periods are aligned to the epoch (UTC): 5 min, hours, days.
    const std::int64_t current_start = now_ms - now_ms % interval;
    const std::string key = "summary_next_start/" + std::to_string(interval);
    std::int64_t next = current_start;  // first run: start with the period now in progress
    if (auto v = anju::edge::meta_get(db, key)) next = std::stoll(*v);
    // Periods missed while the gateway was off, up to the backfill bound, newest first: the
    // outbox sends in order within a class, so live data is not held up by a long backfill.
    next = std::max(next, current_start - std::max(options_.summary_backfill_ms, interval));
    next -= next % interval;
    std::int64_t periods = 0;
    for (std::int64_t start = current_start - interval; start >= next; start -= interval) {
      for (const json& s : summaries(journal, interval, start))
        writer_.put(MsgClass::summary, s["id"].get<std::string>(),
                    summary_topic(options_.site, interval), s.dump());
      wrote = true;
      ++periods;
    }
    if (periods > 1)  // a backfill after downtime: say how much, once
      spdlog::info(
          "summaries: {} missed {} period(s) computed from the journal and queued for the city",
          periods, period_name(interval));
    anju::edge::meta_set(db, key, std::to_string(std::max(next, current_start)));
  }
  if (wrote) pending_wake_ = true;
}

}  // namespace anju::bridge
