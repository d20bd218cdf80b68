#include "anju/edge/mqtt.hpp"
#include "anju/edge/thread_name.hpp"

#include <spdlog/spdlog.h>

#include <MQTTAsync.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "anju/edge/checksum.hpp"

namespace anju::edge {

std::string read_secret_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read secret file " + path);
  std::string s;
  std::getline(in, s);
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n')) s.pop_back();
  return s;
}

std::string paho_uri(const std::string& uri) {
  if (uri.rfind("mqtt://", 0) == 0) return "tcp://" + uri.substr(7);
  if (uri.rfind("mqtts://", 0) == 0) return "ssl://" + uri.substr(8);
  return uri;
}

void disable_nagle_on_tcp_sockets() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    int fd = -1;
    try {
      fd = std::stoi(entry.path().filename().string());
    } catch (...) {
      continue;
    }
    int type = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) continue;
    sockaddr_storage peer{};
    socklen_t plen = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen) != 0) continue;
    if (peer.ss_family != AF_INET && peer.ss_family != AF_INET6) continue;
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
}

mqtt::create_options make_create_options(const MqttEndpoint& ep) {
  mqtt::create_options opts(ep.mqtt_version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1);
  opts.set_send_while_disconnected(false);
  return opts;
}

mqtt::connect_options make_connect_options(const MqttEndpoint& ep, bool clean,
                                           const std::optional<mqtt::message>& will) {
  mqtt::connect_options opts;
  if (ep.mqtt_version == 5) {
    opts.set_mqtt_version(MQTTVERSION_5);
    opts.set_clean_start(clean);
    if (!clean) {
      // v5: keep the session for a week while we are away (v3.1.1 keeps it forever).
      mqtt::properties props;
      props.add({mqtt::property::SESSION_EXPIRY_INTERVAL, 7 * 24 * 3600});
      opts.set_properties(props);
    }
  } else {
    opts.set_mqtt_version(MQTTVERSION_3_1_1);
    opts.set_clean_session(clean);
  }
  opts.set_keep_alive_interval(ep.keepalive_s);
  opts.set_connect_timeout(5);
  opts.set_automatic_reconnect(false);
  if (!ep.username_file.empty()) {
    opts.set_user_name(read_secret_file(ep.username_file));
    opts.set_password(read_secret_file(ep.password_file));
  }
  if (ep.tls || paho_uri(ep.uri).rfind("ssl://", 0) == 0) {
    mqtt::ssl_options ssl;
    if (!ep.ca_file.empty()) ssl.set_trust_store(ep.ca_file);
    if (!ep.cert_file.empty()) ssl.set_key_store(ep.cert_file);
    if (!ep.key_file.empty()) ssl.set_private_key(ep.key_file);
    ssl.set_enable_server_cert_auth(true);
    ssl.set_verify(ep.verify_hostname);
    ssl.set_error_handler([](const std::string& msg) { spdlog::error("TLS: {}", msg); });
    opts.set_ssl(std::move(ssl));
  }
  if (will) opts.set_will_message(*will);
  return opts;
}

struct LocalBus::Impl {
  MQTTAsync client = nullptr;
  std::string uri;
  // Strings the C options point into must outlive the connect call.
  std::string username, password;
  bool connect_done = false;
  bool connect_ok = false;
  // The window for this connection: kWindow, or less when the broker's Receive Maximum is less.
  std::atomic<int> window{LocalBus::kWindow};
  std::string connect_error;
  bool disconnect_done = false;
  // Lives as long as the client, so a Paho callback after a timed-out wait touches live memory.
  struct Waiter {
    std::mutex* mu;
    std::condition_variable* cv;
    bool* done;
  } disconnect_waiter{};
};

