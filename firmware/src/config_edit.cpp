// In-place edits of the YAML config (set_config_values) and the identifier rules of provisioning.
// Pure: no I/O, built in fuzz builds too (tests/fuzz/fuzz_provision.cpp).
//
// yaml-cpp only locates: the marks of keys and values give their line and column, and the edits
// are made on the original bytes. Block-style structure is read from indentation: a section's
// entries are its key column and deeper, up to the first line indented less that is not a comment
// or blank. Whatever the edit, the result is read again and compared with the original tree, and
// anything but the intended change (a value that went on over several lines, an alias that shared
// the edited value, ...) refuses the edit instead of writing it.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "anju/bridge/identifiers.hpp"
#include "anju/firmware/config.hpp"
#include "anju/firmware/provision.hpp"

namespace anju::firmware {
namespace {

constexpr std::size_t npos = std::string::npos;
constexpr std::size_t kMaxSegments = 32;
constexpr std::size_t kMaxValueBytes = 4096;
constexpr long kVerifyBudget = 2'000'000;  // nodes compared (aliases can multiply a tree)

// --- Paths
// ----------------------------------------------------------------------------------------

struct Seg {
  bool index = false;
  std::size_t i = 0;
  std::string key;
  bool operator==(const Seg& o) const {
    return index == o.index && (index ? i == o.i : key == o.key);
  }
};
using Segs = std::vector<Seg>;

bool plain_path_char(char c) {
  return c != '.' && c != '[' && c != ']' && c != '"';
}

bool parse_path(std::string_view p, Segs& out, std::string* why) {
  out.clear();
  std::size_t i = 0;
  auto fail = [&](const std::string& m) {
    *why = "bad key path '" + std::string(p.substr(0, 80)) + "': " + m;
    return false;
  };
  if (p.empty()) return fail("empty");
  bool expect_key = true;
  while (i < p.size()) {
    if (out.size() >= kMaxSegments) return fail("too many parts");
    Seg s;
    if (p[i] == '[') {
      if (out.empty()) return fail("it must start with a key");
      const auto close = p.find(']', i);
      if (close == npos || close == i + 1 || close - i > 7) return fail("bad [index]");
      for (std::size_t k = i + 1; k < close; ++k) {
        if (p[k] < '0' || p[k] > '9') return fail("bad [index]");
        s.i = s.i * 10 + static_cast<std::size_t>(p[k] - '0');
      }
      s.index = true;
      i = close + 1;
    } else {
      if (!expect_key) return fail("'.' expected at " + std::to_string(i + 1));
      if (p[i] == '"') {
        ++i;
        bool closed = false;
        while (i < p.size()) {
          const char c = p[i++];
          if (c == '"') {
            closed = true;
            break;
          }
          if (c == '\\') {
            if (i >= p.size() || (p[i] != '"' && p[i] != '\\')) return fail("bad escape");
            s.key += p[i++];
          } else {
            s.key += c;
          }
        }
        if (!closed) return fail("unterminated quote");
      } else {
        const std::size_t b = i;
        while (i < p.size() && plain_path_char(p[i])) ++i;
        if (i == b) return fail("empty key at " + std::to_string(b + 1));
        s.key = std::string(p.substr(b, i - b));
      }
    }
    out.push_back(std::move(s));
    if (i == p.size()) break;
    if (p[i] == '.') {
      ++i;
      if (i == p.size()) return fail("it ends with '.'");
      expect_key = true;
    } else if (p[i] == '[') {
      expect_key = false;
    } else {
      return fail("unexpected '" + std::string(1, p[i]) + "' at " + std::to_string(i + 1));
    }
  }
  return true;
}

std::string path_text(const Segs& s, std::size_t n) {
  std::string out;
  for (std::size_t k = 0; k < n && k < s.size(); ++k) {
    if (s[k].index) {
      out += "[" + std::to_string(s[k].i) + "]";
    } else {
      if (k) out += '.';
      out += config_path_key(s[k].key);
    }
  }
  return out;
}

// --- Scalars as YAML text
// ---------------------------------------------------------------------------

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// A value written plain reads back as the same string, and as text for every YAML reader (no
// number, boolean or null look-alikes).
bool plain_ok(std::string_view v) {
  if (v.empty() || v.size() > 200) return false;
  const char f = v.front();
  if (!((f >= 'A' && f <= 'Z') || (f >= 'a' && f <= 'z') || f == '_' || f == '/')) return false;
  for (char c : v)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == '.' || c == '/' || c == '@' || c == '+'))
      return false;
  static constexpr std::array<std::string_view, 9> kSpecial{"null", "true", "false", "yes", "no",
                                                            "on",   "off",  "y",     "n"};
  const std::string l = lower(v);
  return std::find(kSpecial.begin(), kSpecial.end(), l) == kSpecial.end();
}

