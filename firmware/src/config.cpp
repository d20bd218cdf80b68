// anjud's configuration loader: the YAML document is walked against declarative schema tables
// (one table per section: key, type, target member, constraint, description), in the manner of
// Fluent Bit's config maps. The same tables produce both the validation and the key reference
// (config_schema()), so the two cannot drift apart.
//
// Every problem is collected (up to kMaxErrors) with the file, the 1-based line and column of the
// offending node and the dotted key path; nothing stops at the first error, and parse_config never
// throws.
#include "anju/firmware/config.hpp"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "anju/edge/event.hpp"

namespace anju::firmware {
namespace {

constexpr std::size_t kMaxErrors = 100;
// Values read from lists (after alias expansion): an anchor reused in many places could otherwise
// make a small document expand into an enormous configuration.
constexpr std::int64_t kMaxListValues = 1'000'000;
constexpr long kMaxFileBytes = 16L * 1024 * 1024;

constexpr std::int64_t kKiB = 1024;
constexpr std::int64_t kMiB = 1024 * kKiB;
constexpr std::int64_t kGiB = 1024 * kMiB;
constexpr std::int64_t kTiB = 1024 * kGiB;
constexpr std::int64_t kIntMax = std::numeric_limits<int>::max();

using Path = std::string;

std::string join_key(const Path& parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  std::string p = parent;
  p += '.';
  p += key;
  return p;
}

std::string index_key(const Path& parent, std::size_t i) {
  return parent + "[" + std::to_string(i) + "]";
}

// 'text' for messages: quoted, shortened, control characters escaped.
std::string quote(std::string_view s) {
  constexpr std::size_t kMax = 60;
  std::string out = "'";
  std::size_t n = 0;
  for (char c : s) {
    if (++n > kMax) {
      out += "...";
      break;
    }
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  out += "'";
  return out;
}

std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar:
      return quote(n.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Null:
      return "an empty value";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

std::string format_size(std::int64_t v) {
  if (v != 0) {
    if (v % kGiB == 0) return std::to_string(v / kGiB) + "GiB";
    if (v % kMiB == 0) return std::to_string(v / kMiB) + "MiB";
    if (v % kKiB == 0) return std::to_string(v / kKiB) + "KiB";
  }
  return std::to_string(v);
}

std::string format_number(double v) {
  std::array<char, 64> buf{};
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  if (ec != std::errc()) return std::to_string(v);
  return std::string(buf.data(), end);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// ---------------------------------------------------------------------------------------------
// Walk context: the error list, and where each key was seen (for errors found after the walk).

class Ctx {
 public:
  explicit Ctx(std::string file) : file_(std::move(file)) {}

  void error(const YAML::Mark& mark, const Path& key, std::string message) {
    if (errors_.size() >= kMaxErrors) {
      if (!truncated_) {
        truncated_ = true;
        errors_.push_back(
            {file_, 0, 0, "",
             "too many errors; stopped reporting after " + std::to_string(kMaxErrors)});
      }
      return;
    }
    failed_.push_back(key);
    ConfigError e;
    e.file = file_;
    if (!mark.is_null() && mark.line >= 0 && mark.column >= 0) {
      e.line = mark.line + 1;
      e.column = mark.column + 1;
    }
    e.key = key;
    e.message = std::move(message);
    errors_.push_back(std::move(e));
  }

  // Errors about a value: an empty value has no position of its own (yaml-cpp marks the next
  // token), so those are reported at the key.
  void value_error(const YAML::Node& value, const Path& key, std::string message) {
    if (value.IsNull() || !value.IsDefined())
      error(mark_of(key), key, std::move(message));
    else
      error(value.Mark(), key, std::move(message));
  }

  void remember(const Path& key, const YAML::Mark& mark) { marks_[key] = mark; }
  // True when `key` itself was written in the document (not just its section).
  bool given(const Path& key) const { return marks_.count(key) > 0; }

  // Where `key` was given; if it was not, where its closest enclosing section was.
  YAML::Mark mark_of(Path key) const {
    for (;;) {
      if (auto it = marks_.find(key); it != marks_.end()) return it->second;
      if (key.empty()) return YAML::Mark::null_mark();
      auto cut = key.find_last_of(".[");
      key.resize(cut == std::string::npos ? 0 : cut);
    }
  }

  // True when no error was reported at `key` or below it: cross-key checks only look at keys
  // that were read successfully, so one mistake is reported once.
  bool ok(const Path& key) const {
    for (const auto& f : failed_) {
      if (f.size() < key.size() || f.compare(0, key.size(), key) != 0) continue;
      if (f.size() == key.size() || f[key.size()] == '.' || f[key.size()] == '[') return false;
    }
    return true;
  }

  // Counts one value read from a list; false (with one error) once the budget is exhausted.
  bool spend(const YAML::Node& n, const Path& key) {
    if (++values_ <= kMaxListValues) return true;
    if (values_ == kMaxListValues + 1)
      error(n.Mark(), key,
            "too many values (more than " + std::to_string(kMaxListValues) +
                " list entries after expanding aliases)");
    return false;
  }

  bool has_errors() const { return !errors_.empty(); }

  // In document order (errors found by cross-key rules come last during the walk); errors with
  // no position, such as the "too many errors" note, stay at the end.
  std::vector<ConfigError> take_errors() {
    std::stable_sort(
        errors_.begin(), errors_.end(), [](const ConfigError& x, const ConfigError& y) {
          auto rank = [](const ConfigError& e) {
            return std::pair(e.line == 0 ? std::numeric_limits<int>::max() : e.line, e.column);
          };
          return rank(x) < rank(y);
        });
    return std::move(errors_);
  }

 private:
  std::string file_;
  std::vector<ConfigError> errors_;
  bool truncated_ = false;
  std::vector<Path> failed_;
  std::map<Path, YAML::Mark> marks_;
  std::int64_t values_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Value kinds: how one YAML value becomes one C++ value, with its constraint.

template <class V>
struct Kind {
  std::string type;        // for messages and the reference: "integer", "string", ...
  std::string constraint;  // e.g. "1..1024"; empty when any value of the type will do
  std::function<std::optional<V>(Ctx&, const YAML::Node&, const Path&)> parse;
  std::function<std::string(const V&)> show;  // a default value as it would be written in YAML
};

// A check on a parsed value: empty when fine, else what is wrong.
template <class V>
using Check = std::function<std::string(const V&)>;

const std::string* scalar(Ctx& ctx, const YAML::Node& n, const Path& key,
                          std::string_view expected) {
  if (n.IsScalar()) return &n.Scalar();
  std::string msg = "expected " + std::string(expected) + ", got " + describe(n);
  if (n.IsNull() && expected == "a string") msg += " (write \"\" for an empty string)";
  ctx.value_error(n, key, std::move(msg));
  return nullptr;
}

std::optional<std::int64_t> parse_int(std::string_view s, bool& out_of_range) {
  out_of_range = false;
  if (!s.empty() && s.front() == '+') {
    s.remove_prefix(1);
    if (!s.empty() && (s.front() == '-' || s.front() == '+')) return std::nullopt;
  }
  if (s.empty()) return std::nullopt;
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (end != s.data() + s.size()) return std::nullopt;
  if (ec == std::errc::result_out_of_range) {
    out_of_range = true;
    return std::nullopt;
  }
  if (ec != std::errc()) return std::nullopt;
  return v;
}

std::string range_text(std::int64_t lo, std::int64_t hi) {
  if (hi >= kIntMax) return ">= " + std::to_string(lo);
  return std::to_string(lo) + ".." + std::to_string(hi);
}

Kind<std::string> text(std::string constraint = {}, Check<std::string> check = {}) {
  Kind<std::string> k;
  k.type = "string";
  k.constraint = std::move(constraint);
  k.parse = [check](Ctx& ctx, const YAML::Node& n, const Path& key) -> std::optional<std::string> {
    const std::string* s = scalar(ctx, n, key, "a string");
    if (!s) return std::nullopt;
    if (check) {
      if (std::string err = check(*s); !err.empty()) {
        ctx.value_error(n, key, std::move(err));
        return std::nullopt;
      }
    }
    return *s;
  };
  k.show = [](const std::string& v) { return "\"" + v + "\""; };
  return k;
}

Kind<int> integer(std::int64_t lo, std::int64_t hi) {
  Kind<int> k;
  k.type = "integer";
  k.constraint = range_text(lo, hi);
  k.parse = [lo, hi](Ctx& ctx, const YAML::Node& n, const Path& key) -> std::optional<int> {
    const std::string* s = scalar(ctx, n, key, "an integer");
    if (!s) return std::nullopt;
    bool too_big = false;
    auto v = parse_int(*s, too_big);
    if (!v && !too_big) {
      ctx.value_error(n, key, "expected an integer, got " + quote(*s));
      return std::nullopt;
    }
    if (too_big || *v < lo || *v > hi) {
      std::string got = too_big ? quote(*s) : std::to_string(*v);
      if (hi < kIntMax)
        ctx.value_error(n, key,
                        "must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                            ", got " + got);
      else if (!too_big && *v < lo)
        ctx.value_error(n, key, "must be at least " + std::to_string(lo) + ", got " + got);
      else
        ctx.value_error(n, key, "must be at most " + std::to_string(hi) + ", got " + got);
      return std::nullopt;
    }
    return static_cast<int>(*v);
  };
  k.show = [](const int& v) { return std::to_string(v); };
  return k;
}

Kind<int> integer_one_of(std::vector<int> allowed) {
  std::string list;
  for (std::size_t i = 0; i < allowed.size(); ++i)
    list += (i == 0 ? "" : (i + 1 == allowed.size() ? " or " : ", ")) + std::to_string(allowed[i]);
  Kind<int> k = integer(std::numeric_limits<int>::min(), kIntMax);
  auto base = k.parse;
  k.constraint = list;
  k.parse = [base, allowed, list](Ctx& ctx, const YAML::Node& n,
                                  const Path& key) -> std::optional<int> {
    auto v = base(ctx, n, key);
    if (!v) return std::nullopt;
    if (std::find(allowed.begin(), allowed.end(), *v) == allowed.end()) {
      ctx.value_error(n, key, "must be " + list + ", got " + std::to_string(*v));
      return std::nullopt;
    }
    return v;
  };
  return k;
}

// "1048576", "512KiB", "64MiB", "1GiB", "64 MiB" (suffixes are case-insensitive; B, KiB, MiB, GiB,
// TiB). Only binary (1024-based) units: "MB" is rejected rather than guessed.
std::optional<std::int64_t> parse_size(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  if (i == 0 || i > 18) return std::nullopt;
  std::int64_t v = 0;
  std::from_chars(s.data(), s.data() + i, v);
  std::string_view rest = s.substr(i);
  if (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  std::string unit = lower(rest);
  std::int64_t mul = 0;
  if (unit.empty() || unit == "b")
    mul = 1;
  else if (unit == "kib")
    mul = kKiB;
  else if (unit == "mib")
    mul = kMiB;
  else if (unit == "gib")
    mul = kGiB;
  else if (unit == "tib")
    mul = kTiB;
  else
    return std::nullopt;
  if (v > std::numeric_limits<std::int64_t>::max() / mul) return std::nullopt;
  return v * mul;
}

Kind<std::int64_t> size(std::int64_t lo) {
  Kind<std::int64_t> k;
  k.type = "size";
  k.constraint = ">= " + format_size(lo);
  k.parse = [lo](Ctx& ctx, const YAML::Node& n, const Path& key) -> std::optional<std::int64_t> {
    static constexpr std::string_view kExpected =
        "a size in bytes (an integer, or a number with a KiB, MiB or GiB suffix)";
    const std::string* s = scalar(ctx, n, key, kExpected);
    if (!s) return std::nullopt;
    auto v = parse_size(*s);
    if (!v) {
      ctx.value_error(n, key, "expected " + std::string(kExpected) + ", got " + quote(*s));
      return std::nullopt;
    }
    if (*v < lo) {
      ctx.value_error(n, key,
                      "must be at least " + format_size(lo) + ", got " + format_size(*v) +
                          (*v % kKiB == 0 && *v != 0 ? " (" + std::to_string(*v) + " bytes)" : ""));
      return std::nullopt;
    }
    return v;
  };
  k.show = [](const std::int64_t& v) { return format_size(v); };
  return k;
}

Kind<double> number(std::optional<double> lo = std::nullopt) {
  Kind<double> k;
  k.type = "number";
  if (lo) k.constraint = ">= " + format_number(*lo);
  k.parse = [lo](Ctx& ctx, const YAML::Node& n, const Path& key) -> std::optional<double> {
    const std::string* s = scalar(ctx, n, key, "a number");
    if (!s) return std::nullopt;
    std::string_view t = *s;
    if (t.size() > 1 && t.front() == '+' && t[1] != '-' && t[1] != '+') t.remove_prefix(1);
    double v = 0;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc() || end != t.data() + t.size() || !std::isfinite(v)) {
      ctx.value_error(n, key, "expected a number, got " + quote(*s));
      return std::nullopt;
    }
    if (lo && v < *lo) {
      ctx.value_error(n, key, "must be at least " + format_number(*lo) + ", got " + *s);
      return std::nullopt;
    }
    return v;
  };
  k.show = [](const double& v) { return format_number(v); };
  return k;
}

Kind<bool> boolean() {
  Kind<bool> k;
  k.type = "boolean";
  k.parse = [](Ctx& ctx, const YAML::Node& n, const Path& key) -> std::optional<bool> {
    const std::string* s = scalar(ctx, n, key, "true or false");
    if (!s) return std::nullopt;
    std::string v = lower(*s);
    if (v == "true" || v == "yes" || v == "on") return true;
    if (v == "false" || v == "no" || v == "off") return false;
    ctx.value_error(n, key, "expected true or false, got " + quote(*s));
    return std::nullopt;
  };
  k.show = [](const bool& v) { return std::string(v ? "true" : "false"); };
  return k;
}

template <class V>
Kind<std::optional<V>> optional(Kind<V> inner) {
  Kind<std::optional<V>> k;
  k.type = inner.type;
  k.constraint = inner.constraint;
  k.parse = [p = inner.parse](Ctx& ctx, const YAML::Node& n,
                              const Path& key) -> std::optional<std::optional<V>> {
    auto v = p(ctx, n, key);
    if (!v) return std::nullopt;
    return std::optional<V>(std::move(*v));
  };
  k.show = [s = inner.show](const std::optional<V>& v) { return v ? s(*v) : std::string("unset"); };
  return k;
}

// A list of strings; an empty value is an empty list.
Kind<std::vector<std::string>> strings(Kind<std::string> item) {
  Kind<std::vector<std::string>> k;
  k.type = "list of strings";
  k.constraint = item.constraint;
  k.parse = [p = item.parse](Ctx& ctx, const YAML::Node& n,
                             const Path& key) -> std::optional<std::vector<std::string>> {
    std::vector<std::string> out;
    if (n.IsNull()) return out;
    if (!n.IsSequence()) {
      ctx.value_error(n, key, "expected a list of strings, got " + describe(n));
      return std::nullopt;
    }
    bool ok = true;
    std::size_t i = 0;
    for (auto it = n.begin(); it != n.end(); ++it, ++i) {
      Path item_key = index_key(key, i);
      if (!ctx.spend(*it, item_key)) return std::nullopt;
      auto v = p(ctx, *it, item_key);
      if (v)
        out.push_back(std::move(*v));
      else
        ok = false;
    }
    if (!ok) return std::nullopt;
    return out;
  };
  k.show = [](const std::vector<std::string>& v) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
    return s + "]";
  };
  return k;
}

// ---------------------------------------------------------------------------------------------
// Schema tables.

template <class T>
struct Field {
  std::string key;
  std::string type;
  std::string constraint;
  std::string description;
  bool required = false;
  // The key is present: read its value into the object.
  std::function<void(Ctx&, const YAML::Node&, const Path&, T&)> read;
  // The key is absent: report it if required (sections look inside), keep the default.
  std::function<void(Ctx&, const Path&, T&)> missing;
  // Appends the reference entries for this key (and the keys below it).
  std::function<void(std::vector<ConfigKeyDoc>&, const Path&, const T&)> doc;
};

template <class T>
struct Table {
  std::vector<Field<T>> fields;
  // Rules across keys, run once the section's keys are read (also when the section is absent,
  // since defaults count too).
  std::function<void(Ctx&, const Path&, T&)> check;
};

template <class T>
void walk_missing(Ctx& ctx, const Path& path, T& obj, const Table<T>& table) {
  for (const auto& f : table.fields) f.missing(ctx, join_key(path, f.key), obj);
  if (table.check) table.check(ctx, path, obj);
}

template <class T>
std::string unknown_key_message(const std::string& name, const Table<T>& table) {
  std::string msg = "unknown key " + quote(name) + " (expected one of: ";
  std::string best;
  std::size_t best_d = 3;
  for (std::size_t i = 0; i < table.fields.size(); ++i) {
    const std::string& k = table.fields[i].key;
    msg += (i ? ", " : "") + k;
    std::size_t d = edit_distance(lower(name), k);
    if (d < best_d && d < k.size()) {
      best_d = d;
      best = k;
    }
  }
  msg += ")";
  if (!best.empty()) msg += "; did you mean '" + best + "'?";
  if (name == "<<") msg += "; YAML merge keys are not supported";
  return msg;
}

// Reads a map of keys into `obj` following `table`. The section's own key position must have
// been remembered under `path` (the document root under "").
template <class T>
void walk(Ctx& ctx, const YAML::Node& node, const Path& path, T& obj, const Table<T>& table) {
  if (node.IsNull()) {  // a section with every key commented out
    walk_missing(ctx, path, obj, table);
    return;
  }
  if (!node.IsMap()) {
    if (path.empty())
      ctx.value_error(node, path,
                      "the document must be a map of sections (site, local_broker, ...), got " +
                          describe(node));
    else
      ctx.value_error(node, path, "expected a map of keys, got " + describe(node));
    return;
  }
  std::vector<std::optional<YAML::Mark>> seen(table.fields.size());
  for (auto it = node.begin(); it != node.end(); ++it) {
    const YAML::Node key_node = it->first;
    const YAML::Node value = it->second;
    if (!key_node.IsScalar()) {
      ctx.error(key_node.Mark(), path, "keys must be plain strings, got " + describe(key_node));
      continue;
    }
    const std::string& name = key_node.Scalar();
    std::size_t fi = 0;
    while (fi < table.fields.size() && table.fields[fi].key != name) ++fi;
    Path key = join_key(path, name);
    if (fi == table.fields.size()) {
      ctx.error(key_node.Mark(), key, unknown_key_message(name, table));
      continue;
    }
    if (seen[fi]) {
      ctx.error(key_node.Mark(), key,
                "duplicate key (first given on line " + std::to_string(seen[fi]->line + 1) + ")");
      continue;
    }
    seen[fi] = key_node.Mark();
    ctx.remember(key, key_node.Mark());
    table.fields[fi].read(ctx, value, key, obj);
  }
  for (std::size_t i = 0; i < table.fields.size(); ++i)
    if (!seen[i]) table.fields[i].missing(ctx, join_key(path, table.fields[i].key), obj);
  if (table.check) table.check(ctx, path, obj);
}

template <class T, class V>
Field<T> leaf(std::string key, V T::*member, Kind<V> kind, std::string description,
              bool required = false) {
  Field<T> f;
  f.key = std::move(key);
  f.type = kind.type;
  f.constraint = kind.constraint;
  f.description = description;
  f.required = required;
  f.read = [member, parse = kind.parse](Ctx& ctx, const YAML::Node& n, const Path& p, T& obj) {
    if (auto v = parse(ctx, n, p)) obj.*member = std::move(*v);
  };
  f.missing = [required](Ctx& ctx, const Path& p, T&) {
    if (required) ctx.error(ctx.mark_of(p), p, "missing required key");
  };
  f.doc = [member, show = kind.show, type = kind.type, constraint = kind.constraint, description,
           required](std::vector<ConfigKeyDoc>& out, const Path& p, const T& defaults) {
    out.push_back(
        {p, type, constraint, required ? "" : show(defaults.*member), description, required});
  };
  return f;
}

template <class T, class S>
Field<T> section(std::string key, S T::*member, const Table<S>& table, std::string description) {
  Field<T> f;
  f.key = std::move(key);
  f.type = "section";
  f.description = description;
  f.read = [member, &table](Ctx& ctx, const YAML::Node& n, const Path& p, T& obj) {
    walk(ctx, n, p, obj.*member, table);
  };
  f.missing = [member, &table](Ctx& ctx, const Path& p, T& obj) {
    walk_missing(ctx, p, obj.*member, table);
  };
  f.doc = [member, &table, description](std::vector<ConfigKeyDoc>& out, const Path& p,
                                        const T& defaults) {
    out.push_back({p, "section", "", "", description, false});
    for (const auto& sub : table.fields) sub.doc(out, join_key(p, sub.key), defaults.*member);
  };
  return f;
}

// A list of records (maps), each read with `table`; items are addressed as key[i].
template <class T, class S>
Field<T> record_list(
    std::string key, std::vector<S> T::*member, const Table<S>& table, std::string description,
    std::type_identity_t<std::function<void(Ctx&, const Path&, const std::vector<S>&)>> check_all) {
  Field<T> f;
  f.key = std::move(key);
  f.type = "list of maps";
  f.description = description;
  f.read = [member, &table, check_all](Ctx& ctx, const YAML::Node& n, const Path& p, T& obj) {
    std::vector<S> out;
    if (!n.IsNull()) {
      if (!n.IsSequence()) {
        ctx.value_error(n, p, "expected a list of maps, got " + describe(n));
        return;
      }
      std::size_t i = 0;
      for (auto it = n.begin(); it != n.end(); ++it, ++i) {
        Path item_key = index_key(p, i);
        if (!ctx.spend(*it, item_key)) return;
        ctx.remember(item_key, it->Mark());
        S item{};
        if (!it->IsMap()) {
          ctx.value_error(*it, item_key, "expected a map, got " + describe(*it));
          continue;
        }
        walk(ctx, *it, item_key, item, table);
        out.push_back(std::move(item));
      }
    }
    if (check_all) check_all(ctx, p, out);
    obj.*member = std::move(out);
  };
  f.missing = [](Ctx&, const Path&, T&) {};
  f.doc = [&table, description](std::vector<ConfigKeyDoc>& out, const Path& p, const T&) {
    out.push_back({p, "list of maps", "", "[]", description, false});
    const S defaults{};
    for (const auto& sub : table.fields) sub.doc(out, join_key(p + "[]", sub.key), defaults);
  };
  return f;
}

// A map of records keyed by name, each read with `table`; items are addressed as key.<name>.
template <class T, class S>
Field<T> record_map(std::string key, std::map<std::string, S> T::*member, const Table<S>& table,
                    std::string description, Check<std::string> check_name) {
  Field<T> f;
  f.key = std::move(key);
  f.type = "map of maps";
  f.description = description;
  f.read = [member, &table, check_name](Ctx& ctx, const YAML::Node& n, const Path& p, T& obj) {
    std::map<std::string, S> out;
    if (!n.IsNull()) {
      if (!n.IsMap()) {
        ctx.value_error(n, p, "expected a map of named entries, got " + describe(n));
        return;
      }
      for (auto it = n.begin(); it != n.end(); ++it) {
        const YAML::Node name_node = it->first;
        const YAML::Node value = it->second;
        if (!ctx.spend(name_node, p)) return;
        if (!name_node.IsScalar()) {
          ctx.error(name_node.Mark(), p, "names must be plain strings, got " + describe(name_node));
          continue;
        }
        const std::string& name = name_node.Scalar();
        Path item_key = join_key(p, name);
        if (std::string err = check_name(name); !err.empty()) {
          ctx.error(name_node.Mark(), item_key, err);
          continue;
        }
        if (out.count(name)) {
          ctx.error(name_node.Mark(), item_key, "duplicate entry " + quote(name));
          continue;
        }
        ctx.remember(item_key, name_node.Mark());
        S item{};
        walk(ctx, value, item_key, item, table);
        out.emplace(name, std::move(item));
      }
    }
    obj.*member = std::move(out);
  };
  f.missing = [](Ctx&, const Path&, T&) {};
  f.doc = [&table, description](std::vector<ConfigKeyDoc>& out, const Path& p, const T&) {
    out.push_back({p, "map of maps", "", "{}", description, false});
    const S defaults{};
    for (const auto& sub : table.fields) sub.doc(out, join_key(p + ".<name>", sub.key), defaults);
  };
  return f;
}

// The fields of a member struct, flattened into the enclosing section (uplink's broker keys).
template <class T, class S>
std::vector<Field<T>> flatten(const Table<S>& table, S T::*member) {
  std::vector<Field<T>> fields;
  for (const auto& sub : table.fields) {
    Field<T> f;
    f.key = sub.key;
    f.type = sub.type;
    f.constraint = sub.constraint;
    f.description = sub.description;
    f.required = sub.required;
    f.read = [member, r = sub.read](Ctx& ctx, const YAML::Node& n, const Path& p, T& obj) {
      r(ctx, n, p, obj.*member);
    };
    f.missing = [member, m = sub.missing](Ctx& ctx, const Path& p, T& obj) {
      m(ctx, p, obj.*member);
    };
    f.doc = [member, d = sub.doc](std::vector<ConfigKeyDoc>& out, const Path& p,
                                  const T& defaults) { d(out, p, defaults.*member); };
    fields.push_back(std::move(f));
  }
  return fields;
}

// ---------------------------------------------------------------------------------------------
// Value checks.

bool is_id_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

std::string check_id(const std::string& s) {
  if (s.empty() || s.size() > 64 || !std::all_of(s.begin(), s.end(), is_id_char))
    return "must be 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-', got " + quote(s);
  return {};
}

std::string check_id_or_empty(const std::string& s) {
  return s.empty() ? std::string() : check_id(s);
}

Check<std::string> digits(std::size_t n, bool allow_empty) {
  return [n, allow_empty](const std::string& s) -> std::string {
    if (s.empty() && allow_empty) return {};
    if (s.size() != n ||
        !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return "must be exactly " + std::to_string(n) + " digits, got " + quote(s) + " (" +
             std::to_string(s.size()) + (s.size() == 1 ? " character)" : " characters)");
    return {};
  };
}

std::string check_non_empty(const std::string& s) {
  return s.empty() ? "must not be empty" : std::string();
}

Check<std::string> one_of(std::vector<std::string> allowed) {
  return [allowed](const std::string& s) -> std::string {
    if (std::find(allowed.begin(), allowed.end(), s) != allowed.end()) return {};
    std::string msg = "must be one of ";
    for (std::size_t i = 0; i < allowed.size(); ++i) msg += (i ? ", " : "") + allowed[i];
    return msg + "; got " + quote(s);
  };
}

std::string one_of_text(const std::vector<std::string>& allowed) {
  std::string s = "one of: ";
  for (std::size_t i = 0; i < allowed.size(); ++i) s += (i ? ", " : "") + allowed[i];
  return s;
}

constexpr std::array<std::string_view, 6> kSchemes{"tcp://",   "ssl://", "mqtt://",
                                                   "mqtts://", "ws://",  "wss://"};

std::string_view uri_scheme(std::string_view uri) {
  for (auto s : kSchemes)
    if (uri.substr(0, s.size()) == s) return s;
  return {};
}

bool is_tls_scheme(std::string_view scheme) {
  return scheme == "ssl://" || scheme == "mqtts://" || scheme == "wss://";
}

std::string check_broker_uri(const std::string& uri) {
  std::string_view scheme = uri_scheme(uri);
  if (scheme.empty())
    return "must start with tcp://, ssl://, mqtt://, mqtts://, ws:// or wss://, got " + quote(uri);
  std::string_view rest = std::string_view(uri).substr(scheme.size());
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    if (scheme != "ws://" && scheme != "wss://")
      return "unexpected path " + quote(rest.substr(slash)) + " (only ws:// and wss:// take one)";
    rest = rest.substr(0, slash);
  }
  if (rest.find('@') != std::string_view::npos)
    return "must not contain credentials: put them in username_file and password_file";
  std::string_view host, port;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string_view::npos) return "unterminated '[' in the host of " + quote(uri);
    host = rest.substr(1, close - 1);
    if (close + 1 >= rest.size() || rest[close + 1] != ':')
      return "must have host:port, e.g. tcp://127.0.0.1:1883, got " + quote(uri);
    port = rest.substr(close + 2);
    bool ipv6 = !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
             c == ':' || c == '.';
    });
    if (!ipv6) return "bad IPv6 address " + quote(host);
  } else {
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos)
      return "must have host:port, e.g. tcp://127.0.0.1:1883, got " + quote(uri);
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (host.empty()) return "the host is missing in " + quote(uri);
    for (char c : host)
      if (!(is_id_char(c) || c == '.'))
        return "bad host name " + quote(host) + " (IPv6 addresses go in brackets: [::1]:1883)";
  }
  bool ok = !port.empty() && port.size() <= 5 &&
            std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  int p = 0;
  if (ok) std::from_chars(port.data(), port.data() + port.size(), p);
  if (!ok || p < 1 || p > 65535) return "the port must be 1..65535, got " + quote(port);
  return {};
}

std::string check_topic_base(const std::string& s) {
  if (s.empty()) return "must not be empty";
  if (s.find_first_of("+#") != std::string::npos)
    return "must not contain the MQTT wildcards '+' or '#', got " + quote(s);
  if (s.back() == '/') return "must not end with '/', got " + quote(s);
  return {};
}

std::string check_device_name(const std::string& s) {
  if (s.empty()) return "device names must not be empty";
  if (s.find_first_of("+#") != std::string::npos)
    return "device names must not contain the MQTT wildcards '+' or '#'";
  if (std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }))
    return "device names must not contain control characters";
  return {};
}

