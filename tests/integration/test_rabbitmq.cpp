// The uplink against the clustered kind of broker cities run: RabbitMQ's MQTT plugin (Debian 12's
// rabbitmq-server 3.10, MQTT 3.1.1 only), with the real anjud, a local Mosquitto and the city's
// subscriber on RabbitMQ in a persistent QoS 1 session. Alerts and events reach the city; the
// broker is SIGKILLed (an outage) while 200 readings and 20 leak alarms come in; anjud keeps them
// in its outbox; the broker comes back on the same port and data dir and the backlog drains:
// every alert and every event, in order within its class, duplicates only with the same id and
// bytes. Also what RabbitMQ does with the retained birth / Last Will on status/gateway, a city
// command over MQTT 3.1.1 with the payload's reply_to, and what becomes of a command name with a
// dot. docs/contract/BROKERS.md describes what this test found.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "city_contract.hpp"
#include "harness.hpp"
#include "rabbitmq.hpp"

using namespace anju::it;
using anju::contract::under;

namespace {

const std::string kSite = "demo-compound";
const std::string kCity = "anju/v1/" + kSite + "/";
const std::string kCmd = kCity + "cmd/";
const std::string kGatewayStatus = kCity + "status/gateway";
constexpr int kLeaks = 20;
constexpr int kReadings = 200;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json parse(const std::string& s) {
  return json::parse(s, nullptr, false);
}

json request(const std::string& id, const std::string& reply_to, json args = json::object()) {
  json j{{"schema", 1},
         {"request_id", id},
         {"user", "dispatcher-42"},
         {"issued_ms", now_ms()},
         {"expires_ms", now_ms() + 60'000},
         {"reply_to", reply_to}};
  if (!args.empty()) j["args"] = std::move(args);
  return j;
}

std::string leak_name(int i) {
  char b[16];
  std::snprintf(b, sizeof b, "leak_%03d", i);
  return b;
}

// The city's subscriber: MQTT 3.1.1, a fixed client id and clean_session=false, so that RabbitMQ
// keeps a durable queue for it; connected again after the outage with the same id.
class CitySubscriber {
 public:
  CitySubscriber(const std::string& uri, std::string filter) : filter_(std::move(filter)) {
    client_ = std::make_unique<mqtt::async_client>(
        uri, "anju-it-city-" + std::to_string(::getpid()), mqtt::create_options(MQTTVERSION_3_1_1));
    client_->set_message_callback([this](mqtt::const_message_ptr m) {
      {
        std::lock_guard lock(mu_);
        messages_.push_back({m->get_topic(), m->get_payload_str(), m->is_retained()});
      }
      cv_.notify_all();
    });
  }
  ~CitySubscriber() {
    try {
      if (client_->is_connected()) client_->disconnect()->wait_for(5s);
    } catch (const std::exception&) {
    }
  }
  // Connects (persistent session) and subscribes at QoS 1; returns the CONNACK's session present.
  bool connect() {
    mqtt::connect_options opts;
    opts.set_mqtt_version(MQTTVERSION_3_1_1);
    opts.set_clean_session(false);
    opts.set_keep_alive_interval(30);
    opts.set_connect_timeout(5);
    auto tok = client_->connect(opts);
    if (!tok->wait_for(10s) || !client_->is_connected())
      throw std::runtime_error("city subscriber: cannot connect");
    const bool present = tok->get_connect_response().is_session_present();
    auto sub = client_->subscribe(filter_, 1);
    if (!sub->wait_for(10s)) throw std::runtime_error("city subscriber: no SUBACK");
    // A refused subscription (SUBACK 0x80) fails the token in Paho's MQTT 3.1.1 client.
    if (sub->get_return_code() != 0)
      throw std::runtime_error("city subscriber: subscription refused");
    return present;
  }
  std::vector<Message> messages() const {
    std::lock_guard lock(mu_);
    return messages_;
  }
  bool wait_for(const std::function<bool(const std::vector<Message>&)>& pred,
                std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return pred(messages_); });
  }

 private:
  std::string filter_;
  std::unique_ptr<mqtt::async_client> client_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<Message> messages_;
};

bool has_topic(const std::vector<Message>& ms, const std::string& topic) {
  for (const auto& m : ms)
    if (m.topic == topic) return true;
  return false;
}

// The state ("online"/"offline") of the newest message on status/gateway, "" when none.
std::string gateway_state(const std::vector<Message>& ms, bool retained_only = false) {
  std::string state;
  for (const auto& m : ms)
    if (m.topic == kGatewayStatus && (!retained_only || m.retained))
      state = parse(m.payload).value("state", "");
  return state;
}

std::int64_t outbox_rows(const json& st, const std::string& cls) {
  return st["outbox"][cls].value("rows", std::int64_t{0});
}

}  // namespace