std::string double_quoted(std::string_view v) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string single_quoted(std::string_view v) {
  std::string out = "'";
  for (char c : v) {
    out += c;
    if (c == '\'') out += '\'';
  }
  return out + "'";
}

enum class Style { plain, single, dbl };

std::string format_scalar(std::string_view v, Style style) {
  switch (style) {
    case Style::dbl:
      return double_quoted(v);
    case Style::single:
      return single_quoted(v);
    case Style::plain:
      break;
  }
  return plain_ok(v) ? std::string(v) : double_quoted(v);
}

// --- The text
// ---------------------------------------------------------------------------------------

class Text {
 public:
  explicit Text(const std::string& t) : t_(t) {
    bom_ = t_.size() >= 3 && t_.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
    starts_.push_back(0);
    for (std::size_t i = 0; i < t_.size(); ++i)
      if (t_[i] == '\n') starts_.push_back(i + 1);
    const auto nl = t_.find('\n');
    eol_ = nl != npos && nl > 0 && t_[nl - 1] == '\r' ? "\r\n" : "\n";
  }
  const std::string& str() const { return t_; }
  std::size_t lines() const { return starts_.size(); }
  const std::string& eol() const { return eol_; }
  std::size_t start(std::size_t line) const { return line < lines() ? starts_[line] : t_.size(); }
  // End of the line's content: before "\n" (and a "\r" before it).
  std::size_t end(std::size_t line) const {
    std::size_t e = line + 1 < lines() ? starts_[line + 1] - 1 : t_.size();
    if (e > start(line) && t_[e - 1] == '\r') --e;
    return e;
  }
  std::size_t offset(const YAML::Mark& m) const {
    if (m.is_null() || m.line < 0 || m.column < 0) return npos;
    const auto line = static_cast<std::size_t>(m.line);
    if (line >= lines()) return npos;
    const std::size_t off = starts_[line] + static_cast<std::size_t>(m.column) + (line ? 0 : bom_);
    return off <= end(line) ? off : npos;
  }
  // Indentation of a line holding something other than a comment; npos for blank and comment
  // lines.
  std::size_t content_indent(std::size_t line) const {
    const std::size_t s = start(line) + (line ? 0 : bom_);
    const std::size_t e = end(line);
    std::size_t i = s;
    while (i < e && t_[i] == ' ') ++i;
    std::size_t j = i;
    while (j < e && (t_[j] == ' ' || t_[j] == '\t')) ++j;
    if (j == e || t_[j] == '#') return npos;
    return i - s;
  }
  bool document_marker(std::size_t line) const {
    const std::size_t s = start(line), e = end(line);
    if (e - s < 3) return false;
    const std::string_view l(t_.data() + s, e - s);
    return (l.substr(0, 3) == "---" || l.substr(0, 3) == "...") &&
           (l.size() == 3 || l[3] == ' ' || l[3] == '\t');
  }

 private:
  std::string t_;
  std::size_t bom_ = 0;
  std::vector<std::size_t> starts_;
  std::string eol_;
};

bool flow_char(char c) {
  return c == ',' || c == '[' || c == ']' || c == '{' || c == '}';
}

// End of the one-line scalar token that starts at `b` (a key when `key`), or npos when the token
// is not a scalar that can be edited where it stands (block scalars, anchors, tags, aliases,
// quoted scalars that go on to the next line).
std::size_t scalar_end(const Text& text, std::size_t b, std::size_t line_end, bool key, bool flow) {
  const std::string& t = text.str();
  if (b >= line_end) return npos;
  const char c = t[b];
  if (c == '"') {
    for (std::size_t i = b + 1; i < line_end; ++i) {
      if (t[i] == '\\') {
        ++i;
        continue;
      }
      if (t[i] == '"') return i + 1;
    }
    return npos;
  }
  if (c == '\'') {
    for (std::size_t i = b + 1; i < line_end; ++i) {
      if (t[i] != '\'') continue;
      if (i + 1 < line_end && t[i + 1] == '\'') {
        ++i;
        continue;
      }
      return i + 1;
    }
    return npos;
  }
  if (c == '|' || c == '>' || c == '&' || c == '!' || c == '*' || c == '[' || c == '{' ||
      c == '?' || c == '%' || c == '@' || c == '`' || c == '#')
    return npos;
  std::size_t i = b;
  for (; i < line_end; ++i) {
    const char ch = t[i];
    if (ch == '#' && i > b && (t[i - 1] == ' ' || t[i - 1] == '\t')) break;
    if (key && ch == ':' &&
        (i + 1 == line_end || t[i + 1] == ' ' || t[i + 1] == '\t' || (flow && flow_char(t[i + 1]))))
      break;
    if (flow && flow_char(ch)) break;
  }
  while (i > b && (t[i - 1] == ' ' || t[i - 1] == '\t')) --i;
  return i > b ? i : npos;
}