std::string known_event_kinds() {
  std::string s;
  // EventKind is a plain enumeration numbered from 0; to_string answers "unknown" past the end.
  for (int i = 0; i < 1000; ++i) {
    auto name = edge::to_string(static_cast<edge::EventKind>(i));
    if (name == "unknown") break;
    s += (i ? ", " : "") + std::string(name);
  }
  return s;
}

std::string check_event_kind(const std::string& s) {
  if (edge::event_kind_from_string(s)) return {};
  return "unknown event kind " + quote(s) + " (known: " + known_event_kinds() + ")";
}

// "a and b must be given together": reports the absent one, at the present one.
void check_pair(Ctx& ctx, const Path& path, const char* a, const std::string& va, const char* b,
                const std::string& vb) {
  Path ka = join_key(path, a), kb = join_key(path, b);
  if (!ctx.ok(ka) || !ctx.ok(kb) || va.empty() == vb.empty()) return;
  const Path& absent = va.empty() ? ka : kb;
  const Path& present = va.empty() ? kb : ka;
  ctx.error(ctx.mark_of(present), absent,
            std::string("missing: ") + a + " and " + b + " must be given together");
}

// ---------------------------------------------------------------------------------------------
// Value kinds of the sensor drivers' sections.

// An integer of type T in lo..hi; also accepts hexadecimal ("0x1F"), as register addresses and
// bit masks are often written.
template <class T>
Kind<T> integral(std::int64_t lo, std::int64_t hi) {
  Kind<T> k;
  k.type = "integer";
  k.constraint = std::to_string(lo) + ".." + std::to_string(hi);
  k.parse = [lo, hi](Ctx& ctx, const YAML::Node& n, const Path& key) -> std::optional<T> {
    const std::string* s = scalar(ctx, n, key, "an integer");
    if (!s) return std::nullopt;
    std::optional<std::int64_t> v;
    bool too_big = false;
    std::string_view t = *s;
    if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
      std::uint64_t u = 0;
      auto [end, ec] = std::from_chars(t.data() + 2, t.data() + t.size(), u, 16);
      if (ec == std::errc::result_out_of_range ||
          (ec == std::errc() && u > static_cast<std::uint64_t>(hi)))
        too_big = true;
      else if (ec == std::errc() && end == t.data() + t.size())
        v = static_cast<std::int64_t>(u);
    } else {
      v = parse_int(t, too_big);
    }
    if (!v && !too_big) {
      ctx.value_error(n, key, "expected an integer, got " + quote(*s));
      return std::nullopt;
    }
    if (too_big || *v < lo || *v > hi) {
      ctx.value_error(n, key,
                      "must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                          ", got " + (too_big ? quote(*s) : std::to_string(*v)));
      return std::nullopt;
    }
    return static_cast<T>(*v);
  };
  k.show = [](const T& v) { return std::to_string(v); };
  return k;
}

