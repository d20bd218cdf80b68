// A small validator of the Prometheus text exposition format 0.0.4, for tests: it checks what a
// scraper (and `promtool check metrics`) would reject. Pure, header-only.
//   - every line is a comment (# HELP name text, # TYPE name type, other # text), blank, or a
//     sample: name{label="value",...} value [timestamp];
//   - names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* (not __*);
//   - label values escape only \\, \" and \n; values are floats, NaN, +Inf or -Inf;
//   - # TYPE at most once per family and before its samples; # HELP at most once;
//   - a family's samples are contiguous; no series (name + labels) appears twice;
//   - histogram/summary samples use the family name with _bucket/_sum/_count (or the bare name
//     for summary quantiles).
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace anju::testing {

struct PromSample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
};

struct PromCheck {
  std::vector<std::string> errors;
  std::vector<PromSample> samples;
  std::map<std::string, std::string> types;  // family → type
  bool ok() const { return errors.empty(); }
  // The value of the one sample with this name and these labels (subset match), or NaN.
  double value(const std::string& name,
               const std::vector<std::pair<std::string, std::string>>& labels = {}) const {
    for (const auto& s : samples) {
      if (s.name != name) continue;
      bool all = true;
      for (const auto& l : labels) {
        bool found = false;
        for (const auto& sl : s.labels)
          if (sl == l) found = true;
        all = all && found;
      }
      if (all) return s.value;
    }
    return std::numeric_limits<double>::quiet_NaN();
  }
};

namespace prom_detail {

inline bool name_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':';
}
inline bool name_char(char c) {
  return name_start(c) || std::isdigit(static_cast<unsigned char>(c));
}
inline bool valid_metric_name(std::string_view s) {
  if (s.empty() || !name_start(s[0])) return false;
  for (char c : s)
    if (!name_char(c)) return false;
  return true;
}
inline bool valid_label_name(std::string_view s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  if (s.substr(0, 2) == "__") return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}
inline bool parse_value(std::string_view s, double& v) {
  if (s == "NaN") return v = std::numeric_limits<double>::quiet_NaN(), true;
  if (s == "+Inf" || s == "Inf") return v = std::numeric_limits<double>::infinity(), true;
  if (s == "-Inf") return v = -std::numeric_limits<double>::infinity(), true;
  if (s.empty()) return false;
  std::string t(s);
  char* end = nullptr;
  v = std::strtod(t.c_str(), &end);
  return end == t.c_str() + t.size() && t.find_first_of("xXpP") == std::string::npos;
}
// The family a sample name belongs to, given the declared types.
inline std::string family_of(const std::string& name,
                             const std::map<std::string, std::string>& types) {
  if (types.count(name)) return name;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    std::string_view n = name;
    std::string_view sx = suffix;
    if (n.size() > sx.size() && n.substr(n.size() - sx.size()) == sx) {
      std::string base(n.substr(0, n.size() - sx.size()));
      auto it = types.find(base);
      if (it != types.end() && (it->second == "histogram" || it->second == "summary")) return base;
    }
  }
  return name;
}

}  // namespace prom_detail

