// A private RabbitMQ node with its MQTT plugin, on loopback, for the integration tests: the
// clustered kind of broker a city runs, beside the tests' Mosquitto.
//
// Nothing is shared with a RabbitMQ the machine may run as a service (rabbit@<host>, ports 5672,
// 25672, 1883, epmd on 4369): the node has its own name (unique per test process), its own epmd
// (a child of this object, on a free loopback port: ERL_EPMD_PORT), its own distribution port,
// no AMQP listener, its own config, plugins file, Mnesia and log dirs and Erlang cookie (HOME), all
// in a temp dir. Only the PIDs started here are ever signalled.
#pragma once

#include <chrono>
#include <string>

#include "harness.hpp"

namespace anju::it {

// The node's start script; empty when rabbitmq-server is not installed (Debian's package puts it
// in /usr/lib/rabbitmq/bin; ANJU_IT_RABBITMQ overrides).
std::string rabbitmq_server_script();

class RabbitMq {
 public:
  RabbitMq();
  ~RabbitMq();
  RabbitMq(const RabbitMq&) = delete;
  RabbitMq& operator=(const RabbitMq&) = delete;

  // Starts epmd (once) and the node, and waits until the MQTT listener answers a real MQTT 3.1.1
  // CONNECT with CONNACK "accepted", or throws with the node's log after `timeout` or when the
  // node exits. After stop() or kill9() it starts again on the same ports, node name and data dir
  // (so durable state, e.g. a persistent session's queue, is the broker's to keep or lose).
  void start(std::chrono::milliseconds timeout = std::chrono::seconds(90));
  // SIGTERM to the node (a clean shutdown), SIGKILL after `grace`. epmd keeps running.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(20));
  // An outage: SIGKILL to the node, nothing flushed. epmd keeps running.
  void kill9();
  bool running() { return node_.running(); }

  int port() const { return mqtt_port_; }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(mqtt_port_); }
  const std::string& node_name() const { return node_name_; }
  std::string log() const;
  // How long the last start() took until the MQTT CONNACK.
  std::chrono::milliseconds last_start() const { return last_start_; }

 private:
  void write_files();
  TempDir dir_{"anju-it-rabbitmq"};
  int mqtt_port_ = 0, dist_port_ = 0, epmd_port_ = 0;
  std::string node_name_;
  std::chrono::milliseconds last_start_{0};
  Child epmd_;
  Child node_;
};

// True when an MQTT 3.1.1 CONNECT (clean session, anonymous) to 127.0.0.1:port is answered with
// CONNACK return code 0 within `timeout`. The connection is closed with DISCONNECT.
bool mqtt_connack(int port, std::chrono::milliseconds timeout);

}  // namespace anju::it
