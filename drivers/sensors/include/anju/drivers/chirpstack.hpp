// ChirpStack v4 MQTT integration (LoRaWAN sensors): pure functions, a topic and a JSON payload in,
// events or a clear error out. No I/O, no clock. A ChirpStackDriver (not written yet) subscribes
// to "application/+/device/+/event/+" on the broker ChirpStack publishes to.
//
// v4 payloads are the Protobuf JSON mapping of integration.proto (camelCase names; fields with
// their default value are left out, so a missing fCnt means 0 and a missing batteryLevel 0):
//   up:     {deduplicationId, time, deviceInfo{tenantId, tenantName, applicationId,
//            applicationName, deviceProfileId, deviceProfileName, deviceName, devEui, tags{}},
//            devAddr, adr, dr, fCnt, fPort, confirmed, data (base64), object (codec output),
//            rxInfo[{gatewayId, uplinkId, time, rssi, snr, channel, location, context}], txInfo}
//   status: {deduplicationId, time, deviceInfo, margin, externalPowerSource,
//            batteryLevelUnavailable, batteryLevel (0..100, float)}
//   join:   {deduplicationId, time, deviceInfo, devAddr}
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "anju/drivers/generic_mqtt.hpp"
#include "anju/edge/event.hpp"

namespace anju::drivers::chirpstack {

inline constexpr std::size_t kMaxPayloadBytes = 64 * 1024;

// ---- topics
// --------------------------------------------------------------------------------------
enum class TopicType { up, status, join, ignored };
struct TopicInfo {
  TopicType type = TopicType::ignored;
  std::string application_id{};
  std::string dev_eui{};  // lower-case, as in the topic
  std::string event{};    // "up", "status", "join", "ack", "txack", "log", "location", ...
  std::string reason{};   // why it is ignored ("event type 'log' is not used", "not a ChirpStack
                          // event topic")
};
// "application/<application_id>/device/<dev_eui>/event/<type>".
TopicInfo classify_topic(std::string_view topic);

// ---- mapping
// ------------------------------------------------------------------------------------- One value
// of the codec's decoded `object`.
struct ObjectField {
  // Dotted path ("temperature", "sensor.level") or a JSON pointer ("/sensor/level", "/a.b").
  // A dotted path cannot name keys containing '.' or array elements other than by digits
  // ("values.0").
  std::string path{};
  edge::EventKind kind = edge::EventKind::measurement;
  std::string name{};  // value name; default: the kind's name, or for `measurement` the last key
  std::string unit{};
  double scale = 1;  // value = raw * scale + offset
  double offset = 0;
  generic_mqtt::ActiveRule active{};  // binary kinds: how the value becomes `active`
  bool operator==(const ObjectField&) const = default;
};

enum class RawType { u8, i8, u16, i16, u32, i32, float32 };
enum class Endian { big, little };
std::string_view to_string(RawType t);
std::optional<RawType> raw_type_from_string(std::string_view s);  // "u8", "i16", "float32", ...
std::size_t raw_size(RawType t);                                  // bytes: 1, 2 or 4

// One value at a fixed place in the raw FRMPayload (`data`), for devices without a codec.
struct RawField {
  std::optional<std::uint32_t> fport{};  // only uplinks on this fPort; nullopt: any fPort
  std::size_t offset = 0;                // byte offset in data
  RawType type = RawType::u8;
  Endian endian = Endian::big;
  edge::EventKind kind = edge::EventKind::measurement;
  std::string name{};  // value name; default: the kind's name
  std::string unit{};
  double scale = 1;  // value = raw * scale + offset_value
  double offset_value = 0;
  // Binary kinds: active = ((raw & mask) != 0 when mask != 0, else raw != 0) XOR invert.
  std::uint32_t mask = 0;
  bool invert = false;
  bool operator==(const RawField&) const = default;
};

struct DeviceMapping {
  std::string device_kind = "lora_sensor";   // DeviceRef::kind, e.g. "smoke_detector"
  std::vector<ObjectField> object_fields{};  // used when the uplink has an `object`
  std::vector<RawField> raw_fields{};        // used when the uplink has `data`
  // Best RSSI below this (dBm) gives signal_weak active, at or above it inactive; nullopt: no
  // signal_weak events (the rssi/snr measurement event is emitted anyway).
  std::optional<double> weak_rssi_dbm{};
  bool operator==(const DeviceMapping&) const = default;
};

// Which mapping applies: a device's own (by DevEUI, lower-case hex) before its device profile's
// (by deviceProfileName), else the default one (no fields: only signal, battery and join
// events).
struct Mappings {
  std::map<std::string, DeviceMapping, std::less<>> by_dev_eui;
  std::map<std::string, DeviceMapping, std::less<>> by_profile;
  DeviceMapping fallback;
};
const DeviceMapping& find_mapping(const Mappings& m, std::string_view dev_eui,
                                  std::string_view device_profile_name);

// Every problem of a mapping, each naming its place ("object_fields[1].path: ...",
// "raw_fields[0].mask: only for binary kinds"). Empty when usable.
std::vector<std::string> validate(const DeviceMapping& m);

// ---- parsing
// -------------------------------------------------------------------------------------
struct Result {
  TopicInfo topic;
  // Uplinks: one event per mapped value (attrs: fcnt, fport, rssi, snr, gateways, dev_addr,
  // confirmed, application_id, profile), then a `measurement` event with values rssi (dBm) and
  // snr (dB) of the best gateway (highest RSSI), then signal_weak when configured.
  // Status: battery (value "battery", %) unless unavailable or externally powered, else a
  // `measurement` with "margin" (dB). Join: device_online (attrs: join true, dev_addr).
  // device: id = DevEUI (lower-case), name = deviceName, kind = mapping's device_kind.
  // source = "chirpstack"; the caller stamps id, time, site and grid code.
  std::vector<edge::Event> events{};
  std::optional<std::uint32_t> fcnt{};  // uplinks: for the FCntTracker (absent in JSON = 0)
  std::string dev_eui{};                // from deviceInfo.devEui
  std::vector<std::string> errors{};    // per bad field ("object.temperature: must be a number"),
                                        // or one for the whole message ("field 'fCnt': ...")
};
// Classifies the topic and parses up/status/join; other event types give no events and no error
// (topic.reason says why). The topic's DevEUI must match deviceInfo.devEui.
Result parse(std::string_view topic, std::string_view payload, const Mappings& mappings);
// The same with one mapping for whatever device the message is about.
Result parse_uplink(std::string_view topic, std::string_view payload, const DeviceMapping& mapping);

// Strict base64 (RFC 4648, standard alphabet, '=' padding required, no whitespace).
std::optional<std::vector<std::uint8_t>> decode_base64(std::string_view text);

// ---- frame counters
// ------------------------------------------------------------------------------
enum class FCntClass {
  first,   // nothing known about this device yet: accept
  fresh,   // higher than the last one: accept (a gap means lost frames)
  repeat,  // a duplicate: drop
  reset,   // the counter restarted: accept and start over from it
};
std::string_view to_string(FCntClass c);

// Per-DevEUI frame counter state, pure (no clock, no I/O); one per driver, on its thread.
// The rule, with `last` the last accepted fCnt of the device:
//   - no state: first;
//   - after joined(): reset, whatever the value (OTAA starts the counter again at 0);
//   - fcnt > last: fresh;
//   - last - window <= fcnt <= last: repeat (the same frame again, or a late copy of a recent one:
//     an MQTT redelivery or a second integration path) -> the caller drops it;
//   - fcnt < last - window: reset (the device restarted — an ABP device without a persisted
//     counter, or a 32-bit wrap — and counts up again from a small value).
// A device that restarts without a join and sends fewer than `window` frames before reaching its
// old counter is therefore dropped until it passes it; ChirpStack itself rejects such frames
// unless its frame-counter check is disabled, so this only matters for relaxed ABP devices.
// At most max_devices are tracked; when full, the least recently seen is forgotten.
class FCntTracker {
 public:
  explicit FCntTracker(std::uint32_t window = 16, std::size_t max_devices = 100000);
  // Classifies and, unless it is a repeat, records fcnt as the device's last.
  FCntClass observe(std::string_view dev_eui, std::uint32_t fcnt);
  // A join was seen: the next fCnt is a reset.
  void joined(std::string_view dev_eui);
  void forget(std::string_view dev_eui);
  std::optional<std::uint32_t> last(std::string_view dev_eui) const;
  std::size_t size() const { return devices_.size(); }

 private:
  struct State {
    std::uint32_t last = 0;
    bool have_last = false;
    bool joined = false;
    std::uint64_t touched = 0;  // observe() counter when last seen
  };
  State& slot(std::string_view dev_eui);
  std::uint32_t window_;
  std::size_t max_devices_;
  std::uint64_t clock_ = 0;
  std::map<std::string, State, std::less<>> devices_;
};

}  // namespace anju::drivers::chirpstack