// One of a fixed set of names, each standing for a value of V.
template <class V>
Kind<V> named(std::vector<std::pair<std::string, V>> names) {
  std::vector<std::string> keys;
  for (const auto& [name, v] : names) keys.push_back(name);
  const std::string list = one_of_text(keys);
  Kind<V> k;
  k.type = "string";
  k.constraint = list;
  k.parse = [names, list](Ctx& ctx, const YAML::Node& n, const Path& key) -> std::optional<V> {
    const std::string* s = scalar(ctx, n, key, "a string");
    if (!s) return std::nullopt;
    for (const auto& [name, v] : names)
      if (name == *s) return v;
    ctx.value_error(n, key, "must be " + list + ", got " + quote(*s));
    return std::nullopt;
  };
  k.show = [names](const V& v) {
    for (const auto& [name, value] : names)
      if (value == v) return "\"" + name + "\"";
    return std::string("?");
  };
  return k;
}

Kind<edge::EventKind> event_kind() {
  Kind<edge::EventKind> k;
  k.type = "string";
  k.constraint = "an event kind";
  k.parse = [](Ctx& ctx, const YAML::Node& n, const Path& key) -> std::optional<edge::EventKind> {
    const std::string* s = scalar(ctx, n, key, "an event kind");
    if (!s) return std::nullopt;
    if (auto kind = edge::event_kind_from_string(*s)) return kind;
    ctx.value_error(n, key, check_event_kind(*s));
    return std::nullopt;
  };
  k.show = [](const edge::EventKind& v) {
    // Appended, not concatenated: GCC 12's -O3 warns (-Wrestrict, a false positive) on
    // "\"" + std::string(...) + "\"" here, and Release builds treat warnings as errors.
    std::string out = "\"";
    out += edge::to_string(v);
    out += '"';
    return out;
  };
  return k;
}

// A YAML value as JSON, as drivers read it (json_values, the camera section): plain scalars that
// read as numbers or booleans become those, quoted ones stay strings.
nlohmann::json yaml_to_json(const YAML::Node& n, int depth = 0) {
  if (depth > 64) return nullptr;
  if (n.IsMap()) {
    nlohmann::json j = nlohmann::json::object();
    for (auto it = n.begin(); it != n.end(); ++it)
      j[it->first.IsScalar() ? it->first.Scalar() : std::string("?")] =
          yaml_to_json(it->second, depth + 1);
    return j;
  }
  if (n.IsSequence()) {
    nlohmann::json j = nlohmann::json::array();
    for (auto it = n.begin(); it != n.end(); ++it) j.push_back(yaml_to_json(*it, depth + 1));
    return j;
  }
  if (!n.IsScalar()) return nullptr;
  const std::string& v = n.Scalar();
  if (n.Tag() == "!") return v;
  if (v == "true" || v == "false") return v == "true";
  bool too_big = false;
  if (auto i = parse_int(v, too_big)) return *i;
  double d = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
  if (!v.empty() && ec == std::errc() && end == v.data() + v.size() && std::isfinite(d)) return d;
  return v;
}

// A list of plain values compared with what a device sends: true/false, numbers, or strings
// (quote a string that would otherwise read as a number or a boolean: "1", "on").
Kind<std::vector<nlohmann::json>> json_values() {
  Kind<std::vector<nlohmann::json>> k;
  k.type = "list of values";
  k.parse = [](Ctx& ctx, const YAML::Node& n,
               const Path& key) -> std::optional<std::vector<nlohmann::json>> {
    std::vector<nlohmann::json> out;
    if (n.IsNull()) return out;
    if (!n.IsSequence()) {
      ctx.value_error(n, key, "expected a list of values, got " + describe(n));
      return std::nullopt;
    }
    std::size_t i = 0;
    for (auto it = n.begin(); it != n.end(); ++it, ++i) {
      Path item_key = index_key(key, i);
      if (!ctx.spend(*it, item_key)) return std::nullopt;
      if (!it->IsScalar()) {
        ctx.value_error(*it, item_key, "expected a plain value, got " + describe(*it));
        return std::nullopt;
      }
      out.push_back(yaml_to_json(*it));
    }
    return out;
  };
  k.show = [](const std::vector<nlohmann::json>& v) { return nlohmann::json(v).dump(); };
  return k;
}

// ---------------------------------------------------------------------------------------------
// The schema.

const Table<TlsConfig>& tls_table() {
  static const Table<TlsConfig> t{
      {
          leaf("enabled", &TlsConfig::enabled, boolean(),
               "Use TLS; the uri must then be ssl://, mqtts:// or wss://."),
          leaf("ca_file", &TlsConfig::ca_file, text(),
               "PEM bundle of the CAs that verify the broker's certificate (required with TLS)."),
          leaf("cert_file", &TlsConfig::cert_file, text(),
               "Client certificate for mutual TLS (PEM); needs key_file."),
          leaf("key_file", &TlsConfig::key_file, text(),
               "Client private key for mutual TLS (PEM); needs cert_file."),
          leaf("verify_hostname", &TlsConfig::verify_hostname, boolean(),
               "Check that the broker's certificate names the uri's host."),
      },
      [](Ctx& ctx, const Path& p, TlsConfig& tls) {
        if (tls.enabled && tls.ca_file.empty() && ctx.ok(join_key(p, "enabled")) &&
            ctx.ok(join_key(p, "ca_file")))
          ctx.error(ctx.mark_of(join_key(p, "enabled")), join_key(p, "ca_file"),
                    "required when tls.enabled is true");
        check_pair(ctx, p, "cert_file", tls.cert_file, "key_file", tls.key_file);
      }};
  return t;
}

std::vector<Field<BrokerConfig>> broker_fields(bool uri_required) {
  return {
      leaf("uri", &BrokerConfig::uri,
           text("tcp|ssl|mqtt|mqtts|ws|wss://host:port", check_broker_uri),
           "Broker address: tcp://, mqtt:// (plain), ssl://, mqtts:// (TLS), ws://, wss:// "
           "(websocket, may end in a path), then host:port.",
           uri_required),
      leaf("client_id", &BrokerConfig::client_id, text(),
           "MQTT client id; empty: derived from site.id."),
      leaf("mqtt_version", &BrokerConfig::mqtt_version, integer_one_of({3, 5}),
           "MQTT protocol version: 3 (= 3.1.1) or 5."),
      leaf("keepalive_s", &BrokerConfig::keepalive_s, integer(5, 3600),
           "MQTT keep-alive interval, seconds."),
      leaf("username_file", &BrokerConfig::username_file, text(),
           "File holding the user name (secrets never go in this config); needs password_file."),
      leaf("password_file", &BrokerConfig::password_file, text(),
           "File holding the password; needs username_file."),
      section("tls", &BrokerConfig::tls, tls_table(), "TLS settings for this broker."),
  };
}

void check_broker(Ctx& ctx, const Path& p, const BrokerConfig& b) {
  check_pair(ctx, p, "username_file", b.username_file, "password_file", b.password_file);
  Path uri_key = join_key(p, "uri"), enabled_key = join_key(p, "tls.enabled");
  if (b.uri.empty() || !ctx.ok(uri_key) || !ctx.ok(enabled_key)) return;
  bool tls_scheme = is_tls_scheme(uri_scheme(b.uri));
  if (b.tls.enabled && !tls_scheme)
    ctx.error(ctx.mark_of(enabled_key), enabled_key,
              "TLS is enabled but the uri " + quote(b.uri) +
                  " is not a TLS one (use ssl://, mqtts:// or wss://)");
  else if (!b.tls.enabled && tls_scheme)
    ctx.error(ctx.mark_of(uri_key), uri_key, "a TLS uri needs tls.enabled: true (and tls.ca_file)");
}

const Table<BrokerConfig>& local_broker_table() {
  static const Table<BrokerConfig> t{broker_fields(true), check_broker};
  return t;
}

const Table<OutboxBudget>& outbox_table() {
  static const Table<OutboxBudget> t{
      {
          leaf("status_bytes", &OutboxBudget::status_bytes, size(64 * kKiB),
               "Budget for unsent status messages; oldest evicted first."),
          leaf("summary_bytes", &OutboxBudget::summary_bytes, size(64 * kKiB),
               "Budget for unsent summaries; oldest evicted first."),
          leaf("event_bytes", &OutboxBudget::event_bytes, size(64 * kKiB),
               "Budget for unsent events; oldest evicted first. Alerts have no budget."),
      },
      {}};
  return t;
}

