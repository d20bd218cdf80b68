// `anju provision` (issue 9): the gateway's identity codes, its key pair and certificate request,
// and the certificate the city's CA returns, each step idempotent and validated before anything is
// written.
//
// Two layers:
//  - config_edit.cpp, pure (built in fuzz builds too): set_config_values() edits scalar keys of the
//    YAML config in place. Only the bytes of the values it changes (or the lines it inserts)
//    differ; comments, order, quoting and blank lines of everything else stay byte for byte.
//    yaml-cpp is used only to find where things are (its marks give line and column); the result is
//    re-read and compared with the original tree (every other value must be unchanged), then
//    validated in full with parse_config. The identifier rules of the city platform (GB/T 28181
//    device codes, GB/T 2260 division codes, CJ/T 349 grid codes and the grid code's division
//    prefix) are checked here, stricter than the config loader's digit counts.
//  - provision.cpp: files (atomic writes keeping mode and owner), OpenSSL (EC P-256 key, CSR,
//    certificate checks) and the CLI11 subcommands.
//
// The CSR's subject (also in `anju provision --help`):
//   O = Anju gateway, L = <site.division_code> (when set), serialNumber = <site.grid_code>,
//   CN = <site.id>
// with requested extensions keyUsage = critical,digitalSignature and extendedKeyUsage =
// clientAuth. The codes go in the subject rather than a SAN because a CA that copies only the
// subject keeps them, and a person reading `openssl req -text` sees them.
// Thread: everything runs on the caller's thread (the CLI's main thread).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace CLI {
class App;
}

namespace anju::firmware {

// --- Config editing (pure) ----------------------------------------------------------------------

// Sets each scalar key (a dotted path, see below) to its value, in order, and returns the edited
// text with *error empty; on failure returns "" and sets *error to what is wrong (naming the key).
// An existing value is replaced in its own quoting style (plain, 'single', "double"; a value that
// plain YAML would read as something else, such as a code of digits, is double-quoted); a missing
// key is inserted in its section, after the closest key that comes before it in the schema
// (config_schema() order), else at the section's end, with the section's indentation; missing
// sections on the way are created. A value already equal leaves the text unchanged, so applying the
// same values twice changes no byte. Refused: values the identifier rules reject
// (check_config_value), values that are sections or lists, values spread over several lines,
// anchors, aliases and tags on an edited value, insertions into flow-style ({...}) sections, and
// any result parse_config rejects. `file` only names the file in parse errors.
//
// Paths: keys separated by '.', a key with '.', '[', ']' or '"' in it written in double quotes
// (\" and \\ escaped: see config_path_key), and list items as [index]:
//   site.grid_code   zigbee2mqtt.devices."0x00158d0001a2b3c4".gb28181   modbus.devices[0].gb28181
std::string set_config_values(std::string_view yaml,
                              const std::vector<std::pair<std::string, std::string>>& key_values,
                              std::string* error, const std::string& file = "config");

// The identifier rules for one value by its path, "" when fine: site.id ([A-Za-z0-9_-]{1,64}),
// site.grid_code (CJ/T 349), site.division_code (GB/T 2260; "" allowed), any *.gb28181
// (GB/T 28181; "" allowed) and a device's *.grid_code ("" allowed). Other paths: "".
// Messages start with the path: "site.grid_code: grid code: 19 digits, 20 required".
std::string check_config_value(std::string_view path, std::string_view value);

// One map key as a path segment: as is when it can be, else double-quoted and escaped.
std::string config_path_key(std::string_view key);

// Where a device with this id is configured, as paths of its entry (append ".gb28181" for its
// code): zigbee2mqtt.devices.<id>, chirpstack.devices.<DevEUI> (case-insensitive),
// generic_mqtt.devices.<id> and modbus.devices[i] (by its id). Empty when none (or when the text
// is not YAML). Cameras and OSDP readers have no gb28181 key in the config, so they are not here.
std::vector<std::string> find_device_entries(std::string_view yaml, std::string_view id);

// The scalar at `path` ("" when missing, not a scalar, or the text is not YAML).
std::string config_value(std::string_view yaml, std::string_view path);

// --- The CLI ------------------------------------------------------------------------------------

// What `anju provision ...` was given. add_provision_commands() registers the subcommands and
// binds their options here; run_provision() runs the one that was selected.
struct ProvisionCli {
  CLI::App* provision = nullptr;
  CLI::App* identity = nullptr;
  CLI::App* key = nullptr;
  CLI::App* cert = nullptr;
  // identity
  std::string site, grid_code, division_code;
  std::vector<std::string> devices;  // ID=GBCODE
  // key and cert
  std::string out_dir = "/etc/anju/tls";  // gateway.key, gateway.csr, gateway.crt
  std::string owner = "anju";  // when run as root: the owner of the files written ("" = root)
  // cert
  std::string cert_file;
  std::string ca_file;  // empty: uplink.tls.ca_file
  bool selected() const;
};

void add_provision_commands(CLI::App& app, ProvisionCli& cli);
// Exit code: 0 done (or nothing to do), 1 failed, 2 bad usage or a value that is not valid.
// `config_path` empty: /etc/anju/anju.yaml. `as_json`: one JSON object on stdout.
int run_provision(const ProvisionCli& cli, const std::string& config_path, bool as_json);

}  // namespace anju::firmware
