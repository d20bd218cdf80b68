// anju test-event inside anjud: a test event followed from submission to the city broker's
// PUBACK, hop by hop (the request and its plan: control.hpp).
// Thread: TestEventTracker is safe from any thread; run_test_event runs on a control connection's.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "anju/bridge/outbox.hpp"
#include "anju/edge/clock.hpp"
#include "anju/edge/pipeline.hpp"
#include "anju/firmware/control.hpp"

namespace anju::firmware {

// Follows test events from submission to the city broker's acknowledgement. Fed by the
// pipeline (after_commit), the city bridge (alert queued as outbox row) and the uplink (rows
// acknowledged). Times are CLOCK_MONOTONIC ns.
class TestEventTracker final : public edge::PipelineHook {
 public:
  struct Trace {
    std::string event_id;
    std::int64_t submitted_ns = 0;
    std::int64_t committed_ns = 0;
    std::int64_t seq = 0;
    std::string alert_id;
    std::string alert_topic_kind;
    std::int64_t raised_ns = 0;
    std::int64_t queued_ns = 0;
    std::int64_t oid = 0;
    std::int64_t acked_ns = 0;
  };
  void follow(const std::string& event_id, std::int64_t submitted_ns);
  void forget(const std::string& event_id);
  // Waits until `pred(trace)` holds or `deadline` passes; returns the trace as it is then.
  template <class Pred>
  Trace wait(const std::string& event_id, std::chrono::steady_clock::time_point deadline,
             Pred pred) {
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, deadline, [&] {
      auto it = traces_.find(event_id);
      return it == traces_.end() || pred(it->second);
    });
    auto it = traces_.find(event_id);
    return it == traces_.end() ? Trace{} : it->second;
  }
  void wake_all() { cv_.notify_all(); }

  // PipelineHook (pipeline thread).
  void after_commit(const std::vector<edge::Event>& events,
                    const std::vector<edge::AlertChange>& changes) override;
  // CityBridgeOptions::on_alert_queued (pipeline thread, in the transaction).
  void alert_queued(const edge::AlertChange& change, std::int64_t oid);
  // UplinkOptions::on_acked (Paho's thread).
  void acked(const std::vector<std::pair<std::int64_t, bridge::MsgClass>>& rows);

 private:
  static std::int64_t now_ns();
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Trace> traces_;  // by event id; only while a test runs
};

// Runs one test event end to end: plans it (the journal's devices), submits it, reports every
// hop as it happens through `send` (one JSON object per call; false when the client is gone),
// and closes the test alert at the end (acknowledged or not), so no test alert stays open.
struct TestEventContext {
  edge::Pipeline& pipeline;
  TestEventTracker& tracker;
  const edge::Clock& clock;
  std::string db_path;
  std::string site;
  std::string grid_code;
  bool uplink_enabled = false;
  std::function<nlohmann::json()> link_state;  // {"connected":bool,"last_error":...}
  const std::atomic<bool>* stopping = nullptr;
};
void run_test_event(const ControlRequest& request, TestEventContext& ctx,
                    const std::function<bool(const nlohmann::json&)>& send);

}  // namespace anju::firmware
