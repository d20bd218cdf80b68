#include "anju/bridge/uplink.hpp"
#include "anju/edge/thread_name.hpp"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <random>

#include "anju/edge/clock.hpp"
#include "anju/edge/journal.hpp"
#include "anju/edge/uuid.hpp"

namespace anju::bridge {

class DeliveryListener final : public mqtt::iaction_listener {
 public:
  explicit DeliveryListener(std::function<void(std::intptr_t, bool)> done)
      : done_(std::move(done)) {}
  void on_success(const mqtt::token& t) override {
    done_(reinterpret_cast<std::intptr_t>(t.get_user_context()), true);
  }
  void on_failure(const mqtt::token& t) override {
    done_(reinterpret_cast<std::intptr_t>(t.get_user_context()), false);
  }

 private:
  std::function<void(std::intptr_t, bool)> done_;
};

namespace {
// Birth, Last Will and orderly-stop message: the same fields as every uplink payload.
std::string gateway_status(const UplinkOptions& o, anju::edge::Db& db, bool online) {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  std::int64_t seq = 0;
  try {
    seq = db.scalar_i64("SELECT coalesce(max(seq),0) FROM events").value_or(0);
  } catch (const std::exception&) {
  }
  static const anju::edge::SystemClock clock;
  nlohmann::json j{{"schema", 1},
                   {"id", anju::edge::uuid_v7(now)},
                   {"seq", seq},
                   {"site", o.site},
                   {"grid_code", o.grid_code}};
  if (!o.division_code.empty()) j["division_code"] = o.division_code;
  j["ts_ms"] = now;
  j["clock_synced"] = clock.synced();
  j["state"] = online ? "online" : "offline";
  if (online) {
    // The registry at connect: what the city sees of the compound's devices until the next
    // summary.
    try {
      const auto c = anju::edge::device_state_counts(db);
      j["devices"] = {{"known", c.known},
                      {"online", c.online},
                      {"offline", c.offline},
                      {"battery_low", c.battery_low},
                      {"signal_weak", c.signal_weak},
                      {"tamper", c.tamper}};
    } catch (const std::exception&) {
      // a journal without the tables yet (a bench's bare outbox): no counts
    }
  }
  return j.dump();
}

}  // namespace

Uplink::Uplink(UplinkOptions options, OutboxCounters& counters)
    : options_(std::move(options)), counters_(counters) {
  listener_ = std::make_unique<DeliveryListener>([this](std::intptr_t ctx, bool ok) {
    {
      std::lock_guard lock(mu_);
      if (ok)
        acks_.emplace_back(ctx / kClasses, static_cast<MsgClass>(ctx % kClasses));
      else
        ++failed_;
    }
    cv_.notify_all();
  });
}

Uplink::~Uplink() {
  stop(std::chrono::milliseconds(0));
  // Paho calls back for what it still holds (in flight, or queued beyond the broker's Receive
  // Maximum) until its client is gone: destroy the client while the listener and the state its
  // callbacks touch are alive (members are destroyed in reverse order, the client last).
  client_.reset();
}

std::string Uplink::gateway_status_topic() const {
  return "anju/v1/" + options_.site + "/status/gateway";
}

void Uplink::start() {
  sender_ = std::make_unique<OutboxSender>(options_.db_path, counters_);
  client_ = std::make_unique<mqtt::async_client>(
      anju::edge::paho_uri(options_.endpoint.uri), options_.endpoint.client_id,
      anju::edge::make_create_options(options_.endpoint), nullptr);
  client_->set_connection_lost_handler([this](const std::string& cause) {
    {
      std::lock_guard lock(mu_);
      lost_ = true;
      stats_.connected = false;
      stats_.window = 0;
      stats_.last_error = "connection lost: " + cause;
    }
    cv_.notify_all();
  });
  if (!options_.command_filter.empty()) {
    client_->set_message_callback([this](mqtt::const_message_ptr m) {
      anju::edge::LocalBus::Message msg;
      msg.topic = m->get_topic();
      msg.payload = m->to_string();
      msg.duplicate = m->is_duplicate();
      const auto& props = m->get_properties();
      if (props.contains(mqtt::property::RESPONSE_TOPIC))
        msg.response_topic = mqtt::get<std::string>(props, mqtt::property::RESPONSE_TOPIC);
      if (props.contains(mqtt::property::CORRELATION_DATA))
        msg.correlation_data = mqtt::get<std::string>(props, mqtt::property::CORRELATION_DATA);
      {
        std::lock_guard lock(mu_);
        ++stats_.commands;
      }
      if (options_.on_command) options_.on_command(msg);
    });
  }
  beat();
  thread_ = std::thread([this] {
    anju::edge::name_this_thread("anju-uplink");
    loop();
  });
}

bool Uplink::respond(const std::string& topic, const std::string& payload,
                     const std::string& correlation_data) {
  if (!client_ || !client_->is_connected()) {
    spdlog::warn("uplink: answer on {} dropped: not connected to the city broker", topic);
    return false;
  }
  auto msg = mqtt::make_message(topic, payload, 1, false);
  if (!correlation_data.empty() && options_.endpoint.mqtt_version == 5) {
    mqtt::properties props;
    props.add(mqtt::property(mqtt::property::CORRELATION_DATA, correlation_data));
    msg->set_properties(props);
  }
  try {
    client_->publish(msg);
  } catch (const mqtt::exception& e) {
    spdlog::warn("uplink: answer on {} not sent: {}", topic, e.what());
    return false;
  }
  std::lock_guard lock(mu_);
  ++stats_.responses;
  return true;
}

void Uplink::stop(std::chrono::milliseconds flush) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || !thread_.joinable()) return;
    stopping_ = true;
    flush_deadline_ = std::chrono::steady_clock::now() + flush;
  }
  cv_.notify_all();
  thread_.join();
}