struct Edit {
  std::size_t at = 0;
  std::size_t erase = 0;
  std::string insert;
};

std::string apply_edits(const std::string& t, const Edit& e) {
  std::string out;
  out.reserve(t.size() + e.insert.size());
  out.append(t, 0, e.at);
  out += e.insert;
  out.append(t, e.at + e.erase, npos);
  return out;
}

// Edits that do not overlap, applied from the last one back.
std::string apply_edits(std::string t, std::vector<Edit> edits) {
  std::sort(edits.begin(), edits.end(), [](const Edit& a, const Edit& b) { return a.at > b.at; });
  for (const auto& e : edits) t = apply_edits(t, e);
  return t;
}

// --- The schema's key order
// ---------------------------------------------------------------------------

// The schema's key paths as segments: "modbus.devices[].id" -> modbus, devices, [], id.
const std::vector<std::vector<std::string>>& schema_paths() {
  static const std::vector<std::vector<std::string>> paths = [] {
    std::vector<std::vector<std::string>> out;
    for (const auto& d : config_schema()) {
      std::vector<std::string> segs;
      std::size_t b = 0;
      const std::string& p = d.path;
      for (std::size_t i = 0; i <= p.size(); ++i) {
        if (i < p.size() && p[i] != '.') continue;
        std::string part = p.substr(b, i - b);
        b = i + 1;
        const bool list = part.size() > 2 && part.compare(part.size() - 2, 2, "[]") == 0;
        if (list) part.resize(part.size() - 2);
        segs.push_back(part);
        if (list) segs.push_back("[]");
      }
      out.push_back(std::move(segs));
    }
    return out;
  }();
  return paths;
}

// The keys the schema has under `parent`, in schema order.
std::vector<std::string> schema_children(const Segs& parent) {
  std::vector<std::string> out;
  for (const auto& segs : schema_paths()) {
    if (segs.size() != parent.size() + 1) continue;
    bool match = true;
    for (std::size_t k = 0; k < parent.size() && match; ++k) {
      const std::string& s = segs[k];
      if (s == "[]")
        match = parent[k].index;
      else if (s.size() > 2 && s.front() == '<' && s.back() == '>')
        match = !parent[k].index;
      else
        match = !parent[k].index && parent[k].key == s;
    }
    if (match && std::find(out.begin(), out.end(), segs.back()) == out.end())
      out.push_back(segs.back());
  }
  return out;
}

// --- One edit
// ---------------------------------------------------------------------------------------

// (yaml-cpp's Node::operator= assigns into the tree it refers to; Entry's rebinds instead.)
struct Entry {
  YAML::Node key, value;
  std::size_t line = 0, column = 0;
  Entry(const YAML::Node& k, const YAML::Node& v, std::size_t l, std::size_t c)
      : key(k), value(v), line(l), column(c) {}
  Entry(const Entry&) = default;
  Entry& operator=(const Entry& o) {
    key.reset(o.key);
    value.reset(o.value);
    line = o.line;
    column = o.column;
    return *this;
  }
};

std::vector<Entry> entries(const YAML::Node& map) {
  std::vector<Entry> out;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Mark m = it->first.Mark();
    out.emplace_back(it->first, it->second, static_cast<std::size_t>(std::max(0, m.line)),
                     static_cast<std::size_t>(std::max(0, m.column)));
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Entry& a, const Entry& b) { return a.line < b.line; });
  return out;
}

std::size_t indent_step(const YAML::Node& root) {
  if (!root.IsMap()) return 2;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const YAML::Node v = it->second;
    if (!v.IsMap() || v.Style() == YAML::EmitterStyle::Flow || v.size() == 0) continue;
    const int step = v.begin()->first.Mark().column - it->first.Mark().column;
    if (step > 0 && step <= 8) return static_cast<std::size_t>(step);
  }
  return 2;
}

