// An MQTT 5 client for request/response tests: it sends requests with a Response Topic and
// Correlation Data and collects the answers with their correlation data.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "harness.hpp"

namespace anju::it {

// An MQTT 5 client that sends requests with a Response Topic and Correlation Data and collects
// the responses with their correlation data.
class V5Requester {
 public:
  struct Reply {
    std::string correlation;
    json body;
  };
  V5Requester(const std::string& uri, std::string reply_topic,
              const std::string& client_id = "it-pm-console-v5")
      : reply_topic_(std::move(reply_topic)) {
    client_ =
        std::make_unique<mqtt::async_client>(uri, client_id, mqtt::create_options(MQTTVERSION_5));
    client_->set_message_callback([this](mqtt::const_message_ptr m) {
      Reply r;
      const auto& props = m->get_properties();
      if (props.contains(mqtt::property::CORRELATION_DATA))
        r.correlation = mqtt::get<std::string>(props, mqtt::property::CORRELATION_DATA);
      r.body = json::parse(m->get_payload_str(), nullptr, false);
      {
        std::lock_guard lock(mu_);
        replies_.push_back(std::move(r));
      }
      cv_.notify_all();
    });
    auto opts =
        mqtt::connect_options_builder().mqtt_version(MQTTVERSION_5).clean_start(true).finalize();
    client_->connect(opts)->wait();
    client_->subscribe(reply_topic_, 1)->wait();
  }
  ~V5Requester() {
    try {
      client_->disconnect()->wait();
    } catch (...) {
    }
  }
  void send(const std::string& topic, const json& body, const std::string& correlation) {
    mqtt::properties props{{mqtt::property::RESPONSE_TOPIC, reply_topic_},
                           {mqtt::property::CORRELATION_DATA, correlation}};
    auto msg = mqtt::message_ptr_builder()
                   .topic(topic)
                   .payload(body.dump())
                   .qos(1)
                   .properties(props)
                   .finalize();
    client_->publish(msg)->wait();
  }
  std::optional<Reply> wait_reply(const std::string& correlation, std::chrono::milliseconds t) {
    auto all = wait_replies(correlation, 1, t);
    if (all.empty()) return std::nullopt;
    return all.back();
  }
  // Waits for at least `n` replies with this correlation data (paged answers); returns them all.
  std::vector<Reply> wait_replies(const std::string& correlation, std::size_t n,
                                  std::chrono::milliseconds t) {
    std::unique_lock lock(mu_);
    std::vector<Reply> found;
    cv_.wait_for(lock, t, [&] {
      found.clear();
      for (const auto& r : replies_)
        if (r.correlation == correlation) found.push_back(r);
      return found.size() >= n;
    });
    return found;
  }

 private:
  std::string reply_topic_;
  std::unique_ptr<mqtt::async_client> client_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Reply> replies_;
};

}  // namespace anju::it