const Table<UplinkConfig>& uplink_table() {
  static const Table<UplinkConfig> t = [] {
    Table<UplinkConfig> u;
    u.fields = {
        leaf("window", &UplinkConfig::window, integer(1, 1024),
             "QoS 1 messages in flight at once."),
        leaf("backoff_min_ms", &UplinkConfig::backoff_min_ms, integer(10, kIntMax),
             "First reconnect delay, milliseconds; doubles on each failure."),
        leaf("backoff_max_ms", &UplinkConfig::backoff_max_ms, integer(10, kIntMax),
             "Longest reconnect delay, milliseconds (>= backoff_min_ms)."),
        leaf("event_kinds", &UplinkConfig::event_kinds,
             strings(text("known event kinds", check_event_kind)),
             "Event kinds sent one by one on anju/v1/<site>/event/<kind>."),
        section("outbox", &UplinkConfig::outbox, outbox_table(),
                "Disk budgets of the store-and-forward outbox, per message class."),
        leaf("enabled", &UplinkConfig::enabled, boolean(),
             "Connect to the cloud broker; false: run fully local."),
        leaf("command_key_file", &UplinkConfig::command_key_file, text(),
             "The city's Ed25519 public key (PEM) that signs credentials.sync and the other "
             "commands that change configuration or release evidence. Empty: they are refused."),
        leaf("evidence_per_hour", &UplinkConfig::evidence_per_hour, integer(0, 1000),
             "evidence.request: camera snapshots released to the city in any hour (0: none)."),
    };
    for (auto& f : flatten(Table<BrokerConfig>{broker_fields(false), {}}, &UplinkConfig::broker))
      u.fields.push_back(std::move(f));
    u.check = [](Ctx& ctx, const Path& p, UplinkConfig& c) {
      Path min_key = join_key(p, "backoff_min_ms"), max_key = join_key(p, "backoff_max_ms");
      if (ctx.ok(min_key) && ctx.ok(max_key) && c.backoff_max_ms < c.backoff_min_ms)
        ctx.error(ctx.mark_of(max_key), max_key,
                  "must be at least backoff_min_ms (" + std::to_string(c.backoff_min_ms) +
                      "), got " + std::to_string(c.backoff_max_ms));
      Path uri_key = join_key(p, "uri");
      if (c.enabled && c.broker.uri.empty() && ctx.ok(uri_key) && ctx.ok(join_key(p, "enabled")))
        ctx.error(ctx.mark_of(uri_key), uri_key, "required when uplink.enabled is true");
      check_broker(ctx, p, c.broker);
    };
    return u;
  }();
  return t;
}

const Table<JournalConfig>& journal_table() {
  static const Table<JournalConfig> t{
      {
          leaf("synchronous", &JournalConfig::synchronous,
               text(one_of_text({"full", "normal"}), one_of({"full", "normal"})),
               "SQLite synchronous mode: full survives power loss, normal may lose the last "
               "commits."),
          leaf("commit_window_ms", &JournalConfig::commit_window_ms, integer(0, 1000),
               "Group commit: the longest wait to fill a batch, milliseconds."),
          leaf("quiet_commit_ms", &JournalConfig::quiet_commit_ms, integer(0, 1000),
               "Routine events (no alert change) wait this long for more before they commit, "
               "milliseconds; alerts commit at once. Fewer commits, fewer flash writes."),
          leaf("max_batch", &JournalConfig::max_batch, integer(1, 100000),
               "Most events written in one transaction."),
          leaf("retention_days", &JournalConfig::retention_days, integer(1, kIntMax),
               "Events older than this are deleted, days."),
          leaf("alert_retention_days", &JournalConfig::alert_retention_days, integer(1, kIntMax),
               "Alerts (and the events they reference) are kept this long, days "
               "(>= retention_days)."),
          leaf("audit_retention_days", &JournalConfig::audit_retention_days, integer(1, kIntMax),
               "The audit log (who did what, looked at which evidence or personal data, and "
               "why), kept apart from the journal in <data_dir>/audit/, is kept this long, days "
               "(>= retention_days)."),
          leaf("max_bytes", &JournalConfig::max_bytes, size(kMiB),
               "Cap on the journal's total size; oldest non-alert events go first."),
      },
      [](Ctx& ctx, const Path& p, JournalConfig& j) {
        Path r = join_key(p, "retention_days"), a = join_key(p, "alert_retention_days");
        if (ctx.ok(r) && ctx.ok(a) && j.alert_retention_days < j.retention_days)
          ctx.error(ctx.mark_of(a), a,
                    "must be at least retention_days (" + std::to_string(j.retention_days) +
                        "), got " + std::to_string(j.alert_retention_days));
        Path u = join_key(p, "audit_retention_days");
        if (ctx.ok(r) && ctx.ok(u) && j.audit_retention_days < j.retention_days)
          ctx.error(ctx.mark_of(u), u,
                    "must be at least retention_days (" + std::to_string(j.retention_days) +
                        "), got " + std::to_string(j.audit_retention_days));
      }};
  return t;
}

const Table<SummaryConfig>& summary_table() {
  static const Table<SummaryConfig> t{
      {
          leaf("interval_s", &SummaryConfig::interval_s, integer(10, 86400),
               "Period of the summary message, seconds."),
          leaf("hourly", &SummaryConfig::hourly, boolean(),
               "Also a summary per hour (summary/1h)."),
          leaf("daily", &SummaryConfig::daily, boolean(),
               "Also a summary per UTC day (summary/1d)."),
          leaf("backfill_hours", &SummaryConfig::backfill_hours, integer(0, 168),
               "Periods missed while the gateway was off are computed on start, newest first, "
               "this many hours back at most."),
      },
      {}};
  return t;
}

const Table<ThresholdRule>& threshold_table() {
  static const Table<ThresholdRule> t{
      {
          leaf("name", &ThresholdRule::name, text("[A-Za-z0-9_-]{1,64}, unique", check_id),
               "Rule name, unique; appears in its alerts.", true),
          leaf("kind", &ThresholdRule::kind, text("an event kind", check_event_kind),
               "Event kind whose value the rule watches (temperature, water_level, ...).", true),
          leaf("value", &ThresholdRule::value, text(),
               "Name of the value watched; empty: the kind's name. Required for measurement."),
          leaf("above", &ThresholdRule::above, optional(number()),
               "Raise when the value goes above this."),
          leaf("below", &ThresholdRule::below, optional(number()),
               "Raise when the value goes below this."),
          leaf("rise", &ThresholdRule::rise, optional(number()),
               "Rate of rise: raise when the value rose by this much over its lowest reading "
               "within rise_window_s."),
          leaf("rise_window_s", &ThresholdRule::rise_window_s, integer(1, 86400),
               "The window of rise, seconds."),
          leaf("nonzero_for_s", &ThresholdRule::nonzero_for_s, integer(0, 30 * 86400),
               "Never zero: raise when every reading for this long was non-zero (a flow that "
               "never stops), seconds; 0 = off."),
          leaf("hysteresis", &ThresholdRule::hysteresis, number(0.0),
               "Clear only once the value is back past the limit by this much."),
          leaf("hold_s", &ThresholdRule::hold_s, integer(0, kIntMax),
               "The condition must hold this long before the alert is raised, seconds."),
          leaf("severity", &ThresholdRule::severity, integer(1, 4),
               "Alert severity: 1 (most serious) .. 4 (information)."),
          leaf("devices", &ThresholdRule::devices, strings(text("", check_non_empty)),
               "Device ids or names the rule applies to; empty: every device of that kind."),
      },
      [](Ctx& ctx, const Path& p, ThresholdRule& r) {
        Path above = join_key(p, "above"), below = join_key(p, "below");
        if (!ctx.ok(above) || !ctx.ok(below) || !ctx.ok(join_key(p, "rise")) ||
            !ctx.ok(join_key(p, "nonzero_for_s")))
          return;
        if (r.kind == "measurement" && r.value.empty() && ctx.ok(join_key(p, "kind")))
          ctx.error(ctx.mark_of(join_key(p, "kind")), join_key(p, "value"),
                    "required with kind measurement (which of the device's values)");
        const int forms = (r.above || r.below ? 1 : 0) + (r.rise ? 1 : 0) + (r.nonzero_for_s > 0);
        if (forms == 0)
          ctx.error(ctx.mark_of(p), p,
                    "needs 'above' or 'below' (or both), or 'rise', or 'nonzero_for_s'");
        else if (forms > 1)
          ctx.error(ctx.mark_of(p), p,
                    "one form per rule: a level (above/below), a rise, or nonzero_for_s");
        else if (r.rise && *r.rise <= 0)
          ctx.error(ctx.mark_of(join_key(p, "rise")), join_key(p, "rise"),
                    "must be more than 0, got " + format_number(*r.rise));
        else if (r.above && r.below && *r.below >= *r.above)
          ctx.error(ctx.mark_of(below), below,
                    "must be less than above (" + format_number(*r.above) + "), got " +
                        format_number(*r.below));
      }};
  return t;
}

template <class Rule>
void check_unique_rule_names(Ctx& ctx, const Path& p, const std::vector<Rule>& rules) {
  std::map<std::string, std::size_t> first;
  for (std::size_t i = 0; i < rules.size(); ++i) {
    if (rules[i].name.empty()) continue;
    auto [it, inserted] = first.emplace(rules[i].name, i);
    if (!inserted) {
      Path key = join_key(index_key(p, i), "name");
      ctx.error(ctx.mark_of(key), key,
                "duplicate rule name " + quote(rules[i].name) + " (also used by " +
                    index_key(p, it->second) + ")");
    }
  }
}

const Table<WelfareRule>& welfare_table() {
  static const Table<WelfareRule> t{
      {
          leaf("name", &WelfareRule::name, text("[A-Za-z0-9_-]{1,64}", check_id),
               "Rule name of the alert, e.g. welfare_3_2_1201.", true),
          leaf("building", &WelfareRule::building, text(), "The home's building."),
          leaf("unit", &WelfareRule::unit, text(), "The home's unit."),
          leaf("room", &WelfareRule::room, text(), "The home (room number)."),
          leaf("devices", &WelfareRule::devices, strings(text("", check_non_empty)),
               "Devices whose activity shows someone is well: the home's door contact or reader, "
               "its water meter (ids or names). Heartbeats and battery reports do not count.",
               true),
          leaf("quiet_h", &WelfareRule::quiet_h, integer(1, 720),
               "No activity for this long raises the alert, hours."),
          leaf("severity", &WelfareRule::severity, integer(1, 4), "Severity of the alert."),
      },
      [](Ctx& ctx, const Path& p, WelfareRule& w) {
        if (ctx.ok(join_key(p, "devices")) && w.devices.empty())
          ctx.error(ctx.mark_of(join_key(p, "devices")), join_key(p, "devices"),
                    "needs at least one device");
      }};
  return t;
}

const Table<CorrelationRule>& correlation_table() {
  static const std::vector<std::string> kScopes{"device", "room", "unit", "building", "site"};
  static const Table<CorrelationRule> t{
      {
          leaf("name", &CorrelationRule::name, text("[A-Za-z0-9_-]{1,64}", check_id),
               "Rule name of the correlated alert, e.g. fire_suspected.", true),
          leaf("rules", &CorrelationRule::rules, strings(text("", check_non_empty)),
               "Alert rules that must all be open in the same place: built-in ones (smoke, gas, "
               "water_leak, door_forced, ...) or threshold rule names.",
               true),
          leaf("window_s", &CorrelationRule::window_s, integer(1, 86400),
               "The alerts must have been seen within this long of each other, seconds."),
          leaf("scope", &CorrelationRule::scope, text(one_of_text(kScopes), one_of(kScopes)),
               "The same device, room, unit, building or site."),
          leaf("severity", &CorrelationRule::severity, integer(1, 4),
               "Severity of the correlated alert."),
      },
      [](Ctx& ctx, const Path& p, CorrelationRule& c) {
        if (ctx.ok(join_key(p, "rules")) && c.rules.size() < 2)
          ctx.error(ctx.mark_of(join_key(p, "rules")), join_key(p, "rules"),
                    "needs at least two rules to correlate");
      }};
  return t;
}

// Drivers whose devices rules.supervision can name (their events' source).
const std::vector<std::string> kSupervisedDrivers{
    "zigbee2mqtt", "chirpstack", "generic_mqtt", "modbus", "camera", "osdp", "wiegand", "gpio"};

const Table<DriverSupervision>& supervision_table() {
  static const Table<DriverSupervision> t{
      {
          leaf("heartbeat_timeout_s", &DriverSupervision::heartbeat_timeout_s, integer(0, 604800),
               "Silence after which a device of this driver is offline, seconds; 0 = off.", true),
      },
      {}};
  return t;
}