TEST_CASE(
    "the uplink against RabbitMQ's MQTT plugin: outage, backlog drain, birth, Last Will, "
    "a command",
    "[e2e][rabbitmq]") {
  if (rabbitmq_server_script().empty()) {
    std::cout << "SKIPPED: rabbitmq-server is not installed (scripts/install-deps installs it)"
              << std::endl;
    WARN("SKIPPED: rabbitmq-server is not installed (scripts/install-deps installs it)");
    return;
  }
  const auto t0 = std::chrono::steady_clock::now();
  Mosquitto local;
  local.start();
  RabbitMq city;
  city.start();  // an install that is present but does not start is a failure, with its log
  const auto first_start = city.last_start();

  CitySubscriber sub(city.uri(), kCity + "#");
  CHECK_FALSE(sub.connect());  // a new session

  // The demo's five devices and 20 leak sensors.
  json devices = json::parse(demo_devices_json());
  for (int i = 0; i < kLeaks; ++i) {
    char ieee[32];
    std::snprintf(ieee, sizeof ieee, "0x00158d00003%05d", i);
    devices.push_back(z2m_device(ieee, leak_name(i), "SJCGQ11LM",
                                 {{"binary", "water_leak"}, {"numeric", "battery"}}));
  }
  Publisher pub(local.uri());
  pub.publish("zigbee2mqtt/bridge/devices", devices.dump(), 1, true);

  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = city.uri();
  cfg.event_kinds = {"temperature", "water_leak", "smoke", "gas"};
  cfg.summary_interval_s = 300;
  Anjud gw(cfg);
  // RabbitMQ 3.10 speaks MQTT 3.1.1 only: the uplink's protocol version is set to 3.
  std::string yaml = gateway_yaml(cfg);
  const std::string enabled = "uplink:\n  enabled: true\n";
  const auto at = yaml.find(enabled);
  REQUIRE(at != std::string::npos);
  yaml.insert(at + enabled.size(), "  mqtt_version: 3\n");
  write_file(gw.config_path(), yaml);
  gw.start();
  auto diagnostics = [&] {
    auto st = gw.status();
    return "anjud status: " + (st ? st->dump() : std::string("(none)")) + "\nanjud log:\n" +
           tail(gw.log()) + "\nRabbitMQ log:\n" + tail(city.log(), 3000);
  };
  auto uplink_connected = [&] {
    auto st = gw.status();
    return st && (*st)["uplink"].value("connected", false);
  };
  {
    INFO(diagnostics());
    REQUIRE(gw.wait_devices(5 + kLeaks, 15s));
    REQUIRE(wait_until(uplink_connected, 15s));
  }

  // The birth reaches the city's session (live, so not flagged retained).
  CHECK(sub.wait_for([](const auto& ms) { return gateway_state(ms) == "online"; }, 10s));
  // Retained: RabbitMQ 3.10 keeps it (one per topic, in the node's own store) and gives it to a
  // subscription to that exact topic only; a filter with a wildcard gets no retained message.
  {
    Collector exact(city.uri(), kGatewayStatus);
    CHECK(exact.wait_for([](const auto& ms) { return gateway_state(ms, true) == "online"; }, 10s));
    Collector wildcard(city.uri(), "anju/v1/+/status/gateway");
    // A marker published after the SUBACK comes after any retained message the broker would
    // send for the subscription (one connection, in order): once it is here, nothing came.
    const std::string marker = "anju/v1/it-marker/status/gateway";
    wildcard.publish(marker, R"({"marker":true})", 1, false);
    REQUIRE(wildcard.wait_for([&](const auto& ms) { return has_topic(ms, marker); }, 10s));
    CHECK_FALSE(has_topic(wildcard.messages(), kGatewayStatus));
  }

  // An alert and an event while the link is up.
  pub.publish("zigbee2mqtt/smoke_3_2_hall", R"({"smoke":true,"battery":87})", 1, false);
  pub.publish("zigbee2mqtt/climate_3_2_1201", R"({"temperature":30.5,"humidity":40})", 1, false);
  std::string smoke_alert_id;
  {
    INFO(diagnostics());
    REQUIRE(sub.wait_for(
        [&](const auto& ms) {
          bool reading = false;
          for (const auto& m : ms) {
            auto j = parse(m.payload);
            if (!j.is_object()) continue;
            if (m.topic == kCity + "alert/smoke" && j.value("change", "") == "raised")
              smoke_alert_id = j.value("alert_id", "");
            if (m.topic == kCity + "event/temperature") reading = true;
          }
          return reading && !smoke_alert_id.empty();
        },
        15s));
  }

  // A city command over MQTT 3.1.1: the answer goes to the payload's reply_to.
  Collector replies(city.uri(), "city/v3/+");
  replies.publish(kCmd + "diag", request("rmq-diag-1", "city/v3/diag").dump(), 1, false);
  {
    INFO(diagnostics());
    REQUIRE(replies.wait_for([](const auto& ms) { return has_topic(ms, "city/v3/diag"); }, 10s));
  }
  for (const auto& m : replies.messages()) {
    const auto body = parse(m.payload);
    anju::bridge::schema::Options strict;
    strict.strict = true;
    INFO(m.payload);
    CHECK(anju::bridge::schema::to_string(
              anju::contract::schemas().validate("command_response.json", body, strict))
              .empty());
    CHECK(body.value("request_id", "") == "rmq-diag-1");
    CHECK(body.value("ok", false));
    CHECK(body["result"].value("site", "") == kSite);
  }
  // A command name with a dot: RabbitMQ maps MQTT's '/' to AMQP's '.' and '.' to '/', so
  // .../cmd/alert.ack is routed (and delivered) as .../cmd/alert/ack, one level deeper. The
  // gateway subscribes to .../cmd/# and joins the levels with '.': the ack is applied.
  replies.publish(kCmd + "alert.ack",
                  request("rmq-ack-1", "city/v3/ack", {{"alert_id", smoke_alert_id}}).dump(), 1,
                  false);
  replies.publish(kCmd + "diag", request("rmq-diag-2", "city/v3/diag2").dump(), 1, false);
  CHECK(sub.wait_for([](const auto& ms) { return has_topic(ms, kCmd + "alert/ack"); }, 10s));
  CHECK_FALSE(has_topic(sub.messages(), kCmd + "alert.ack"));
  REQUIRE(replies.wait_for([](const auto& ms) { return has_topic(ms, "city/v3/diag2"); }, 10s));
  CHECK(replies.wait_for([](const auto& ms) { return has_topic(ms, "city/v3/ack"); }, 10s));
  const bool dotted_answered = has_topic(replies.messages(), "city/v3/ack");
  for (const auto& m : replies.messages())
    if (m.topic == "city/v3/ack") {
      const auto body = json::parse(m.payload, nullptr, false);
      INFO(m.payload);
      CHECK(body.value("request_id", "") == "rmq-ack-1");
      CHECK(body.value("ok", false));
      CHECK(body["result"].value("state", "") == "acknowledged");
    }

  // A retained message of the city's own, to see whether it outlives the broker's crash (the
  // gateway's birth cannot tell: anjud publishes it again on every connect).
  const std::string kept = "anju/v1/it-marker/status/kept";
  replies.publish(kept, R"({"kept":true})", 1, true);

  // The outage: the broker is killed; anjud notices and keeps what comes in in its outbox.
  city.kill9();
  {
    INFO(diagnostics());
    REQUIRE(wait_until([&] { return !uplink_connected(); }, 15s));
  }
  for (int i = 0, l = 0; i < kReadings; ++i) {
    char p[64];
    std::snprintf(p, sizeof p, R"({"temperature":%.3f,"humidity":40})", 20 + i * 0.001);
    pub.publish_windowed("zigbee2mqtt/climate_3_2_1201", p, 1, 32);
    if (i % 10 == 5)
      pub.publish_windowed("zigbee2mqtt/" + leak_name(l++), R"({"water_leak":true})", 1, 32);
  }
  pub.flush();
  json held;
  {
    const bool queued = wait_until(
        [&] {
          auto st = gw.status();
          if (!st) return false;
          held = *st;
          return outbox_rows(*st, "alert") >= kLeaks &&
                 outbox_rows(*st, "event") >= kReadings + kLeaks;
        },
        30s);
    INFO(diagnostics());
    REQUIRE(queued);
  }
  CHECK_FALSE(held["uplink"].value("connected", true));
  for (const auto& [cls, v] : held["outbox"].items()) CHECK(v.value("evicted", 1) == 0);
  std::string outbox_cli;
  CHECK(run_shell(std::string(ANJU_PATH) + " --data-dir " + gw.data_dir().string() + " outbox",
                  &outbox_cli) == 0);
  INFO("anju outbox during the outage:\n" << outbox_cli);
  CHECK(outbox_cli.find("alert") != std::string::npos);

  // The broker comes back on the same port and data dir; the city's subscriber reconnects to its
  // persistent session.
  const auto t_back = std::chrono::steady_clock::now();
  city.start();
  const bool session_present = sub.connect();
  CHECK(session_present);  // the durable queue of a clean_session=false client survives SIGKILL

  std::set<long> readings;
  std::set<std::string> leak_events, leak_alerts;
  std::size_t tallied = 0;
  auto tally = [&](const std::vector<Message>& ms) {
    for (; tallied < ms.size(); ++tallied) {
      const auto& m = ms[tallied];
      auto j = parse(m.payload);
      if (!j.is_object()) continue;
      if (m.topic == kCity + "event/temperature" && j.contains("values") && !j["values"].empty()) {
        const long r = std::lround((j["values"][0].value("value", 0.0) - 20) * 1000);
        if (r >= 0 && r < kReadings) readings.insert(r);
      }
      if (m.topic == kCity + "event/water_leak") leak_events.insert(j["device"].value("name", ""));
      if (m.topic == kCity + "alert/water_leak" && j.value("change", "") == "raised")
        leak_alerts.insert(j["alert"]["device"].value("name", ""));
    }
    return static_cast<int>(readings.size()) == kReadings &&
           static_cast<int>(leak_events.size()) == kLeaks &&
           static_cast<int>(leak_alerts.size()) == kLeaks;
  };
  {
    const bool delivered = sub.wait_for(tally, 60s);
    INFO("the city got " << readings.size() << " of " << kReadings << " readings, "
                         << leak_events.size() << " leak events, " << leak_alerts.size()
                         << " leak alerts");
    INFO(diagnostics());
    REQUIRE(delivered);
  }
  const auto t_drained = std::chrono::steady_clock::now();
  CHECK(wait_until(
      [&] {
        auto st = gw.status();
        if (!st) return false;
        std::int64_t rows = 0;
        for (const auto& [cls, v] : (*st)["outbox"].items())
          rows += v.value("rows", std::int64_t{0});
        return rows == 0;
      },
      20s));

  // Whether the retained message from before the crash is still there: it would come (flagged
  // retained) right after the SUBACK, before the probe's own live message on the same topic.
  bool retained_survived = false;
  {
    Collector probe(city.uri(), kept);
    probe.publish(kept, R"({"probe":true})", 1, false);
    CHECK(probe.wait_for(
        [&](const auto& ms) {
          for (const auto& m : ms)
            if (!m.retained) return true;
          return false;
        },
        10s));
    for (const auto& m : probe.messages()) retained_survived = retained_survived || m.retained;
  }

  // The birth again after the reconnect, retained for a new subscriber.
  {
    Collector exact(city.uri(), kGatewayStatus);
    CHECK(exact.wait_for([](const auto& ms) { return gateway_state(ms, true) == "online"; }, 10s));
  }

  // Same id => same bytes; the first arrivals of each class in journal order.
  const auto msgs = sub.messages();
  std::vector<Message> anjuds;
  std::map<std::string, std::string> by_id;
  std::map<std::string, std::int64_t> last_seq;
  int duplicates = 0, out_of_order = 0, without_id = 0;
  for (const auto& m : msgs) {
    if (m.topic.rfind(kCmd, 0) == 0) continue;  // the city's own requests
    anjuds.push_back(m);
    if (m.topic == kGatewayStatus) continue;  // birth / Last Will: not outbox messages
    auto j = parse(m.payload);
    REQUIRE(j.is_object());
    if (!j.contains("id") || !j.contains("seq")) {
      ++without_id;
      continue;
    }
    auto [it, first] = by_id.emplace(j["id"].get<std::string>(), m.payload);
    if (!first) {
      ++duplicates;
      CHECK(it->second == m.payload);
      continue;
    }
    for (const std::string cls : {"alert", "event"}) {
      if (!under(m.topic, kCity + cls)) continue;
      const auto seq = j["seq"].get<std::int64_t>();
      if (seq <= last_seq[cls]) ++out_of_order;
      last_seq[cls] = std::max(last_seq[cls], seq);
    }
  }
  CHECK(without_id == 0);
  CHECK(out_of_order == 0);
  anju::contract::check_city_contract(anjuds);

  // The Last Will: anjud dies; RabbitMQ publishes its offline will, retained.
  gw.kill9();
  CHECK(sub.wait_for([](const auto& ms) { return gateway_state(ms) == "offline"; }, 15s));
  {
    Collector exact(city.uri(), kGatewayStatus);
    CHECK(exact.wait_for([](const auto& ms) { return gateway_state(ms, true) == "offline"; }, 10s));
  }

  const auto seconds = [](auto d) { return std::chrono::duration<double>(d).count(); };
  std::cout << "[rabbitmq] node " << city.node_name() << ": first start " << seconds(first_start)
            << " s, restart after SIGKILL " << seconds(city.last_start())
            << " s; session present after the outage: " << (session_present ? "yes" : "no")
            << "; backlog drained in " << seconds(t_drained - t_back) << " s (incl. the restart"
            << "); city got " << msgs.size() << " messages, " << duplicates
            << " duplicates (same id); a command on cmd/alert.ack answered: "
            << (dotted_answered ? "yes" : "no")
            << "; a retained message from just before the crash "
            << (retained_survived ? "survived" : "was lost") << "; test "
            << seconds(std::chrono::steady_clock::now() - t0) << " s" << std::endl;
  city.stop();
  CHECK_FALSE(city.running());
}
