// A small JSON Schema validator: the subset the city contract's schemas use
// (docs/contract/schemas). Debian 12 packages no C++ validator, and the contract needs only this
// much:
//   type (string or list; "integer" accepts 3 and 3.0), required, properties, additionalProperties
//   (bool or schema), enum, const, pattern (std::regex ECMAScript, searched as JSON Schema says),
//   minimum, maximum, exclusiveMinimum, exclusiveMaximum, minLength, maxLength (in code points),
//   items (one schema), minItems, maxItems, allOf, anyOf, oneOf, not, and $ref to "#/pointer" in
//   the same document or to "<name>.json" / "<name>.json#/pointer" of a document added by name.
// Annotations ($schema, $id, $comment, title, description, examples, default, deprecated,
// readOnly, format, $defs, definitions) are accepted and ignored; any other keyword is an error
// when the schema is added, so a typo in a schema cannot silently switch a check off.
//
// Strict mode (for Anju's own tests): an object schema with "properties" and no
// "additionalProperties" refuses unknown members, so a field the code sends that the contract
// does not describe fails the tests. The published rule for consumers stays "ignore unknown
// fields".
//
// Pure: no I/O (loading files is the caller's business). Thread: a SchemaSet is immutable after
// the last add(); validate() may then run on any number of threads.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace anju::bridge::schema {

struct Issue {
  std::string path;     // JSON pointer into the instance ("" = the whole document)
  std::string message;  // what is wrong, naming the keyword
};
std::string to_string(const Issue& i);               // "/alert/state: ..."
std::string to_string(const std::vector<Issue>& v);  // one per line

struct Options {
  bool strict = false;          // see above
  std::size_t max_issues = 20;  // stop collecting after this many
};

class SchemaSet {
 public:
  // Adds a schema document under `name` (how other documents' $ref name it, e.g. "alert.json").
  // Checks its keywords, the types of their values and compiles its patterns. Returns the
  // problems found ("" and the document is added when there are none).
  std::string add(const std::string& name, const nlohmann::json& doc);
  // $refs that do not resolve against the documents added so far: "<doc>: <ref>" each.
  std::vector<std::string> unresolved_refs() const;
  bool has(const std::string& name) const { return docs_.count(name) != 0; }
  const nlohmann::json* document(const std::string& name) const;

  // Validates `instance` against `ref` ("alert.json", or "alert.json#/$defs/location").
  std::vector<Issue> validate(const std::string& ref, const nlohmann::json& instance,
                              const Options& options = {}) const;

 private:
  struct Ctx;
  void walk(const std::string& doc, const nlohmann::json& s, const std::string& at,
            std::string& errors, int depth);
  const nlohmann::json* resolve(const std::string& from_doc, const std::string& ref,
                                std::string* doc_out) const;
  void check(Ctx& ctx, const std::string& doc, const nlohmann::json& s, const nlohmann::json& v,
             const std::string& path, int depth) const;
  std::map<std::string, nlohmann::json> docs_;
  std::map<std::string, std::vector<std::string>> refs_;  // doc -> refs it uses
  std::map<std::string, std::shared_ptr<const std::regex>> patterns_;
};

}  // namespace anju::bridge::schema