const Table<RulesConfig>& rules_table() {
  static const Table<RulesConfig> t{
      {
          leaf("battery_low_percent", &RulesConfig::battery_low_percent, integer(1, 100),
               "A battery reading at or below this raises battery_low, percent."),
          leaf("heartbeat_timeout_s", &RulesConfig::heartbeat_timeout_s, integer(0, 604800),
               "Silence after which a device is offline, seconds; 0 turns the check off."),
          record_map(
              "supervision", &RulesConfig::supervision, supervision_table(),
              "Per driver (zigbee2mqtt, chirpstack, generic_mqtt, modbus, camera, osdp, wiegand, "
              "gpio): its devices' heartbeat timeout, over heartbeat_timeout_s. Built in: modbus, "
              "camera and osdp report offline themselves and wiegand and gpio are wired, so they "
              "are 0 (off); a device's own heartbeat_timeout_s wins over both.",
              [](const std::string& name) -> std::string {
                for (const auto& d : kSupervisedDrivers)
                  if (d == name) return {};
                return "no driver " + quote(name) + " (one of " + one_of_text(kSupervisedDrivers) +
                       ")";
              }),
          leaf("weak_linkquality", &RulesConfig::weak_linkquality, integer(0, 255),
               "A zigbee2mqtt linkquality at or below this raises signal_weak (severity 4); 0 = "
               "off."),
          leaf("linkquality_hysteresis", &RulesConfig::linkquality_hysteresis, integer(1, 255),
               "signal_weak clears when linkquality is above weak_linkquality by more than this."),
          leaf(
              "rssi_hysteresis_db", &RulesConfig::rssi_hysteresis_db, number(0),
              "A driver's signal_weak (chirpstack.weak_rssi_dbm) clears only at this many dB above "
              "its threshold."),
          record_list("thresholds", &RulesConfig::thresholds, threshold_table(),
                      "Threshold rules on measured values.",
                      check_unique_rule_names<ThresholdRule>),
          record_list("correlations", &RulesConfig::correlations, correlation_table(),
                      "Alerts that together become one (smoke + a temperature rise in a room).",
                      {}),
          record_list("welfare", &RulesConfig::welfare, welfare_table(),
                      "Watched homes (residents living alone): no activity for quiet_h raises "
                      "the alert (welfare_check), the next activity clears it.",
                      check_unique_rule_names<WelfareRule>),
          leaf("escalate_sev1_s", &RulesConfig::escalate_sev1_s, integer(0, 604800),
               "A severity-1 alert nobody acknowledged is escalated after this, seconds; 0 = "
               "never."),
          leaf("escalate_sev2_s", &RulesConfig::escalate_sev2_s, integer(0, 604800),
               "The same for severity 2, seconds."),
          leaf("escalate_sev3_s", &RulesConfig::escalate_sev3_s, integer(0, 604800),
               "The same for severity 3, seconds."),
          leaf("escalate_sev4_s", &RulesConfig::escalate_sev4_s, integer(0, 604800),
               "The same for severity 4, seconds."),
          leaf("escalation_raises_severity", &RulesConfig::escalation_raises_severity, boolean(),
               "Each escalation makes the alert one step more serious (down to 1)."),
      },
      [](Ctx& ctx, const Path& p, RulesConfig& r) {
        const Path list = join_key(p, "correlations");
        if (!ctx.ok(join_key(p, "thresholds"))) return;
        std::set<std::string> known{"device_offline"};
        for (const auto& th : r.thresholds) known.insert(th.name);
        for (const auto& co : r.correlations) known.insert(co.name);
        for (const auto& w : r.welfare) known.insert(w.name);
        for (std::size_t i = 0; i < r.correlations.size(); ++i)
          for (std::size_t j = 0; j < r.correlations[i].rules.size(); ++j) {
            const std::string& rule = r.correlations[i].rules[j];
            const Path key = index_key(join_key(index_key(list, i), "rules"), j);
            if (known.count(rule) || edge::event_kind_from_string(rule) || !ctx.ok(key)) continue;
            ctx.error(ctx.mark_of(join_key(index_key(list, i), "rules")), key,
                      "no alert rule " + quote(rule) +
                          " (a built-in kind such as smoke, or a threshold rule's name)");
          }
      }};
  return t;
}

const Table<DeviceConfig>& device_table() {
  static const Table<DeviceConfig> t{
      {
          leaf("building", &DeviceConfig::building, text(), "Building the device is in."),
          leaf("unit", &DeviceConfig::unit, text(),
               "Unit (entrance/stairwell) within the building."),
          leaf("room", &DeviceConfig::room, text(), "Room, door or area name."),
          leaf("grid_code", &DeviceConfig::grid_code, text("20 digits", digits(20, true)),
               "CJ/T 349 grid code overriding site.grid_code."),
          leaf("gb28181", &DeviceConfig::gb28181, text("20 digits", digits(20, true)),
               "GB/T 28181 device code."),
          leaf("heartbeat_timeout_s", &DeviceConfig::heartbeat_timeout_s,
               optional(integer(0, 604800)),
               "Overrides rules.heartbeat_timeout_s for this device, seconds; 0 = off."),
      },
      {}};
  return t;
}

const Table<Zigbee2MqttConfig>& zigbee2mqtt_table() {
  static const Table<Zigbee2MqttConfig> t{
      {
          leaf("enabled", &Zigbee2MqttConfig::enabled, boolean(), "Run the zigbee2mqtt driver."),
          leaf("base_topic", &Zigbee2MqttConfig::base_topic,
               text("no '+', '#' or trailing '/'", check_topic_base),
               "zigbee2mqtt's base topic on the local broker."),
          leaf("report_unchanged", &Zigbee2MqttConfig::report_unchanged, boolean(),
               "Make an event of a reading equal to the previous one."),
          leaf("refresh_s", &Zigbee2MqttConfig::refresh_s, integer(0, 86400),
               "A message equal to the previous one still makes its events when the device's "
               "last events are this old, seconds (0: never), so that a sensor checking in "
               "unchanged stays online; anjud uses at most a third of the devices' heartbeat "
               "timeout."),
          record_map("devices", &Zigbee2MqttConfig::devices, device_table(),
                     "Per-device settings, keyed by IEEE address (0x...) or friendly name.",
                     check_device_name),
      },
      {}};
  return t;
}

// ---- sensor drivers (issue 6): ChirpStack, generic MQTT/JSON, Modbus --------------------------

// Problems a driver's own validate() found ("fields[2].pointer: must start with '/'"), each
// reported at the key it names below `path` when it names one.
void report_problems(Ctx& ctx, const Path& path, const std::vector<std::string>& problems) {
  for (const auto& problem : problems) {
    const auto colon = problem.find(": ");
    std::string_view where = colon == std::string::npos
                                 ? std::string_view{}
                                 : std::string_view(problem).substr(0, colon);
    const bool names_key = !where.empty() && std::all_of(where.begin(), where.end(), [](char c) {
      return is_id_char(c) || c == '.' || c == '[' || c == ']';
    });
    Path key = names_key ? join_key(path, where) : path;
    if (!ctx.ok(key)) continue;  // already reported when it was read
    ctx.error(ctx.mark_of(key), key, names_key ? problem.substr(colon + 2) : problem);
  }
}

std::string check_dev_eui(const std::string& s) {
  if (s.size() != 16 || s.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
    return "a DevEUI is 16 hexadecimal digits, got " + quote(s);
  return {};
}

std::string check_topic_pattern(const std::string& s) {
  return drivers::generic_mqtt::pattern_error(s);
}

std::string check_pointer(const std::string& s) {
  return drivers::generic_mqtt::pointer_syntax_error(s);
}

template <class T>
void check_unique(Ctx& ctx, const Path& p, const std::vector<T>& items, std::string T::*member,
                  const char* what) {
  std::map<std::string, std::size_t> seen;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string& v = items[i].*member;
    if (v.empty()) continue;
    auto [it, fresh] = seen.emplace(v, i);
    if (!fresh) {
      Path key = join_key(index_key(p, i), what);
      ctx.error(ctx.mark_of(key), key,
                quote(v) + " is used twice (also " + index_key(p, it->second) + ")");
    }
  }
}

const Table<SensorDeviceConfig>& sensor_device_table() {
  static const Table<SensorDeviceConfig> t = [] {
    Table<SensorDeviceConfig> d;
    d.fields = {
        leaf("name", &SensorDeviceConfig::name, text(),
             "Display name; empty: what the source calls it, or the id."),
        leaf("kind", &SensorDeviceConfig::kind, text(),
             "Device kind (smoke_detector, water_meter, ...); empty: the mapping's."),
    };
    for (auto& f : flatten(device_table(), &SensorDeviceConfig::place))
      d.fields.push_back(std::move(f));
    return d;
  }();
  return t;
}

const Table<drivers::generic_mqtt::ActiveRule>& active_rule_table() {
  using drivers::generic_mqtt::ActiveRule;
  static const Table<ActiveRule> t{
      {
          leaf("active_values", &ActiveRule::active_values, json_values(),
               "Binary kinds: values meaning active (alarm, open, wet); empty: the usual words, "
               "true/false and numbers != 0."),
          leaf("inactive_values", &ActiveRule::inactive_values, json_values(),
               "Binary kinds: values meaning inactive; empty: anything not active."),
          leaf("invert", &ActiveRule::invert, boolean(), "Binary kinds: flip the result."),
      },
      {}};
  return t;
}

const Table<drivers::chirpstack::ObjectField>& object_field_table() {
  using drivers::chirpstack::ObjectField;
  static const Table<ObjectField> t = [] {
    Table<ObjectField> o;
    o.fields = {
        leaf("path", &ObjectField::path, text("", check_non_empty),
             "Where the value is in the codec's object: a dotted path or a JSON pointer.", true),
        leaf("kind", &ObjectField::kind, event_kind(), "Event kind the value becomes."),
        leaf("name", &ObjectField::name, text(), "Value name; empty: the kind's (or the key's)."),
        leaf("unit", &ObjectField::unit, text(), "Unit, e.g. C, %, m, kPa."),
        leaf("scale", &ObjectField::scale, number(), "value = raw * scale + offset."),
        leaf("offset", &ObjectField::offset, number(), "value = raw * scale + offset."),
    };
    for (auto& f : flatten(active_rule_table(), &ObjectField::active))
      o.fields.push_back(std::move(f));
    return o;
  }();
  return t;
}

const Table<drivers::chirpstack::RawField>& raw_field_table() {
  using namespace drivers::chirpstack;
  static const Table<RawField> t{
      {
          leaf("fport", &RawField::fport, optional(integral<std::uint32_t>(1, 255)),
               "Only uplinks on this fPort; unset: any."),
          leaf("offset", &RawField::offset, integral<std::size_t>(0, 255),
               "Byte offset in the payload."),
          leaf("type", &RawField::type,
               named<RawType>({{"u8", RawType::u8},
                               {"i8", RawType::i8},
                               {"u16", RawType::u16},
                               {"i16", RawType::i16},
                               {"u32", RawType::u32},
                               {"i32", RawType::i32},
                               {"float32", RawType::float32}}),
               "Value type."),
          leaf("endian", &RawField::endian,
               named<Endian>({{"big", Endian::big}, {"little", Endian::little}}), "Byte order."),
          leaf("kind", &RawField::kind, event_kind(), "Event kind the value becomes."),
          leaf("name", &RawField::name, text(), "Value name; empty: the kind's."),
          leaf("unit", &RawField::unit, text(), "Unit."),
          leaf("scale", &RawField::scale, number(), "value = raw * scale + offset_value."),
          leaf("offset_value", &RawField::offset_value, number(),
               "value = raw * scale + offset_value."),
          leaf("mask", &RawField::mask, integral<std::uint32_t>(0, 0xFFFFFFFFLL),
               "Binary kinds: active when raw & mask != 0 (0: raw != 0)."),
          leaf("invert", &RawField::invert, boolean(), "Binary kinds: flip the result."),
      },
      {}};
  return t;
}

const Table<ChirpStackMappingConfig>& chirpstack_mapping_table() {
  using drivers::chirpstack::DeviceMapping;
  static const Table<ChirpStackMappingConfig> t = [] {
    Table<DeviceMapping> m{
        {
            leaf("device_kind", &DeviceMapping::device_kind, text(),
                 "Device kind of these devices, e.g. manhole_sensor."),
            record_list("object_fields", &DeviceMapping::object_fields, object_field_table(),
                        "Values from the decoded object (when the device profile has a codec).",
                        {}),
            record_list("raw_fields", &DeviceMapping::raw_fields, raw_field_table(),
                        "Values at fixed places in the raw payload (devices without a codec).", {}),
            leaf("weak_rssi_dbm", &DeviceMapping::weak_rssi_dbm, optional(number()),
                 "Best RSSI below this raises signal_weak, dBm; unset: no signal_weak events."),
        },
        {}};
    Table<ChirpStackMappingConfig> c;
    c.fields = flatten(m, &ChirpStackMappingConfig::mapping);
    c.fields.push_back(leaf("profiles", &ChirpStackMappingConfig::profiles,
                            strings(text("", check_non_empty)),
                            "ChirpStack device profile names whose devices use this mapping."));
    c.check = [](Ctx& ctx, const Path& p, ChirpStackMappingConfig& mc) {
      report_problems(ctx, p, drivers::chirpstack::validate(mc.mapping));
    };
    return c;
  }();
  return t;
}

const Table<ChirpStackDeviceConfig>& chirpstack_device_table() {
  static const Table<ChirpStackDeviceConfig> t = [] {
    Table<ChirpStackDeviceConfig> d;
    d.fields = flatten(sensor_device_table(), &ChirpStackDeviceConfig::device);
    d.fields.push_back(leaf("mapping", &ChirpStackDeviceConfig::mapping, text(),
                            "Name of this device's mapping (before its profile's); empty: by "
                            "profile, else the default."));
    return d;
  }();
  return t;
}

const Table<ChirpStackConfig>& chirpstack_table() {
  static const Table<ChirpStackConfig> t{
      {
          leaf("enabled", &ChirpStackConfig::enabled, boolean(),
               "Run the ChirpStack driver (subscribes application/+/device/+/event/+)."),
          leaf("fcnt_window", &ChirpStackConfig::fcnt_window, integer(1, 65535),
               "A frame counter this far below the last one is a repeat (dropped); further below "
               "is a device restart."),
          record_map("mappings", &ChirpStackConfig::mappings, chirpstack_mapping_table(),
                     "Named mappings: which values of an uplink become which events.", check_id),
          leaf("default", &ChirpStackConfig::default_mapping, text(),
               "Mapping of devices with neither their own nor a profile's; empty: none (signal, "
               "battery and join events only)."),
          record_map("devices", &ChirpStackConfig::devices, chirpstack_device_table(),
                     "Per-device settings, keyed by DevEUI.", check_dev_eui),
      },
      [](Ctx& ctx, const Path& p, ChirpStackConfig& c) {
        auto known = [&](const std::string& name, const Path& key) {
          if (name.empty() || c.mappings.count(name) || !ctx.ok(key)) return;
          std::string names;
          for (const auto& [n, m] : c.mappings) names += (names.empty() ? "" : ", ") + n;
          ctx.error(
              ctx.mark_of(key), key,
              "no mapping named " + quote(name) +
                  (names.empty() ? " (chirpstack.mappings is empty)" : " (known: " + names + ")"));
        };
        known(c.default_mapping, join_key(p, "default"));
        for (const auto& [eui, d] : c.devices)
          known(d.mapping, join_key(join_key(join_key(p, "devices"), eui), "mapping"));
        std::map<std::string, std::string> owner;
        for (const auto& [name, m] : c.mappings)
          for (const auto& profile : m.profiles) {
            auto [it, fresh] = owner.emplace(profile, name);
            if (!fresh) {
              Path key = join_key(join_key(join_key(p, "mappings"), name), "profiles");
              ctx.error(ctx.mark_of(key), key,
                        "profile " + quote(profile) + " is already served by mapping " +
                            quote(it->second));
            }
          }
      }};
  return t;
}

