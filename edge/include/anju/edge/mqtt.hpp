// MQTT plumbing shared by the local bus and the uplink: one place that turns an endpoint
// description into Paho options (TLS, credentials from files, MQTT 3.1.1 or 5).
//
// LocalBus is the gateway's client on the compound's own broker. Drivers subscribe through it and
// the alert publisher publishes through it. Its session is persistent (clean session off, fixed
// client id, QoS 1 subscriptions), so the broker keeps what arrives while anjud is down.
// Thread: Paho calls handlers on its own thread, one message at a time; publish() is thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <mqtt/async_client.h>

namespace anju::edge {

struct MqttEndpoint {
  std::string uri;
  std::string client_id;
  int mqtt_version = 5;  // 3 = 3.1.1, 5
  int keepalive_s = 30;
  std::string username_file;
  std::string password_file;
  bool tls = false;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool verify_hostname = true;
};

// Reads a secret file (first line, trailing newline removed). Throws naming the file.
std::string read_secret_file(const std::string& path);
// "tcp://h:p" etc., with mqtt:// and mqtts:// mapped to Paho's tcp:// and ssl://.
std::string paho_uri(const std::string& uri);
mqtt::connect_options make_connect_options(const MqttEndpoint& ep, bool clean,
                                           const std::optional<mqtt::message>& will);
mqtt::create_options make_create_options(const MqttEndpoint& ep);
// Paho C never sets TCP_NODELAY and has no option for it; with Nagle's algorithm and the peer's
// delayed ACK a small PUBLISH can wait ~40 ms. Called after each connect: sets TCP_NODELAY on
// every connected TCP socket of this process (all of them are MQTT sessions in anjud).
void disable_nagle_on_tcp_sockets();

// The local bus is written on Paho's C API (MQTTAsync) rather than the C++ wrapper because it needs
// each message's packet id and DUP flag, which the C++ message class does not expose: together with
// a CRC of topic and payload they make a key that recognises the broker redelivering a message we
// already handed over (see docs/ARCHITECTURE.md, "Durability").
class LocalBus {
 public:
  struct Message {
    std::string topic;
    std::string payload;
    std::string source_key;        // "<packet id>:<crc32 of topic and payload>", "" for QoS 0
    bool duplicate = false;        // the broker's DUP flag
    std::string response_topic;    // MQTT 5 Response Topic property, "" if none
    std::string correlation_data;  // MQTT 5 Correlation Data property
  };
  using Handler = std::function<void(const Message&)>;

  explicit LocalBus(MqttEndpoint ep);
  ~LocalBus();
  LocalBus(const LocalBus&) = delete;
  LocalBus& operator=(const LocalBus&) = delete;

  // Before start(): topic filters to subscribe at QoS 1 on every (re)connect, and their handler.
  void subscribe(const std::string& filter, Handler handler);
  // Called after every successful (re)connect, on Paho's thread (e.g. republish retained state).
  // Paho holds its lock while it calls back: these callbacks must not wait for a lock that
  // another thread holds around publish().
  void on_connected(std::function<void()> cb) { on_connected_ = std::move(cb); }
  // Called on Paho's thread once the queue has drained, connected, after retained publishes
  // were dropped from a full queue: the broker may still hold an older retained message on
  // each topic given (an alert's open state after its clearing was dropped). The owner
  // publishes each topic's current state, or an empty retained message to delete it.
  void on_stale_retained(std::function<void(std::vector<std::string>)> cb) {
    on_stale_retained_ = std::move(cb);
  }
  // Source keys of messages already handed over (e.g. read back from the journal at start):
  // a redelivery (DUP) of one of them is dropped instead of handled twice.
  void remember(const std::vector<std::string>& source_keys);

  void start();  // connects in the background, reconnecting with backoff forever
  void stop();   // disconnects (waits up to 2 s for queued publishes)

