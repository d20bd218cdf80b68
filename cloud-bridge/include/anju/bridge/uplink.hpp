// The uplink: one MQTT session to the city broker that drains the outbox.
// QoS 1 with a window of many messages in flight; a row is deleted only when its PUBACK arrives.
// Alerts go before status, status before summaries, summaries before events; order is kept
// within a class. Reconnects use jittered exponential backoff; after a reconnect everything still
// in the outbox is sent again from the start of each class (duplicates carry the same id).
// A retained birth message and a Last Will on anju/v1/<site>/status/gateway say online/offline.
// Thread: its own thread; wake() and stats() from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "anju/bridge/outbox.hpp"
#include "anju/edge/mqtt.hpp"

namespace anju::bridge {

struct UplinkOptions {
  anju::edge::MqttEndpoint endpoint;
  std::string db_path;  // the journal database (the outbox table lives there)
  std::string site;
  std::string grid_code;
  std::string division_code;  // in the gateway status payload when not empty
  // QoS 1 publishes in flight at most; each connection uses less when the city broker's
  // Receive Maximum is lower (MQTT 5; see UplinkStats::window).
  int window = 64;
  int backoff_min_ms = 500;
  int backoff_max_ms = 60'000;
  // Where acknowledged rows go to be deleted (the pipeline, the database's one writer). Unset:
  // the uplink deletes them itself (tests, tools).
  std::function<void(const std::vector<std::pair<std::int64_t, MsgClass>>&)> on_acked;
  // Downlink: a filter subscribed at QoS 1 after every connect (e.g. anju/v1/<site>/cmd/+); its
  // messages go to on_command on Paho's thread, one at a time. Empty filter: no downlink.
  std::string command_filter;
  std::function<void(const anju::edge::LocalBus::Message&)> on_command;
  // Turns a failed connect's error (Paho's words, e.g. "TCP/TLS connect failure") into what an
  // installer can act on (anjud probes the TLS handshake the way anju check does). Called on the
  // uplink's thread, in its backoff. Unset: Paho's words.
  std::function<std::string(const std::string& error)> explain_connect_failure;
};

struct UplinkStats {
  bool connected = false;
  std::int64_t connects = 0;
  std::int64_t connect_failures = 0;
  std::int64_t published = 0;  // PUBLISH sent (including retransmissions)
  std::int64_t acked = 0;
  std::int64_t inflight = 0;
  // This connection's window: UplinkOptions::window, or the city broker's Receive Maximum when
  // that is less (MQTT 5). 0 while disconnected.
  std::int64_t window = 0;
  std::int64_t commands = 0;       // downlink messages received
  std::int64_t responses = 0;      // answers sent
  std::int64_t next_retry_ms = 0;  // while disconnected: time until the next connect attempt
  std::string last_error;
};

class DeliveryListener;

class Uplink {
 public:
  Uplink(UplinkOptions options, OutboxCounters& counters);
  ~Uplink();
  void start();
  // Stops after trying, for at most `flush`, to get what is in the outbox acknowledged.
  void stop(std::chrono::milliseconds flush = std::chrono::milliseconds(3000));
  void wake();  // new rows are in the outbox
  // An installer asked to drain now (anju outbox --drain-now): a reconnect waiting out its
  // backoff is tried at once, and the backoff starts again from its minimum.
  void retry_now();
  // Rows acknowledged earlier are now deleted: no need to remember them any more.
  void forget(const std::vector<std::int64_t>& oids);
  UplinkStats stats() const;
  // CLOCK_MONOTONIC ms when the uplink thread last went round its loop (it does at least every
  // second, also while it waits out a backoff, and within 25 s while it connects): what the
  // watchdog checks. 0 before start().
  std::int64_t heartbeat_mono_ms() const { return heartbeat_ms_.load(std::memory_order_relaxed); }
  // Any thread: a QoS 1 answer to a downlink command, with the MQTT 5 Correlation Data when given.
  // Not through the outbox: when the link is down it is dropped (logged), and the city's repeat of
  // the request (same request_id) gets the same answer. False when it could not be sent.
  bool respond(const std::string& topic, const std::string& payload,
               const std::string& correlation_data);
  std::string gateway_status_topic() const;

 private:
  void loop();
  // Waits `wait_ms` (beating), or less when stopping or asked to retry now; true when asked.
  bool wait_retry(int wait_ms);
  bool connect();
  void fill_window();
  void handle_acks();
  void beat();

  UplinkOptions options_;
  OutboxCounters& counters_;
  std::unique_ptr<OutboxSender> sender_;
  std::unique_ptr<mqtt::async_client> client_;
  std::unique_ptr<DeliveryListener> listener_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool woken_ = false;
  bool retry_now_ = false;
  std::chrono::steady_clock::time_point next_retry_{};  // guarded by mu_
  bool lost_ = false;
  std::string last_logged_failure_;  // the uplink thread's: the last connect failure logged
  std::chrono::steady_clock::time_point flush_deadline_{};
  std::vector<std::pair<std::int64_t, MsgClass>> acks_;  // guarded by mu_
  std::set<std::int64_t> acked_pending_;                 // guarded by mu_
  std::int64_t failed_ = 0;                              // publish failures since last check
  UplinkStats stats_;
  std::atomic<std::int64_t> heartbeat_ms_{0};

  // uplink thread only
  std::set<std::int64_t> inflight_;
  int window_ = 1;  // this connection's window (see UplinkStats::window)
  std::array<std::int64_t, kClasses> cursor_{};
  std::thread thread_;
};

}  // namespace anju::bridge