const Table<drivers::generic_mqtt::FieldMap>& field_map_table() {
  using drivers::generic_mqtt::FieldMap;
  static const Table<FieldMap> t = [] {
    Table<FieldMap> o;
    o.fields = {
        leaf("pointer", &FieldMap::pointer, text("JSON pointer", check_pointer),
             "Where the value is in the payload (RFC 6901, e.g. /data/temp; \"\" = the whole "
             "payload)."),
        leaf("kind", &FieldMap::kind, event_kind(), "Event kind the value becomes."),
        leaf("name", &FieldMap::name, text(), "Value name; empty: the kind's (or the key's)."),
        leaf("unit", &FieldMap::unit, text(), "Unit, e.g. C, %, m, kPa."),
        leaf("scale", &FieldMap::scale, number(), "value = raw * scale + offset."),
        leaf("offset", &FieldMap::offset, number(), "value = raw * scale + offset."),
        leaf("required", &FieldMap::required, boolean(),
             "A message without this value is an error (else: nothing to report)."),
    };
    for (auto& f : flatten(active_rule_table(), &FieldMap::active))
      o.fields.push_back(std::move(f));
    return o;
  }();
  return t;
}

const Table<drivers::generic_mqtt::Mapping>& generic_mapping_table() {
  using namespace drivers::generic_mqtt;
  static const Table<Mapping> t{
      {
          leaf("name", &Mapping::name, text("[A-Za-z0-9_-]{1,64}", check_id),
               "Name of the mapping, for logs and metrics.", true),
          leaf("topic", &Mapping::topic, text("topic pattern", check_topic_pattern),
               "Topic pattern: MQTT filter syntax with named captures ({device}, +building).",
               true),
          leaf("device_pointer", &Mapping::device_pointer, text("JSON pointer", check_pointer),
               "Device id in the payload; empty: the {device} capture, else the topic."),
          leaf("device_kind", &Mapping::device_kind, text(), "Device kind of these devices."),
          leaf("timestamp_pointer", &Mapping::timestamp_pointer,
               text("JSON pointer", check_pointer), "The device's own timestamp, optional."),
          leaf("timestamp_unit", &Mapping::timestamp_unit,
               named<TimestampUnit>(
                   {{"ms", TimestampUnit::milliseconds}, {"s", TimestampUnit::seconds}}),
               "Unit of the device's timestamp."),
          record_list("fields", &Mapping::fields, field_map_table(),
                      "Values in the payload and the events they become.", {}),
      },
      [](Ctx& ctx, const Path& p, Mapping& m) {
        if (ctx.ok(join_key(p, "fields")) && m.fields.empty()) {
          ctx.error(ctx.mark_of(p), join_key(p, "fields"), "a mapping needs at least one field");
          return;
        }
        report_problems(ctx, p, validate(m));
      }};
  return t;
}

const Table<GenericMqttConfig>& generic_mqtt_table() {
  static const Table<GenericMqttConfig> t{
      {
          leaf("enabled", &GenericMqttConfig::enabled, boolean(),
               "Run the generic MQTT/JSON driver (when it has mappings)."),
          record_list(
              "mappings", &GenericMqttConfig::mappings, generic_mapping_table(),
              "Topic patterns and how their payloads become events.",
              [](Ctx& ctx, const Path& p, const std::vector<drivers::generic_mqtt::Mapping>& m) {
                check_unique(ctx, p, m, &drivers::generic_mqtt::Mapping::name, "name");
              }),
          record_map("devices", &GenericMqttConfig::devices, sensor_device_table(),
                     "Per-device settings, keyed by the device id a mapping yields.",
                     check_device_name),
      },
      {}};
  return t;
}

const Table<drivers::modbus::RegisterEntry>& register_table() {
  using namespace drivers::modbus;
  static const Table<RegisterEntry> t{
      {
          leaf("name", &RegisterEntry::name, text(), "Value name; empty: the kind's."),
          leaf("function", &RegisterEntry::function, integral<std::uint8_t>(1, 4),
               "1 coils, 2 discrete inputs, 3 holding registers, 4 input registers."),
          leaf("address", &RegisterEntry::address, integral<std::uint32_t>(0, 65535),
               "0-based protocol address (register 40001 is 0)."),
          leaf("count", &RegisterEntry::count, integral<std::uint16_t>(1, 2),
               "Registers the value takes; default: what its type needs."),
          leaf("type", &RegisterEntry::type,
               named<DataType>({{"bool", DataType::boolean},
                                {"int16", DataType::int16},
                                {"uint16", DataType::uint16},
                                {"int32", DataType::int32},
                                {"uint32", DataType::uint32},
                                {"float32", DataType::float32}}),
               "Value type."),
          leaf("order", &RegisterEntry::order,
               named<WordOrder>({{"ABCD", WordOrder::ABCD},
                                 {"CDAB", WordOrder::CDAB},
                                 {"BADC", WordOrder::BADC},
                                 {"DCBA", WordOrder::DCBA}}),
               "Byte order of the value, A its most significant byte."),
          leaf("scale", &RegisterEntry::scale, number(), "value = raw * scale + offset."),
          leaf("offset", &RegisterEntry::offset, number(), "value = raw * scale + offset."),
          leaf("unit", &RegisterEntry::unit, text(), "Unit, e.g. m, kPa, C."),
          leaf("kind", &RegisterEntry::kind, event_kind(), "Event kind the value becomes."),
          leaf("bit", &RegisterEntry::bit, optional(integral<std::uint8_t>(0, 31)),
               "Binary kinds on registers: the bit that says active; unset: raw != 0."),
          leaf("invert", &RegisterEntry::invert, boolean(), "Binary kinds: flip the result."),
      },
      [](Ctx& ctx, const Path& p, RegisterEntry& e) {
        if (!ctx.given(join_key(p, "count"))) e.count = register_count(e.type);
        report_problems(ctx, p, validate(e));
      }};
  return t;
}

const Table<ModbusSerialConfig>& modbus_serial_table() {
  static const std::vector<std::string> kParity{"N", "E", "O"};
  static const Table<ModbusSerialConfig> t{
      {
          leaf("device", &ModbusSerialConfig::device, text(), "Serial device, e.g. /dev/ttyUSB0."),
          leaf("baud", &ModbusSerialConfig::baud,
               integer_one_of({1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200}), "Baud rate."),
          leaf("parity", &ModbusSerialConfig::parity, text(one_of_text(kParity), one_of(kParity)),
               "N (none), E (even) or O (odd)."),
          leaf("data_bits", &ModbusSerialConfig::data_bits, integer(5, 8), "Data bits."),
          leaf("stop_bits", &ModbusSerialConfig::stop_bits, integer(1, 2), "Stop bits."),
      },
      {}};
  return t;
}

