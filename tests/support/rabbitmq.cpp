#include "rabbitmq.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <vector>

namespace anju::it {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::string executable(const std::vector<std::string>& candidates) {
  for (const auto& c : candidates)
    if (::access(c.c_str(), X_OK) == 0) return c;
  return {};
}

std::string epmd_binary() {
  const std::string p = executable({"/usr/bin/epmd", "/usr/lib/erlang/bin/epmd"});
  if (p.empty()) throw std::runtime_error("epmd not found (Debian's erlang-base provides it)");
  return p;
}

// Reads exactly n bytes or gives up at the deadline.
bool read_exactly(int fd, unsigned char* buf, std::size_t n, SteadyClock::time_point deadline) {
  std::size_t got = 0;
  while (got < n) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r <= 0) return false;
    const ssize_t k = ::recv(fd, buf + got, n - got, 0);
    if (k <= 0) return false;
    got += static_cast<std::size_t>(k);
  }
  return true;
}

}  // namespace

std::string rabbitmq_server_script() {
  if (const char* p = std::getenv("ANJU_IT_RABBITMQ")) return p;
  return executable({"/usr/lib/rabbitmq/bin/rabbitmq-server"});
}

bool mqtt_connack(int port, std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  const int fd = tcp_connect_loopback(port);
  if (fd < 0) return false;
  static std::atomic<int> counter{0};
  const std::string id =
      "anju-it-ready-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  // CONNECT: protocol "MQTT" level 4 (3.1.1), clean session, keep-alive 60 s, the client id.
  std::string pkt;
  pkt += static_cast<char>(0x10);
  pkt += static_cast<char>(10 + 2 + id.size());
  pkt += std::string("\x00\x04MQTT\x04\x02\x00\x3c", 10);
  pkt += static_cast<char>(0);
  pkt += static_cast<char>(id.size());
  pkt += id;
  bool ok = ::send(fd, pkt.data(), pkt.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(pkt.size());
  unsigned char connack[4] = {};
  ok = ok && read_exactly(fd, connack, sizeof connack, deadline) && connack[0] == 0x20 &&
       connack[1] == 0x02 && connack[3] == 0x00;
  if (ok) {
    const char disconnect[2] = {static_cast<char>(0xe0), 0};
    (void)!::send(fd, disconnect, sizeof disconnect, MSG_NOSIGNAL);
  }
  ::close(fd);
  return ok;
}

RabbitMq::RabbitMq() {
  static std::atomic<int> counter{0};
  node_name_ =
      "anju-it-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "@localhost";
}

RabbitMq::~RabbitMq() {
  try {
    stop();
    if (epmd_.pid() > 0) epmd_.terminate(std::chrono::seconds(3));
  } catch (const std::exception&) {
  }
}

void RabbitMq::write_files() {
  std::string conf;
  conf += "listeners.tcp = none\n";  // no AMQP listener: the tests speak MQTT only
  conf += "mqtt.listeners.tcp.1 = 127.0.0.1:" + std::to_string(mqtt_port_) + "\n";
  conf += "mqtt.listeners.ssl = none\n";
  conf += "mqtt.allow_anonymous = true\n";  // as the default user guest, from loopback
  conf += "mqtt.vhost = /\n";
  conf += "mqtt.exchange = amq.topic\n";
  conf += "disk_free_limit.absolute = 20MB\n";
  conf += "log.console = true\n";
  conf += "log.console.level = info\n";
  conf += "log.file = false\n";
  write_file(dir_ / "rabbitmq.conf", conf);
  write_file(dir_ / "enabled_plugins", "[rabbitmq_mqtt].\n");
  write_file(dir_ / "rabbitmq-env.conf", "");  // instead of /etc/rabbitmq/rabbitmq-env.conf
}

void RabbitMq::start(std::chrono::milliseconds timeout) {
  if (node_.running()) return;
  const std::string script = rabbitmq_server_script();
  if (script.empty()) throw std::runtime_error("rabbitmq-server is not installed");
  const auto t0 = SteadyClock::now();
  if (mqtt_port_ == 0) {
    mqtt_port_ = pick_free_port();
    dist_port_ = pick_free_port();
    epmd_port_ = pick_free_port();
    write_files();
  }
  if (!epmd_.running()) {
    epmd_.spawn({"/usr/bin/env", "ERL_EPMD_ADDRESS=127.0.0.1", epmd_binary(), "-port",
                 std::to_string(epmd_port_), "-address", "127.0.0.1"},
                dir_ / "epmd.log");
    if (!wait_until([&] { return !epmd_.running() || tcp_port_open(epmd_port_); },
                    std::chrono::seconds(5)) ||
        !epmd_.running())
      throw std::runtime_error("epmd did not start on 127.0.0.1:" + std::to_string(epmd_port_) +
                               ": " + tail(read_file(dir_ / "epmd.log")));
  }
  const fs::path d = dir_.path();
  // rabbitmq-server (not the /usr/sbin wrapper, which switches to the rabbitmq user) with
  // RABBITMQ_ALLOW_INPUT execs erl in place, so that the PID started here is the node's
  // (beam.smp) and SIGTERM/SIGKILL reach it; -noinput keeps it from reading stdin anyway.
  node_.spawn({"/usr/bin/env",
               "HOME=" + d.string(),  // the Erlang cookie
               "RABBITMQ_CONF_ENV_FILE=" + (d / "rabbitmq-env.conf").string(),
               "RABBITMQ_NODENAME=" + node_name_, "RABBITMQ_USE_LONGNAME=false",
               "RABBITMQ_CONFIG_FILE=" + (d / "rabbitmq.conf").string(),
               "RABBITMQ_ADVANCED_CONFIG_FILE=" + (d / "advanced.config").string(),
               "RABBITMQ_ENABLED_PLUGINS_FILE=" + (d / "enabled_plugins").string(),
               "RABBITMQ_MNESIA_BASE=" + (d / "mnesia").string(),
               "RABBITMQ_LOG_BASE=" + (d / "log").string(), "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
               "RABBITMQ_DIST_PORT=" + std::to_string(dist_port_),
               "ERL_EPMD_PORT=" + std::to_string(epmd_port_), "ERL_EPMD_ADDRESS=127.0.0.1",
               "ERL_CRASH_DUMP=" + (d / "erl_crash.dump").string(), "RABBITMQ_ALLOW_INPUT=1",
               "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-noinput -kernel inet_dist_use_interface "
               "{127,0,0,1}",
               script},
              d / "rabbitmq.log");
  const bool up = wait_until(
      [&] {
        return !node_.running() ||
               (tcp_port_open(mqtt_port_) && mqtt_connack(mqtt_port_, std::chrono::seconds(2)));
      },
      timeout, std::chrono::milliseconds(50));
  last_start_ = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t0);
  if (up && node_.running()) return;
  const bool exited = !node_.running();
  node_.kill9();
  throw std::runtime_error(
      std::string("RabbitMQ node ") + node_name_ +
      (exited ? " exited while starting" : " did not answer an MQTT CONNECT in time") +
      " (MQTT port " + std::to_string(mqtt_port_) + "); log:\n" + tail(log(), 6000));
}

void RabbitMq::stop(std::chrono::milliseconds grace) {
  if (node_.pid() > 0) node_.terminate(grace);
}

void RabbitMq::kill9() {
  node_.kill9();
}

std::string RabbitMq::log() const {
  return read_file(dir_ / "rabbitmq.log");
}

}  // namespace anju::it