class Editor {
 public:
  Editor(const std::string& text, std::string* why) : text_(text), why_(why) {}

  // The edited text, or nothing (why_ says why).
  std::optional<std::string> set(const Segs& path, const std::string& value) {
    YAML::Node root;
    try {
      root = YAML::Load(text_.str());
    } catch (const YAML::Exception& e) {
      return fail("the config is not valid YAML (line " + std::to_string(e.mark.line + 1) +
                  ", column " + std::to_string(e.mark.column + 1) + ": " + e.msg + ")");
    }
    step_ = indent_step(root);
    YAML::Node node = root;
    bool flow = false;
    std::optional<Entry> holder;  // the map entry whose value `node` is
    for (std::size_t k = 0; k < path.size(); ++k) {
      const Seg& s = path[k];
      const std::string here = path_text(path, k + 1);
      if (node.IsMap() && node.Style() == YAML::EmitterStyle::Flow) flow = true;
      if (node.IsSequence() && node.Style() == YAML::EmitterStyle::Flow) flow = true;
      if (s.index) {
        if (!node.IsSequence())
          return fail(path_text(path, k) + " is not a list, so it has no " + here);
        if (s.i >= node.size())
          return fail(here + ": " + path_text(path, k) + " has " + std::to_string(node.size()) +
                      (node.size() == 1 ? " item" : " items"));
        const YAML::Node& seq = node;
        node.reset(seq[s.i]);
        holder.reset();
        continue;
      }
      if (node.IsNull() || (k == 0 && !node.IsDefined())) {
        if (k == 0) return insert_at_end(path, value);
        if (!holder) return fail(path_text(path, k) + " is empty and not a map: edit it by hand");
        return insert_under_null_key(*holder, path, k, value, flow);
      }
      if (!node.IsMap())
        return fail((k ? path_text(path, k) : std::string("the config")) + " is " +
                    (node.IsSequence() ? "a list" : "a value") + ", not a section, so it has no " +
                    here);
      const auto es = entries(node);
      std::optional<Entry> found;
      for (const auto& e : es) {
        if (!e.key.IsScalar() || e.key.Scalar() != s.key) continue;
        if (found) return fail(here + " appears twice in the config");
        found.emplace(e);
      }
      if (!found) {
        if (flow)
          return fail(here + " is missing and " + (k ? path_text(path, k) : "the config") +
                      " is written in flow style ({...}): add it by hand");
        return insert_into_map(es, path, k, value);
      }
      holder.reset();
      holder.emplace(*found);
      node.reset(found->value);
    }
    if (!holder) return fail(path_text(path, path.size()) + " is not a map key");
    return set_value(*holder, path, value, flow);
  }

 private:
  std::nullopt_t fail(std::string m) {
    *why_ = std::move(m);
    return std::nullopt;
  }

  // The lines for path[from..]: "key:" lines down to "key: value".
  std::optional<std::string> lines_for(const Segs& path, std::size_t from, std::size_t indent,
                                       const std::string& value) {
    std::string out;
    for (std::size_t k = from; k < path.size(); ++k) {
      if (path[k].index)
        return fail(path_text(path, k + 1) + ": " + path_text(path, k) +
                    " does not exist, and list items are not created: add it by hand");
      out += std::string(indent + (k - from) * step_, ' ') +
             format_scalar(path[k].key, Style::plain) + ":";
      if (k + 1 == path.size()) out += " " + format_scalar(value, Style::plain);
      out += text_.eol();
    }
    return out;
  }

  // The insertion at the start of the line after `after_line` (at the end of the text, on a line
  // of its own, when there is none).
  Edit insertion(std::size_t after_line, const std::string& lines) const {
    Edit e;
    if (after_line + 1 < text_.lines()) {
      e.at = text_.start(after_line + 1);
    } else {
      e.at = text_.str().size();
      if (!text_.str().empty() && text_.str().back() != '\n') e.insert = text_.eol();
    }
    e.insert += lines;
    return e;
  }

  // An empty document (or one of comments only): the new keys go at its end.
  std::optional<std::string> insert_at_end(const Segs& path, const std::string& value) {
    auto lines = lines_for(path, 0, 0, value);
    if (!lines) return std::nullopt;
    return apply_edits(text_.str(), insertion(text_.lines() - 1, *lines));
  }