inline PromCheck check_prometheus_text(const std::string& text) {
  using namespace prom_detail;
  PromCheck r;
  std::set<std::string> helped, closed, series;
  std::string current;  // family of the previous sample
  std::istringstream in(text);
  std::string line;
  int n = 0;
  if (!text.empty() && text.back() != '\n') r.errors.push_back("the text must end with a newline");
  auto err = [&](const std::string& m) {
    r.errors.push_back("line " + std::to_string(n) + ": " + m);
  };
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream ls(line.substr(1));
      std::string word, name;
      ls >> word;
      if (word != "HELP" && word != "TYPE") continue;  // a plain comment
      ls >> name;
      if (!valid_metric_name(name)) {
        err("bad metric name in # " + word + ": '" + name + "'");
        continue;
      }
      if (word == "HELP") {
        if (!helped.insert(name).second) err("second # HELP for " + name);
        // Escapes in HELP text: only \\ and \n.
        const auto pos = line.find(name) + name.size();
        for (std::size_t i = pos; i < line.size(); ++i)
          if (line[i] == '\\') {
            if (i + 1 >= line.size() || (line[i + 1] != '\\' && line[i + 1] != 'n'))
              err("bad escape in # HELP of " + name);
            ++i;
          }
        continue;
      }
      std::string type, extra;
      ls >> type >> extra;
      if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" &&
          type != "untyped")
        err("unknown type '" + type + "' for " + name);
      if (!extra.empty()) err("trailing text after # TYPE " + name);
      if (r.types.count(name)) err("second # TYPE for " + name);
      bool has_samples = false;
      for (const auto& s : r.samples)
        if (family_of(s.name, r.types) == name) has_samples = true;
      if (has_samples) err("# TYPE for " + name + " after its samples");
      r.types[name] = type;
      continue;
    }
    // A sample.
    PromSample s;
    std::size_t i = 0;
    while (i < line.size() && name_char(line[i])) ++i;
    s.name = line.substr(0, i);
    if (!valid_metric_name(s.name)) {
      err("bad metric name '" + s.name + "'");
      continue;
    }
    bool bad = false;
    if (i < line.size() && line[i] == '{') {
      ++i;
      std::set<std::string> seen;
      while (i < line.size() && line[i] != '}') {
        std::size_t st = i;
        while (i < line.size() && line[i] != '=' && line[i] != '}' && line[i] != ',') ++i;
        std::string lname = line.substr(st, i - st);
        if (!valid_label_name(lname)) {
          err("bad label name '" + lname + "'");
          bad = true;
          break;
        }
        if (!seen.insert(lname).second) {
          err("label " + lname + " given twice");
          bad = true;
          break;
        }
        if (i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') {
          err("expected =\" after label " + lname);
          bad = true;
          break;
        }
        i += 2;
        std::string value;
        bool closed_quote = false;
        while (i < line.size()) {
          char c = line[i++];
          if (c == '"') {
            closed_quote = true;
            break;
          }
          if (c == '\\') {
            if (i >= line.size()) break;
            char e = line[i++];
            if (e == '\\')
              value += '\\';
            else if (e == '"')
              value += '"';
            else if (e == 'n')
              value += '\n';
            else {
              err(std::string("bad escape \\") + e + " in label " + lname);
              bad = true;
            }
            continue;
          }
          value += c;
        }
        if (!closed_quote) {
          err("unterminated value of label " + lname);
          bad = true;
          break;
        }
        s.labels.emplace_back(lname, value);
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (bad) continue;
      if (i >= line.size() || line[i] != '}') {
        err("unterminated label set");
        continue;
      }
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') {
      err("expected a space before the value");
      continue;
    }
    std::istringstream rest(line.substr(i + 1));
    std::string value, ts, extra;
    rest >> value >> ts >> extra;
    if (!parse_value(value, s.value)) {
      err("bad value '" + value + "'");
      continue;
    }
    if (!ts.empty()) {
      char* end = nullptr;
      std::strtoll(ts.c_str(), &end, 10);
      if (end != ts.c_str() + ts.size()) err("bad timestamp '" + ts + "'");
    }
    if (!extra.empty()) err("trailing text after the sample");
    const std::string family = family_of(s.name, r.types);
    if (family != current) {
      if (closed.count(family)) err("samples of " + family + " are not together");
      if (!current.empty()) closed.insert(current);
      current = family;
    }
    auto t = r.types.find(family);
    if (t != r.types.end() && (t->second == "counter" || t->second == "gauge") && s.name != family)
      err("sample " + s.name + " does not match its family " + family);
    if (t != r.types.end() && t->second == "counter" && s.value < 0)
      err("counter " + s.name + " is negative");
    std::string key = s.name + "{";
    auto sorted = s.labels;
    std::sort(sorted.begin(), sorted.end());
    for (const auto& [k, v] : sorted) key += k + "=" + v + ",";
    if (!series.insert(key).second) err("series " + key + "} appears twice");
    r.samples.push_back(std::move(s));
  }
  return r;
}

}  // namespace anju::testing