void Uplink::forget(const std::vector<std::int64_t>& oids) {
  std::lock_guard lock(mu_);
  for (auto oid : oids) acked_pending_.erase(oid);
}

void Uplink::wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void Uplink::retry_now() {
  {
    std::lock_guard lock(mu_);
    retry_now_ = true;
    woken_ = true;
  }
  cv_.notify_all();
}

UplinkStats Uplink::stats() const {
  std::lock_guard lock(mu_);
  UplinkStats s = stats_;
  if (!s.connected && next_retry_ != std::chrono::steady_clock::time_point{}) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        next_retry_ - std::chrono::steady_clock::now());
    s.next_retry_ms = std::max<std::int64_t>(0, left.count());
  }
  return s;
}

bool Uplink::connect() {
  const std::string topic = gateway_status_topic();
  mqtt::message will(topic, gateway_status(options_, sender_->db(), false), 1, true);
  try {
    auto opts = anju::edge::make_connect_options(options_.endpoint, /*clean=*/true, will);
    // The window, the birth/stop messages and answers to downlink commands.
    opts.set_max_inflight(std::max(options_.window, 1) + 16);
    auto connect_tok = client_->connect(opts);
    connect_tok->wait_for(std::chrono::seconds(10));
    if (!client_->is_connected()) throw std::runtime_error("connect timed out");
    // A broker takes at most its Receive Maximum of unacknowledged QoS 1 publishes (Mosquitto's
    // default: 20). Paho keeps any beyond it in its own queue and sends them one per PUBACK, late
    // and out of our accounting: the window handed to Paho is clamped to it.
    window_ = std::max(options_.window, 1);
    const auto resp = connect_tok->get_connect_response();
    const auto& props = resp.get_properties();
    if (resp.get_mqtt_version() >= 5 && props.contains(mqtt::property::RECEIVE_MAXIMUM)) {
      const int rm = mqtt::get<uint16_t>(props, mqtt::property::RECEIVE_MAXIMUM);
      if (rm > 0) window_ = std::min(window_, rm);
    }
    anju::edge::disable_nagle_on_tcp_sockets();
    // Birth message: the counterpart of the Last Will.
    client_->publish(topic, gateway_status(options_, sender_->db(), true), 1, true);
    // A clean session: the downlink subscription is made again after every connect.
    if (!options_.command_filter.empty()) {
      auto tok = client_->subscribe(options_.command_filter, 1);
      if (!tok->wait_for(std::chrono::seconds(10)))
        throw std::runtime_error("subscribe to " + options_.command_filter + " timed out");
      const auto granted = tok->get_subscribe_response();  // a copy: its codes are a member
      for (auto rc : granted.get_reason_codes())
        if (rc >= 0x80)
          spdlog::warn(
              "uplink: the city broker refused the subscription to {} (reason {:#x}): "
              "no commands from the city will arrive; check its ACL",
              options_.command_filter, static_cast<int>(rc));
    }
  } catch (const std::exception& e) {
    std::string why = e.what();
    if (options_.explain_connect_failure) why = options_.explain_connect_failure(why);
    // Logged when the reason changes, not at every retry of the backoff.
    if (why != last_logged_failure_)
      spdlog::warn("uplink: cannot connect to {}: {}", options_.endpoint.uri, why);
    last_logged_failure_ = why;
    std::lock_guard lock(mu_);
    ++stats_.connect_failures;
    stats_.last_error = why;
    return false;
  }
  last_logged_failure_.clear();
  std::lock_guard lock(mu_);
  ++stats_.connects;
  stats_.connected = true;
  stats_.window = window_;
  lost_ = false;
  spdlog::info("uplink: connected to {} (window {})", options_.endpoint.uri, window_);
  return true;
}

