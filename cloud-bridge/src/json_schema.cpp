// The JSON Schema subset validator (see the header for what it covers).
// Included by relative path so that fuzz builds, which do not build cloud-bridge, can compile this
// file straight into their target (tests/fuzz/fuzz_schema.cpp).
#include "../include/anju/bridge/json_schema.hpp"

#include <cmath>
#include <compare>
#include <set>
#include <string_view>
#include <type_traits>
#include <utility>

namespace anju::bridge::schema {
using nlohmann::json;

namespace {

constexpr int kMaxSchemaDepth = 64;             // nesting of a schema document
constexpr int kMaxValidationDepth = 256;        // schema steps ($ref included) during validation
constexpr std::size_t kMaxPatternInput = 1024;  // std::regex recurses per character

const std::set<std::string_view> kAnnotations = {
    "$schema", "$id",        "$comment", "title",     "description", "examples",
    "default", "deprecated", "readOnly", "writeOnly", "format",      "$anchor"};

std::string escape_pointer(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

std::size_t code_points(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

bool is_integer(const json& v) {
  if (v.is_number_integer()) return true;
  if (!v.is_number_float()) return false;
  const double d = v.get<double>();
  return std::isfinite(d) && std::floor(d) == d;
}

long double number(const json& v) {
  if (v.is_number_unsigned()) return static_cast<long double>(v.get<std::uint64_t>());
  if (v.is_number_integer()) return static_cast<long double>(v.get<std::int64_t>());
  return static_cast<long double>(v.get<double>());
}

// The order of two JSON numbers (int64, uint64 or double), exact on every CPU: long double is no
// wider than double on 32-bit ARM, where 2^53 + 1 would compare equal to 2^53.
template <class I, class J>
std::partial_ordering compare_integers(I a, J b) {
  if (std::cmp_less(a, b)) return std::partial_ordering::less;
  if (std::cmp_greater(a, b)) return std::partial_ordering::greater;
  return std::partial_ordering::equivalent;
}

template <class I>
std::partial_ordering compare_integer_double(I a, double b) {
  if (std::isnan(b)) return std::partial_ordering::unordered;
  if (b >= 0x1p64) return std::partial_ordering::less;
  if (b < -0x1p63) return std::partial_ordering::greater;
  const double t = std::trunc(b);  // in [-2^63, 2^64): exactly an int64 or a uint64
  const auto o = t < 0 ? compare_integers(a, static_cast<std::int64_t>(t))
                       : compare_integers(a, static_cast<std::uint64_t>(t));
  return o != 0 ? o : 0.0 <=> b - t;  // same integer part: b's fraction decides
}

template <class X, class Y>
std::partial_ordering compare_values(X a, Y b) {
  constexpr bool a_float = std::is_floating_point_v<X>, b_float = std::is_floating_point_v<Y>;
  if constexpr (a_float && b_float)
    return a <=> b;
  else if constexpr (!a_float && !b_float)
    return compare_integers(a, b);
  else if constexpr (b_float)
    return compare_integer_double(a, b);
  else
    return 0 <=> compare_integer_double(b, a);
}

std::partial_ordering compare_numbers(const json& a, const json& b) {
  auto visit = [](const json& v, auto&& f) {
    if (v.is_number_unsigned()) return f(v.get<std::uint64_t>());
    if (v.is_number_integer()) return f(v.get<std::int64_t>());
    return f(v.get<double>());
  };
  return visit(a, [&](auto x) { return visit(b, [&](auto y) { return compare_values(x, y); }); });
}

bool has_type(const json& v, const std::string& t) {
  if (t == "null") return v.is_null();
  if (t == "boolean") return v.is_boolean();
  if (t == "object") return v.is_object();
  if (t == "array") return v.is_array();
  if (t == "string") return v.is_string();
  if (t == "number") return v.is_number();
  if (t == "integer") return is_integer(v);
  return false;
}

const std::set<std::string_view> kTypes = {"null",   "boolean", "object", "array",
                                           "number", "string",  "integer"};

std::string short_dump(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

}  // namespace

std::string to_string(const Issue& i) {
  return (i.path.empty() ? std::string("(document)") : i.path) + ": " + i.message;
}

std::string to_string(const std::vector<Issue>& v) {
  std::string out;
  for (const auto& i : v) out += to_string(i) + "\n";
  return out;
}

struct SchemaSet::Ctx {
  const Options& options;
  std::vector<Issue> issues;
  void add(const std::string& path, std::string message) {
    if (issues.size() < options.max_issues) issues.push_back({path, std::move(message)});
  }
  bool full() const { return issues.size() >= options.max_issues; }
};

const json* SchemaSet::document(const std::string& name) const {
  auto it = docs_.find(name);
  return it == docs_.end() ? nullptr : &it->second;
}

void SchemaSet::walk(const std::string& doc, const json& s, const std::string& at,
                     std::string& errors, int depth) {
  auto err = [&](const std::string& what) { errors += doc + "#" + at + ": " + what + "\n"; };
  if (depth > kMaxSchemaDepth) return err("schema nested too deeply");
  if (s.is_boolean()) return;
  if (!s.is_object()) return err("a schema must be an object or a boolean");
  for (const auto& [key, val] : s.items()) {
    const std::string here = at + "/" + escape_pointer(key);
    if (kAnnotations.count(key)) continue;
    if (key == "$defs" || key == "definitions" || key == "properties") {
      if (!val.is_object()) {
        err(key + " must be an object");
        continue;
      }
      for (const auto& [name, sub] : val.items())
        walk(doc, sub, here + "/" + escape_pointer(name), errors, depth + 1);
    } else if (key == "type") {
      const json list = val.is_array() ? val : json::array({val});
      if (list.empty()) err("type must not be empty");
      for (const auto& t : list)
        if (!t.is_string() || !kTypes.count(t.get<std::string>()))
          err("unknown type " + short_dump(t));
    } else if (key == "required") {
      if (!val.is_array()) {
        err("required must be an array of strings");
        continue;
      }
      for (const auto& r : val)
        if (!r.is_string()) err("required must be an array of strings");
    } else if (key == "additionalProperties" || key == "items" || key == "not") {
      walk(doc, val, here, errors, depth + 1);
    } else if (key == "allOf" || key == "anyOf" || key == "oneOf") {
      if (!val.is_array() || val.empty()) {
        err(key + " must be a non-empty array of schemas");
        continue;
      }
      for (std::size_t i = 0; i < val.size(); ++i)
        walk(doc, val[i], here + "/" + std::to_string(i), errors, depth + 1);
    } else if (key == "enum") {
      if (!val.is_array() || val.empty()) err("enum must be a non-empty array");
    } else if (key == "const") {
      // any value
    } else if (key == "pattern") {
      if (!val.is_string()) {
        err("pattern must be a string");
        continue;
      }
      const std::string p = val.get<std::string>();
      if (patterns_.count(p)) continue;
      try {
        patterns_[p] = std::make_shared<const std::regex>(p, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        err("pattern " + short_dump(val) + " does not compile: " + e.what());
      }
    } else if (key == "minimum" || key == "maximum" || key == "exclusiveMinimum" ||
               key == "exclusiveMaximum") {
      if (!val.is_number()) err(key + " must be a number");
    } else if (key == "minLength" || key == "maxLength" || key == "minItems" || key == "maxItems") {
      if (!is_integer(val) || number(val) < 0) err(key + " must be a non-negative integer");
    } else if (key == "$ref") {
      if (!val.is_string())
        err("$ref must be a string");
      else
        refs_[doc].push_back(val.get<std::string>());
    } else {
      err("unknown keyword \"" + key + "\"");
    }
  }
}

std::string SchemaSet::add(const std::string& name, const json& doc) {
  std::string errors;
  auto saved_refs = refs_[name];
  refs_[name].clear();
  walk(name, doc, "", errors, 0);
  if (!errors.empty()) {
    refs_[name] = std::move(saved_refs);
    if (refs_[name].empty() && !docs_.count(name)) refs_.erase(name);
    return errors;
  }
  docs_[name] = doc;
  return "";
}

const json* SchemaSet::resolve(const std::string& from_doc, const std::string& ref,
                               std::string* doc_out) const {
  const auto hash = ref.find('#');
  const std::string name = ref.substr(0, hash);
  const std::string fragment = hash == std::string::npos ? "" : ref.substr(hash + 1);
  const std::string doc = name.empty() ? from_doc : name;
  auto it = docs_.find(doc);
  if (it == docs_.end()) return nullptr;
  if (doc_out) *doc_out = doc;
  if (fragment.empty()) return &it->second;
  if (fragment.front() != '/') return nullptr;  // anchors are not supported
  try {
    const json::json_pointer ptr(fragment);
    if (!it->second.contains(ptr)) return nullptr;
    return &it->second.at(ptr);
  } catch (const std::exception&) {
    return nullptr;
  }
}

std::vector<std::string> SchemaSet::unresolved_refs() const {
  std::vector<std::string> out;
  for (const auto& [doc, refs] : refs_) {
    if (!docs_.count(doc)) continue;
    for (const auto& r : refs)
      if (!resolve(doc, r, nullptr)) out.push_back(doc + ": " + r);
  }
  return out;
}

std::vector<Issue> SchemaSet::validate(const std::string& ref, const json& instance,
                                       const Options& options) const {
  Ctx ctx{options, {}};
  std::string doc;
  const json* s = resolve("", ref, &doc);
  if (!s) {
    ctx.add("", "no schema \"" + ref + "\"");
    return ctx.issues;
  }
  check(ctx, doc, *s, instance, "", 0);
  return ctx.issues;
}

void SchemaSet::check(Ctx& ctx, const std::string& doc, const json& s, const json& v,
                      const std::string& path, int depth) const {
  if (ctx.full()) return;
  if (depth > kMaxValidationDepth) {
    ctx.add(path, "schema recursion too deep (a $ref loop?)");
    return;
  }
  if (s.is_boolean()) {
    if (!s.get<bool>()) ctx.add(path, "not allowed here (schema false)");
    return;
  }
  if (!s.is_object()) {
    ctx.add(path, "invalid schema");
    return;
  }
  // Runs `sub` on a scratch context: how many issues would it report?
  auto trial = [&](const json& sub, std::vector<Issue>* out) {
    Options o = ctx.options;
    o.max_issues = 4;
    Ctx c{o, {}};
    check(c, doc, sub, v, path, depth + 1);
    const bool ok = c.issues.empty();
    if (out) *out = std::move(c.issues);
    return ok;
  };

  if (auto it = s.find("$ref"); it != s.end() && it->is_string()) {
    std::string target_doc;
    const json* target = resolve(doc, it->get<std::string>(), &target_doc);
    if (!target)
      ctx.add(path, "$ref " + short_dump(*it) + " does not resolve");
    else
      check(ctx, target_doc, *target, v, path, depth + 1);
  }
  if (auto it = s.find("type"); it != s.end()) {
    const json list = it->is_array() ? *it : json::array({*it});
    bool ok = false;
    for (const auto& t : list) ok = ok || (t.is_string() && has_type(v, t.get<std::string>()));
    if (!ok) ctx.add(path, "type: expected " + short_dump(*it) + ", got " + v.type_name());
  }
  if (auto it = s.find("enum"); it != s.end() && it->is_array()) {
    bool ok = false;
    for (const auto& e : *it) ok = ok || e == v;
    if (!ok) ctx.add(path, "enum: " + short_dump(v) + " is not one of " + short_dump(*it));
  }
  if (auto it = s.find("const"); it != s.end() && !(*it == v))
    ctx.add(path, "const: expected " + short_dump(*it) + ", got " + short_dump(v));

  if (v.is_number()) {
    auto bound = [&](const char* key, bool (*ok)(std::partial_ordering), const char* rel) {
      auto it = s.find(key);
      if (it == s.end() || !it->is_number()) return;
      if (!ok(compare_numbers(v, *it)))
        ctx.add(path,
                std::string(key) + ": " + short_dump(v) + " is not " + rel + " " + short_dump(*it));
    };
    bound(
        "minimum", [](std::partial_ordering o) { return o >= 0; }, ">=");
    bound(
        "maximum", [](std::partial_ordering o) { return o <= 0; }, "<=");
    bound(
        "exclusiveMinimum", [](std::partial_ordering o) { return o > 0; }, ">");
    bound(
        "exclusiveMaximum", [](std::partial_ordering o) { return o < 0; }, "<");
  }

  if (v.is_string()) {
    const std::string& str = v.get_ref<const std::string&>();
    const std::size_t n = code_points(str);
    if (auto it = s.find("minLength"); it != s.end() && it->is_number() && n < number(*it))
      ctx.add(path, "minLength: " + std::to_string(n) + " characters, at least " + short_dump(*it) +
                        " required");
    if (auto it = s.find("maxLength"); it != s.end() && it->is_number() && n > number(*it))
      ctx.add(path, "maxLength: " + std::to_string(n) + " characters, at most " + short_dump(*it) +
                        " allowed");
    if (auto it = s.find("pattern"); it != s.end() && it->is_string()) {
      auto p = patterns_.find(it->get<std::string>());
      if (p == patterns_.end())
        ctx.add(path, "pattern " + short_dump(*it) + " was not compiled");
      else if (str.size() > kMaxPatternInput)
        ctx.add(path,
                "pattern: string too long to match (" + std::to_string(str.size()) + " bytes)");
      else if (!std::regex_search(str, *p->second))
        ctx.add(path, "pattern: " + short_dump(v) + " does not match " + short_dump(*it));
    }
  }

  if (v.is_array()) {
    if (auto it = s.find("minItems"); it != s.end() && it->is_number() && v.size() < number(*it))
      ctx.add(path, "minItems: " + std::to_string(v.size()) + " items, at least " +
                        short_dump(*it) + " required");
    if (auto it = s.find("maxItems"); it != s.end() && it->is_number() && v.size() > number(*it))
      ctx.add(path, "maxItems: " + std::to_string(v.size()) + " items, at most " + short_dump(*it) +
                        " allowed");
    if (auto it = s.find("items"); it != s.end())
      for (std::size_t i = 0; i < v.size() && !ctx.full(); ++i)
        check(ctx, doc, *it, v[i], path + "/" + std::to_string(i), depth + 1);
  }

  if (v.is_object()) {
    if (auto it = s.find("required"); it != s.end() && it->is_array())
      for (const auto& r : *it)
        if (r.is_string() && !v.contains(r.get<std::string>()))
          ctx.add(path, "required: member \"" + r.get<std::string>() + "\" is missing");
    const auto props = s.find("properties");
    const bool has_props = props != s.end() && props->is_object();
    const auto extra = s.find("additionalProperties");
    for (const auto& [key, member] : v.items()) {
      if (ctx.full()) break;
      const std::string sub = path + "/" + escape_pointer(key);
      if (has_props) {
        if (auto p = props->find(key); p != props->end()) {
          check(ctx, doc, *p, member, sub, depth + 1);
          continue;
        }
      }
      if (extra != s.end())
        check(ctx, doc, *extra, member, sub, depth + 1);
      else if (ctx.options.strict && has_props)
        ctx.add(sub, "not described by the schema (strict mode)");
    }
  }

  if (auto it = s.find("allOf"); it != s.end() && it->is_array())
    for (const auto& sub : *it) check(ctx, doc, sub, v, path, depth + 1);
  if (auto it = s.find("anyOf"); it != s.end() && it->is_array()) {
    bool ok = false;
    std::vector<Issue> first;
    for (std::size_t i = 0; i < it->size() && !ok; ++i)
      ok = trial((*it)[i], i == 0 ? &first : nullptr);
    if (!ok)
      ctx.add(path, "anyOf: matches none of " + std::to_string(it->size()) + " schemas" +
                        (first.empty() ? "" : " (the first says " + to_string(first[0]) + ")"));
  }
  if (auto it = s.find("oneOf"); it != s.end() && it->is_array()) {
    int matched = 0;
    std::vector<Issue> first;
    for (std::size_t i = 0; i < it->size(); ++i)
      matched += trial((*it)[i], i == 0 ? &first : nullptr);
    if (matched != 1)
      ctx.add(path,
              "oneOf: matches " + std::to_string(matched) + " of " + std::to_string(it->size()) +
                  " schemas, exactly one required" +
                  (matched == 0 && !first.empty() ? " (the first says " + to_string(first[0]) + ")"
                                                  : ""));
  }
  if (auto it = s.find("not"); it != s.end() && trial(*it, nullptr))
    ctx.add(path, "not: matches a schema it must not match");
}

}  // namespace anju::bridge::schema