namespace {

struct ConnectWaiter {
  std::mutex* mu;
  std::condition_variable* cv;
  LocalBus::Impl* impl;
};

void connect_result(void* ctx, bool ok, const char* why) {
  auto* w = static_cast<ConnectWaiter*>(ctx);
  {
    std::lock_guard lock(*w->mu);
    w->impl->connect_done = true;
    w->impl->connect_ok = ok;
    w->impl->connect_error = why ? why : "";
  }
  w->cv->notify_all();
}
void on_connect_ok(void* ctx, MQTTAsync_successData*) {
  static_cast<ConnectWaiter*>(ctx)->impl->window = LocalBus::kWindow;
  connect_result(ctx, true, nullptr);
}
void on_connect_fail(void* ctx, MQTTAsync_failureData* f) {
  connect_result(ctx, false, f && f->message ? f->message : "connect failed");
}
void on_connect_ok5(void* ctx, MQTTAsync_successData5* r) {
  // A broker takes at most Receive Maximum unacknowledged QoS 1 publishes (Mosquitto's
  // default: 20); Paho holds any beyond it in its queue and sends them only slowly.
  int window = LocalBus::kWindow;
  if (r) {
    const int rm =
        MQTTProperties_getNumericValue(&r->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM);
    if (rm > 0) window = std::min(window, rm);
  }
  static_cast<ConnectWaiter*>(ctx)->impl->window = window;
  connect_result(ctx, true, nullptr);
}
void on_connect_fail5(void* ctx, MQTTAsync_failureData5* f) {
  connect_result(ctx, false, f && f->message ? f->message : "connect failed");
}

}  // namespace

LocalBus::LocalBus(MqttEndpoint ep) : ep_(std::move(ep)), impl_(std::make_unique<Impl>()) {
  impl_->uri = paho_uri(ep_.uri);
  MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
  co.MQTTVersion = ep_.mqtt_version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
  co.sendWhileDisconnected = 0;
  // Paho refuses a publish while this many are queued in it (its default is 100). We hand it at
  // most kWindow at once (pump()), so its default would do; the margin covers what Paho still
  // holds from before a reconnect.
  co.maxBufferedMessages = 4 * kWindow;
  const int rc =
      MQTTAsync_createWithOptions(&impl_->client, impl_->uri.c_str(), ep_.client_id.c_str(),
                                  MQTTCLIENT_PERSISTENCE_NONE, nullptr, &co);
  if (rc != MQTTASYNC_SUCCESS)
    throw std::runtime_error("local bus: cannot create client for " + ep_.uri + ": " +
                             MQTTAsync_strerror(rc));
  MQTTAsync_setCallbacks(impl_->client, this, &LocalBus::paho_lost, &LocalBus::paho_message,
                         &LocalBus::paho_delivered);
  MQTTAsync_setConnected(impl_->client, this, &LocalBus::paho_connected);
}

LocalBus::~LocalBus() {
  stop();
  MQTTAsync_destroy(&impl_->client);
}

void LocalBus::subscribe(const std::string& filter, Handler handler) {
  subs_.emplace_back(filter, std::move(handler));
}

bool LocalBus::matches(const std::string& filter, const std::string& topic) {
  std::size_t f = 0, t = 0;
  while (f < filter.size()) {
    if (filter[f] == '#') return true;
    if (filter[f] == '+') {
      while (t < topic.size() && topic[t] != '/') ++t;
      ++f;
      continue;
    }
    if (t >= topic.size() || filter[f] != topic[t]) return false;
    ++f;
    ++t;
  }
  return t == topic.size();
}

bool LocalBus::seen(const std::string& key) {
  std::lock_guard lock(seen_mu_);
  return seen_.count(key) > 0;
}

void LocalBus::remember(const std::vector<std::string>& keys) {
  // Enough to cover what a broker can have in flight to us (Mosquitto's default is 20), with room.
  constexpr std::size_t kWindow = 4096;
  std::lock_guard lock(seen_mu_);
  for (const auto& k : keys) {
    if (k.empty() || !seen_.insert(k).second) continue;
    seen_order_.push_back(k);
    if (seen_order_.size() > kWindow) {
      seen_.erase(seen_order_.front());
      seen_order_.pop_front();
    }
  }
}

void LocalBus::deliver(Message m) {
  ++messages_in_;
  if (m.duplicate && !m.source_key.empty() && seen(m.source_key)) {
    // The broker sends again what it had in flight when the last session ended; we had it.
    ++redeliveries_dropped_;
    return;
  }
  for (auto& [filter, handler] : subs_) {
    if (!matches(filter, m.topic)) continue;
    try {
      handler(m);
    } catch (const std::exception& e) {
      spdlog::error("handler for {} failed: {}", m.topic, e.what());
    }
    break;
  }
  remember({m.source_key});
}