void Uplink::fill_window() {
  // Refilled in chunks: with the window nearly full, refilling at every PUBACK cost four outbox
  // queries (one per class, each its own SQLite read transaction with its file locks) per
  // message sent, the uplink thread's largest cost (perf during bench_e2e). A quarter of the
  // window free, or nothing in flight, is worth the queries; the rest stays in flight meanwhile.
  const int in_flight = static_cast<int>(inflight_.size());
  if (in_flight > 0 && window_ - in_flight < std::max(1, window_ / 4)) return;
  for (int c = 0; c < kClasses; ++c) {
    const int room = window_ - static_cast<int>(inflight_.size());
    if (room <= 0) return;
    for (auto& m : sender_->next(static_cast<MsgClass>(c), cursor_[c], room)) {
      cursor_[c] = m.oid;
      if (inflight_.count(m.oid)) continue;
      {
        std::lock_guard lock(mu_);
        if (acked_pending_.count(m.oid)) continue;  // acknowledged, deletion under way
      }
      auto msg = mqtt::make_message(m.topic, m.payload, 1, m.retain);
      // The token's context carries the row: oid × 4 + class.
      void* ctx = reinterpret_cast<void*>(static_cast<std::intptr_t>(m.oid * kClasses + c));
      try {
        client_->publish(msg, ctx, *listener_);
      } catch (const mqtt::exception& e) {
        std::lock_guard lock(mu_);
        lost_ = true;
        stats_.last_error = std::string("publish: ") + e.what();
        return;
      }
      const std::int64_t oid = m.oid;
      inflight_.insert(oid);
      std::lock_guard lock(mu_);
      ++stats_.published;
      stats_.inflight = static_cast<std::int64_t>(inflight_.size());
    }
    // A higher class with rows still waiting holds the lower ones back.
    if (counters_.rows[c] > static_cast<std::int64_t>(0) &&
        static_cast<int>(inflight_.size()) >= window_)
      return;
  }
}

void Uplink::handle_acks() {
  std::vector<std::pair<std::int64_t, MsgClass>> acks;
  {
    std::lock_guard lock(mu_);
    acks.swap(acks_);
  }
  if (acks.empty()) return;
  for (const auto& [oid, cls] : acks) inflight_.erase(oid);
  if (options_.on_acked) {
    // The database has one writer, the pipeline: it deletes the rows in its next transaction.
    // Until it says so (forget()), these rows are not sent again after a reconnect.
    for (const auto& [oid, cls] : acks) ++counters_.sent[static_cast<int>(cls)];
    {
      std::lock_guard lock(mu_);
      for (const auto& a : acks) acked_pending_.insert(a.first);
    }
    options_.on_acked(acks);
  } else {
    try {
      sender_->ack(acks);
    } catch (const std::exception& e) {
      spdlog::error("uplink: cannot delete acknowledged rows: {} (they will be sent again)",
                    e.what());
    }
  }
  std::lock_guard lock(mu_);
  stats_.acked += static_cast<std::int64_t>(acks.size());
  stats_.inflight = static_cast<std::int64_t>(inflight_.size());
}

