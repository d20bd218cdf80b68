// The city contract on the edge side: which events, alert changes and summaries become uplink
// messages, on which topics, with which payloads. It plugs into the pipeline as a hook, so the
// outbox rows commit in the same transaction as the events that caused them.
//
// Topics, by class and kind, so that a department subscribes only to what it needs:
//   anju/v1/<site>/alert/<kind>      an alert raised and every later change of it
//   anju/v1/<site>/event/<kind>      events of the kinds configured (uplink.event_kinds)
//   anju/v1/<site>/status/<device>   a device went online/offline
//   anju/v1/<site>/status/gateway    retained birth and Last Will (owned by the Uplink)
//   anju/v1/<site>/summary/<period>  periodic summaries, e.g. summary/5m
// <kind> is the event kind's wire name (smoke, water_leak, ...); <device> is the device id with
// every character outside [A-Za-z0-9._-] percent-encoded (and "gateway" itself as "%67ateway").
// Every payload has the envelope: schema, id (the message's own id, stable across
// retransmission), seq, site, grid_code, division_code (when configured), ts_ms, clock_synced.
// Raw personal data never goes up. The published contract is docs/contract/ (AsyncAPI document
// and JSON Schemas); tests validate every payload built here against it.
// Thread: hook methods on the pipeline thread.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "anju/bridge/outbox.hpp"
#include "anju/bridge/uplink.hpp"
#include "anju/edge/pipeline.hpp"

namespace anju::bridge {

inline constexpr int kUplinkSchema = 1;

struct CityBridgeOptions {
  std::string site;
  std::string grid_code;
  std::string division_code;                    // 12 digits, or empty when not configured
  std::set<anju::edge::EventKind> event_kinds;  // which events go up on .../event
  std::array<std::int64_t, kClasses> budget_bytes{0, 16 << 20, 16 << 20, 64 << 20};
  // Summary periods, e.g. 5 min, 1 h, 1 d. Each period is summarised for the whole compound and,
  // when some devices are in a grid cell of their own, once per grid cell.
  std::vector<std::int64_t> summary_periods_ms{300'000};
  // Periods missed while the gateway was off are computed on start, this far back at most.
  std::int64_t summary_backfill_ms = 86'400'000;
  // Grid cells other than the site's that devices are configured in (a device's cell is its
  // events' grid_code). With any, every period is also summarised per cell, these included.
  std::set<std::string> grid_cells;
  // Pipeline thread, inside the transaction: an alert change was queued for the city as outbox
  // row `oid` (e.g. for anju test-event to follow it to the city's PUBACK). Optional.
  std::function<void(const anju::edge::AlertChange&, std::int64_t oid)> on_alert_queued;
};

// Pure payload builders (also used by tests and the contract docs). `division_code` is added to
// the envelope when not empty.
std::string alert_payload(const anju::edge::AlertChange& c, const std::string& msg_id,
                          bool clock_synced, const std::string& division_code = "");
nlohmann::json event_payload(const anju::edge::Event& e, const std::string& division_code = "");
nlohmann::json status_payload(const anju::edge::Event& e, const std::string& division_code = "");
// Stable per (site, grid cell, period): a recomputation sends the same id. `cell` empty: the whole
// compound.
std::string summary_id(const std::string& site, std::int64_t interval_ms, std::int64_t start_ms,
                       const std::string& cell = "");

// Pure topic builders.
std::string topic_level(std::string_view text);  // one topic level: percent-encoded, never empty
std::string period_name(
    std::int64_t interval_ms);  // 300000 -> "5m", 3600000 -> "1h", 10000 -> "10s"
std::string alert_topic(const std::string& site, anju::edge::EventKind kind);
std::string event_topic(const std::string& site, anju::edge::EventKind kind);
std::string status_topic(const std::string& site, const std::string& device_id);
std::string summary_topic(const std::string& site, std::int64_t interval_ms);

class CityBridge final : public anju::edge::PipelineHook {
 public:
  // `uplink` may be null (uplink disabled: messages wait in the outbox).
  CityBridge(CityBridgeOptions options, anju::edge::Journal& journal, OutboxCounters& counters,
             Uplink* uplink);

  void in_transaction(anju::edge::Journal& journal, const std::vector<anju::edge::Event>& events,
                      const std::vector<anju::edge::AlertChange>& changes) override;
  void after_commit(const std::vector<anju::edge::Event>& events,
                    const std::vector<anju::edge::AlertChange>& changes) override;
  void on_tick(anju::edge::Journal& journal, std::int64_t now_ms) override;
  void on_rollback(anju::edge::Journal& journal) override;

  // Any thread (the uplink): these rows were acknowledged by the city broker; they are deleted in
  // the pipeline's next transaction (within about a second).
  void acked(const std::vector<std::pair<std::int64_t, MsgClass>>& rows);

  // The summaries of [start, start+interval) from the journal: the compound's first, then one per
  // grid cell when devices are in more than one cell.
  std::vector<nlohmann::json> summaries(anju::edge::Journal& journal, std::int64_t interval_ms,
                                        std::int64_t start_ms) const;

 private:
  CityBridgeOptions options_;
  OutboxCounters& counters_;
  OutboxWriter writer_;
  void delete_acked(anju::edge::Journal& journal);
  Uplink* uplink_;
  bool pending_wake_ = false;
  std::mutex acked_mu_;
  std::vector<std::pair<std::int64_t, MsgClass>> acked_;     // guarded by acked_mu_
  std::vector<std::pair<std::int64_t, MsgClass>> deleting_;  // in the open transaction
  anju::edge::Stmt delete_;
};

}  // namespace anju::bridge
