#include "anju/edge/mqtt.hpp"

#include <spdlog/spdlog.h>

#include <fstream>

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

LocalBus::LocalBus(MqttEndpoint ep) : ep_(std::move(ep)) {
  client_ = std::make_unique<mqtt::async_client>(paho_uri(ep_.uri), ep_.client_id,
                                                 make_create_options(ep_), nullptr);
}

LocalBus::~LocalBus() {
  stop();
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

void LocalBus::dispatch(mqtt::const_message_ptr msg) {
  ++messages_in_;
  const std::string& topic = msg->get_topic();
  for (auto& [filter, handler] : subs_) {
    if (matches(filter, topic)) {
      try {
        handler(topic, msg->get_payload_str());
      } catch (const std::exception& e) {
        spdlog::error("handler for {} failed: {}", topic, e.what());
      }
      return;
    }
  }
}

void LocalBus::start() {
  client_->set_message_callback([this](mqtt::const_message_ptr m) { dispatch(std::move(m)); });
  client_->set_connected_handler([this](const std::string&) {
    connected_ = true;
    spdlog::info("local bus: connected to {}", ep_.uri);
    for (auto& [filter, h] : subs_) {
      try {
        client_->subscribe(filter, 1);
      } catch (const mqtt::exception& e) {
        spdlog::error("local bus: subscribe {} failed: {}", filter, e.what());
      }
    }
    if (on_connected_) on_connected_();
  });
  client_->set_connection_lost_handler([this](const std::string& cause) {
    connected_ = false;
    if (!stopping_) spdlog::warn("local bus: connection lost ({})", cause);
  });
  // Persistent session: the broker queues QoS 1 messages for us while we are away.
  supervisor_ = std::thread([this] {
    int backoff_ms = 200;
    while (!stopping_) {
      if (!client_->is_connected()) {
        try {
          auto opts = make_connect_options(ep_, /*clean=*/false, std::nullopt);
          client_->connect(opts)->wait_for(std::chrono::seconds(6));
          backoff_ms = 200;
        } catch (const std::exception& e) {
          spdlog::warn("local bus: cannot connect to {}: {} (retry in {} ms)", ep_.uri, e.what(),
                       backoff_ms);
          backoff_ms = std::min(backoff_ms * 2, 10'000);
        }
      }
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(client_->is_connected() ? 500 : backoff_ms),
                   [this] { return stopping_.load(); });
    }
  });
}

void LocalBus::stop() {
  if (stopping_.exchange(true)) return;
  { std::lock_guard lock(mu_); }
  cv_.notify_all();
  if (supervisor_.joinable()) supervisor_.join();
  try {
    if (client_->is_connected()) client_->disconnect(2000)->wait_for(std::chrono::seconds(3));
  } catch (const mqtt::exception&) {
  }
  connected_ = false;
}

void LocalBus::publish(const std::string& topic, const std::string& payload, int qos, bool retain) {
  if (!connected_) {
    ++publish_dropped_;
    return;
  }
  try {
    client_->publish(topic, payload.data(), payload.size(), qos, retain);
  } catch (const mqtt::exception& e) {
    ++publish_dropped_;
    spdlog::debug("local bus: publish {} failed: {}", topic, e.what());
  }
}

}  // namespace anju::edge