const Table<ModbusDeviceEntry>& modbus_device_table() {
  static const std::vector<std::string> kTransports{"tcp", "rtu"};
  static const Table<ModbusDeviceEntry> t = [] {
    Table<ModbusDeviceEntry> d;
    d.fields = {
        leaf("id", &ModbusDeviceEntry::id, text("[A-Za-z0-9_-]{1,64}", check_id),
             "Device id in events (unique).", true),
        leaf("name", &ModbusDeviceEntry::name, text(), "Display name; empty: the id."),
        leaf("kind", &ModbusDeviceEntry::kind, text(), "Device kind, e.g. fire_panel."),
        leaf("transport", &ModbusDeviceEntry::transport,
             text(one_of_text(kTransports), one_of(kTransports)), "tcp or rtu."),
        leaf("host", &ModbusDeviceEntry::host, text(), "TCP: host name or address."),
        leaf("port", &ModbusDeviceEntry::port, integer(1, 65535), "TCP: port."),
        section("serial", &ModbusDeviceEntry::serial, modbus_serial_table(), "RTU: the line."),
        leaf("unit_id", &ModbusDeviceEntry::unit_id, integer(0, 255),
             "Modbus unit (slave) id; 255 = none over TCP."),
        leaf("poll_interval_ms", &ModbusDeviceEntry::poll_interval_ms, integer(100, 86'400'000),
             "Time between polls, milliseconds."),
        leaf("timeout_ms", &ModbusDeviceEntry::timeout_ms, integer(10, 60'000),
             "Answer timeout of one request, milliseconds."),
        leaf("retries", &ModbusDeviceEntry::retries, integer(0, 10),
             "Extra attempts of a request that timed out."),
        leaf("refresh_polls", &ModbusDeviceEntry::refresh_polls, integer(0, 100'000),
             "Binary values are sent again every this many polls even unchanged (0: only "
             "changes)."),
        record_list("registers", &ModbusDeviceEntry::registers, register_table(),
                    "The register map: what to read and what it means.", {}),
    };
    for (auto& f : flatten(device_table(), &ModbusDeviceEntry::place))
      d.fields.push_back(std::move(f));
    d.check = [](Ctx& ctx, const Path& p, ModbusDeviceEntry& e) {
      if (!ctx.ok(join_key(p, "transport"))) return;
      if (e.transport == "tcp" && e.host.empty() && ctx.ok(join_key(p, "host")))
        ctx.error(ctx.mark_of(p), join_key(p, "host"), "required with transport tcp");
      if (e.transport == "rtu" && e.serial.device.empty() && ctx.ok(join_key(p, "serial.device")))
        ctx.error(ctx.mark_of(p), join_key(p, "serial.device"), "required with transport rtu");
      if (e.registers.empty() && ctx.ok(join_key(p, "registers")))
        ctx.error(ctx.mark_of(p), join_key(p, "registers"), "a device needs at least one register");
    };
    return d;
  }();
  return t;
}

const Table<ModbusConfig>& modbus_table() {
  static const Table<ModbusConfig> t{
      {
          leaf("enabled", &ModbusConfig::enabled, boolean(),
               "Run the Modbus driver (when it has devices)."),
          leaf("backoff_min_ms", &ModbusConfig::backoff_min_ms, integer(10, 3'600'000),
               "First reconnect delay after a lost connection, milliseconds."),
          leaf("backoff_max_ms", &ModbusConfig::backoff_max_ms, integer(10, 3'600'000),
               "Longest reconnect delay, milliseconds."),
          record_list("devices", &ModbusConfig::devices, modbus_device_table(),
                      "Modbus devices and their register maps.",
                      [](Ctx& ctx, const Path& p, const std::vector<ModbusDeviceEntry>& d) {
                        check_unique(ctx, p, d, &ModbusDeviceEntry::id, "id");
                      }),
      },
      [](Ctx& ctx, const Path& p, ModbusConfig& c) {
        Path min_key = join_key(p, "backoff_min_ms"), max_key = join_key(p, "backoff_max_ms");
        if (ctx.ok(min_key) && ctx.ok(max_key) && c.backoff_max_ms < c.backoff_min_ms)
          ctx.error(ctx.mark_of(max_key), max_key, "must be at least backoff_min_ms");
      }};
  return t;
}

// ---- access control (issue 4) -------------------------------------------------------------------

const Table<OsdpReaderEntry>& osdp_reader_table() {
  static const Table<OsdpReaderEntry> t{
      {
          leaf("address", &OsdpReaderEntry::address, integer(0, 126),
               "The reader's OSDP address on its bus.", true),
          leaf("id", &OsdpReaderEntry::id, text("[A-Za-z0-9_-]{1,64}", check_id),
               "Device id of the reader in events (unique).", true),
          leaf("name", &OsdpReaderEntry::name, text(), "Display name; empty: the id."),
          leaf("door", &OsdpReaderEntry::door, text("[A-Za-z0-9_-]{1,64}", check_id),
               "Door id: what the credentials' door groups name, and the door rules' key.", true),
          leaf("building", &OsdpReaderEntry::building, text(), "Building of the door."),
          leaf("unit", &OsdpReaderEntry::unit, text(), "Unit (entrance) of the door."),
          leaf("room", &OsdpReaderEntry::room, text(), "The door's name."),
          leaf("secure_channel", &OsdpReaderEntry::secure_channel, boolean(),
               "Talk Secure Channel only (AES-128); never falls back to plaintext."),
          leaf("scbk_file", &OsdpReaderEntry::scbk_file, text(),
               "File with the reader's Secure Channel key, 32 hex digits, mode 0600."),
          leaf("install_mode", &OsdpReaderEntry::install_mode, boolean(),
               "Install the key: handshake with the default key SCBK-D, then set scbk_file's."),
          leaf("led", &OsdpReaderEntry::led, integer(0, 255), "LED that shows the decision."),
          leaf("controls_lock", &OsdpReaderEntry::controls_lock, boolean(),
               "The reader's output drives the door's lock relay."),
          leaf("lock_output", &OsdpReaderEntry::lock_output, integer(0, 255),
               "Output that drives the lock."),
          leaf("lock_pulse_ms", &OsdpReaderEntry::lock_pulse_ms, integer(100, 6'553'500),
               "How long a grant opens the lock, milliseconds."),
      },
      [](Ctx& ctx, const Path& p, OsdpReaderEntry& r) {
        if (r.secure_channel && r.scbk_file.empty() && ctx.ok(join_key(p, "scbk_file")))
          ctx.error(ctx.mark_of(join_key(p, "secure_channel")), join_key(p, "scbk_file"),
                    "required with secure_channel: true");
        if (r.install_mode && !r.secure_channel && ctx.ok(join_key(p, "secure_channel")))
          ctx.error(ctx.mark_of(join_key(p, "install_mode")), join_key(p, "install_mode"),
                    "needs secure_channel: true");
      }};
  return t;
}

std::string check_osdp_device(const std::string& s) {
  if (s.rfind("tcp:", 0) == 0) {
    std::string host;
    int port = 0;
    if (!split_listen(s.substr(4), host, port))
      return "expected tcp:HOST:PORT (e.g. tcp:192.168.10.40:4001), got " + quote(s);
    return {};
  }
  if (s.empty() || s[0] != '/') return "expected a serial device (/dev/ttyUSB0) or tcp:HOST:PORT";
  return {};
}

const Table<OsdpBusEntry>& osdp_bus_table() {
  static const Table<OsdpBusEntry> t{
      {
          leaf("name", &OsdpBusEntry::name, text("[A-Za-z0-9_-]{1,64}", check_id),
               "Name of the bus, for logs and status.", true),
          leaf("device", &OsdpBusEntry::device,
               text("/dev/... or tcp:HOST:PORT", check_osdp_device),
               "Serial device of the RS-485 line, or tcp:HOST:PORT of a serial server.", true),
          leaf("baud", &OsdpBusEntry::baud, integer_one_of({9600, 19200, 38400, 57600, 115200}),
               "Baud rate (serial)."),
          leaf("rs485", &OsdpBusEntry::rs485, boolean(),
               "Ask the kernel for RS-485 mode (RTS driven while sending)."),
          leaf("reply_timeout_ms", &OsdpBusEntry::reply_timeout_ms, integer(20, 5000),
               "Wait this long for a reply before resending, milliseconds."),
          leaf("retries", &OsdpBusEntry::retries, integer(0, 10),
               "Resends of a command before the reader is reported offline."),
          leaf("poll_interval_ms", &OsdpBusEntry::poll_interval_ms, integer(0, 10'000),
               "Pause between polling rounds, milliseconds."),
          record_list("readers", &OsdpBusEntry::readers, osdp_reader_table(),
                      "The readers (PDs) on this bus.",
                      [](Ctx& ctx, const Path& p, const std::vector<OsdpReaderEntry>& rs) {
                        std::map<int, std::size_t> seen;
                        for (std::size_t i = 0; i < rs.size(); ++i) {
                          auto [it, fresh] = seen.emplace(rs[i].address, i);
                          if (fresh) continue;
                          Path key = join_key(index_key(p, i), "address");
                          ctx.error(ctx.mark_of(key), key,
                                    "address " + std::to_string(rs[i].address) +
                                        " is used twice on this bus (also " +
                                        index_key(p, it->second) + ")");
                        }
                      }),
      },
      [](Ctx& ctx, const Path& p, OsdpBusEntry& b) {
        if (b.readers.empty() && ctx.ok(join_key(p, "readers")))
          ctx.error(ctx.mark_of(p), join_key(p, "readers"), "a bus needs at least one reader");
      }};
  return t;
}

// The wired lines of a GPIO door, by their config key, in a fixed order.
std::vector<std::pair<std::string, int>> gpio_door_lines(const GpioDoorEntry& d) {
  std::vector<std::pair<std::string, int>> out;
  const std::pair<const char*, const std::optional<int>*> all[] = {
      {"d0", &d.d0},           {"d1", &d.d1},
      {"contact", &d.contact}, {"exit_button", &d.exit_button},
      {"tamper", &d.tamper},   {"lock", &d.lock}};
  for (const auto& [key, v] : all)
    if (*v) out.emplace_back(key, **v);
  return out;
}

const Table<GpioDoorEntry>& gpio_door_table() {
  static const Table<GpioDoorEntry> t{
      {
          leaf("door", &GpioDoorEntry::door, text("[A-Za-z0-9_-]{1,64}", check_id),
               "Door id: what the credentials' door groups name, and the door rules' key.", true),
          leaf("id", &GpioDoorEntry::id, text("[A-Za-z0-9_-]{1,64}", check_id),
               "Device id of the door's contact, exit button, tamper input and lock in events "
               "(unique).",
               true),
          leaf("name", &GpioDoorEntry::name, text(), "Display name; empty: the id."),
          leaf("building", &GpioDoorEntry::building, text(), "Building of the door."),
          leaf("unit", &GpioDoorEntry::unit, text(), "Unit (entrance) of the door."),
          leaf("room", &GpioDoorEntry::room, text(), "The door's name."),
          leaf("chip", &GpioDoorEntry::chip, text("", check_non_empty),
               "GPIO chip of the lines: gpiochip0, /dev/gpiochip0 or the chip's label.", true),
          leaf("reader_id", &GpioDoorEntry::reader_id,
               text("[A-Za-z0-9_-]{0,64}", check_id_or_empty),
               "Device id of the Wiegand reader in events (unique). Required with d0/d1."),
          leaf("d0", &GpioDoorEntry::d0, optional(integer(0, 1023)),
               "Line offset of the Wiegand reader's DATA0."),
          leaf("d1", &GpioDoorEntry::d1, optional(integer(0, 1023)),
               "Line offset of the Wiegand reader's DATA1."),
          leaf("contact", &GpioDoorEntry::contact, optional(integer(0, 1023)),
               "Line offset of the door contact (active = open)."),
          leaf("exit_button", &GpioDoorEntry::exit_button, optional(integer(0, 1023)),
               "Line offset of the exit button (request to exit)."),
          leaf("tamper", &GpioDoorEntry::tamper, optional(integer(0, 1023)),
               "Line offset of the tamper input."),
          leaf("lock", &GpioDoorEntry::lock, optional(integer(0, 1023)),
               "Line offset of the lock relay output (active = unlocked)."),
          leaf("active_low", &GpioDoorEntry::active_low,
               strings(text("contact, exit_button, tamper or lock",
                            one_of({"contact", "exit_button", "tamper", "lock"}))),
               "The lines that are active when low."),
          leaf("pull_up", &GpioDoorEntry::pull_up,
               strings(text("d0, d1, contact, exit_button or tamper",
                            one_of({"d0", "d1", "contact", "exit_button", "tamper"}))),
               "The inputs that need the chip's pull-up bias."),
          leaf("wiegand_inverted", &GpioDoorEntry::wiegand_inverted, boolean(),
               "D0/D1 are active-high (behind an inverting stage); Wiegand is active-low."),
          leaf("debounce_ms", &GpioDoorEntry::debounce_ms, integer(0, 10'000),
               "An input must stay at a new level this long to count, milliseconds."),
          leaf("lock_pulse_ms", &GpioDoorEntry::lock_pulse_ms, integer(100, 600'000),
               "How long a grant or a remote open opens the lock, milliseconds."),
      },
      [](Ctx& ctx, const Path& p, GpioDoorEntry& d) {
        const auto lines = gpio_door_lines(d);
        if (lines.empty() && ctx.ok(p))
          ctx.error(ctx.mark_of(p), p,
                    "no line is wired: give at least one of d0/d1, contact, exit_button, tamper, "
                    "lock");
        if (d.d0.has_value() != d.d1.has_value()) {
          const Path key = join_key(p, d.d0 ? "d1" : "d0");
          if (ctx.ok(key)) ctx.error(ctx.mark_of(p), key, "a Wiegand reader needs both d0 and d1");
        }
        if (d.d0 && d.reader_id.empty() && ctx.ok(join_key(p, "reader_id")))
          ctx.error(ctx.mark_of(join_key(p, "d0")), join_key(p, "reader_id"),
                    "required with d0/d1 (the Wiegand reader's device id)");
        std::map<int, std::string> used;
        for (const auto& [key, offset] : lines) {
          auto [it, fresh] = used.emplace(offset, key);
          if (fresh) continue;
          const Path k = join_key(p, key);
          ctx.error(ctx.mark_of(k), k,
                    "line " + std::to_string(offset) + " is also " + join_key(p, it->second));
        }
        auto wired = [&](const std::string& key) {
          for (const auto& l : lines)
            if (l.first == key) return true;
          return false;
        };
        for (const char* list : {"active_low", "pull_up"}) {
          const auto& names = std::string(list) == "active_low" ? d.active_low : d.pull_up;
          for (std::size_t i = 0; i < names.size(); ++i)
            if (!wired(names[i])) {
              const Path k = index_key(join_key(p, list), i);
              ctx.error(ctx.mark_of(join_key(p, list)), k,
                        quote(names[i]) + " is not wired (no " + join_key(p, names[i]) + ")");
            }
        }
      }};
  return t;
}

const Table<AccessConfig>& access_table() {
  static const Table<AccessConfig> t{
      {
          leaf("site_key_file", &AccessConfig::site_key_file, text(),
               "The site's card pseudonym key (HMAC-SHA-256): 64 hex digits, mode 0600. "
               "Required with readers."),
          leaf("credentials_file", &AccessConfig::credentials_file, text(),
               "The credentials (JSON; keyed hashes, door groups, schedules); reloaded on "
               "SIGHUP. Empty: every read is recorded and denied."),
          record_list("osdp", &AccessConfig::osdp, osdp_bus_table(),
                      "OSDP buses and their readers.",
                      [](Ctx& ctx, const Path& p, const std::vector<OsdpBusEntry>& buses) {
                        check_unique(ctx, p, buses, &OsdpBusEntry::name, "name");
                        std::map<std::string, std::string> ids;
                        for (std::size_t i = 0; i < buses.size(); ++i)
                          for (std::size_t j = 0; j < buses[i].readers.size(); ++j) {
                            const Path where = index_key(join_key(index_key(p, i), "readers"), j);
                            auto [it, fresh] = ids.emplace(buses[i].readers[j].id, where);
                            if (fresh) continue;
                            const Path key = join_key(where, "id");
                            ctx.error(ctx.mark_of(key), key,
                                      quote(buses[i].readers[j].id) + " is used twice (also " +
                                          it->second + ")");
                          }
                      }),
          record_list("gpio_doors", &AccessConfig::gpio_doors, gpio_door_table(),
                      "Doors wired to the gateway's GPIO lines (libgpiod): a Wiegand reader, the "
                      "contact, the exit button, a tamper input and the lock relay.",
                      [](Ctx& ctx, const Path& p, const std::vector<GpioDoorEntry>& doors) {
                        check_unique(ctx, p, doors, &GpioDoorEntry::door, "door");
                        // A line on a chip belongs to one door.
                        std::map<std::pair<std::string, int>, std::string> lines;
                        for (std::size_t i = 0; i < doors.size(); ++i)
                          for (const auto& [key, offset] : gpio_door_lines(doors[i])) {
                            const Path k = join_key(index_key(p, i), key);
                            auto [it, fresh] = lines.emplace(std::pair(doors[i].chip, offset), k);
                            if (fresh || it->second.rfind(index_key(p, i) + ".", 0) == 0)
                              continue;  // the same door's lines are checked by the door
                            ctx.error(ctx.mark_of(k), k,
                                      quote(doors[i].chip) + " line " + std::to_string(offset) +
                                          " is also " + it->second);
                          }
                      }),
      },
      [](Ctx& ctx, const Path& p, AccessConfig& a) {
        bool wiegand = false;
        for (const auto& d : a.gpio_doors) wiegand = wiegand || d.d0.has_value();
        if ((!a.osdp.empty() || wiegand) && a.site_key_file.empty() &&
            ctx.ok(join_key(p, "site_key_file")))
          ctx.error(ctx.mark_of(join_key(p, a.osdp.empty() ? "gpio_doors" : "osdp")),
                    join_key(p, "site_key_file"),
                    "required when there are readers (it keys the card pseudonyms)");
        // Every device id (OSDP readers, GPIO doors and their Wiegand readers) names one device.
        std::map<std::string, std::string> ids;
        auto claim = [&](const std::string& id, const Path& key) {
          if (id.empty()) return;
          auto [it, fresh] = ids.emplace(id, key);
          if (!fresh)
            ctx.error(ctx.mark_of(key), key,
                      quote(id) + " is used twice (also " + it->second + ")");
        };
        for (std::size_t i = 0; i < a.osdp.size(); ++i)
          for (std::size_t j = 0; j < a.osdp[i].readers.size(); ++j)
            ids.emplace(
                a.osdp[i].readers[j].id,
                join_key(index_key(join_key(index_key(join_key(p, "osdp"), i), "readers"), j),
                         "id"));
        for (std::size_t i = 0; i < a.gpio_doors.size(); ++i) {
          const Path where = index_key(join_key(p, "gpio_doors"), i);
          claim(a.gpio_doors[i].id, join_key(where, "id"));
          claim(a.gpio_doors[i].reader_id, join_key(where, "reader_id"));
        }
      }};
  return t;
}

// ---- cameras (issue 5)
// ---------------------------------------------------------------------------

Field<CamerasConfig> camera_streams_field() {
  Field<CamerasConfig> f;
  f.key = "streams";
  f.type = "list of maps";
  f.description =
      "Camera streams: id, name, url, rtsp_transport (tcp|udp), credentials_file (user:password, "
      "mode 0600), utc_offset_minutes, building/unit/room, width, height, fps, tamper, covers "
      "(doors and devices whose alerts get this camera's evidence), and zones "
      "(id, detector intrusion|loitering|line_count|thrown_object, polygon of [x, y] in 0..1, "
      "min_area, max_area, dwell_s, floors, severity, latch, door, schedule). See "
      "docs/CAMERA.md.";
  f.read = [](Ctx& ctx, const YAML::Node& n, const Path& p, CamerasConfig& c) {
    if (n.IsNull()) return;
    if (!n.IsSequence()) {
      ctx.value_error(n, p, "expected a list of maps, got " + describe(n));
      return;
    }
    auto r = drivers::camera::parse_streams_json({{"streams", yaml_to_json(n)}});
    if (!r.error.empty()) {
      // "streams[1].zones[0].polygon: ..." -> at cameras.streams[1].zones[0].polygon
      const auto colon = r.error.find(": ");
      std::string where = colon == std::string::npos ? "" : r.error.substr(0, colon);
      const bool named = where.rfind("streams", 0) == 0;
      const Path key = named ? join_key(p.substr(0, p.rfind('.')), where) : p;
      ctx.error(n.Mark(), key, named ? r.error.substr(colon + 2) : r.error);
      return;
    }
    c.streams = std::move(r.streams);
  };
  f.missing = [](Ctx&, const Path&, CamerasConfig&) {};
  f.doc = [](std::vector<ConfigKeyDoc>& out, const Path& p, const CamerasConfig&) {
    out.push_back({p, "list of maps", "", "[]",
                   "Camera streams and their zones (the camera driver's format, docs/CAMERA.md).",
                   false});
  };
  return f;
}

const Table<EvidenceConfig>& evidence_table() {
  static const Table<EvidenceConfig> t{
      {
          leaf("enabled", &EvidenceConfig::enabled, boolean(),
               "Keep a snapshot and a clip of every camera alert on this gateway's disk."),
          leaf("pre_s", &EvidenceConfig::pre_s, number(0),
               "Seconds of frames before the trigger in the clip (kept in memory as JPEG)."),
          leaf("post_s", &EvidenceConfig::post_s, number(0),
               "Seconds of frames after the trigger in the clip."),
          leaf("jpeg_quality", &EvidenceConfig::jpeg_quality, integer(10, 100),
               "JPEG quality of the evidence frames, 10..100."),
          leaf("max_width", &EvidenceConfig::max_width, integer(32, 1920),
               "Evidence frames are the decoded frames scaled down to fit max_width x "
               "max_height (aspect kept, never up), whatever size they are analysed at."),
          leaf("max_height", &EvidenceConfig::max_height, integer(32, 1080), "See max_width."),
          leaf("min_interval_s", &EvidenceConfig::min_interval_s, number(0),
               "A trigger within this many seconds of a stream's last clip shares that clip "
               "(bounds what a busy camera writes)."),
          leaf("budget_mb", &EvidenceConfig::budget_mb, integer(1, 1'000'000),
               "Evidence on disk at most, MB: beyond it the oldest goes first, except what an "
               "open alert refers to."),
          leaf("retention_days", &EvidenceConfig::retention_days, integer(1, 3650),
               "Evidence older than this is deleted, except what an open alert refers to."),
      },
      [](Ctx& ctx, const Path& p, EvidenceConfig& e) {
        // The seconds before are held in memory per stream: keep that bounded.
        if (e.pre_s > 60)
          ctx.error(ctx.mark_of(join_key(p, "pre_s")), join_key(p, "pre_s"),
                    "at most 60 seconds (the frames before a trigger are kept in memory)");
        if (e.post_s > 60)
          ctx.error(ctx.mark_of(join_key(p, "post_s")), join_key(p, "post_s"),
                    "at most 60 seconds");
      }};
  return t;
}

const Table<CamerasConfig>& cameras_table() {
  static const Table<CamerasConfig> t{
      {camera_streams_field(),
       section("evidence", &CamerasConfig::evidence, evidence_table(),
               "Snapshots and clips of camera alerts (docs/CAMERA.md, \"Evidence\")."),
       leaf("module", &CamerasConfig::module, text(),
            "The camera module (OpenCV analytics), loaded only when there are streams. Empty: "
            "<anjud's directory>/../lib/anju/anju-camera.so, /usr/lib/anju/ when installed.")},
      {}};
  return t;
}

const Table<SiteConfig>& site_table() {
  static const Table<SiteConfig> t{
      {
          leaf("id", &SiteConfig::id, text("[A-Za-z0-9_-]{1,64}", check_id),
               "Compound id, used in MQTT topics.", true),
          leaf("grid_code", &SiteConfig::grid_code, text("20 digits", digits(20, false)),
               "CJ/T 349 grid code of the compound.", true),
          leaf("division_code", &SiteConfig::division_code, text("12 digits", digits(12, true)),
               "Administrative division code."),
          leaf("name", &SiteConfig::name, text(), "Human name of the compound."),
      },
      {}};
  return t;
}

std::string check_listen(const std::string& s) {
  std::string host;
  int port = 0;
  if (!split_listen(s, host, port))
    return "must be host:port with a port 1..65535 (e.g. 0.0.0.0:8080 or [::]:8080), got " +
           quote(s);
  return {};
}

const Table<DashboardConfig>& dashboard_table() {
  static const Table<DashboardConfig> t{
      {
          leaf("enabled", &DashboardConfig::enabled, boolean(),
               "Serve the dashboard (pages, JSON API, /healthz, /metrics)."),
          leaf("listen", &DashboardConfig::listen, text("host:port", check_listen),
               "Address and port to listen on: 0.0.0.0:8080 for the LAN, 127.0.0.1:8080 for this "
               "machine only."),
          leaf("tls_cert", &DashboardConfig::tls_cert, text(),
               "PEM certificate (chain): serve HTTPS when set; needs tls_key."),
          leaf("tls_key", &DashboardConfig::tls_key, text(),
               "PEM private key of tls_cert; needs tls_cert."),
          leaf("users_file", &DashboardConfig::users_file, text(),
               "Users and password hashes (`anju user add`); empty: <data_dir>/users.json."),
          leaf("assets_dir", &DashboardConfig::assets_dir, text(),
               "Serve the pages from this directory instead of the copy built into anjud."),
          leaf("session_ttl_s", &DashboardConfig::session_ttl_s, integer(60, 30 * 86400),
               "A session unused for this long ends, seconds."),
          leaf("lockout_after", &DashboardConfig::lockout_after, integer(1, 1000),
               "Failed logins (per user and per client address) within lockout_s that lock "
               "logins."),
          leaf("lockout_s", &DashboardConfig::lockout_s, integer(1, 86400),
               "The window of failed logins and the length of a lockout, seconds."),
      },
      [](Ctx& ctx, const Path& p, DashboardConfig& d) {
        check_pair(ctx, p, "tls_cert", d.tls_cert, "tls_key", d.tls_key);
      }};
  return t;
}

const Table<Config>& config_table() {
  static const std::vector<std::string> kLevels{"trace", "debug", "info", "warn", "error"};
  static const Table<Config> t{
      {
          section("site", &Config::site, site_table(), "The compound this gateway serves."),
          leaf("data_dir", &Config::data_dir, text("", check_non_empty),
               "Directory of the journal and the outbox."),
          leaf("log_level", &Config::log_level, text(one_of_text(kLevels), one_of(kLevels)),
               "Least severe log level written."),
          section("local_broker", &Config::local_broker, local_broker_table(),
                  "The compound's own MQTT broker (zigbee2mqtt, drivers, local alerts)."),
          section("uplink", &Config::uplink, uplink_table(), "The cloud MQTT broker."),
          section("journal", &Config::journal, journal_table(), "The on-disk event journal."),
          section("summary", &Config::summary, summary_table(),
                  "Periodic summaries sent upstream."),
          section("rules", &Config::rules, rules_table(), "Alert rules."),
          section("zigbee2mqtt", &Config::zigbee2mqtt, zigbee2mqtt_table(),
                  "The zigbee2mqtt driver."),
          section("chirpstack", &Config::chirpstack, chirpstack_table(),
                  "LoRaWAN sensors through ChirpStack v4's MQTT integration."),
          section("generic_mqtt", &Config::generic_mqtt, generic_mqtt_table(),
                  "Vendor gateways' own MQTT/JSON, mapped by config."),
          section("modbus", &Config::modbus, modbus_table(), "Modbus TCP/RTU devices, polled."),
          section("access", &Config::access, access_table(),
                  "Access control: OSDP readers and local decisions."),
          section("cameras", &Config::cameras, cameras_table(),
                  "Camera streams analysed on the gateway (OpenCV)."),
          section("dashboard", &Config::dashboard, dashboard_table(),
                  "The web dashboard for property management, served by anjud."),
      },
      {}};
  return t;
}

// Counts the documents of a stream without building them, and notices when the parser stops
// advancing. yaml-cpp 0.7 cannot place some stray tokens (a lone ',' for one): it then reports an
// empty document without consuming the token, again and again, so YAML::LoadAll loops forever,
// allocating (jbeder/yaml-cpp#1040, fixed upstream by #1319). YAML::Load, which reads one
// document, is safe once this pass has found the stream sound.
class DocumentCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  std::vector<YAML::Mark> starts;
};

// Checks that the text is one well-formed YAML document; reports to ctx otherwise.
void check_stream(Ctx& ctx, const std::string& yaml_text) {
  std::istringstream in(yaml_text);
  YAML::Parser parser(in);
  DocumentCounter counter;
  for (int i = 0; i < 3 && parser.HandleNextDocument(counter); ++i) {
  }
  const auto& s = counter.starts;
  for (std::size_t i = 1; i < s.size(); ++i) {
    std::string_view at;
    if (s[i].pos >= 0 && static_cast<std::size_t>(s[i].pos) < yaml_text.size())
      at = std::string_view(yaml_text).substr(static_cast<std::size_t>(s[i].pos));
    std::string what = at.empty() ? std::string("token") : quote(at.substr(0, 1));
    if (s[i].pos == s[i - 1].pos) {
      ctx.error(s[i], "", "YAML syntax error: unexpected " + what);
      return;
    }
    if (at.substr(0, 3) == "---") {
      ctx.error(s[i], "", "only one YAML document is allowed, found another one here");
      return;
    }
    // A document yaml-cpp ended early, on something it could not place.
    ctx.error(s[i], "",
              "YAML syntax error: unexpected " + what +
                  " after the end of the document (only one document is allowed)");
    return;
  }
}

ConfigResult parse_impl(const std::string& yaml_text, const std::string& file) {
  ConfigResult result;
  Ctx ctx(file);
  YAML::Node root;
  try {
    check_stream(ctx, yaml_text);
    if (!ctx.has_errors()) root = YAML::Load(yaml_text);
  } catch (const YAML::DeepRecursion& e) {
    ctx.error(e.mark, "", "YAML nesting too deep (" + std::to_string(e.depth()) + " levels)");
  } catch (const YAML::Exception& e) {
    ctx.error(e.mark, "", "YAML syntax error: " + e.msg);
  }
  if (ctx.has_errors()) {
    result.errors = ctx.take_errors();
    return result;
  }
  Config cfg;
  cfg.source_file = file;
  ctx.remember("", root.IsNull() ? YAML::Mark::null_mark() : root.Mark());
  walk(ctx, root, "", cfg, config_table());
  if (ctx.has_errors()) {
    result.errors = ctx.take_errors();
    return result;
  }
  if (cfg.local_broker.client_id.empty())
    cfg.local_broker.client_id = "anjud-" + cfg.site.id + "-local";
  if (cfg.uplink.broker.client_id.empty()) cfg.uplink.broker.client_id = "anjud-" + cfg.site.id;
  result.config = std::move(cfg);
  return result;
}

}  // namespace

bool split_listen(const std::string& listen, std::string& host, int& port) {
  std::string_view s = listen;
  std::string_view h, p;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return false;
    h = s.substr(1, close - 1);
    p = s.substr(close + 2);
    if (h.empty() || h.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos)
      return false;
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return false;
    h = s.substr(0, colon);
    p = s.substr(colon + 1);
    if (h.empty()) return false;
    for (char c : h)
      if (!(is_id_char(c) || c == '.')) return false;
  }
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string_view::npos)
    return false;
  int v = 0;
  std::from_chars(p.data(), p.data() + p.size(), v);
  if (v < 1 || v > 65535) return false;
  host = std::string(h);
  port = v;
  return true;
}

std::string ConfigError::to_string() const {
  std::string s = file;
  if (line > 0) s += ":" + std::to_string(line) + ":" + std::to_string(column);
  if (!s.empty()) s += ": ";
  if (!key.empty()) s += key + ": ";
  return s + message;
}

ConfigResult parse_config(const std::string& yaml_text, const std::string& file) {
  try {
    return parse_impl(yaml_text, file);
  } catch (const std::exception& e) {
    ConfigResult r;
    r.errors.push_back({file, 0, 0, "", std::string("cannot read the configuration: ") + e.what()});
    return r;
  } catch (...) {
    ConfigResult r;
    r.errors.push_back({file, 0, 0, "", "cannot read the configuration: unknown error"});
    return r;
  }
}

ConfigResult load_config(const std::string& path) {
  auto fail = [&path](int err) {
    ConfigResult r;
    r.errors.push_back(
        {path, 0, 0, "", "cannot read the file: " + std::generic_category().message(err)});
    return r;
  };
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return fail(errno);
  std::string text;
  std::array<char, 65536> buf{};
  for (;;) {
    std::size_t n = std::fread(buf.data(), 1, buf.size(), f);
    text.append(buf.data(), n);
    if (text.size() > static_cast<std::size_t>(kMaxFileBytes)) {
      std::fclose(f);
      return fail(EFBIG);
    }
    if (n < buf.size()) break;
  }
  int err = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (err != 0) return fail(err);
  return parse_config(text, path);
}

std::vector<ConfigKeyDoc> config_schema() {
  std::vector<ConfigKeyDoc> out;
  const Config defaults;
  for (const auto& f : config_table().fields) f.doc(out, f.key, defaults);
  return out;
}

}  // namespace anju::firmware
