// Integration test harness: real processes (mosquitto, anjud), real MQTT clients (Paho), temp dirs.
//
// Everything a test starts is owned by an object here and is stopped by its destructor, by PID;
// every temp dir is under /tmp and removed at the end (set ANJU_IT_KEEP=1 to keep them for a
// post-mortem). Nothing waits with a fixed sleep: conditions are polled against a deadline.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <mqtt/async_client.h>
#include <nlohmann/json.hpp>

namespace anju::it {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using nlohmann::json;

// Polls `pred` every `poll` until it is true or `timeout` has passed; returns its last value.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll = 10ms);

// Like wait_until, but gives up early when `progress` (any monotonic measure of work done) has not
// changed for `stall`: a stuck system fails in `stall`, a slow but moving one gets `timeout`.
bool wait_with_progress(const std::function<bool()>& pred,
                        const std::function<std::int64_t()>& progress,
                        std::chrono::milliseconds timeout, std::chrono::milliseconds stall,
                        std::chrono::milliseconds poll = 20ms);

// A fresh directory /tmp/<prefix>-XXXXXX, removed with its contents by the destructor.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "anju-it");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

std::string read_file(const fs::path& p);  // "" when missing
void write_file(const fs::path& p, const std::string& data);
std::string tail(const std::string& text, std::size_t max_bytes = 4000);

// A loopback port that was free a moment ago (bound to 127.0.0.1:0, read, closed).
int pick_free_port();
// A connected TCP socket to 127.0.0.1:port (close-on-exec; the caller closes it), or -1.
int tcp_connect_loopback(int port);
// True when a TCP connection to 127.0.0.1:port succeeds.
bool tcp_port_open(int port);

// One child process: posix_spawn, stdin from /dev/null, stdout and stderr appended to a log file,
// no other descriptor inherited. Only this PID is ever signalled.
class Child {
 public:
  Child() = default;
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  void spawn(const std::vector<std::string>& argv, const fs::path& log);
  pid_t pid() const { return pid_; }
  bool running();  // reaps the child if it has ended
  // After the child ended: its exit code, or 128 + the signal that ended it.
  std::optional<int> exit_status() const { return status_; }
  bool wait_exit(std::chrono::milliseconds timeout);
  void kill9();  // SIGKILL and reap
  // SIGTERM; after `grace` SIGKILL. Returns the exit status (128 + 9 if it had to be killed).
  int terminate(std::chrono::milliseconds grace);

 private:
  bool reap(bool block);
  pid_t pid_ = -1;
  std::optional<int> status_;
};

// Runs a shell command to completion (popen), returning its exit code and stdout+stderr.
int run_shell(const std::string& command, std::string* output);

// A private mosquitto on a loopback port. The config says: listener <port> 127.0.0.1,
// allow_anonymous, persistence false, log to stderr (which goes to a file in its temp dir), and no
// limit on queued messages per client (mosquitto's default of 1000 would silently drop QoS 1
// messages for a disconnected persistent session, which is not what the tests are about).
struct MosquittoOptions {
  bool allow_anonymous = true;
  std::string user;  // non-empty: this user/password may always connect (password file)
  std::string password;
};

class Mosquitto {
 public:
  explicit Mosquitto(MosquittoOptions options = {});
  ~Mosquitto();
  Mosquitto(const Mosquitto&) = delete;
  Mosquitto& operator=(const Mosquitto&) = delete;

  // Chooses the port now without starting, for a broker that must be configured elsewhere before
  // it runs. start() then uses exactly this port.
  int reserve_port();
  // Starts and waits (5 s) until a TCP connect succeeds; a failed start on a port picked here is
  // retried on another port. Restarting after stop() uses the same port.
  void start();
  void stop();  // SIGTERM (SIGKILL after 3 s) and reap
  bool running() { return proc_.running(); }
  // Rewrites the config with allow_anonymous changed and reloads it (SIGHUP).
  void set_allow_anonymous(bool allow);
  // From now on the broker runs on `text` instead of the config built from the options (for a
  // generated one, e.g. `anju broker-config`'s snippet): its listener must be on reserve_port().
  // "persistence false" and logging to stderr (the log file) are appended.
  void set_config(std::string text);

  int port() const { return port_; }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  std::string log() const;

 private:
  void write_config();
  MosquittoOptions options_;
  TempDir dir_{"anju-it-mosquitto"};
  int port_ = 0;
  bool port_chosen_ = false;
  std::string config_;  // set_config(): used instead of the options
  Child proc_;
};

// What the generated anjud YAML config contains.
struct GatewayConfig {
  std::string site = "demo-compound";
  std::string local_uri;
  std::string local_username_file;  // both set: anjud logs in to the local broker
  std::string local_password_file;
  std::string uplink_uri;        // empty: uplink disabled
  std::string command_key_file;  // the city's public key for signed commands (uplink)
  int evidence_per_hour = -1;    // uplink.evidence_per_hour; < 0: the default
  std::vector<std::string> event_kinds{"smoke",          "gas",          "water_leak", "contact",
                                       "device_offline", "device_online"};
  int backoff_min_ms = 100;
  int backoff_max_ms = 1000;
  int summary_interval_s = 10;
  int heartbeat_timeout_s = 0;  // off: tests run far shorter than any real timeout
  int weak_linkquality = 0;     // off
  std::string synchronous = "full";
  std::string log_level = "info";
  // The dashboard: 0 leaves it off; otherwise it listens on 127.0.0.1:<port>.
  int dashboard_port = 0;
  int dashboard_lockout_after = 5;
  int dashboard_lockout_s = 300;
  std::string dashboard_tls_cert;  // both set: HTTPS
  std::string dashboard_tls_key;
  // Another build of anjud (e.g. a test build with a fault on purpose), and NAME=value pairs for
  // its environment (e.g. NOTIFY_SOCKET): both for the process only, through env(1).
  std::string binary;
  std::vector<std::string> environment;
};
// A complete anjud YAML config: the demo site and its five devices, with the given brokers.
std::string gateway_yaml(const GatewayConfig& c);

// anjud as a child process, with its own config file, data dir and log (appended across starts).
class Anjud {
 public:
  explicit Anjud(GatewayConfig config);
  ~Anjud();
  Anjud(const Anjud&) = delete;
  Anjud& operator=(const Anjud&) = delete;