  // Last line of a block map's content: its entries start at `first_line` in `column`; it ends
  // before the first later line, other than a comment or blank, indented less.
  std::size_t map_last_line(std::size_t first_line, std::size_t column) const {
    std::size_t last = first_line;
    for (std::size_t l = first_line + 1; l < text_.lines(); ++l) {
      if (text_.document_marker(l)) break;
      const std::size_t ind = text_.content_indent(l);
      if (ind == npos) continue;
      if (ind < column) break;
      last = l;
    }
    return last;
  }

  // Last line holding content in [from, to].
  std::size_t last_content(std::size_t from, std::size_t to) const {
    std::size_t last = from;
    for (std::size_t l = from + 1; l <= to && l < text_.lines(); ++l)
      if (text_.content_indent(l) != npos) last = l;
    return last;
  }

  std::optional<std::string> insert_into_map(const std::vector<Entry>& es, const Segs& path,
                                             std::size_t k, const std::string& value) {
    if (es.empty()) return fail(path_text(path, k) + " is an empty map: add the key by hand");
    const std::size_t column = es.front().column;
    for (const auto& e : es)
      if (e.column != column)
        return fail(path_text(path, k) + " is not laid out as a block: add the key by hand");
    const std::size_t map_end = map_last_line(es.front().line, column);
    // After the closest key the schema puts before the new one; else at the map's end.
    const Segs parent(path.begin(), path.begin() + static_cast<std::ptrdiff_t>(k));
    const auto order = schema_children(parent);
    std::size_t after = map_end;
    const auto pos = std::find(order.begin(), order.end(), path[k].key);
    if (pos != order.end()) {
      for (auto it = std::make_reverse_iterator(pos); it != order.rend(); ++it) {
        const auto e = std::find_if(es.begin(), es.end(), [&](const Entry& x) {
          return x.key.IsScalar() && x.key.Scalar() == *it;
        });
        if (e == es.end()) continue;
        const auto next = e + 1;
        after = last_content(e->line, next == es.end() ? map_end : next->line - 1);
        break;
      }
    }
    auto lines = lines_for(path, k, column, value);
    if (!lines) return std::nullopt;
    return apply_edits(text_.str(), insertion(after, *lines));
  }

  // Where the value of a map entry goes on its key's line.
  struct ValueSlot {
    std::size_t colon = 0;  // the ':' after the key
    std::size_t at = 0;     // the value's first byte (the line's end or a comment when none)
    std::size_t end = 0;    // the end of an explicit null (~, null) there; == at when none
  };

  std::optional<ValueSlot> slot_after_key(const Entry& holder, const Segs& path, std::size_t k,
                                          bool flow) {
    const std::string here = path_text(path, k);
    const std::size_t kb = text_.offset(holder.key.Mark());
    const std::size_t le = text_.end(holder.line);
    const std::size_t ke = kb == npos ? npos : scalar_end(text_, kb, le, true, flow);
    if (ke == npos) return fail(here + ": its key cannot be edited in place: edit it by hand");
    const std::string& t = text_.str();
    std::size_t i = ke;
    while (i < le && (t[i] == ' ' || t[i] == '\t')) ++i;
    if (i >= le || t[i] != ':')
      return fail(here + ": its key cannot be edited in place: edit it by hand");
    ValueSlot slot;
    slot.colon = i++;
    while (i < le && (t[i] == ' ' || t[i] == '\t')) ++i;
    slot.at = slot.end = i;
    if (i == le || t[i] == '#' || (flow && flow_char(t[i]))) return slot;
    std::size_t j = i;
    while (j < le && t[j] != ' ' && t[j] != '\t' && !(flow && flow_char(t[j]))) ++j;
    const std::string token = t.substr(i, j - i);
    if (token == "~" || token == "null" || token == "Null" || token == "NULL") {
      slot.end = j;
      return slot;
    }
    return fail(here + ": its value is not on the key's line: edit it by hand");
  }

  // `key:` (or `key: ~`) with nothing under it: the new section goes below it.
  std::optional<std::string> insert_under_null_key(const Entry& holder, const Segs& path,
                                                   std::size_t k, const std::string& value,
                                                   bool flow) {
    if (flow)
      return fail(path_text(path, k) + " is written in flow style ({...}): add " +
                  path_text(path, path.size()) + " by hand");
    auto slot = slot_after_key(holder, path, k, flow);
    if (!slot) return std::nullopt;
    auto lines = lines_for(path, k, holder.column + step_, value);
    if (!lines) return std::nullopt;
    std::vector<Edit> edits{insertion(holder.line, *lines)};
    if (slot->end != slot->at)  // an explicit null goes, with the spaces before it
      edits.push_back({slot->colon + 1, slot->end - slot->colon - 1, ""});
    return apply_edits(text_.str(), std::move(edits));
  }