int LocalBus::paho_message(void* ctx, char* topic, int topic_len, MQTTAsync_message* m) {
  auto* bus = static_cast<LocalBus*>(ctx);
  Message msg;
  msg.topic =
      topic_len > 0 ? std::string(topic, static_cast<std::size_t>(topic_len)) : std::string(topic);
  msg.payload.assign(static_cast<const char*>(m->payload), static_cast<std::size_t>(m->payloadlen));
  msg.duplicate = m->dup != 0;
  if (m->qos > 0) {
    const std::uint32_t crc = crc32(msg.payload, crc32(msg.topic));
    char key[32];
    std::snprintf(key, sizeof key, "%d:%08x", m->msgid, crc);
    msg.source_key = key;
  }
  if (m->properties.count > 0) {
    if (auto* p = MQTTProperties_getProperty(&m->properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC))
      msg.response_topic.assign(p->value.data.data, static_cast<std::size_t>(p->value.data.len));
    if (auto* p = MQTTProperties_getProperty(&m->properties, MQTTPROPERTY_CODE_CORRELATION_DATA))
      msg.correlation_data.assign(p->value.data.data, static_cast<std::size_t>(p->value.data.len));
  }
  MQTTAsync_freeMessage(&m);
  MQTTAsync_free(topic);
  bus->deliver(std::move(msg));
  return 1;
}

void LocalBus::paho_lost(void* ctx, char* cause) {
  auto* bus = static_cast<LocalBus*>(ctx);
  bus->connected_ = false;
  if (!bus->stopping_)
    spdlog::warn("local bus: connection lost ({})", cause ? cause : "no reason given");
  bus->cv_.notify_all();
}

void LocalBus::paho_connected(void* ctx, char*) {
  auto* bus = static_cast<LocalBus*>(ctx);
  bus->connected_ = true;
  spdlog::info("local bus: connected to {}", bus->ep_.uri);
  disable_nagle_on_tcp_sockets();
  for (auto& [filter, h] : bus->subs_) {
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    const int rc = MQTTAsync_subscribe(bus->impl_->client, filter.c_str(), 1, &ro);
    if (rc != MQTTASYNC_SUCCESS)
      spdlog::error("local bus: subscribe {} failed: {}", filter, MQTTAsync_strerror(rc));
  }
  if (bus->on_connected_) bus->on_connected_();
  bus->pump(true);  // what was queued while away
}

void LocalBus::paho_delivered(void* ctx, int) {
  static_cast<LocalBus*>(ctx)->pump(true);
}

bool LocalBus::connect_once() {
  ConnectWaiter waiter{&mu_, &cv_, impl_.get()};
  MQTTAsync_connectOptions opts = MQTTAsync_connectOptions_initializer;
  MQTTProperties props = MQTTProperties_initializer;
  if (ep_.mqtt_version == 5) {
    MQTTAsync_connectOptions v5 = MQTTAsync_connectOptions_initializer5;
    opts = v5;
    opts.cleanstart = 0;
    // Keep the session for a week while we are away (v3.1.1 keeps it until a clean connect).
    MQTTProperty expiry;
    expiry.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL;
    expiry.value.integer4 = 7 * 24 * 3600;
    MQTTProperties_add(&props, &expiry);
    opts.connectProperties = &props;
    opts.onSuccess5 = on_connect_ok5;
    opts.onFailure5 = on_connect_fail5;
  } else {
    opts.MQTTVersion = MQTTVERSION_3_1_1;
    opts.cleansession = 0;
    opts.onSuccess = on_connect_ok;
    opts.onFailure = on_connect_fail;
  }
  opts.context = &waiter;
  opts.keepAliveInterval = ep_.keepalive_s;
  opts.connectTimeout = 5;
  opts.automaticReconnect = 0;
  if (!ep_.username_file.empty()) {
    impl_->username = read_secret_file(ep_.username_file);
    impl_->password = read_secret_file(ep_.password_file);
    opts.username = impl_->username.c_str();
    opts.password = impl_->password.c_str();
  }
  MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
  if (ep_.tls || impl_->uri.rfind("ssl://", 0) == 0) {
    ssl.trustStore = ep_.ca_file.empty() ? nullptr : ep_.ca_file.c_str();
    ssl.keyStore = ep_.cert_file.empty() ? nullptr : ep_.cert_file.c_str();
    ssl.privateKey = ep_.key_file.empty() ? nullptr : ep_.key_file.c_str();
    ssl.enableServerCertAuth = 1;
    ssl.verify = ep_.verify_hostname ? 1 : 0;
    opts.ssl = &ssl;
  }
  {
    std::lock_guard lock(mu_);
    impl_->connect_done = false;
  }
  const int rc = MQTTAsync_connect(impl_->client, &opts);
  MQTTProperties_free(&props);
  if (rc != MQTTASYNC_SUCCESS) {
    spdlog::warn("local bus: cannot connect to {}: {}", ep_.uri, MQTTAsync_strerror(rc));
    return false;
  }
  std::unique_lock lock(mu_);
  // The waiter lives on this stack: wait for Paho's answer however long it takes (it is bounded
  // by connectTimeout), so the callback never touches a dead frame.
  cv_.wait(lock, [&] { return impl_->connect_done; });
  if (!impl_->connect_ok)
    spdlog::warn("local bus: cannot connect to {}: {}", ep_.uri, impl_->connect_error);
  return impl_->connect_ok;
}