  void start();
  void kill9();
  void signal(int sig);                             // to this anjud's PID, if it is running
  int term(std::chrono::milliseconds grace = 15s);  // SIGTERM + waitpid; the exit status
  bool alive() { return proc_.running(); }
  pid_t pid() const { return proc_.pid(); }

  // The status socket's JSON, or nothing when anjud does not answer.
  std::optional<json> status() const;
  // Waits until the status socket answers and the zigbee2mqtt driver knows `devices` devices.
  bool wait_devices(std::int64_t devices, std::chrono::milliseconds timeout) const;

  const fs::path& data_dir() const { return data_dir_; }
  fs::path db_path() const { return data_dir_ / "anju.db"; }
  const fs::path& config_path() const { return config_path_; }
  std::string log() const { return read_file(log_path_); }
  const GatewayConfig& config() const { return config_; }

 private:
  GatewayConfig config_;
  TempDir dir_{"anju-it-anjud"};
  fs::path data_dir_, config_path_, log_path_;
  Child proc_;
};

// An input edge "<line> <0|1>" (or "wiegand <bits>") for the GPIO chip `chip` of the test build
// anjud_test (tests/testbuild/: its chips are FIFOs in the data dir). Throws when no anjud reads
// it.
void gpio_input(const Anjud& gw, const std::string& chip, const std::string& line);

// Adds a dashboard user to anjud's users file with the real CLI (`anju user add`, password on
// stdin). Returns the CLI's exit code; its output goes to `output` when given.
int add_dashboard_user(const Anjud& gw, const std::string& name, const std::string& role,
                       const std::string& password, std::string* output = nullptr);

// Read-only SQLite access to a journal that anjud may be writing (WAL): a new connection per call,
// so every call sees the latest commit.
std::int64_t sql_i64(const fs::path& db, const std::string& sql);
std::vector<std::string> sql_strings(const fs::path& db, const std::string& sql);

struct Message {
  std::string topic;
  std::string payload;
  bool retained = false;
};

// An MQTT subscriber (Paho async client, clean session) that records every message it gets on one
// topic filter at QoS 1. The constructor returns once the subscription is acknowledged.
class Collector {
 public:
  Collector(const std::string& uri, const std::string& filter, const std::string& user = "",
            const std::string& password = "");
  ~Collector();
  Collector(const Collector&) = delete;
  Collector& operator=(const Collector&) = delete;

  std::vector<Message> messages() const;
  std::size_t size() const;
  // Publishes on the collector's own connection and waits until it is complete. (Each new Paho
  // connection in a process that already has one costs 1-2 s: Paho's receive thread only sees a
  // new socket after its 1 s poll times out. Reusing a connection keeps the tests fast.)
  void publish(const std::string& topic, const std::string& payload, int qos, bool retain);
  // Waits until `pred` holds for the messages so far (re-checked on every arrival).
  bool wait_for(const std::function<bool(const std::vector<Message>&)>& pred,
                std::chrono::milliseconds timeout) const;
  // Like wait_for, but fails early when no message arrived for `stall`.
  bool wait_for_progress(const std::function<bool(const std::vector<Message>&)>& pred,
                         std::chrono::milliseconds timeout, std::chrono::milliseconds stall) const;

 private:
  std::unique_ptr<mqtt::async_client> client_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<Message> messages_;
};

// An MQTT publisher (Paho async client, clean session) on one connection.
class Publisher {
 public:
  explicit Publisher(const std::string& uri);
  ~Publisher();
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // Publishes and waits until it is complete (PUBACK for QoS 1).
  void publish(const std::string& topic, const std::string& payload, int qos, bool retain);
  // Publishes with at most `window` messages outstanding; flush() waits for all of them.
  void publish_windowed(const std::string& topic, const std::string& payload, int qos,
                        std::size_t window = 32);
  void flush();

 private:
  std::unique_ptr<mqtt::async_client> client_;
  std::deque<mqtt::delivery_token_ptr> pending_;
};

// One message, on its own short-lived connection, waited for.
void publish(const std::string& uri, const std::string& topic, const std::string& payload,
             int qos = 1, bool retain = false);

// The retained zigbee2mqtt/bridge/devices list of scripts/z2m-sim (coordinator + five devices).
std::string demo_devices_json();
// One bridge/devices entry for an Aqara-like end device exposing `properties`.
json z2m_device(const std::string& ieee, const std::string& name, const std::string& model,
                const std::vector<std::pair<std::string, std::string>>& properties);

}  // namespace anju::it