  // Publishes waiting in this client (not yet handed to Paho) at most; beyond it the oldest is
  // dropped (counted in publish_dropped and logged). One busy commit publishes hundreds.
  static constexpr int kMaxBufferedPublishes = 10'000;
  // Publishes handed to Paho and not yet acknowledged at most (MQTT 5: also at most the broker's
  // Receive Maximum). Paho keeps what it holds in lists it scans on every publish and every
  // acknowledgement, so more in Paho costs time per message, not just memory (docs/ARCHITECTURE.md,
  // "The local bus's window").
  static constexpr int kWindow = 64;

  // Non-blocking and thread-safe: queued in order, and handed to Paho as acknowledgements make
  // room in the window, also while disconnected (sent after the reconnect). When
  // kMaxBufferedPublishes are queued, the oldest is dropped (and counted): the newest state wins.
  void publish(std::string topic, std::string payload, int qos, bool retain,
               std::string correlation_data = {});
  // Publishes made while a Batch lives are only queued; the last Batch to end hands them to
  // Paho, with one look at Paho's window for the lot instead of one per publish (a commit
  // publishes hundreds of alert changes). Deliveries keep pumping meanwhile.
  class Batch {
   public:
    explicit Batch(LocalBus& bus) : bus_(bus) { ++bus_.batches_; }
    ~Batch() {
      if (--bus_.batches_ == 0) bus_.pump();
    }
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;

   private:
    LocalBus& bus_;
  };
  // Publishes queued here and not yet handed to Paho.
  std::size_t publish_queued() const;
  // This connection's window: kWindow, or the broker's Receive Maximum when less (MQTT 5).
  int window() const;

  bool connected() const { return connected_; }
  std::int64_t messages_in() const { return messages_in_; }
  std::int64_t redeliveries_dropped() const { return redeliveries_dropped_; }
  std::int64_t publish_dropped() const { return publish_dropped_; }
  // Topics handed to on_stale_retained so far.
  std::int64_t retained_resynced() const { return retained_resynced_; }

  static bool matches(const std::string& filter, const std::string& topic);

  struct Impl;  // Paho C state (defined in mqtt.cpp)

 private:
  // Paho C callbacks (Paho's thread).
  static int paho_message(void* ctx, char* topic, int topic_len, MQTTAsync_message* m);
  static void paho_lost(void* ctx, char* cause);
  static void paho_connected(void* ctx, char* cause);
  static void paho_delivered(void* ctx, int token);
  struct Outgoing {
    std::string topic, payload, correlation_data;
    int qos = 1;
    bool retain = false;
  };
  // Hands queued publishes to Paho while the window has room; one thread at a time does it (the
  // others leave a note), so messages go out in the order they were queued.
  // `from_paho`: called on Paho's thread, which may run on_stale_retained (never a publisher's
  // thread: it may hold its own lock around publish()).
  void pump(bool from_paho = false);
  int send_now(const Outgoing& m);
  void deliver(Message m);
  bool connect_once();
  bool seen(const std::string& key);

  MqttEndpoint ep_;
  std::unique_ptr<Impl> impl_;
  std::vector<std::pair<std::string, Handler>> subs_;
  std::function<void()> on_connected_;
  std::function<void(std::vector<std::string>)> on_stale_retained_;
  std::atomic<bool> connected_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<std::int64_t> messages_in_{0};
  std::atomic<std::int64_t> redeliveries_dropped_{0};
  std::atomic<std::int64_t> publish_dropped_{0};
  std::atomic<std::int64_t> retained_resynced_{0};
  std::mutex seen_mu_;
  std::deque<std::string> seen_order_;
  std::set<std::string> seen_;
  mutable std::mutex out_mu_;
  std::condition_variable out_cv_;  // the queue became empty
  std::deque<Outgoing> out_;
  std::set<std::string> stale_retained_;  // topics of retained publishes dropped from out_
  bool pumping_ = false;
  std::atomic<int> batches_{0};  // Batches alive: publish() only queues
  bool pump_again_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread supervisor_;
};

}  // namespace anju::edge