void Uplink::beat() {
  heartbeat_ms_.store(std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count(),
                      std::memory_order_relaxed);
}

bool Uplink::wait_retry(int wait_ms) {
  std::unique_lock lock(mu_);
  next_retry_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  // In slices of a second, beating: a long backoff is not a hang.
  while (!stopping_ && !retry_now_ && std::chrono::steady_clock::now() < next_retry_) {
    cv_.wait_until(
        lock, std::min(next_retry_, std::chrono::steady_clock::now() + std::chrono::seconds(1)),
        [this] { return stopping_ || retry_now_; });
    beat();
  }
  const bool hurried = retry_now_;
  retry_now_ = false;
  return hurried;
}

void Uplink::loop() {
  std::mt19937 rng{std::random_device{}()};
  int backoff = options_.backoff_min_ms;
  bool connected = false;
  for (;;) {
    beat();
    {
      std::lock_guard lock(mu_);
      if (stopping_ && (!connected || std::chrono::steady_clock::now() >= flush_deadline_)) break;
    }
    if (!connected) {
      connected = connect();
      if (!connected) {
        // Equal jitter (half the backoff fixed, half random): thousands of gateways retrying
        // after a city outage spread out, and none retries a failing broker in a tight loop.
        std::uniform_int_distribution<int> jitter(backoff / 2, backoff);
        const bool hurried = wait_retry(jitter(rng));
        backoff =
            hurried ? options_.backoff_min_ms : std::min(backoff * 2, options_.backoff_max_ms);
        continue;
      }
      backoff = options_.backoff_min_ms;
      {
        std::lock_guard lock(mu_);
        next_retry_ = {};
        retry_now_ = false;
      }
      inflight_.clear();
      cursor_.fill(0);
    }
    handle_acks();
    fill_window();
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(200), [this] {
        return stopping_ || woken_ || lost_ || !acks_.empty() || failed_ > 0;
      });
      woken_ = false;
      retry_now_ = false;  // connected: nothing to hurry
      if (failed_ > 0 || lost_) {
        // A refused or lost publish: start the session over; the rows are still in the outbox.
        failed_ = 0;
        lost_ = false;
        connected = false;
        stats_.connected = false;
        stats_.window = 0;
      }
      if (stopping_ && inflight_.empty()) {
        bool more = false;
        for (int c = 0; c < kClasses; ++c) more = more || counters_.rows[c] > 0;
        if (!more) break;
      }
    }
    if (!connected) {
      try {
        if (client_->is_connected()) client_->disconnect()->wait_for(std::chrono::seconds(2));
      } catch (const std::exception&) {
      }
      handle_acks();
      // The link was lost, most likely for every gateway of the city at once (the broker
      // restarted, a load balancer dropped its connections): the first attempt waits a random
      // part of backoff_min too, so that they do not all come back in the same instant
      // (bench_fleet's reconnect curve).
      wait_retry(std::uniform_int_distribution<int>(0, options_.backoff_min_ms)(rng));
    }
  }
  handle_acks();
  try {
    if (client_->is_connected()) {
      // An orderly stop: say so, since the Last Will is not sent on a clean disconnect.
      client_
          ->publish(gateway_status_topic(), gateway_status(options_, sender_->db(), false), 1, true)
          ->wait_for(std::chrono::seconds(1));
      client_->disconnect()->wait_for(std::chrono::seconds(2));
    }
  } catch (const std::exception&) {
  }
  std::lock_guard lock(mu_);
  stats_.connected = false;
  stats_.window = 0;
}

}  // namespace anju::bridge
