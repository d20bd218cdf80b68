// anjud's configuration: one YAML file, validated in full at start.
// Errors name the file, line, column and key, and say what was expected; unknown keys are errors.
// Thread: plain values; loaded once on the main thread before any stage starts.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "anju/drivers/camera/camera_config.hpp"
#include "anju/drivers/chirpstack.hpp"
#include "anju/drivers/generic_mqtt.hpp"
#include "anju/drivers/modbus_map.hpp"

namespace anju::firmware {

struct TlsConfig {
  bool enabled = false;
  std::string ca_file;    // PEM bundle used to verify the server
  std::string cert_file;  // client certificate (mutual TLS), optional
  std::string key_file;   // client private key, optional
  bool verify_hostname = true;
};

struct BrokerConfig {
  std::string uri;        // tcp://host:port, ssl://host:port, mqtt://, mqtts://
  std::string client_id;  // empty: derived from the site id
  int mqtt_version = 5;   // 3 (= 3.1.1) or 5
  int keepalive_s = 30;
  std::string username_file;  // secrets live in their own files, never in this config
  std::string password_file;
  TlsConfig tls;
};

struct OutboxBudget {
  std::int64_t status_bytes = 16 * 1024 * 1024;
  std::int64_t summary_bytes = 16 * 1024 * 1024;
  std::int64_t event_bytes = 64 * 1024 * 1024;
  // alerts have no budget: they are never evicted
};

struct UplinkConfig {
  bool enabled = true;
  BrokerConfig broker;
  int window = 64;  // QoS 1 messages in flight at once
  int backoff_min_ms = 500;
  int backoff_max_ms = 60'000;
  std::vector<std::string> event_kinds;  // event kinds sent on anju/v1/<site>/event/<kind>
  OutboxBudget outbox;
  // The city's Ed25519 public key (PEM) that signs the commands changing configuration or
  // releasing evidence; empty: those commands are refused.
  std::string command_key_file;
  int evidence_per_hour = 10;  // evidence.request: snapshots released to the city in any hour
};

struct JournalConfig {
  std::string synchronous = "full";  // "full" (survives power loss) or "normal"
  int commit_window_ms = 0;          // after an idle spell, wait this long for more (0: none)
  int quiet_commit_ms = 1000;        // routine events (no alert change) wait this long for more
  int max_batch = 512;
  int retention_days = 90;         // events older than this are deleted
  int alert_retention_days = 365;  // alerts (and the events they reference) kept longer
  int audit_retention_days = 365;  // the audit log (<data_dir>/audit/, apart from the journal)
  std::int64_t max_bytes = 512LL * 1024 * 1024;  // total journal size cap
};

struct SummaryConfig {
  int interval_s = 300;
  bool hourly = true;       // also a summary per hour
  bool daily = true;        // and per day (UTC days)
  int backfill_hours = 24;  // periods missed while off are computed on start, this far back
};

struct ThresholdRule {
  std::string name;             // unique rule name, e.g. "temperature_high"
  std::string kind;             // measured kind: temperature, humidity, water_level, measurement...
  std::string value;            // value name; empty: the kind's name (required for measurement)
  std::optional<double> above;  // raise when the value goes above this
  std::optional<double> below;  // raise when the value goes below this
  std::optional<double> rise;   // or: raise when it rose by this much...
  int rise_window_s = 60;       // ...within this long
  int nonzero_for_s = 0;        // or: raise when it has not been 0 for this long (0: off)
  double hysteresis = 1.0;      // clear only once the value is back by this much
  int hold_s = 0;               // the condition must hold this long before raising
  int severity = 3;
  std::vector<std::string> devices;  // device ids or names; empty = every device of that kind
};

struct CorrelationRule {
  std::string name;                // the correlated alert's rule name, e.g. fire_suspected
  std::vector<std::string> rules;  // alert rules (built-in kinds or threshold names), >= 2
  int window_s = 120;
  std::string scope = "room";  // device, room, unit, building or site
  int severity = 1;
};

// A watched home (welfare check, 独居老人): no activity of its devices for quiet_h raises `name`.
struct WelfareRule {
  std::string name;                  // rule name of the alert, e.g. welfare_3_2_1201
  std::string building, unit, room;  // the home
  std::vector<std::string> devices;  // its door contact / reader, water meter: ids or names
  int quiet_h = 24;
  int severity = 2;
};

// Supervision of one driver's devices (rules.supervision.<driver>), over the built-in default.
struct DriverSupervision {
  int heartbeat_timeout_s = 3600;  // 0 = off
};

struct RulesConfig {
  int battery_low_percent = 10;
  int heartbeat_timeout_s = 3600;  // default silence that makes a device offline (0 = off)
  std::map<std::string, DriverSupervision> supervision;  // by driver (event source)
  int weak_linkquality = 0;         // zigbee linkquality at or below: signal_weak (0 = off)
  int linkquality_hysteresis = 10;  // clears above weak_linkquality + this
  double rssi_hysteresis_db = 5;    // a driver's signal_weak clears this far above its threshold
  std::vector<ThresholdRule> thresholds;
  std::vector<CorrelationRule> correlations;
  std::vector<WelfareRule> welfare;
  // Escalation of alerts nobody acknowledged, per severity, seconds (0 = never).
  int escalate_sev1_s = 60;
  int escalate_sev2_s = 300;
  int escalate_sev3_s = 1800;
  int escalate_sev4_s = 0;
  bool escalation_raises_severity = true;
};

struct DeviceConfig {
  std::string building;
  std::string unit;
  std::string room;
  std::string grid_code;  // overrides the site's grid code
  std::string gb28181;    // 20-digit GB/T 28181 code
  std::optional<int> heartbeat_timeout_s;
};

struct Zigbee2MqttConfig {
  bool enabled = true;
  std::string base_topic = "zigbee2mqtt";
  bool report_unchanged = false;  // a reading equal to the last one is not a new event
  int refresh_s = 600;            // ...unless the device's last events are this old (0: never)
  std::map<std::string, DeviceConfig> devices;  // keyed by IEEE address or friendly name
};

// A device of the ChirpStack, generic MQTT or Modbus drivers: what it is called and where it is.
struct SensorDeviceConfig {
  std::string name;    // empty: what the source says (ChirpStack deviceName) or the id
  std::string kind;    // empty: the mapping's device_kind
  DeviceConfig place;  // building/unit/room, grid and GB/T 28181 codes, heartbeat override
};

// ChirpStack v4 (LoRaWAN) through its MQTT integration on the local broker (issue 6). Mappings
// (which values become which events) are named once and used by device profile, by device, or as
// the default.
struct ChirpStackMappingConfig {
  drivers::chirpstack::DeviceMapping mapping;
  std::vector<std::string> profiles;  // ChirpStack device profile names this mapping serves
};
struct ChirpStackDeviceConfig {
  SensorDeviceConfig device;
  std::string mapping;  // a name in mappings: before the profile's; empty: by profile
};
struct ChirpStackConfig {
  bool enabled = false;
  int fcnt_window = 16;
  std::map<std::string, ChirpStackMappingConfig> mappings;
  std::string default_mapping;  // key "default": for devices matched by nothing else
  std::map<std::string, ChirpStackDeviceConfig> devices;  // by DevEUI (16 hex digits)
};

// Vendor gateways speaking their own MQTT/JSON, mapped by config alone (issue 6).
struct GenericMqttConfig {
  bool enabled = true;  // runs when there is at least one mapping
  std::vector<drivers::generic_mqtt::Mapping> mappings;
  std::map<std::string, SensorDeviceConfig> devices;  // by the device id a mapping yields
};

// Modbus TCP/RTU devices polled with libmodbus (issue 6).
struct ModbusSerialConfig {
  std::string device;  // e.g. /dev/ttyUSB0
  int baud = 9600;
  std::string parity = "N";  // N, E or O
  int data_bits = 8;
  int stop_bits = 1;
};
struct ModbusDeviceEntry {
  std::string id;
  std::string kind = "modbus_device";
  std::string transport = "tcp";  // tcp or rtu
  std::string host;
  int port = 502;
  ModbusSerialConfig serial;
  int unit_id = 1;
  int poll_interval_ms = 5000;
  int timeout_ms = 1000;
  int retries = 2;
  int refresh_polls = 12;
  std::vector<drivers::modbus::RegisterEntry> registers;
  std::string name;    // empty: the id
  DeviceConfig place;  // building/unit/room, grid and GB/T 28181 codes, heartbeat override
};
struct ModbusConfig {
  bool enabled = true;  // runs when there is at least one device
  int backoff_min_ms = 500;
  int backoff_max_ms = 30'000;
  std::vector<ModbusDeviceEntry> devices;
};

// Access control (issue 4): OSDP readers on RS-485 or TCP, local decisions from the credentials
// file (keyed hashes of cards, never numbers), feedback and lock pulses through the readers.
struct OsdpReaderEntry {
  int address = 0;   // 0..126 on its bus
  std::string id;    // device id in events (unique)
  std::string name;  // display name; empty: the id
  std::string door;  // door id used by decisions and door rules
  std::string building, unit, room;
  bool secure_channel = false;
  std::string scbk_file;  // the reader's Secure Channel key: 32 hex digits, mode 0600
  bool install_mode = false;
  int led = 0;
  bool controls_lock = false;
  int lock_output = 0;
  int lock_pulse_ms = 3000;
};
struct OsdpBusEntry {
  std::string name;
  std::string device;  // /dev/ttyUSB0 or tcp:HOST:PORT
  int baud = 9600;
  bool rs485 = false;
  int reply_timeout_ms = 200;
  int retries = 2;
  int poll_interval_ms = 50;
  std::vector<OsdpReaderEntry> readers;
};
// A door wired to the gateway's GPIO lines (libgpiod): a Wiegand reader (D0/D1), the door
// contact, the exit button, a tamper input and the lock relay; any of them may be absent.
struct GpioDoorEntry {
  std::string door;  // door id used by decisions and door rules (unique)
  std::string id;    // device id of the door's inputs and lock in events (unique)
  std::string name;  // display name; empty: the id
  std::string building, unit, room;
  std::string chip;       // gpiochip0, /dev/gpiochip0 or the chip's label
  std::string reader_id;  // device id of the Wiegand reader; required with d0/d1
  std::optional<int> d0, d1, contact, exit_button, tamper, lock;  // line offsets on the chip
  std::vector<std::string> active_low;  // of contact, exit_button, tamper, lock
  std::vector<std::string> pull_up;     // of the inputs
  bool wiegand_inverted = false;        // D0/D1 active-high (behind an inverting stage)
  int debounce_ms = 50;
  int lock_pulse_ms = 3000;
};

struct AccessConfig {
  std::string site_key_file;     // HMAC-SHA-256 key of the card pseudonyms: 64 hex, mode 0600
  std::string credentials_file;  // JSON list of credentials; empty: reads are recorded, denied
  std::vector<OsdpBusEntry> osdp;
  std::vector<GpioDoorEntry> gpio_doors;
};

// Cameras (issue 5): streams analysed on the gateway. The section is read by the camera driver's
// own parser (drivers/camera/camera_config.hpp); its errors are reported at the key they name.
// Snapshots and clips of camera alerts, kept on the gateway (drivers/camera/evidence.hpp) in
// <data_dir>/evidence, within a budget and a retention period (edge/evidence_store.hpp).
struct EvidenceConfig {
  bool enabled = true;
  double pre_s = 10;
  double post_s = 5;
  int jpeg_quality = 80;
  int max_width = 640;
  int max_height = 360;
  double min_interval_s = 60;
  int budget_mb = 1024;
  int retention_days = 30;
};

struct CamerasConfig {
  std::vector<drivers::camera::StreamConfig> streams;
  EvidenceConfig evidence;
  std::string module;  // anju-camera.so; empty: <anjud's directory>/../lib/anju/anju-camera.so
};

struct SiteConfig {
  std::string id;             // compound id: [A-Za-z0-9_-]{1,64}, used in topics
  std::string grid_code;      // CJ/T 349: 20 digits
  std::string division_code;  // 12 digits, optional
  std::string name;
};

// The dashboard served by anjud (issue 7): HTTP(S) on the LAN, users with roles, SSE.
struct DashboardConfig {
  bool enabled = false;
  std::string listen = "127.0.0.1:8080";  // host:port ([v6]:port); 0.0.0.0 for every interface
  std::string tls_cert;                   // PEM certificate: HTTPS when set (with tls_key)
  std::string tls_key;                    // PEM private key
  std::string users_file;                 // empty: <data_dir>/users.json
  std::string assets_dir;                 // empty: the pages built into the binary
  int session_ttl_s = 8 * 3600;           // a session unused this long ends
  int lockout_after = 5;                  // failed logins (per user and per client address)...
  int lockout_s = 300;                    // ...within this window lock logins for this long
};

struct Config {
  std::string source_file;  // where it was loaded from ("<embedded demo>" for the built-in one)
  SiteConfig site;
  std::string data_dir = "/var/lib/anju";
  std::string log_level = "info";
  BrokerConfig local_broker;  // the compound's own bus
  UplinkConfig uplink;
  JournalConfig journal;
  SummaryConfig summary;
  RulesConfig rules;
  Zigbee2MqttConfig zigbee2mqtt;
  ChirpStackConfig chirpstack;
  GenericMqttConfig generic_mqtt;
  ModbusConfig modbus;
  AccessConfig access;
  CamerasConfig cameras;
  DashboardConfig dashboard;
};

// "host:port" of dashboard.listen split; false when malformed (the config check says why).
bool split_listen(const std::string& listen, std::string& host, int& port);

struct ConfigError {
  std::string file;
  int line = 0;     // 1-based; 0 when unknown
  int column = 0;   // 1-based
  std::string key;  // dotted path, e.g. "uplink.window"
  std::string message;
  std::string to_string() const;  // "file:line:column: key: message"
};

struct ConfigResult {
  std::optional<Config> config;
  std::vector<ConfigError> errors;  // every problem found, not just the first
};

// Pure: parses and validates YAML text. `file` is only used in error messages.
ConfigResult parse_config(const std::string& yaml_text, const std::string& file);
// Reads the file and parses it; an unreadable file is one error naming it.
ConfigResult load_config(const std::string& path);

// The embedded demo configuration (the same text as firmware/config/anju.demo.yaml).
const std::string& demo_config_text();

// One key of the schema, for reference output (`anju config keys` and the like). The same tables
// drive validation, so this list is exactly what parse_config accepts.
struct ConfigKeyDoc {
  std::string path;           // "uplink.window", "rules.thresholds[].above", "a.<name>.b"
  std::string type;           // "integer", "string", "size", "boolean", "number", "section", ...
  std::string constraint;     // e.g. "1..1024", "20 digits"; empty: any value of the type
  std::string default_value;  // as written in YAML; empty for required keys and sections
  std::string description;
  bool required = false;
};
std::vector<ConfigKeyDoc> config_schema();

}  // namespace anju::firmware
