#include "anju/edge/evidence_store.hpp"

#include <algorithm>
#include <chrono>
#include <system_error>

#include "anju/edge/journal.hpp"
#include "anju/edge/sqlite.hpp"

namespace anju::edge {
namespace fs = std::filesystem;

bool evidence_id_ok(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '-'))
      return false;
  return true;
}

namespace {

std::int64_t to_ms(fs::file_time_type t) {
  const auto sys = std::chrono::file_clock::to_sys(t);
  return std::chrono::duration_cast<std::chrono::milliseconds>(sys.time_since_epoch()).count();
}

}  // namespace

std::set<std::string> evidence_in_use(const Db& db) {
  std::set<std::string> keep;
  for (const auto& a : load_alerts(db, true)) {
    keep.insert(a.event_ids.begin(), a.event_ids.end());
    if (a.device.kind != "camera") continue;
    auto q = db.prepare(
        "SELECT DISTINCT json_extract(anju_event_json(body), '$.attrs.evidence') FROM events "
        "WHERE ts_ms BETWEEN ?1 AND ?2 AND device_id = ?3");
    q.bind(1, a.first_seen_ms - 1000).bind(2, a.updated_ms + 1000).bind(3, a.device.id);
    while (q.step())
      if (!q.is_null(0)) keep.insert(q.str(0));
  }
  return keep;
}

std::vector<EvidenceItem> scan_evidence(const fs::path& dir) {
  std::vector<EvidenceItem> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!evidence_id_ok(name) || !it->is_directory(ec)) continue;
    EvidenceItem item;
    item.id = name;
    item.mtime_ms = to_ms(it->last_write_time(ec));
    std::error_code ec2;
    for (fs::recursive_directory_iterator f(it->path(), ec2), fend; !ec2 && f != fend;
         f.increment(ec2)) {
      if (!f->is_regular_file(ec2)) continue;
      item.bytes += static_cast<std::int64_t>(f->file_size(ec2));
      item.mtime_ms = std::max(item.mtime_ms, to_ms(f->last_write_time(ec2)));
    }
    out.push_back(std::move(item));
  }
  std::sort(out.begin(), out.end(), [](const EvidenceItem& a, const EvidenceItem& b) {
    return a.mtime_ms != b.mtime_ms ? a.mtime_ms < b.mtime_ms : a.id < b.id;
  });
  return out;
}

EvidencePrune prune_evidence(const fs::path& dir, std::int64_t budget_bytes,
                             std::int64_t max_age_ms, std::int64_t now_ms,
                             const std::set<std::string>& keep) {
  EvidencePrune r;
  auto items = scan_evidence(dir);
  std::int64_t total = 0;
  for (const auto& i : items) total += i.bytes;
  for (const auto& i : items) {  // oldest first
    const bool protected_ = keep.count(i.id) > 0;
    const bool too_old = max_age_ms > 0 && now_ms - i.mtime_ms > max_age_ms;
    const bool over = budget_bytes > 0 && total > budget_bytes;
    if (!protected_ && (too_old || over)) {
      std::error_code ec;
      fs::remove_all(dir / i.id, ec);
      if (!ec) {
        ++r.deleted;
        r.bytes_deleted += i.bytes;
        total -= i.bytes;
        continue;
      }
    }
    ++r.kept;
    r.bytes_kept += i.bytes;
  }
  if (budget_bytes > 0 && total > budget_bytes) r.protected_over_budget = total - budget_bytes;
  return r;
}

std::map<std::int64_t, Event> alert_events(const Db& db, const Alert& alert) {
  std::map<std::int64_t, Event> events;
  auto add = [&events](Stmt& q) {
    while (q.step()) {
      auto r = decode_stored(q.str(1));
      if (r.event) events.emplace(q.i64(0), std::move(*r.event));
    }
  };
  if (!alert.device.id.empty()) {
    auto q = db.prepare(
        "SELECT seq, body FROM events WHERE device_id=?1 AND ts_ms BETWEEN ?2 AND ?3 "
        "ORDER BY ts_ms DESC LIMIT 200");
    q.bind(1, alert.device.id)
        .bind(2, alert.first_seen_ms - 60'000)
        .bind(3, alert.updated_ms + 1000);
    add(q);
  }
  auto q = db.prepare(
      "SELECT seq, body FROM events WHERE ts_ms >= ?1 AND kind IN ('alert_transition','audit') "
      "AND json_extract(anju_event_json(body),'$.attrs.alert_id')=?2 ORDER BY seq DESC LIMIT 200");
  q.bind(1, alert.first_seen_ms).bind(2, alert.alert_id);
  add(q);
  return events;
}

std::set<std::string> alert_evidence(const Alert& alert,
                                     const std::map<std::int64_t, Event>& events,
                                     const std::filesystem::path& dir) {
  std::set<std::string> candidates(alert.event_ids.begin(), alert.event_ids.end());
  for (const auto& [seq, e] : events)
    if (auto it = e.attrs.find("evidence"); it != e.attrs.end() && it->is_string())
      candidates.insert(it->get<std::string>());
  std::set<std::string> out;
  for (const auto& id : candidates) {
    std::error_code ec;
    if (evidence_id_ok(id) && std::filesystem::exists(dir / id / "snapshot.jpg", ec))
      out.insert(id);
  }
  return out;
}

}  // namespace anju::edge