void LocalBus::start() {
  supervisor_ = std::thread([this] {
    name_this_thread("anju-localbus");
    int backoff_ms = 200;
    while (!stopping_) {
      if (!MQTTAsync_isConnected(impl_->client)) {
        if (connect_once())
          backoff_ms = 200;
        else
          backoff_ms = std::min(backoff_ms * 2, 10'000);
      }
      // Also a safety net: what a lost acknowledgement left in the queue goes within a second.
      if (connected_) pump();
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(connected_ ? 1000 : backoff_ms),
                   [this] { return stopping_.load(); });
    }
  });
}

namespace {
void signal_waiter(void* ctx) {
  auto* w = static_cast<LocalBus::Impl::Waiter*>(ctx);
  {
    std::lock_guard lock(*w->mu);
    *w->done = true;
  }
  w->cv->notify_all();
}
}  // namespace

void LocalBus::stop() {
  if (stopping_.exchange(true)) return;
  { std::lock_guard lock(mu_); }
  cv_.notify_all();
  if (supervisor_.joinable()) supervisor_.join();
  if (MQTTAsync_isConnected(impl_->client)) {
    // What is queued here goes first, for up to 2 s (acknowledgements make room in the window).
    pump();
    std::unique_lock lock(out_mu_);
    out_cv_.wait_for(lock, std::chrono::seconds(2), [&] { return out_.empty() || !connected_; });
  }
  if (MQTTAsync_isConnected(impl_->client)) {
    impl_->disconnect_waiter = {&mu_, &cv_, &impl_->disconnect_done};
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
    d.timeout = 2000;  // Paho first sends what is queued (acknowledgements included)
    d.context = &impl_->disconnect_waiter;
    d.onSuccess = [](void* ctx, MQTTAsync_successData*) { signal_waiter(ctx); };
    d.onFailure = [](void* ctx, MQTTAsync_failureData*) { signal_waiter(ctx); };
    if (MQTTAsync_disconnect(impl_->client, &d) == MQTTASYNC_SUCCESS) {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::seconds(3), [&] { return impl_->disconnect_done; });
    }
  }
  connected_ = false;
}

std::size_t LocalBus::publish_queued() const {
  std::lock_guard lock(out_mu_);
  return out_.size();
}

int LocalBus::window() const {
  return impl_->window;
}

void LocalBus::publish(std::string topic, std::string payload, int qos, bool retain,
                       std::string correlation_data) {
  {
    std::lock_guard lock(out_mu_);
    if (out_.size() >= static_cast<std::size_t>(kMaxBufferedPublishes)) {
      // Full (a long outage of the broker): the oldest goes, so that the newest state of each
      // alert gets through, and the republish of the open alerts after the reconnect always
      // finds room. Logged at the 1st, 10th, 100th, ... drop: seen, never a flood.
      const std::int64_t n = ++publish_dropped_;
      if (n == 1 || n == 10 || n == 100 || n % 1000 == 0)
        spdlog::warn("local bus: {} publishes queued ({}): the oldest, to {}, dropped; {} so far",
                     kMaxBufferedPublishes, connected_ ? "connected" : "disconnected",
                     out_.front().topic, n);
      // A dropped retained publish may leave the broker's copy of its topic stale: the owner
      // resynchronises those topics once the queue has drained (on_stale_retained).
      if (out_.front().retain &&
          stale_retained_.size() < static_cast<std::size_t>(kMaxBufferedPublishes))
        stale_retained_.insert(std::move(out_.front().topic));
      out_.pop_front();
    }
    out_.push_back(
        {std::move(topic), std::move(payload), std::move(correlation_data), qos, retain});
  }
  if (batches_.load() == 0) pump();
}

