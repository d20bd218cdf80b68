#include "anju/firmware/daemon.hpp"
#include "anju/edge/thread_name.hpp"

#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "anju/bridge/city_bridge.hpp"
#include "anju/bridge/uplink.hpp"
#include "anju/drivers/camera/camera_service.hpp"
#include "anju/drivers/credentials.hpp"
#include "anju/drivers/door_command.hpp"
#include "anju/drivers/z2m_driver.hpp"
#include "anju/edge/audit_log.hpp"
#include "anju/edge/door_rules.hpp"
#include "anju/edge/evidence_store.hpp"
#include "anju/edge/files.hpp"
#include "anju/edge/journal.hpp"
#include "anju/edge/lifecycle.hpp"
#include "anju/edge/mqtt.hpp"
#include "anju/edge/pipeline.hpp"
#include "anju/edge/rules.hpp"
#include "anju/firmware/check.hpp"
#include "anju/firmware/city_commands.hpp"
#include "anju/firmware/control.hpp"
#include "anju/firmware/dashboard.hpp"
#include "anju/firmware/door_commands.hpp"
#include "anju/firmware/service_notify.hpp"
#include "anju/firmware/test_event.hpp"

namespace anju::firmware {
namespace fs = std::filesystem;
using nlohmann::json;

std::vector<std::int64_t> summary_periods_ms(const SummaryConfig& summary) {
  std::vector<std::int64_t> out{static_cast<std::int64_t>(summary.interval_s) * 1000};
  auto add = [&](std::int64_t ms) {
    if (std::find(out.begin(), out.end(), ms) == out.end()) out.push_back(ms);
  };
  if (summary.hourly) add(3'600'000);
  if (summary.daily) add(86'400'000);
  return out;
}

std::set<std::string> configured_grid_cells(const Config& config) {
  std::set<std::string> cells;
  auto add = [&](const DeviceConfig& place) {
    if (!place.grid_code.empty() && place.grid_code != config.site.grid_code)
      cells.insert(place.grid_code);
  };
  for (const auto& [id, d] : config.zigbee2mqtt.devices) add(d);
  for (const auto& [eui, d] : config.chirpstack.devices) add(d.device.place);
  for (const auto& [id, d] : config.generic_mqtt.devices) add(d.place);
  for (const auto& d : config.modbus.devices) add(d.place);
  return cells;
}

std::string status_socket_path(const std::string& data_dir) {
  return data_dir + "/anjud.sock";
}
std::string journal_path(const std::string& data_dir) {
  return data_dir + "/anju.db";
}

void apply_overrides(Config& c, const DaemonOverrides& o) {
  if (!o.data_dir.empty()) c.data_dir = o.data_dir;
  if (!o.local_broker.empty()) c.local_broker.uri = o.local_broker;
  if (!o.uplink_broker.empty()) {
    c.uplink.broker.uri = o.uplink_broker;
    c.uplink.enabled = true;
  }
}

namespace {

// DevEUIs are compared in lower case, as ChirpStack writes them in topics.
std::string lower_hex(std::string s) {
  for (char& ch : s)
    if (ch >= 'A' && ch <= 'F') ch = static_cast<char>(ch - 'A' + 'a');
  return s;
}

drivers::sensors::DeviceSettings settings_of(const std::string& name, const std::string& kind,
                                             const DeviceConfig& place) {
  drivers::sensors::DeviceSettings s;
  s.name = name;
  s.kind = kind;
  s.location = {place.building, place.unit, place.room};
  s.grid_code = place.grid_code;
  s.gb28181 = place.gb28181;
  return s;
}

}  // namespace

drivers::ChirpStackOptions chirpstack_options(const Config& c) {
  drivers::ChirpStackOptions o;
  o.site = c.site.id;
  o.grid_code = c.site.grid_code;
  o.fcnt_window = static_cast<std::uint32_t>(c.chirpstack.fcnt_window);
  if (!c.chirpstack.default_mapping.empty())
    o.mappings.fallback = c.chirpstack.mappings.at(c.chirpstack.default_mapping).mapping;
  for (const auto& [name, m] : c.chirpstack.mappings)
    for (const auto& profile : m.profiles) o.mappings.by_profile[profile] = m.mapping;
  for (const auto& [eui, d] : c.chirpstack.devices) {
    const std::string id = lower_hex(eui);
    if (!d.mapping.empty()) o.mappings.by_dev_eui[id] = c.chirpstack.mappings.at(d.mapping).mapping;
    o.devices[id] = settings_of(d.device.name, d.device.kind, d.device.place);
  }
  return o;
}

drivers::GenericMqttOptions generic_mqtt_options(const Config& c) {
  drivers::GenericMqttOptions o;
  o.site = c.site.id;
  o.grid_code = c.site.grid_code;
  o.mappings = c.generic_mqtt.mappings;
  for (const auto& [id, d] : c.generic_mqtt.devices)
    o.devices[id] = settings_of(d.name, d.kind, d.place);
  return o;
}

drivers::ModbusOptions modbus_options(const Config& c) {
  drivers::ModbusOptions o;
  o.site = c.site.id;
  o.grid_code = c.site.grid_code;
  o.backoff_min_ms = c.modbus.backoff_min_ms;
  o.backoff_max_ms = c.modbus.backoff_max_ms;
  for (const auto& d : c.modbus.devices) {
    drivers::ModbusDeviceConfig m;
    m.id = d.id;
    m.kind = d.kind;
    m.transport =
        d.transport == "rtu" ? drivers::ModbusTransport::rtu : drivers::ModbusTransport::tcp;
    m.host = d.host;
    m.port = d.port;
    m.serial = {d.serial.device, d.serial.baud, d.serial.parity.empty() ? 'N' : d.serial.parity[0],
                d.serial.data_bits, d.serial.stop_bits};
    m.unit_id = static_cast<std::uint8_t>(d.unit_id);
    m.poll_interval_ms = d.poll_interval_ms;
    m.timeout_ms = d.timeout_ms;
    m.retries = d.retries;
    m.refresh_polls = d.refresh_polls;
    m.registers = d.registers;
    m.settings = settings_of(d.name, {}, d.place);
    o.devices.push_back(std::move(m));
  }
  return o;
}

drivers::osdp::Key load_scbk(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw std::runtime_error(path + ": " + std::strerror(errno));
  if ((st.st_mode & 077) != 0)
    throw std::runtime_error(path +
                             ": a Secure Channel key must be readable by its owner only "
                             "(chmod 600)");
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto b = text.find_first_not_of(" \t\r\n");
  const auto e = text.find_last_not_of(" \t\r\n");
  text = b == std::string::npos ? std::string() : text.substr(b, e - b + 1);
  drivers::osdp::Key key{};
  if (text.size() != 32 || text.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
    throw std::runtime_error(path + ": expected 32 hexadecimal digits (an AES-128 key)");
  for (std::size_t i = 0; i < key.size(); ++i)
    key[i] = static_cast<std::uint8_t>(std::stoi(text.substr(2 * i, 2), nullptr, 16));
  return key;
}

drivers::access::OsdpBusConfig osdp_bus_config(const Config& c, const OsdpBusEntry& bus,
                                               const drivers::access::PseudonymKey& site_key) {
  drivers::access::OsdpBusConfig o;
  o.name = bus.name;
  o.device = bus.device;
  o.baud = static_cast<std::uint32_t>(bus.baud);
  o.rs485_ioctl = bus.rs485;
  o.site = {c.site.id, c.site.grid_code};
  o.pseudonym_key = site_key;
  o.reply_timeout_ms = bus.reply_timeout_ms;
  o.retries = bus.retries;
  o.poll_interval_ms = bus.poll_interval_ms;
  for (const auto& r : bus.readers) {
    drivers::access::OsdpReaderConfig rc;
    rc.address = static_cast<std::uint8_t>(r.address);
    rc.endpoint.device = {r.id, "card_reader", r.name.empty() ? r.id : r.name, ""};
    rc.endpoint.location = {r.building, r.unit, r.room};
    rc.endpoint.door = r.door;
    rc.secure_channel = r.secure_channel;
    if (r.secure_channel) rc.scbk = load_scbk(r.scbk_file);
    rc.install_mode = r.install_mode;
    rc.led = static_cast<std::uint8_t>(r.led);
    rc.controls_lock = r.controls_lock;
    rc.lock_output = static_cast<std::uint8_t>(r.lock_output);
    rc.lock_pulse_ms = r.lock_pulse_ms;
    o.readers.push_back(std::move(rc));
  }
  return o;
}

GpioDoorSetup gpio_door_setup(const Config& c, const GpioDoorEntry& d,
                              const drivers::access::PseudonymKey& site_key) {
  GpioDoorSetup g;
  g.chip = d.chip;
  auto& io = g.io;
  io.site = {c.site.id, c.site.grid_code};
  io.pseudonym_key = site_key;
  io.door.device = {d.id, "door_controller", d.name.empty() ? d.id : d.name, ""};
  io.door.location = {d.building, d.unit, d.room};
  io.door.door = d.door;
  io.reader.device = {d.reader_id, "card_reader", d.reader_id, ""};
  io.reader.location = io.door.location;
  io.reader.door = d.door;
  io.debounce_ms = d.debounce_ms;
  io.lock_pulse_ms = d.lock_pulse_ms;
  auto listed = [](const std::vector<std::string>& names, const char* key) {
    return std::find(names.begin(), names.end(), key) != names.end();
  };
  auto input = [&](const std::optional<int>& offset, const char* key, std::string& name,
                   bool active_low) {
    name.clear();
    if (!offset) return;
    name = key;
    g.inputs.push_back({key, static_cast<unsigned>(*offset), active_low, listed(d.pull_up, key)});
  };
  // Wiegand idles high and pulls a line low for a bit: active-low unless an inverting stage.
  input(d.d0, "d0", io.d0, !d.wiegand_inverted);
  input(d.d1, "d1", io.d1, !d.wiegand_inverted);
  input(d.contact, "contact", io.contact, listed(d.active_low, "contact"));
  input(d.exit_button, "exit_button", io.exit_button, listed(d.active_low, "exit_button"));
  input(d.tamper, "tamper", io.tamper, listed(d.active_low, "tamper"));
  io.lock.clear();
  if (d.lock) {
    io.lock = "lock";
    g.outputs.push_back(
        {"lock", static_cast<unsigned>(*d.lock), listed(d.active_low, "lock"), false});
  }
  return g;
}

edge::RuleSettings rule_settings(const Config& c) {
  edge::RuleSettings s;
  s.battery_low_percent = c.rules.battery_low_percent;
  s.heartbeat_timeout_ms = static_cast<std::int64_t>(c.rules.heartbeat_timeout_s) * 1000;
  for (const auto& [driver, sup] : c.rules.supervision)
    s.heartbeat_by_source[driver] = sup.heartbeat_timeout_s * 1000LL;
  s.weak_linkquality = c.rules.weak_linkquality;
  s.linkquality_hysteresis = c.rules.linkquality_hysteresis;
  s.rssi_hysteresis_db = c.rules.rssi_hysteresis_db;
  s.escalate_after_ms = {0, c.rules.escalate_sev1_s * 1000LL, c.rules.escalate_sev2_s * 1000LL,
                         c.rules.escalate_sev3_s * 1000LL, c.rules.escalate_sev4_s * 1000LL};
  s.escalation_raises_severity = c.rules.escalation_raises_severity;
  for (const auto& [id, d] : c.zigbee2mqtt.devices)
    if (d.heartbeat_timeout_s) s.heartbeat_overrides[id] = *d.heartbeat_timeout_s * 1000LL;
  for (const auto& [eui, d] : c.chirpstack.devices)
    if (d.device.place.heartbeat_timeout_s)
      s.heartbeat_overrides[lower_hex(eui)] = *d.device.place.heartbeat_timeout_s * 1000LL;
  for (const auto& [id, d] : c.generic_mqtt.devices)
    if (d.place.heartbeat_timeout_s)
      s.heartbeat_overrides[id] = *d.place.heartbeat_timeout_s * 1000LL;
  for (const auto& d : c.modbus.devices)
    if (d.place.heartbeat_timeout_s)
      s.heartbeat_overrides[d.id] = *d.place.heartbeat_timeout_s * 1000LL;
  for (const auto& t : c.rules.thresholds) {
    edge::ThresholdSpec spec;
    spec.name = t.name;
    spec.kind = edge::event_kind_from_string(t.kind).value_or(edge::EventKind::temperature);
    spec.value_name = t.value;
    spec.above = t.above;
    spec.below = t.below;
    spec.rise = t.rise;
    spec.rise_window_ms = static_cast<std::int64_t>(t.rise_window_s) * 1000;
    spec.nonzero_for_ms = static_cast<std::int64_t>(t.nonzero_for_s) * 1000;
    spec.hysteresis = t.hysteresis;
    spec.hold_ms = static_cast<std::int64_t>(t.hold_s) * 1000;
    spec.severity = t.severity;
    spec.devices.insert(t.devices.begin(), t.devices.end());
    s.thresholds.push_back(std::move(spec));
  }
  for (const auto& w : c.rules.welfare) {
    edge::WelfareSpec spec;
    spec.name = w.name;
    spec.home = {w.building, w.unit, w.room};
    spec.devices = w.devices;
    spec.quiet_ms = w.quiet_h * 3'600'000LL;
    spec.severity = w.severity;
    s.welfare.push_back(std::move(spec));
  }
  for (const auto& cr : c.rules.correlations) {
    edge::CorrelationSpec spec;
    spec.name = cr.name;
    spec.rules = cr.rules;
    spec.window_ms = static_cast<std::int64_t>(cr.window_s) * 1000;
    spec.scope =
        edge::correlation_scope_from_string(cr.scope).value_or(edge::CorrelationScope::room);
    spec.severity = cr.severity;
    s.correlations.push_back(std::move(spec));
  }
  return s;
}

edge::MqttEndpoint endpoint(const BrokerConfig& b) {
  edge::MqttEndpoint ep;
  ep.uri = b.uri;
  ep.client_id = b.client_id;
  ep.mqtt_version = b.mqtt_version;
  ep.keepalive_s = b.keepalive_s;
  ep.username_file = b.username_file;
  ep.password_file = b.password_file;
  ep.tls = b.tls.enabled;
  ep.ca_file = b.tls.ca_file;
  ep.cert_file = b.tls.cert_file;
  ep.key_file = b.tls.key_file;
  ep.verify_hostname = b.tls.verify_hostname;
  return ep;
}

namespace {

// Cameras that watch other sources' doors and devices (cameras.streams[].covers): when one of
// those raises an alert, the camera's snapshot and clip become its evidence, named by the event
// that raised it (which the open alert lists, so the evidence is kept while it is open).
class CameraCoverHook final : public edge::PipelineHook {
 public:
  CameraCoverHook(drivers::camera::CameraService& cameras,
                  const std::vector<drivers::camera::StreamConfig>& streams)
      : cameras_(cameras) {
    for (const auto& st : streams) {
      own_.insert(st.id);
      for (const auto& c : st.covers) covers_[c].push_back(st.id);
    }
  }
  bool empty() const { return covers_.empty(); }

  void after_commit(const std::vector<edge::Event>& events,
                    const std::vector<edge::AlertChange>& changes) override {
    for (const auto& ch : changes) {
      if (ch.type != edge::AlertChangeType::raised || ch.alert.event_ids.empty()) continue;
      if (own_.count(ch.alert.device.id)) continue;  // a camera's own alert has its evidence
      const std::string& cause_id = ch.alert.event_ids.front();
      edge::Event cause;
      for (const auto& e : events)
        if (e.id == cause_id) cause = e;
      if (cause.id.empty()) {  // raised by a tick: what the alert says is enough
        cause.id = cause_id;
        cause.kind = ch.alert.kind;
        cause.device = ch.alert.device;
        cause.ts_ms = ch.alert.first_seen_ms;
      }
      std::set<std::string> streams;
      auto add = [&](const std::string& key) {
        if (key.empty()) return;
        if (auto it = covers_.find(key); it != covers_.end())
          streams.insert(it->second.begin(), it->second.end());
      };
      add(ch.alert.device.id);
      add(ch.alert.device.name);
      if (cause.attrs.is_object()) add(cause.attrs.value("door", ""));
      for (const auto& st : streams) cameras_.capture_evidence(st, cause);
    }
  }

 private:
  drivers::camera::CameraService& cameras_;
  std::set<std::string> own_;
  std::map<std::string, std::vector<std::string>> covers_;
};

// The registry as stored, for the rules' supervision after a restart.
std::vector<edge::KnownDevice> known_devices(edge::Db& db) {
  std::vector<edge::KnownDevice> out;
  for (auto& d : edge::load_devices(db))
    if (d.last_seen_ms > 0)
      out.push_back(
          {std::move(d.device), std::move(d.source), d.last_seen_ms, d.state == "offline"});
  return out;
}

std::vector<std::string> recent_source_keys(const std::string& db_path) {
  std::vector<std::string> keys;
  auto db = edge::open_reader(db_path);
  auto st = db.prepare("SELECT body FROM events ORDER BY seq DESC LIMIT 4096");
  while (st.step()) {
    auto r = edge::decode_stored(st.str(0));
    if (r.event && !r.event->source_key.empty()) keys.push_back(r.event->source_key);
  }
  std::reverse(keys.begin(), keys.end());
  return keys;
}

// Publishes every alert change on the local bus (retained while open) and logs it.
class LocalAlertPublisher final : public edge::PipelineHook {
 public:
  LocalAlertPublisher(edge::LocalBus& bus, std::string site) : bus_(bus), site_(std::move(site)) {}
  std::string topic(const edge::Alert& a) const { return "anju/" + site_ + "/alert/" + a.alert_id; }
  void publish(const edge::Alert& a, const std::string& json = {}) {
    std::string body = json.empty() ? to_json(a).dump() : json;
    if (a.open()) {
      bus_.publish(topic(a), std::move(body), 1,
                   true);  // retained while open: a new client sees it
      return;
    }
    // Closed: announce it, then clear the retained copy (an empty retained message deletes it).
    bus_.publish(topic(a), body, 1, false);
    bus_.publish(topic(a), "", 1, true);
  }
  // The broker's retained copies may be stale: after a reconnect (a restarted broker lost them),
  // or after a full queue dropped retained publishes (`stale`: an alert's clearing may be among
  // them). Called on Paho's thread, which must not wait for the pipeline (Paho holds its own
  // lock in callbacks, and the pipeline publishes under it): the next tick does the work.
  void request_resync(const std::vector<std::string>& stale) {
    std::lock_guard lock(resync_mu_);
    resync_ = true;
    stale_.insert(stale.begin(), stale.end());
  }
  // Pipeline thread, like after_commit: every open alert is published again, and each stale
  // topic that is no open alert's is deleted. What the journal says now is the newest state, and
  // any later change is published after this.
  void on_tick(edge::Journal& journal, std::int64_t) override {
    {
      std::lock_guard lock(resync_mu_);
      if (!resync_) return;
    }
    const auto alerts = edge::load_alerts(journal.db(), true);  // if it throws: the next tick
    std::set<std::string> stale;
    {
      std::lock_guard lock(resync_mu_);
      resync_ = false;
      stale.swap(stale_);
    }
    edge::LocalBus::Batch batch(bus_);
    std::set<std::string> open;
    for (const auto& a : alerts) {
      publish(a);
      open.insert(topic(a));
    }
    const std::string prefix = "anju/" + site_ + "/alert/";
    for (const auto& t : stale)
      if (t.rfind(prefix, 0) == 0 && !open.count(t)) bus_.publish(t, "", 1, true);
  }
  void after_commit(const std::vector<edge::Event>&,
                    const std::vector<edge::AlertChange>& changes) override {
    if (changes.empty()) return;
    {
      // Queued together, handed to Paho together; logged after that, not in between.
      edge::LocalBus::Batch batch(bus_);
      for (const auto& c : changes) publish(c.alert, c.json);
    }
    for (const auto& c : changes) {
      // Repeats of an open alert are logged at debug: a detector alarming every few seconds must
      // not fill the log.
      spdlog::log(
          c.type == edge::AlertChangeType::repeated ? spdlog::level::debug : spdlog::level::info,
          "ALERT {} sev{} {}: {} (count {}, {})", to_string(c.type), c.alert.severity, c.alert.rule,
          c.alert.message, c.alert.count, c.alert.alert_id);
    }
  }

 private:
  edge::LocalBus& bus_;
  std::string site_;
  std::mutex resync_mu_;  // resync_ and stale_, set on Paho's thread
  bool resync_ = false;
  std::set<std::string> stale_;
};

// The local control socket (control.hpp): one request per connection, each on a thread of its
// own (a test event waits for the city for up to minutes; status must still answer meanwhile),
// at most kMaxClients at once.
class ControlServer {
 public:
  using Send = std::function<bool(const json&)>;
  using Handler = std::function<void(const std::string& request, const Send& send)>;
  ControlServer(std::string path, Handler handler)
      : path_(std::move(path)), handler_(std::move(handler)) {}
  ~ControlServer() { stop(); }
  void start() {
    ::unlink(path_.c_str());
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path_.size() >= sizeof(addr.sun_path)) {
      spdlog::warn("control socket path too long: {}", path_);
      return;
    }
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0 || ::listen(fd_, 8) < 0) {
      spdlog::warn("control socket {}: {}", path_, std::strerror(errno));
      return;
    }
    thread_ = std::thread([this, fd = fd_] {
      edge::name_this_thread("anju-control");
      for (;;) {
        const int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) {
          if (errno == EINTR) continue;
          return;  // shut down by stop()
        }
        reap();
        std::lock_guard lock(mu_);
        if (clients_.size() >= kMaxClients) {
          const std::string busy =
              json{{"error", "anjud is busy with other control requests; try again"}}.dump() + "\n";
          (void)!::write(c, busy.data(), busy.size());
          ::close(c);
          continue;
        }
        auto done = std::make_shared<std::atomic<bool>>(false);
        clients_.push_back({std::thread([this, c, done] {
                              serve(c);
                              done->store(true);
                            }),
                            done});
      }
    });
  }
  void stop() {
    // Wake the accept() with shutdown, join, and only then close: the thread never sees the
    // descriptor closed (or reused) under it. Handlers end within their own deadlines.
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    std::vector<Client> clients;
    {
      std::lock_guard lock(mu_);
      clients.swap(clients_);
    }
    for (auto& cl : clients) cl.thread.join();
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    ::unlink(path_.c_str());
  }