  std::optional<std::string> set_value(const Entry& holder, const Segs& path,
                                       const std::string& value, bool flow) {
    const std::string here = path_text(path, path.size());
    const YAML::Node& v = holder.value;
    if (v.IsMap() || v.IsSequence())
      return fail(here + " is " + (v.IsMap() ? "a section" : "a list") + ", not a single value");
    if (v.IsScalar()) {
      if (v.Scalar() == value) return text_.str();
      const std::size_t b = text_.offset(v.Mark());
      const auto line = static_cast<std::size_t>(std::max(0, v.Mark().line));
      const std::size_t e = b == npos ? npos : scalar_end(text_, b, text_.end(line), false, flow);
      if (e == npos)
        return fail(here +
                    ": its value is not a one-line scalar (a block scalar, an anchor, an alias, a "
                    "tag or a quoted text over several lines): edit it by hand");
      const char c = text_.str()[b];
      const Style style = c == '"' ? Style::dbl : c == '\'' ? Style::single : Style::plain;
      return apply_edits(text_.str(), Edit{b, e - b, format_scalar(value, style)});
    }
    // Null: nothing after the colon (maybe a comment), or an explicit ~ / null.
    auto slot = slot_after_key(holder, path, path.size() - 1, flow);
    if (!slot) return std::nullopt;
    const std::string formatted = format_scalar(value, Style::plain);
    if (slot->end != slot->at)
      return apply_edits(text_.str(), Edit{slot->at, slot->end - slot->at, formatted});
    return apply_edits(text_.str(), Edit{slot->colon + 1, 0, " " + formatted});
  }

  Text text_;
  std::string* why_;
  std::size_t step_ = 2;
};

// --- Checking the result
// -----------------------------------------------------------------------------

struct Target {
  Segs path;
  std::string value;
};

// Compares the original tree with the edited one: equal everywhere but at the targets, which
// hold their values, and in sections created on the way to them.
class Verifier {
 public:
  explicit Verifier(const std::vector<Target>& targets) : targets_(targets) {}

  bool same(const YAML::Node& a, const YAML::Node& b, Segs& at, bool created) {
    if (--budget_ < 0) return fail(at, "the config is too large to compare (aliases?)");
    for (const auto& t : targets_)
      if (t.path == at) {
        if (!b.IsScalar() || b.Scalar() != t.value)
          return fail(at,
                      "the value could not be written in place (it may go on over several "
                      "lines, or be shared through an alias): edit it by hand");
        return true;
      }
    const bool prefix = is_prefix(at);
    if (created || (a.IsNull() && prefix && b.IsMap())) {
      if (!b.IsMap()) return fail(at, "was not created as a section");
      for (auto it = b.begin(); it != b.end(); ++it) {
        if (!it->first.IsScalar()) return fail(at, "unexpected key");
        at.push_back(key_seg(it->first.Scalar()));
        if (!is_prefix(at) && !is_target(at)) return fail(at, "appeared unexpectedly");
        if (!same(YAML::Node(), it->second, at, true)) return false;
        at.pop_back();
      }
      return true;
    }
    if (a.Type() != b.Type()) return fail(at, "changed its type");
    switch (a.Type()) {
      case YAML::NodeType::Scalar:
        if (a.Scalar() != b.Scalar() || a.Tag() != b.Tag()) return fail(at, "changed");
        return true;
      case YAML::NodeType::Sequence: {
        if (a.size() != b.size()) return fail(at, "changed its length");
        for (std::size_t i = 0; i < a.size(); ++i) {
          Seg s;
          s.index = true;
          s.i = i;
          at.push_back(s);
          if (!same(a[i], b[i], at, false)) return false;
          at.pop_back();
        }
        return true;
      }
      case YAML::NodeType::Map: {
        auto ia = a.begin();
        for (auto ib = b.begin(); ib != b.end(); ++ib) {
          if (ia != a.end() && same_key(ia->first, ib->first)) {
            at.push_back(key_seg(ia->first.IsScalar() ? ia->first.Scalar() : std::string()));
            if (!same(ia->second, ib->second, at, false)) return false;
            at.pop_back();
            ++ia;
            continue;
          }
          if (!ib->first.IsScalar()) return fail(at, "changed");
          at.push_back(key_seg(ib->first.Scalar()));
          if (!is_prefix(at) && !is_target(at)) return fail(at, "appeared unexpectedly");
          if (!same(YAML::Node(), ib->second, at, true)) return false;
          at.pop_back();
        }
        if (ia != a.end()) return fail(at, "lost a key");
        return true;
      }
      default:
        return true;
    }
  }

