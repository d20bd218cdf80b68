// anjud's wiring: config → journal, rules, pipeline, city bridge, uplink, local bus, drivers, and
// the status socket the `anju` CLI talks to. Owns every stage and their start/stop order:
// start downstream first (pipeline, uplink) and input last; stop input first, then commit what is
// queued, then flush the uplink for a few seconds.
// Thread: run() on the main thread; each stage has its own.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "anju/drivers/chirpstack_driver.hpp"
#include "anju/drivers/door_io.hpp"
#include "anju/drivers/generic_mqtt_driver.hpp"
#include "anju/drivers/modbus_driver.hpp"
#include "anju/drivers/osdp_cp.hpp"
#include "anju/edge/mqtt.hpp"
#include "anju/edge/pipeline.hpp"
#include "anju/edge/rules.hpp"
#include "anju/firmware/config.hpp"
#include "anju/firmware/config_trial.hpp"

namespace anju::firmware {

struct DaemonOverrides {
  std::string data_dir;
  std::string local_broker;
  std::string uplink_broker;
};

void apply_overrides(Config& config, const DaemonOverrides& o);

// The rule engine's settings from the config (also used by the benchmarks).
edge::RuleSettings rule_settings(const Config& config);

// The sensor drivers' options from the config (DevEUIs lower-cased, places and codes attached).
drivers::ChirpStackOptions chirpstack_options(const Config& config);
drivers::GenericMqttOptions generic_mqtt_options(const Config& config);
drivers::ModbusOptions modbus_options(const Config& config);
// One OSDP bus's driver config; reads the readers' Secure Channel key files. Throws
// std::runtime_error naming the file when one cannot be used.
drivers::access::OsdpBusConfig osdp_bus_config(const Config& config, const OsdpBusEntry& bus,
                                               const drivers::access::PseudonymKey& site_key);
// A door on GPIO lines: the driver's config and the lines to request, named by their config keys
// (d0, d1, contact, exit_button, tamper as inputs; lock as the output).
struct GpioDoorSetup {
  drivers::access::DoorIoConfig io;
  std::string chip;
  std::vector<drivers::access::GpioLineSpec> inputs, outputs;
};
GpioDoorSetup gpio_door_setup(const Config& config, const GpioDoorEntry& door,
                              const drivers::access::PseudonymKey& site_key);
// Opens a door's GPIO lines (libgpiod in anjud; a simulation in tests).
using GpioOpener = std::function<std::unique_ptr<drivers::access::GpioLines>(
    const std::string& chip, const std::vector<drivers::access::GpioLineSpec>& inputs,
    const std::vector<drivers::access::GpioLineSpec>& outputs)>;
// A Secure Channel key file: 32 hex digits (whitespace around ignored), mode 0600 or stricter.
drivers::osdp::Key load_scbk(const std::string& path);

// The MQTT endpoint of a configured broker (TLS and credential files included).
edge::MqttEndpoint endpoint(const BrokerConfig& broker);
// The summary periods (ms): the configured interval, and hourly/daily when on (each once).
std::vector<std::int64_t> summary_periods_ms(const SummaryConfig& summary);
// Every grid cell other than the site's that a configured device is in.
std::set<std::string> configured_grid_cells(const Config& config);

// Stages added from outside the config: pipeline hooks run after the daemon's own (e.g. a test
// build's fault on purpose: tests/watchdog/).
struct DaemonExtras {
  std::vector<edge::PipelineHook*> hooks;
  const edge::Clock* clock = nullptr;  // instead of the system's (e.g. its sync state under test)
  GpioOpener open_gpio;                // instead of libgpiod (empty: libgpiod)
  // Where the config came from (anjud_main: choose_start_config): "file", "city" or "trial";
  // on trial, its request: kept when the city broker is reached in time (config_trial.hpp).
  std::string config_source = "file";
  std::optional<ConfigRequest> config_trial;
};
// run_daemon's exit code when anjud must start again (a new config from the city, or back to the
// old one): anjud re-executes itself, so the PID stays and systemd's view of it too.
inline constexpr int kExitRestart = 75;
// Runs until SIGINT/SIGTERM (or until `stop` becomes true). Returns the exit code.
int run_daemon(const Config& config, std::atomic<bool>* stop = nullptr,
               const DaemonExtras* extras = nullptr);

std::string status_socket_path(const std::string& data_dir);
std::string journal_path(const std::string& data_dir);

}  // namespace anju::firmware