 private:
  static constexpr std::size_t kMaxClients = 4;
  struct Client {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  void reap() {
    std::lock_guard lock(mu_);
    for (auto it = clients_.begin(); it != clients_.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = clients_.erase(it);
      } else {
        ++it;
      }
    }
  }
  void serve(int c) {
    // The request: what the client writes before shutting down its side, read for at most
    // 300 ms (a client that sends nothing at all, like older ones, asks for the status).
    std::string request;
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      pollfd p{c, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
      char buf[1024];
      const ssize_t n = ::read(c, buf, sizeof buf);
      if (n <= 0) break;
      request.append(buf, static_cast<std::size_t>(n));
      if (request.size() > kMaxControlRequestBytes) break;
    }
    const Send send = [c](const json& j) {
      const std::string line = j.dump() + "\n";
      return ::send(c, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size());
    };
    try {
      handler_(request, send);
    } catch (const std::exception& e) {
      send(json{{"error", e.what()}});
    }
    ::close(c);
  }

  std::string path_;
  Handler handler_;
  int fd_ = -1;
  std::thread thread_;
  std::mutex mu_;
  std::vector<Client> clients_;  // guarded by mu_
};

}  // namespace

int run_daemon(const Config& config, std::atomic<bool>* stop_flag, const DaemonExtras* extras) {
  // Signals are taken by this thread only (sigtimedwait below); every stage thread inherits the
  // mask, so none of them is interrupted.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  fs::create_directories(config.data_dir);
  // The text of the config in use: rules.update edits it (a trial's file is renamed once kept).
  const std::string running_yaml = config_text(config);
  const std::string config_source = extras ? extras->config_source : std::string("file");
  std::optional<ConfigRequest> trial = extras ? extras->config_trial : std::nullopt;
  const std::optional<ConfigRequest> trial_request = trial;  // for the status socket
  std::atomic<bool> on_trial{trial.has_value()};             // until kept or rolled back
  std::atomic<std::int64_t> audit_seq{0};                    // the audit log's last line
  std::atomic<bool> restart_requested{false};
  edge::SystemClock system_clock;
  const edge::Clock& clock = extras && extras->clock ? *extras->clock : system_clock;

  edge::JournalOptions jo;
  jo.path = journal_path(config.data_dir);
  jo.synchronous_full = config.journal.synchronous == "full";
  jo.retention_days = config.journal.retention_days;
  jo.alert_retention_days = config.journal.alert_retention_days;
  jo.max_bytes = config.journal.max_bytes;
  edge::OpenReport report;
  auto journal = edge::Journal::open(jo, &report);
  journal->start_checkpointer();
  if (report.recovered_from_corruption)
    spdlog::critical("the journal was corrupt ({}); kept as {} for inspection", report.reason,
                     report.moved_to);

  const edge::RuleSettings settings = rule_settings(config);
  edge::RuleEngine rules(settings);
  rules.restore(edge::load_alerts(journal->db(), true), known_devices(journal->db()),
                clock.wall_ms());
  if (!config.rules.welfare.empty()) {
    // A watched home's quiet time runs from its last activity, across restarts.
    int longest_h = 0;
    for (const auto& w : config.rules.welfare) longest_h = std::max(longest_h, w.quiet_h);
    rules.restore_activity(edge::last_event_by_device(journal->db(),
                                                      edge::RuleEngine::activity_kinds(),
                                                      clock.wall_ms() - longest_h * 3'600'000LL));
  }
  if (auto saved = edge::meta_get(journal->db(), "maintenance_windows")) {
    std::vector<edge::MaintenanceWindow> windows;
    const auto j = json::parse(*saved, nullptr, false);
    if (j.is_array())
      for (const auto& w : j)
        if (auto mw = edge::maintenance_from_json(w)) windows.push_back(*mw);
    rules.restore_maintenance(std::move(windows));
  }

  edge::PipelineOptions po;
  po.inbox_dir = config.data_dir + "/inbox";
  po.commit_window_ms = config.journal.commit_window_ms;
  po.quiet_commit_ms = config.journal.quiet_commit_ms;
  po.max_batch = config.journal.max_batch;
  edge::Pipeline pipeline(*journal, rules, clock, po);

  bridge::OutboxCounters counters;
  TestEventTracker test_events;  // anju test-event: follows a test from submission to PUBACK
  std::atomic<bridge::CityBridge*> city_ptr{nullptr};
  std::atomic<CityCommands*> city_commands{nullptr};
  std::unique_ptr<bridge::Uplink> uplink;
  if (config.uplink.enabled) {
    bridge::UplinkOptions uo;
    uo.endpoint = endpoint(config.uplink.broker);
    uo.db_path = jo.path;
    uo.site = config.site.id;
    uo.grid_code = config.site.grid_code;
    uo.division_code = config.site.division_code;
    uo.window = config.uplink.window;
    uo.backoff_min_ms = config.uplink.backoff_min_ms;
    uo.backoff_max_ms = config.uplink.backoff_max_ms;
    uo.on_acked = [&city_ptr, &test_events](
                      const std::vector<std::pair<std::int64_t, bridge::MsgClass>>& rows) {
      if (auto* c = city_ptr.load()) c->acked(rows);
      test_events.acked(rows);
    };
    // Commands from the city: handled by city_commands (set below, before the uplink starts).
    uo.command_filter = "anju/v1/" + config.site.id + "/cmd/#";  // CityCommands::filter()
    uo.on_command = [&city_commands](const edge::LocalBus::Message& m) {
      if (auto* h = city_commands.load()) h->handle(m);
    };
    // A refused TLS handshake says only "TCP/TLS connect failure" in Paho's words: probe it the
    // way anju check does, so that the log names the CA, the expiry or the host name to fix.
    uo.explain_connect_failure = [&config](const std::string& error) {
      const auto probe = probe_tls(config.uplink.broker, std::chrono::milliseconds(3000));
      const auto r = evaluate_city_broker(config.uplink, config.source_file, probe);
      if (r.status != CheckStatus::fail) return error;
      return r.message + (r.fix.empty() ? "" : " -- fix: " + r.fix);
    };
    uplink = std::make_unique<bridge::Uplink>(uo, counters);
  }
  bridge::CityBridgeOptions bo;
  bo.site = config.site.id;
  bo.grid_code = config.site.grid_code;
  bo.division_code = config.site.division_code;
  for (const auto& k : config.uplink.event_kinds)
    if (auto kind = edge::event_kind_from_string(k)) bo.event_kinds.insert(*kind);
  bo.budget_bytes = {0, config.uplink.outbox.status_bytes, config.uplink.outbox.summary_bytes,
                     config.uplink.outbox.event_bytes};
  bo.summary_periods_ms = summary_periods_ms(config.summary);
  bo.summary_backfill_ms = static_cast<std::int64_t>(config.summary.backfill_hours) * 3'600'000;
  bo.grid_cells = configured_grid_cells(config);
  bo.on_alert_queued = [&test_events](const edge::AlertChange& c, std::int64_t oid) {
    test_events.alert_queued(c, oid);
  };
  bridge::CityBridge city(bo, *journal, counters, uplink.get());
  city_ptr = &city;

  edge::LocalBus bus(endpoint(config.local_broker));
  LocalAlertPublisher local_alerts(bus, config.site.id);
  // The test tracker first: it stamps the commit before the others' after_commit run (the
  // uplink may have the city's PUBACK before the local bus publish returns).
  pipeline.add_hook(&test_events);
  pipeline.add_hook(&city);
  pipeline.add_hook(&local_alerts);
  if (extras)
    for (auto* h : extras->hooks) pipeline.add_hook(h);
  // The door rules (forced, held open, tailgating, repeated denials) derive events from what the
  // access drivers and door contacts report.
  edge::DoorRules door_rules(edge::DoorRuleSettings{}, clock);
  pipeline.add_deriver(&door_rules);

  std::unique_ptr<drivers::Zigbee2MqttDriver> z2m;
  if (config.zigbee2mqtt.enabled) {
    drivers::Z2mOptions zo;
    zo.base_topic = config.zigbee2mqtt.base_topic;
    zo.site = config.site.id;
    zo.grid_code = config.site.grid_code;
    zo.report_unchanged = config.zigbee2mqtt.report_unchanged;
    // A device that checks in unchanged is heard at least three times per heartbeat timeout.
    std::int64_t refresh_ms = config.zigbee2mqtt.refresh_s * 1000LL;
    std::int64_t shortest = settings.heartbeat_timeout_ms;
    if (auto it = settings.heartbeat_by_source.find("zigbee2mqtt");
        it != settings.heartbeat_by_source.end())
      shortest = it->second;
    for (const auto& [id, d] : config.zigbee2mqtt.devices)
      if (d.heartbeat_timeout_s && *d.heartbeat_timeout_s > 0)
        shortest = shortest > 0 ? std::min<std::int64_t>(shortest, *d.heartbeat_timeout_s * 1000LL)
                                : *d.heartbeat_timeout_s * 1000LL;
    if (refresh_ms > 0 && shortest > 0) refresh_ms = std::min(refresh_ms, shortest / 3);
    zo.refresh_ms = refresh_ms;
    zo.state_file = config.data_dir + "/zigbee2mqtt-devices.json";
    for (const auto& [id, d] : config.zigbee2mqtt.devices)
      zo.devices[id] = {{d.building, d.unit, d.room}, d.grid_code, d.gb28181};
    z2m = std::make_unique<drivers::Zigbee2MqttDriver>(
        zo, clock,
        [&pipeline](std::vector<edge::Event> ev) { return pipeline.submit(std::move(ev)); });
    bus.subscribe(z2m->subscription(), [&](const edge::LocalBus::Message& m) {
      z2m->handle(m.topic, m.payload, m.source_key);
    });
  }
  // The other sensor drivers (issue 6): each subscribes on the local bus (or polls, Modbus) and
  // submits what it parsed, like zigbee2mqtt.
  auto sink = [&pipeline](std::vector<edge::Event> ev) { return pipeline.submit(std::move(ev)); };
  std::unique_ptr<drivers::ChirpStackDriver> chirpstack;
  if (config.chirpstack.enabled) {
    chirpstack =
        std::make_unique<drivers::ChirpStackDriver>(chirpstack_options(config), clock, sink);
    chirpstack->attach(bus);
  }
  std::unique_ptr<drivers::GenericMqttDriver> generic;
  if (config.generic_mqtt.enabled && !config.generic_mqtt.mappings.empty()) {
    generic =
        std::make_unique<drivers::GenericMqttDriver>(generic_mqtt_options(config), clock, sink);
    generic->attach(bus);
  }
  std::unique_ptr<drivers::ModbusDriver> modbus;
  if (config.modbus.enabled && !config.modbus.devices.empty())
    modbus = std::make_unique<drivers::ModbusDriver>(modbus_options(config), clock, sink);

  // Cameras (issue 5): one capture thread per stream, analysed at its rate on the gateway. The
  // driver is a module that brings OpenCV, loaded only here. A module that cannot be loaded stops
  // the cameras, not the gateway: each stream is reported offline with the reason (an alert for
  // property management and the city), and the smoke detectors go on working.
  std::unique_ptr<drivers::camera::CameraService> cameras;
  std::string camera_error;
  const fs::path evidence_dir = fs::path(config.data_dir) / "evidence";
  if (!config.cameras.streams.empty()) {
    drivers::camera::CameraDriverOptions co;
    co.site = config.site.id;
    co.grid_code = config.site.grid_code;
    co.streams = config.cameras.streams;
    if (config.cameras.evidence.enabled) {
      co.evidence.dir = evidence_dir.string();
      co.evidence.pre_s = config.cameras.evidence.pre_s;
      co.evidence.post_s = config.cameras.evidence.post_s;
      co.evidence.jpeg_quality = config.cameras.evidence.jpeg_quality;
      co.evidence.max_width = config.cameras.evidence.max_width;
      co.evidence.max_height = config.cameras.evidence.max_height;
      co.evidence.min_interval_s = config.cameras.evidence.min_interval_s;
      std::error_code ec;
      fs::create_directories(evidence_dir, ec);
      if (ec)
        spdlog::error("cameras: cannot make the evidence directory {}: {}", evidence_dir.string(),
                      ec.message());
    }
    auto loaded = drivers::camera::load_camera_driver(co, clock, sink, config.cameras.module);
    cameras = std::move(loaded.service);
    camera_error = std::move(loaded.error);
    if (cameras)
      spdlog::info("cameras: {} streams, driver from {}", config.cameras.streams.size(),
                   loaded.path);
    else
      spdlog::error("cameras: {} streams configured but not watched: {}",
                    config.cameras.streams.size(), camera_error);
  }

  // Access control (issue 4): OSDP readers decide locally from the credentials file, on their
  // own I/O threads (a decision never waits for the journal or the city). A key or credentials
  // file that cannot be used stops anjud at start with the file named: running without it would
  // deny every resident at the gate.
  drivers::access::CredentialBook credentials;
  // The list the city syncs (credentials.sync) is kept in the data dir and, once there, is the
  // one in use: the city manages the list from then on; the config's file is its first version.
  const std::string city_credentials =
      (fs::path(config.data_dir) / "credentials.city.json").string();
  auto credentials_path = [&]() -> std::string {
    std::error_code ec;
    return fs::exists(city_credentials, ec) ? city_credentials : config.access.credentials_file;
  };
  std::mutex credentials_sync_mu;  // one sync at a time
  std::vector<std::unique_ptr<drivers::access::OsdpControlPanel>> osdp;
  // Doors on GPIO lines: a chip that cannot be opened leaves that door unwatched, reported
  // (device_offline and anju status) rather than stopping the compound's other doors.
  std::vector<std::unique_ptr<drivers::access::DoorIoDriver>> gpio_doors;
  std::vector<std::string> gpio_errors(config.access.gpio_doors.size());
  const bool access_control = !config.access.osdp.empty() || !config.access.gpio_doors.empty();
  if (access_control) {
    drivers::access::PseudonymKey site_key{};
    if (!config.access.site_key_file.empty()) {
      const auto key = drivers::access::load_site_key(config.access.site_key_file);
      if (!key.key) throw std::runtime_error("access.site_key_file: " + key.error);
      site_key = *key.key;
    }
    if (const std::string path = credentials_path(); !path.empty()) {
      auto list = drivers::access::load_credentials(path);
      if (!list.list) {
        std::string all;
        for (const auto& e : list.errors) all += "\n  " + e;
        throw std::runtime_error(
            (path == config.access.credentials_file ? "access.credentials_file: " : "") + all);
      }
      credentials.replace(std::move(*list.list));
      spdlog::info("access: {} credentials from {}{}", credentials.size(), path,
                   path == city_credentials ? " (the city's list, version " +
                                                  std::to_string(credentials.sync_version()) + ")"
                                            : "");
    } else {
      spdlog::warn("access: no credentials_file; every card read is recorded and denied");
    }
    for (const auto& osdp_bus : config.access.osdp)
      osdp.push_back(std::make_unique<drivers::access::OsdpControlPanel>(
          osdp_bus_config(config, osdp_bus, site_key), clock,
          [&pipeline](std::vector<edge::Event> ev) { pipeline.submit(std::move(ev)); },
          credentials.decider()));
    const GpioOpener open_gpio = extras && extras->open_gpio
                                     ? extras->open_gpio
                                     : GpioOpener(drivers::access::open_libgpiod);
    for (std::size_t i = 0; i < config.access.gpio_doors.size(); ++i) {
      const auto& d = config.access.gpio_doors[i];
      auto setup = gpio_door_setup(config, d, site_key);
      try {
        gpio_doors.push_back(std::make_unique<drivers::access::DoorIoDriver>(
            setup.io, clock, open_gpio(setup.chip, setup.inputs, setup.outputs),
            [&pipeline](std::vector<edge::Event> ev) { pipeline.submit(std::move(ev)); },
            credentials.decider()));
        spdlog::info("access: door {} on {} ({} inputs{})", d.door, d.chip, setup.inputs.size(),
                     setup.outputs.empty() ? "" : ", a lock");
      } catch (const std::exception& e) {
        gpio_errors[i] = e.what();
        gpio_doors.push_back(nullptr);
        spdlog::error("access: door {} is not watched: {}", d.door, gpio_errors[i]);
      }
    }
  }

  // Life-cycle commands from property management on the local bus:
  // anju/<site>/cmd/alert/<alert_id>, answered on the MQTT 5 response topic (with the correlation
  // data) or, for MQTT 3.1.1 clients, on the payload's reply_to.
  const std::string cmd_prefix = "anju/" + config.site.id + "/cmd/alert/";
  bus.subscribe(cmd_prefix + "+", [&bus, &pipeline, cmd_prefix](const edge::LocalBus::Message& m) {
    auto parsed =
        edge::parse_alert_command(m.topic.substr(cmd_prefix.size()), m.payload, "local_mqtt");
    std::string reply = m.response_topic;
    const std::string corr = m.correlation_data;
    if (!parsed.command) {
      spdlog::warn("alert command on {} refused: {}", m.topic, parsed.error);
      if (reply.empty()) {
        // Still answer a 3.1.1 client that named where it listens, if that much can be read.
        const auto j = json::parse(m.payload, nullptr, false);
        if (j.is_object() && j.contains("reply_to") && j["reply_to"].is_string())
          reply = j["reply_to"].get<std::string>();
      }
      if (!reply.empty() && reply.find_first_of("+#") == std::string::npos)
        bus.publish(reply, json{{"ok", false}, {"error", parsed.error}}.dump(), 1, false, corr);
      return;
    }
    if (reply.empty()) reply = parsed.command->reply_to;
    const std::string request_id = parsed.command->request_id;
    const bool accepted = pipeline.submit_command(
        std::move(*parsed.command),
        [&bus, reply, corr, request_id](const edge::CommandResult& r, bool duplicate) {
          if (reply.empty()) return;
          json j{{"request_id", request_id}, {"ok", r.ok}, {"duplicate", duplicate}};
          if (!r.error.empty()) j["error"] = r.error;
          if (r.alert) j["alert"] = to_json(*r.alert);
          bus.publish(reply, j.dump(), 1, false, corr);
        });
    if (!accepted && !reply.empty())
      bus.publish(reply,
                  json{{"request_id", request_id}, {"ok", false}, {"error", "stopping"}}.dump(), 1,
                  false, corr);
  });

  // Maintenance windows: anju/<site>/cmd/maintenance, answered like alert commands.
  const std::string maint_topic = "anju/" + config.site.id + "/cmd/maintenance";
  bus.subscribe(maint_topic, [&bus, &pipeline](const edge::LocalBus::Message& m) {
    auto parsed = edge::parse_maintenance_command(m.payload, "local_mqtt");
    std::string reply = m.response_topic;
    const std::string corr = m.correlation_data;
    if (parsed.command && reply.empty()) reply = parsed.command->reply_to;
    if (!parsed.command) {
      spdlog::warn("maintenance command refused: {}", parsed.error);
      if (!reply.empty())
        bus.publish(reply, json{{"ok", false}, {"error", parsed.error}}.dump(), 1, false, corr);
      return;
    }
    const std::string request_id = parsed.command->request_id;
    pipeline.submit_maintenance(
        std::move(*parsed.command),
        [&bus, reply, corr, request_id](const edge::CommandResult& r, bool duplicate) {
          if (reply.empty()) return;
          json j{{"request_id", request_id}, {"ok", r.ok}, {"duplicate", duplicate}};
          if (!r.error.empty()) j["error"] = r.error;
          bus.publish(reply, j.dump(), 1, false, corr);
        });
  });

  // Door commands (issue 4): anju/<site>/cmd/door/<door> (open) and cmd/door_group/<group>
  // (lockdown, release), answered like alert commands; each one audited (door_commands.hpp).
  std::unique_ptr<DoorCommands> door_cmds;
  if (access_control) {
    door_cmds = std::make_unique<DoorCommands>(
        config.site.id, config.site.grid_code, clock, credentials,
        [&osdp, &gpio_doors](const std::string& door) {
          int n = 0;
          for (auto& panel : osdp) n += panel->open_door(door);
          for (auto& g : gpio_doors)
            if (g) n += g->open_door(door);
          return n;
        },
        [&pipeline](edge::Event e) { return pipeline.submit(std::move(e)); },
        (fs::path(config.data_dir) / "door_lockdowns.json").string());
    for (const auto& g : door_cmds->restore())
      spdlog::warn("access: door group {} is locked down (by a command before this start)", g);
    const std::string door_prefix = "anju/" + config.site.id + "/cmd/";
    auto on_door_command = [&bus, &door_cmds, door_prefix](const edge::LocalBus::Message& m) {
      const std::string rest = m.topic.substr(door_prefix.size());
      const auto slash = rest.find('/');
      auto parsed = drivers::access::parse_door_command(
          rest.substr(0, slash), slash == std::string::npos ? "" : rest.substr(slash + 1),
          m.payload, "local_mqtt");
      std::string reply = m.response_topic;
      if (parsed.command && reply.empty()) reply = parsed.command->reply_to;
      json answer;
      if (!parsed.command) {
        spdlog::warn("door command on {} refused: {}", m.topic, parsed.error);
        std::string level = rest.substr(0, 128);
        for (char& ch : level)
          if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) > 0x7e)
            ch = '?';
        door_cmds->refused(level, parsed.error);
        answer = {{"ok", false}, {"error", parsed.error}};
      } else {
        answer = door_cmds->handle(*parsed.command);
      }
      if (!reply.empty() && reply.find_first_of("+#") == std::string::npos)
        bus.publish(reply, answer.dump(), 1, false, m.correlation_data);
    };
    bus.subscribe(door_prefix + "door/+", on_door_command);
    bus.subscribe(door_prefix + "door_group/+", on_door_command);
  }

  // After every (re)connect the local bus gets the open alerts again (retained), so a restarted
  // broker or a new dashboard sees the same state; after a full queue dropped retained alert
  // publishes, the same, and the closed alerts among them are deleted from the broker.
  bus.on_connected([&] { local_alerts.request_resync({}); });
  bus.on_stale_retained(
      [&](const std::vector<std::string>& stale) { local_alerts.request_resync(stale); });

  std::mutex evidence_mu;  // evidence_stats: the last prune, for the status socket
  edge::EvidencePrune evidence_stats;
  std::int64_t evidence_deleted = 0;  // since start
  auto status_json = [&]() {
    const auto ps = pipeline.stats();
    json j;
    j["site"] = config.site.id;
    j["pid"] = static_cast<std::int64_t>(::getpid());
    j["audit_log"] = {{"last_seq", audit_seq.load()},
                      {"dir", (fs::path(config.data_dir) / "audit").string()}};
    // A trial that passed runs on as the city's config (its file renamed).
    if (on_trial)
      j["config"] = {{"source", "trial"},
                     {"file", config.source_file},
                     {"request_id", trial_request->request_id},
                     {"health_timeout_s", trial_request->health_timeout_s}};
    else if (trial_request)
      j["config"] = {{"source", "city"},
                     {"file", (fs::path(config.data_dir) / "config.city.yaml").string()}};
    else
      j["config"] = {{"source", config_source}, {"file", config.source_file}};
    j["pipeline"] = {{"queue_depth", ps.queue_depth},
                     {"queue_capacity", ps.queue_capacity},
                     {"submitted", ps.submitted},
                     {"committed", ps.committed},
                     {"batches", ps.batches},
                     {"replayed", ps.replayed},
                     {"commit_failures", ps.commit_failures},
                     {"last_seq", ps.last_seq},
                     {"retention_deleted", ps.retention_deleted}};
    j["alerts_open"] = ps.alerts_open;
    j["clock"] = {{"synced", clock.synced()}, {"wall_ms", clock.wall_ms()}};
    json ob = json::object();
    for (int c = 0; c < bridge::kClasses; ++c) {
      ob[std::string(bridge::to_string(static_cast<bridge::MsgClass>(c)))] = {
          {"rows", counters.rows[c].load()},
          {"bytes", counters.bytes[c].load()},
          {"evicted", counters.evicted[c].load()},
          {"sent", counters.sent[c].load()}};
    }
    j["outbox"] = ob;
    if (uplink) {
      const auto us = uplink->stats();
      j["uplink"] = {{"connected", us.connected},
                     {"connects", us.connects},
                     {"connect_failures", us.connect_failures},
                     {"published", us.published},
                     {"acked", us.acked},
                     {"inflight", us.inflight},
                     {"window", us.window},
                     {"next_retry_ms", us.next_retry_ms},
                     {"commands", us.commands},
                     {"responses", us.responses},
                     {"last_error", us.last_error}};
    } else {
      j["uplink"] = {{"enabled", false}};
    }
    j["local_bus"] = {{"connected", bus.connected()},
                      {"messages_in", bus.messages_in()},
                      {"redeliveries_dropped", bus.redeliveries_dropped()},
                      {"publish_queued", bus.publish_queued()},
                      {"window", bus.window()},
                      {"publish_dropped", bus.publish_dropped()},
                      {"retained_resynced", bus.retained_resynced()}};
    if (z2m) {
      const auto zs = z2m->stats();
      j["zigbee2mqtt"] = {{"messages", zs.messages},
                          {"events", zs.events},
                          {"parse_errors", zs.parse_errors},
                          {"unknown_device", zs.unknown_device},
                          {"devices", zs.devices}};
    }
    if (chirpstack) {
      const auto cs = chirpstack->stats();
      j["chirpstack"] = {{"messages", cs.messages},
                         {"events", cs.events},
                         {"parse_errors", cs.parse_errors},
                         {"duplicates", cs.duplicates},
                         {"fcnt_resets", cs.fcnt_resets},
                         {"ignored", cs.ignored},
                         {"errors_by_reason", cs.errors_by_reason}};
    }
    if (generic) {
      const auto gs = generic->stats();
      j["generic_mqtt"] = {{"messages", gs.messages},
                           {"events", gs.events},
                           {"parse_errors", gs.parse_errors},
                           {"unmatched", gs.unmatched},
                           {"errors_by_reason", gs.errors_by_reason},
                           {"messages_by_mapping", gs.messages_by_mapping}};
    }
    if (!osdp.empty()) {
      json buses = json::array();
      for (std::size_t i = 0; i < osdp.size(); ++i) {
        const auto os = osdp[i]->stats();
        json readers = json::array();
        for (const auto& r : osdp[i]->readers())
          readers.push_back({{"address", r.address},
                             {"id", r.device_id},
                             {"online", r.online},
                             {"secure", r.secure},
                             {"phase", r.phase},
                             {"last_error", r.last_error}});
        buses.push_back({{"name", config.access.osdp[i].name},
                         {"commands", os.commands},
                         {"replies", os.replies},
                         {"resends", os.resends},
                         {"bad_frames", os.bad_frames},
                         {"card_reads", os.card_reads},
                         {"refused_reads", os.refused_reads},
                         {"sc_failures", os.sc_failures},
                         {"readers", readers}});
      }
      j["osdp"] = buses;
    }
    if (!gpio_doors.empty()) {
      json doors = json::array();
      for (std::size_t i = 0; i < gpio_doors.size(); ++i) {
        const auto& d = config.access.gpio_doors[i];
        json o{{"door", d.door},
               {"id", d.id},
               {"chip", d.chip},
               {"watched", gpio_doors[i] != nullptr}};
        if (!gpio_doors[i]) {
          o["last_error"] = gpio_errors[i];
        } else {
          const auto st = gpio_doors[i]->status();
          o["open"] = st.open ? json(*st.open) : json(nullptr);
          o["lock_active"] = st.lock_active;
          o["card_reads"] = st.card_reads;
          o["granted"] = st.granted;
          o["denied"] = st.denied;
          o["bad_frames"] = st.bad_frames;
          o["remote_opens"] = st.remote_opens;
        }
        doors.push_back(std::move(o));
      }
      j["gpio_doors"] = doors;
    }
    if (access_control) {
      j["credentials"] = static_cast<std::int64_t>(credentials.size());
      j["credentials_version"] = credentials.sync_version();
      j["locked_down"] = credentials.locked_down();
    }
    if (!config.cameras.streams.empty()) {
      json cams = json::array();
      if (cameras) {
        for (const auto& c : cameras->stats())
          cams.push_back({{"id", c.id},
                          {"online", c.online},
                          {"frames_read", c.frames_read},
                          {"frames_analysed", c.frames_analysed},
                          {"events", c.events},
                          {"connects", c.connects},
                          {"failures", c.failures},
                          {"last_error", c.last_error}});
      } else {
        for (const auto& st : config.cameras.streams)
          cams.push_back({{"id", st.id},
                          {"online", false},
                          {"frames_read", 0},
                          {"last_error", "camera module: " + camera_error}});
      }
      j["cameras"] = cams;
      std::lock_guard lk(evidence_mu);
      j["evidence"] = {{"enabled", config.cameras.evidence.enabled},
                       {"items", evidence_stats.kept},
                       {"bytes", evidence_stats.bytes_kept},
                       {"budget_bytes", std::int64_t{config.cameras.evidence.budget_mb} << 20},
                       {"deleted", evidence_deleted}};
    }
    if (modbus) {
      const auto ms = modbus->stats();
      json devices = json::array();
      std::int64_t online = 0;
      for (const auto& d : ms.devices) {
        online += d.online ? 1 : 0;
        devices.push_back({{"id", d.id},
                           {"online", d.online},
                           {"polls", d.polls},
                           {"failures", d.failures},
                           {"last_error", d.last_error}});
      }
      j["modbus"] = {{"messages", ms.polls},
                     {"events", ms.events},
                     {"parse_errors", ms.decode_errors},
                     {"requests", ms.requests},
                     {"timeouts", ms.timeouts},
                     {"exceptions", ms.exceptions},
                     {"connect_failures", ms.connect_failures},
                     {"devices", static_cast<std::int64_t>(ms.devices.size())},
                     {"online", online},
                     {"device_status", devices}};
    }
    return j;
  };
  std::unique_ptr<CityCommands> city_cmds;
  if (uplink) {
    CityCommandContext cc;
    cc.site = config.site.id;
    cc.division_code = config.site.division_code;
    cc.db_path = jo.path;
    cc.status = status_json;
    cc.evidence_dir = (fs::path(config.data_dir) / "evidence").string();
    cc.evidence_per_hour = config.uplink.evidence_per_hour;
    if (!config.uplink.command_key_file.empty()) {
      std::ifstream in(config.uplink.command_key_file);
      if (!in)
        throw std::runtime_error("uplink.command_key_file: " + config.uplink.command_key_file +
                                 ": cannot read: " + std::strerror(errno));
      const std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      auto key = bridge::parse_city_key(pem);
      if (!key.key)
        throw std::runtime_error("uplink.command_key_file: " + config.uplink.command_key_file +
                                 ": " + key.error);
      cc.city_key = std::move(key.key);
    }
    if (access_control)
      cc.credentials_sync = [&](const json& args, std::string& error, bool& duplicate) -> json {
        std::lock_guard sync_lock(credentials_sync_mu);
        json current = json::object();
        if (const std::string path = credentials_path(); !path.empty()) {
          std::ifstream in(path);
          current = json::parse(in, nullptr, false);
          if (current.is_discarded()) {
            error = "the credentials in use (" + path + ") cannot be read as JSON";
            return {};
          }
        }
        auto r = drivers::access::apply_credentials_sync(current, args);
        if (!r.error.empty()) {
          error = r.error;
          return {};
        }
        duplicate = r.duplicate;
        if (!r.duplicate) {
          error = edge::write_file_atomic(city_credentials, r.document->dump(2) + "\n", 0640);
          if (!error.empty()) return {};
          credentials.replace(std::move(*r.list));
          spdlog::info("access: the city's credentials, version {}: {} credentials (in {})",
                       r.version, credentials.size(), city_credentials);
        }
        return {{"version", r.version}, {"credentials", credentials.size()}};
      };
    cc.data_dir = config.data_dir;
    cc.config_text = [&running_yaml] { return running_yaml; };
    cc.check_config = [&config](const std::string& yaml) {
      return check_city_config(yaml, config);
    };
    cc.stage_trial = [&config](const std::string& yaml, const ConfigRequest& r) {
      return stage_config_trial(config.data_dir, yaml, r);
    };
    cc.restart = [&restart_requested] { restart_requested = true; };
    cc.respond = [&uplink](const std::string& topic, const std::string& payload,
                           const std::string& corr) {
      return uplink->respond(topic, payload, corr);
    };
    city_cmds = std::make_unique<CityCommands>(std::move(cc), pipeline, clock);
    city_commands = city_cmds.get();
  }
  // The control socket: status for `anju status`/`anju check`, drain-now and test events.
  std::atomic<bool> control_stopping{false};
  TestEventContext test_ctx{
      pipeline,
      test_events,
      clock,
      jo.path,
      config.site.id,
      config.site.grid_code,
      uplink != nullptr,
      [&uplink]() {
        if (!uplink) return json{{"connected", false}, {"last_error", "uplink disabled"}};
        const auto us = uplink->stats();
        return json{{"connected", us.connected}, {"last_error", us.last_error}};
      },
      &control_stopping};
  auto control = [&](const std::string& text, const ControlServer::Send& send) {
    const auto parsed = parse_control_request(text);
    if (!parsed.request) {
      send(json{{"error", parsed.error}});
      return;
    }
    const ControlRequest& req = *parsed.request;
    switch (req.cmd) {
      case ControlCmd::status:
        send(status_json());
        return;
      case ControlCmd::drain_now: {
        if (!uplink) {
          send(json{{"ok", false}, {"error", "the uplink is disabled (uplink.enabled: false)"}});
          return;
        }
        uplink->retry_now();
        spdlog::info("control: drain now requested (the uplink retries at once)");
        send(json{{"ok", true}, {"connected", uplink->stats().connected}});
        return;
      }
      case ControlCmd::test_event:
        spdlog::info("control: test event for '{}' requested", req.target);
        run_test_event(req, test_ctx, send);
        return;
    }
  };
  ControlServer status(status_socket_path(config.data_dir), control);

  std::unique_ptr<CameraCoverHook> camera_covers;
  if (cameras && config.cameras.evidence.enabled) {
    camera_covers = std::make_unique<CameraCoverHook>(*cameras, config.cameras.streams);
    if (camera_covers->empty())
      camera_covers.reset();
    else
      pipeline.add_hook(camera_covers.get());
  }

  // The dashboard: a hook like the others (its own alert snapshot, live streams), seeded with the
  // open alerts before the pipeline starts.
  std::unique_ptr<Dashboard> dashboard;
  if (config.dashboard.enabled) {
    dashboard =
        std::make_unique<Dashboard>(dashboard_options(config), pipeline, clock, status_json);
    dashboard->seed(edge::load_alerts(journal->db(), true));
    pipeline.add_hook(dashboard.get());
  }

  pipeline.start();
  // Events replayed from the inbox commit first; then the bus learns which source messages are
  // already in, so that the broker redelivering them (DUP) does not make second copies.
  pipeline.wait_committed(std::chrono::seconds(30));
  bus.remember(recent_source_keys(journal_path(config.data_dir)));
  if (uplink) uplink->start();
  if (modbus) modbus->start();
  for (auto& panel : osdp) panel->start();
  for (auto& g : gpio_doors)
    if (g) g->start();
  {
    std::vector<edge::Event> unwatched;
    for (std::size_t i = 0; i < gpio_doors.size(); ++i) {
      if (gpio_doors[i]) continue;
      const auto setup = gpio_door_setup(config, config.access.gpio_doors[i], {});
      edge::Event e;
      e.kind = edge::EventKind::device_offline;
      e.severity = 3;
      e.source = "gpio";
      e.attrs["reason"] = "gpio: " + gpio_errors[i];
      drivers::access::stamp(e, clock, setup.io.site, setup.io.door);
      unwatched.push_back(std::move(e));
    }
    if (!unwatched.empty()) pipeline.submit(std::move(unwatched));
  }
  if (cameras) {
    cameras->start();
  } else if (!camera_error.empty()) {
    std::vector<edge::Event> offline;
    for (const auto& st : config.cameras.streams)
      offline.push_back(drivers::camera::stream_status_event(st, edge::EventKind::device_offline,
                                                             "camera module: " + camera_error));
    pipeline.submit(std::move(offline));
  }
  status.start();
  if (dashboard) dashboard->start();
  bus.start();
  spdlog::info("anjud running: site {}, data {}, local bus {}, uplink {}", config.site.id,
               config.data_dir, config.local_broker.uri,
               config.uplink.enabled ? config.uplink.broker.uri : "disabled");

  // Camera evidence within its budget and retention, once a minute (and once at start); what an
  // open alert refers to is kept (edge/evidence_store.hpp).
  const bool evidence_on = !config.cameras.streams.empty() && config.cameras.evidence.enabled;
  auto next_prune = std::chrono::steady_clock::now();
  auto prune_evidence_due = [&] {
    return evidence_on && std::chrono::steady_clock::now() >= next_prune;
  };
  auto prune_evidence_now = [&] {
    next_prune = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    const auto keep = edge::evidence_in_use(edge::open_reader(jo.path));
    const auto r = edge::prune_evidence(
        evidence_dir, std::int64_t{config.cameras.evidence.budget_mb} * 1024 * 1024,
        std::int64_t{config.cameras.evidence.retention_days} * 86'400'000, clock.wall_ms(), keep);
    {
      std::lock_guard lk(evidence_mu);
      evidence_deleted += r.deleted;
      evidence_stats = r;
    }
    if (r.deleted > 0)
      spdlog::info("evidence: {} deleted ({} bytes), {} kept ({} bytes)", r.deleted,
                   r.bytes_deleted, r.kept, r.bytes_kept);
    if (r.protected_over_budget > 0)
      spdlog::warn("evidence: {} bytes over the budget, all of it referred to by open alerts",
                   r.protected_over_budget);
  };

  // systemd: ready now; the watchdog is petted only while the pipeline thread goes round its
  // loop (at least once a second), so a stuck stage gets anjud restarted (WatchdogSec).
  ServiceNotifier systemd;
  systemd.ready("site " + config.site.id + ": running");
  const auto pet_every = systemd.watchdog_interval();
  // Stuck: the pipeline thread (which goes round at least once a second, commits included) has
  // not for a whole WatchdogSec, but never less than 3 s (a slow fsync is not a hang).
  const std::int64_t stuck_after_ms = std::max<std::int64_t>(3000, 2 * pet_every.count());
  auto last_pet = std::chrono::steady_clock::now() - pet_every;
  bool stuck_logged = false;
  // Booted without network, the clock is not synchronised: events say so (clock_synced=false)
  // until NTP has set it; events already journaled keep the time they were given.
  bool was_synced = clock.synced();
  if (!was_synced)
    spdlog::warn(
        "clock: not synchronised (no NTP yet); events carry clock_synced=false until it is");
  // The audit log: the journal's audit events copied, about once a second, to files of their own
  // with their own retention (edge/audit_log.hpp). Without it (a file changed by hand) anjud runs
  // on: the journal still has every audit event for its retention.
  std::unique_ptr<edge::AuditLog> audit_log;
  std::optional<edge::Db> audit_reader;
  std::string audit_error;  // the last one logged, so that a lasting fault is logged once
  try {
    audit_log = std::make_unique<edge::AuditLog>(edge::AuditLogOptions{
        (fs::path(config.data_dir) / "audit").string(), config.journal.audit_retention_days});
    if (audit_log->repaired())
      spdlog::warn("audit log: a last line cut short by a crash was removed; it is copied again");
  } catch (const std::exception& e) {
    spdlog::critical("{}; running without the audit log (the journal keeps the audit events)",
                     e.what());
  }
  auto copy_audit = [&] {
    if (!audit_log) return;
    try {
      if (!audit_reader) audit_reader.emplace(edge::open_reader(jo.path));
      while (audit_log->catch_up(*audit_reader, clock.wall_ms()) > 0) {
      }
      audit_seq = audit_log->last_seq();
      audit_error.clear();
    } catch (const std::exception& e) {
      if (audit_error != e.what()) spdlog::error("{}", e.what());
      audit_error = e.what();
      audit_reader.reset();
    }
  };
  auto next_audit = std::chrono::steady_clock::now();
  auto next_audit_prune = next_audit;
  // A config on trial is kept once the city broker is reached, within its health timeout.
  const auto trial_deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(trial ? trial->health_timeout_s : 0);
  if (trial)
    spdlog::warn(
        "config: the city's new config (request {}) is on trial: kept if the city broker "
        "is reached within {} s, else rolled back",
        trial->request_id, trial->health_timeout_s);
  std::optional<ConfigOutcome> outcome = pending_config_outcome(config.data_dir);
  for (;;) {
    if (trial) {
      const bool connected = uplink && uplink->stats().connected;
      if (connected) {
        if (const auto e = confirm_config_trial(config.data_dir); !e.empty())
          spdlog::error(
              "config: the trial passed but cannot be recorded ({}); it runs until the "
              "next restart, which goes back to the previous config",
              e);
        else
          outcome = pending_config_outcome(config.data_dir);
        trial.reset();
        on_trial = false;
      } else if (std::chrono::steady_clock::now() >= trial_deadline) {
        std::string why = "the gateway did not reach the city broker within " +
                          std::to_string(trial->health_timeout_s) + " s with the new config";
        if (uplink && !uplink->stats().last_error.empty())
          why += " (" + uplink->stats().last_error + ")";
        spdlog::error("config: {}: rolling back and restarting", why);
        if (const auto e = reject_config_trial(config.data_dir, why); !e.empty())
          spdlog::error("config: {}", e);
        trial.reset();
        restart_requested = true;
      }
    }
    if (outcome && city_cmds && uplink && uplink->stats().connected) {
      if (!city_cmds->report_config_outcome(*outcome))
        spdlog::warn("config: the outcome of request {} could not be sent to the city",
                     outcome->request.request_id);
      clear_config_outcome(config.data_dir);
      outcome.reset();
    }
    if (restart_requested) {
      spdlog::info("config: restarting anjud");
      break;
    }
    if (const auto now = std::chrono::steady_clock::now(); now >= next_audit) {
      next_audit = now + std::chrono::seconds(1);
      copy_audit();
      if (audit_log && now >= next_audit_prune) {
        next_audit_prune = now + std::chrono::hours(1);
        if (const auto n = audit_log->prune(clock.wall_ms()); n > 0)
          spdlog::info("audit log: {} days older than {} days removed", n,
                       config.journal.audit_retention_days);
      }
    }
    if (const bool synced = clock.synced(); synced != was_synced) {
      spdlog::info("clock: {}", synced ? "synchronised; events from now on carry clock_synced=true"
                                       : "no longer synchronised; events carry clock_synced=false");
      was_synced = synced;
    }
    if (pet_every.count() > 0 && std::chrono::steady_clock::now() - last_pet >= pet_every) {
      // Every stage with a loop of its own must have gone round recently: the pipeline (at least
      // once a second) and the uplink (once a second, but a connect may take up to 25 s).
      const std::int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::steady_clock::now().time_since_epoch())
                                      .count();  // the uplink's clock
      std::string stuck;
      std::int64_t silent_ms = 0;
      const std::int64_t clock_now_ms = clock.mono_ns() / 1'000'000;  // the pipeline's clock
      if (const std::int64_t beat = pipeline.heartbeat_mono_ms();
          clock_now_ms - beat >= stuck_after_ms) {
        stuck = "pipeline";
        silent_ms = clock_now_ms - beat;
      } else if (uplink) {
        const std::int64_t up_beat = uplink->heartbeat_mono_ms();
        if (now_ms - up_beat >= std::max<std::int64_t>(stuck_after_ms, 30'000)) {
          stuck = "uplink";
          silent_ms = now_ms - up_beat;
        }
      }
      if (stuck.empty()) {
        systemd.pet();
        last_pet = std::chrono::steady_clock::now();
        stuck_logged = false;
      } else if (!stuck_logged) {
        spdlog::critical(
            "the {} thread has not gone round its loop for {} s: not petting the watchdog, "
            "systemd will restart anjud",
            stuck, silent_ms / 1000);
        systemd.status(stuck + " stuck");
        stuck_logged = true;
      }
    }
    if (prune_evidence_due()) prune_evidence_now();
    timespec ts{0, 200'000'000};
    const int sig = sigtimedwait(&sigs, nullptr, &ts);
    if (stop_flag && stop_flag->load()) break;
    if (sig == SIGHUP) {
      // The credentials file is read again (a new resident's card, a lost one revoked); a file
      // with errors is refused and the list in use stays. Other settings need a restart.
      if (const std::string path = credentials_path(); !path.empty() && access_control) {
        std::lock_guard sync_lock(credentials_sync_mu);
        auto list = drivers::access::load_credentials(path);
        if (list.list) {
          credentials.replace(std::move(*list.list));
          spdlog::info("SIGHUP: {} credentials reloaded from {}", credentials.size(), path);
        } else {
          for (const auto& e : list.errors)
            spdlog::error("SIGHUP: credentials not reloaded: {}", e);
        }
      } else {
        spdlog::info("SIGHUP: nothing to reload; restart anjud to apply config changes");
      }
      continue;
    }
    if (sig == SIGINT || sig == SIGTERM) {
      spdlog::info("{}: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
      break;
    }
  }
  systemd.stopping();
  // Control requests end first (a test event in progress says so), while the pipeline still runs.
  control_stopping = true;
  test_events.wake_all();
  status.stop();
  if (dashboard) dashboard->stop();  // no more requests (they submit audit events and commands)
  bus.stop();                        // no more input
  if (modbus) modbus->stop();
  for (auto& panel : osdp) panel->stop();
  for (auto& g : gpio_doors)
    if (g) g->stop();
  if (cameras) cameras->stop();
  pipeline.stop();  // commit what is queued
  if (uplink) uplink->stop(std::chrono::milliseconds(3000));
  city_commands = nullptr;
  try {
    pipeline.run_once();  // delete what the city acknowledged during the flush
  } catch (const std::exception& e) {
    spdlog::warn("final outbox clean-up failed ({}); those messages are sent again next time",
                 e.what());
  }
  copy_audit();  // the last audit events (e.g. the city's command that restarts anjud)
  journal->stop_checkpointer();
  status.stop();
  spdlog::info("anjud stopped cleanly");
  return restart_requested ? kExitRestart : 0;
}

}  // namespace anju::firmware