  const std::string& why() const { return why_; }

 private:
  static Seg key_seg(const std::string& k) {
    Seg s;
    s.key = k;
    return s;
  }
  bool same_key(const YAML::Node& a, const YAML::Node& b) {
    if (a.IsScalar() && b.IsScalar()) return a.Scalar() == b.Scalar() && a.Tag() == b.Tag();
    if (a.IsScalar() != b.IsScalar()) return false;
    static const std::vector<Target> kNone;
    Verifier plain(kNone);
    plain.budget_ = budget_;
    Segs at;
    const bool eq = plain.same(a, b, at, false);
    budget_ = plain.budget_;
    return eq;
  }
  bool is_target(const Segs& at) const {
    return std::any_of(targets_.begin(), targets_.end(),
                       [&](const Target& t) { return t.path == at; });
  }
  bool is_prefix(const Segs& at) const {
    return std::any_of(targets_.begin(), targets_.end(), [&](const Target& t) {
      return t.path.size() > at.size() && std::equal(at.begin(), at.end(), t.path.begin());
    });
  }
  bool fail(const Segs& at, const std::string& m) {
    if (why_.empty())
      why_ = (at.empty() ? std::string("the config") : path_text(at, at.size())) + ": " + m;
    return false;
  }

  const std::vector<Target>& targets_;
  std::string why_;
  long budget_ = kVerifyBudget;
};

bool id_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

std::optional<YAML::Node> load(std::string_view yaml, std::string* why = nullptr) {
  try {
    return YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    if (why)
      *why = "the config is not valid YAML (line " + std::to_string(e.mark.line + 1) + ", column " +
             std::to_string(e.mark.column + 1) + ": " + e.msg + ")";
    return std::nullopt;
  }
}

}  // namespace

