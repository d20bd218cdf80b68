// Fuzz target: config.apply and rules.update from the city (firmware/config_trial.cpp). The input
// is the token's `args` as JSON: the arguments are read, rules.update rewrites the running config
// (the embedded demo) with them, and the result is checked as anjud would before a trial. Nothing
// may crash or hang, and whatever is accepted must parse as a config for this site.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "anju/firmware/config.hpp"
#include "anju/firmware/config_trial.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const anju::firmware::Config running =
      *anju::firmware::parse_config(anju::firmware::demo_config_text(), "<demo>").config;
  const auto args = nlohmann::json::parse(data, data + size, nullptr, false);
  if (args.is_discarded()) return 0;
  std::string yaml;
  int timeout = 0;
  if (anju::firmware::parse_config_apply_args(args, yaml, timeout).empty()) {
    if (timeout < anju::firmware::kMinHealthTimeoutS) __builtin_trap();
    if (anju::firmware::check_city_config(yaml, running).empty() &&
        anju::firmware::parse_config(yaml, "x").config->site.id != running.site.id)
      __builtin_trap();
  }
  yaml.clear();
  if (anju::firmware::rules_update_yaml(anju::firmware::demo_config_text(), args, yaml, timeout)
          .empty()) {
    if (yaml.empty()) __builtin_trap();
    if (anju::firmware::check_city_config(yaml, running).empty() &&
        !anju::firmware::parse_config(yaml, "x").config)
      __builtin_trap();
  }
  return 0;
}