int LocalBus::send_now(const Outgoing& m) {
  MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
  MQTTAsync_message msg = MQTTAsync_message_initializer;
  msg.payload = const_cast<char*>(m.payload.data());
  msg.payloadlen = static_cast<int>(m.payload.size());
  msg.qos = m.qos;
  msg.retained = m.retain ? 1 : 0;
  if (!m.correlation_data.empty() && ep_.mqtt_version == 5) {
    MQTTProperty p;
    p.identifier = MQTTPROPERTY_CODE_CORRELATION_DATA;
    p.value.data.data = const_cast<char*>(m.correlation_data.data());
    p.value.data.len = static_cast<int>(m.correlation_data.size());
    MQTTProperties_add(&msg.properties, &p);  // copies the data
  }
  const int rc = MQTTAsync_sendMessage(impl_->client, m.topic.c_str(), &msg, &ro);
  MQTTProperties_free(&msg.properties);
  return rc;
}

void LocalBus::pump(bool from_paho) {
  std::unique_lock lock(out_mu_);
  if (pumping_) {
    pump_again_ = true;  // the thread pumping now looks again before it stops
    return;
  }
  pumping_ = true;
  std::vector<Outgoing> batch;
  for (;;) {
    pump_again_ = false;
    lock.unlock();
    // Paho's own count: queued in it and in flight, acknowledged ones already gone. No
    // bookkeeping of ours to go wrong across reconnects.
    int room = 0;
    if (connected_) {
      MQTTAsync_token* tokens = nullptr;
      int pending = 0;
      if (MQTTAsync_getPendingTokens(impl_->client, &tokens) == MQTTASYNC_SUCCESS && tokens) {
        while (tokens[pending] != -1) ++pending;
        MQTTAsync_free(tokens);
      }
      room = impl_->window - pending;
    }
    lock.lock();
    const std::size_t n =
        std::min<std::size_t>(static_cast<std::size_t>(std::max(room, 0)), out_.size());
    if (n == 0) {
      if (out_.empty()) out_cv_.notify_all();
      if (pump_again_ && connected_) continue;
      pumping_ = false;
      if (from_paho && out_.empty() && connected_ && !stale_retained_.empty() &&
          on_stale_retained_) {
        std::vector<std::string> topics(stale_retained_.begin(), stale_retained_.end());
        stale_retained_.clear();
        lock.unlock();
        retained_resynced_ += static_cast<std::int64_t>(topics.size());
        spdlog::info("local bus: drained after drops; resynchronising {} retained topics",
                     topics.size());
        on_stale_retained_(std::move(topics));
      }
      return;
    }
    batch.clear();
    for (std::size_t i = 0; i < n; ++i) {
      batch.push_back(std::move(out_.front()));
      out_.pop_front();
    }
    lock.unlock();
    std::size_t sent = 0;
    for (; sent < batch.size(); ++sent) {
      const int rc = send_now(batch[sent]);
      if (rc == MQTTASYNC_SUCCESS) continue;
      if (rc == MQTTASYNC_DISCONNECTED || rc == MQTTASYNC_MAX_BUFFERED_MESSAGES) break;
      // Refused for the message itself (a bad topic): nothing later would change that.
      const std::int64_t d = ++publish_dropped_;
      spdlog::warn("local bus: publish {} refused ({}); {} dropped so far", batch[sent].topic,
                   MQTTAsync_strerror(rc), d);
    }
    lock.lock();
    if (sent < batch.size()) {
      // Not taken now (the connection went): back to the front, in order, for the reconnect.
      out_.insert(out_.begin(),
                  std::make_move_iterator(batch.begin() + static_cast<std::ptrdiff_t>(sent)),
                  std::make_move_iterator(batch.end()));
      pumping_ = false;
      return;
    }
  }
}

}  // namespace anju::edge