std::string config_path_key(std::string_view key) {
  const bool plain = !key.empty() && std::all_of(key.begin(), key.end(), plain_path_char);
  if (plain) return std::string(key);
  std::string out = "\"";
  for (char c : key) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string check_config_value(std::string_view path, std::string_view value) {
  const std::string p(path);
  auto with = [&](const std::string& e) { return e.empty() ? e : p + ": " + e; };
  if (path == "site.id") {
    if (value.empty() || value.size() > 64 || !std::all_of(value.begin(), value.end(), id_char))
      return p +
             ": must be 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-' (it is used in MQTT "
             "topics), got '" +
             std::string(value.substr(0, 80)) + "'";
    return "";
  }
  if (path == "site.grid_code") return with(bridge::check_grid_code(value));
  if (path == "site.division_code")
    return value.empty() ? "" : with(bridge::check_division_code(value));
  if (ends_with(path, ".gb28181"))
    return value.empty() ? "" : with(bridge::check_gb28181_code(value));
  if (ends_with(path, ".grid_code") && path != "site.grid_code")
    return value.empty() ? "" : with(bridge::check_grid_code(value));
  return "";
}

namespace {

std::string set_values(std::string_view yaml,
                       const std::vector<std::pair<std::string, std::string>>& key_values,
                       std::string& why, const std::string& file) {
  std::vector<Target> targets;
  for (const auto& [key, value] : key_values) {
    Target t;
    if (!parse_path(key, t.path, &why)) return "";
    if (value.size() > kMaxValueBytes) {
      why = key + ": the value is too long (" + std::to_string(value.size()) + " bytes)";
      return "";
    }
    if (std::any_of(value.begin(), value.end(), [](char c) {
          const auto u = static_cast<unsigned char>(c);
          return u < 0x20 || u == 0x7f;
        })) {
      why = key + ": the value must be one line of printable text";
      return "";
    }
    if (std::string e = check_config_value(path_text(t.path, t.path.size()), value); !e.empty()) {
      why = e;
      return "";
    }
    // A later value for the same key wins: one target per key.
    auto same = std::find_if(targets.begin(), targets.end(),
                             [&](const Target& o) { return o.path == t.path; });
    t.value = value;
    if (same != targets.end())
      *same = std::move(t);
    else
      targets.push_back(std::move(t));
  }

  const auto original = load(yaml, &why);
  if (!original) return "";
  std::string text(yaml);
  for (const auto& t : targets) {
    Editor ed(text, &why);
    auto next = ed.set(t.path, t.value);
    if (!next) return "";
    text = std::move(*next);
  }
  if (text == yaml) return text;

  const auto edited = load(text);
  if (!edited) {
    why = "the edit would break the config's YAML: edit it by hand";
    return "";
  }
  Verifier verifier(targets);
  Segs at;
  if (!verifier.same(*original, *edited, at, false)) {
    why = verifier.why();
    return "";
  }
  // The site's grid code must start with its division code (both as they are after the edit).
  const bool site_codes = std::any_of(targets.begin(), targets.end(), [](const Target& t) {
    return path_text(t.path, t.path.size()) == "site.grid_code" ||
           path_text(t.path, t.path.size()) == "site.division_code";
  });
  if (site_codes) {
    const std::string grid = config_value(text, "site.grid_code");
    const std::string division = config_value(text, "site.division_code");
    if (!division.empty())
      if (std::string e = bridge::check_grid_code(grid, division); !e.empty()) {
        why = "site.grid_code: " + e;
        return "";
      }
  }
  const auto parsed = parse_config(text, file);
  if (!parsed.config) {
    why = "the config would not be valid after this change:";
    std::size_t n = 0;
    for (const auto& e : parsed.errors) {
      if (++n > 5) {
        why += "\n  (and " + std::to_string(parsed.errors.size() - 5) + " more)";
        break;
      }
      why += "\n  " + e.to_string();
    }
    return "";
  }
  return text;
}

}  // namespace

std::string set_config_values(std::string_view yaml,
                              const std::vector<std::pair<std::string, std::string>>& key_values,
                              std::string* error, const std::string& file) {
  std::string scratch;
  std::string& why = error ? *error : scratch;
  why.clear();
  try {
    std::string out = set_values(yaml, key_values, why, file);
    if (!why.empty()) return "";
    return out;
  } catch (const std::exception& e) {
    why = std::string("the config could not be edited: ") + e.what();
    return "";
  }
}

std::string config_value(std::string_view yaml, std::string_view path) {
  Segs segs;
  std::string why;
  if (!parse_path(path, segs, &why)) return "";
  auto root = load(yaml);
  if (!root) return "";
  YAML::Node n = *root;
  for (const auto& s : segs) {
    if (s.index) {
      if (!n.IsSequence() || s.i >= n.size()) return "";
      const YAML::Node& seq = n;
      n.reset(seq[s.i]);
      continue;
    }
    if (!n.IsMap()) return "";
    bool found = false;
    for (auto it = n.begin(); it != n.end(); ++it)
      if (it->first.IsScalar() && it->first.Scalar() == s.key) {
        const YAML::Node next = it->second;
        n.reset(next);
        found = true;
        break;
      }
    if (!found) return "";
  }
  return n.IsScalar() ? n.Scalar() : "";
}

std::vector<std::string> find_device_entries(std::string_view yaml, std::string_view id) {
  std::vector<std::string> out;
  auto root = load(yaml);
  if (!root || !root->IsMap() || id.empty()) return out;
  auto section = [&](const std::string& name) -> YAML::Node {
    for (auto it = root->begin(); it != root->end(); ++it)
      if (it->first.IsScalar() && it->first.Scalar() == name) {
        const YAML::Node s = it->second;
        for (auto d = s.begin(); s.IsMap() && d != s.end(); ++d)
          if (d->first.IsScalar() && d->first.Scalar() == "devices") return d->second;
      }
    return YAML::Node();
  };
  const std::string wanted(id);
  for (const std::string driver : {"zigbee2mqtt", "chirpstack", "generic_mqtt"}) {
    const YAML::Node devices = section(driver);
    if (!devices.IsMap()) continue;
    for (auto it = devices.begin(); it != devices.end(); ++it) {
      if (!it->first.IsScalar()) continue;
      const std::string& key = it->first.Scalar();
      if (key == wanted || (driver == "chirpstack" && lower(key) == lower(wanted)))
        out.push_back(driver + ".devices." + config_path_key(key));
    }
  }
  const YAML::Node modbus = section("modbus");
  if (modbus.IsSequence())
    for (std::size_t i = 0; i < modbus.size(); ++i) {
      const YAML::Node d = modbus[i];
      if (!d.IsMap()) continue;
      for (auto it = d.begin(); it != d.end(); ++it)
        if (it->first.IsScalar() && it->first.Scalar() == "id" && it->second.IsScalar() &&
            it->second.Scalar() == wanted)
          out.push_back("modbus.devices[" + std::to_string(i) + "]");
    }
  return out;
}

}  // namespace anju::firmware
