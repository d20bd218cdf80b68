// The evidence on the gateway's disk (drivers/camera/evidence.hpp writes it): one directory per
// alert-raising event, named by the event's id. anjud keeps it within a byte budget and a
// retention period:
//   - evidence named by an open alert (one of its event ids) is never deleted, by age or budget;
//   - the rest goes when older than the retention period, and, oldest first, while the total is
//     over the budget.
// Ids are checked before any path is made of them (evidence_id_ok): nothing outside the
// directory is ever read or deleted.
// Thread: plain functions; prune while the camera driver writes is safe (a directory being
// written is young and, at worst, deleted whole; the writer then logs a failed write).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "anju/edge/alert.hpp"
#include "anju/edge/event.hpp"

namespace anju::edge {

struct EvidenceItem {
  std::string id;
  std::int64_t bytes = 0;
  std::int64_t mtime_ms = 0;  // the newest file's modification time
};

// A well-formed evidence id (an event id: hex digits and dashes, 1..64): safe as a path name.
bool evidence_id_ok(std::string_view id);

// The evidence directories under `dir`, oldest first. A missing directory is empty.
std::vector<EvidenceItem> scan_evidence(const std::filesystem::path& dir);

struct EvidencePrune {
  std::int64_t deleted = 0;
  std::int64_t bytes_deleted = 0;
  std::int64_t kept = 0;
  std::int64_t bytes_kept = 0;
  std::int64_t protected_over_budget = 0;  // bytes over the budget held by open alerts
};

class Db;

// What the pruner must keep, from the journal: every event id of an open alert (a camera that
// covers a door records its clip under the id of the event that raised the alert) and, for a
// camera's own alerts, every clip their events name (a trigger soon after another shares the
// earlier clip, so an alert's evidence may carry another event's id).
std::set<std::string> evidence_in_use(const Db& db);

// An alert's events by journal sequence: its device's events over the alert's life, and the
// transitions and audits journaled for it (the dashboard's alert page, the city's
// evidence.request). At most 200 of each.
std::map<std::int64_t, Event> alert_events(const Db& db, const Alert& alert);

// An alert's camera evidence still on disk under `dir`: what its events name (attrs.evidence: a
// camera's own alerts, whose clip a trigger may share), and what a camera covering its door or
// device recorded under the id of an event that caused it.
std::set<std::string> alert_evidence(const Alert& alert,
                                     const std::map<std::int64_t, Event>& events,
                                     const std::filesystem::path& dir);

// budget_bytes <= 0: no budget; max_age_ms <= 0: no age limit.
EvidencePrune prune_evidence(const std::filesystem::path& dir, std::int64_t budget_bytes,
                             std::int64_t max_age_ms, std::int64_t now_ms,
                             const std::set<std::string>& keep);

}  // namespace anju::edge
