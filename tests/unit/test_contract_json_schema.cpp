// Unit tests of the JSON Schema subset validator (anju/bridge/json_schema.hpp): every keyword
// accepts what it should and rejects what it should, with a message naming the keyword and path.
#include <catch2/catch.hpp>

#include "anju/bridge/json_schema.hpp"

using anju::bridge::schema::Issue;
using anju::bridge::schema::Options;
using anju::bridge::schema::SchemaSet;
using nlohmann::json;

namespace {

// One document "s.json" holding `schema`; the issues of validating `instance` against it.
std::vector<Issue> run(const json& schema, const json& instance, bool strict = false) {
  SchemaSet set;
  const std::string err = set.add("s.json", schema);
  INFO(err);
  REQUIRE(err.empty());
  Options o;
  o.strict = strict;
  return set.validate("s.json", instance, o);
}

bool ok(const json& schema, const json& instance, bool strict = false) {
  const auto issues = run(schema, instance, strict);
  INFO(anju::bridge::schema::to_string(issues));
  return issues.empty();
}

// The first issue's text ("" when valid).
std::string why(const json& schema, const json& instance) {
  const auto issues = run(schema, instance);
  return issues.empty() ? "" : anju::bridge::schema::to_string(issues.front());
}

}  // namespace

TEST_CASE("json schema: type", "[contract][schema]") {
  CHECK(ok({{"type", "string"}}, "x"));
  CHECK_FALSE(ok({{"type", "string"}}, 1));
  CHECK(ok({{"type", "integer"}}, 3));
  CHECK(ok({{"type", "integer"}}, 3.0));  // JSON Schema: a number with no fraction
  CHECK_FALSE(ok({{"type", "integer"}}, 3.5));
  CHECK(ok({{"type", "number"}}, 3.5));
  CHECK_FALSE(ok({{"type", "number"}}, "3"));
  CHECK(ok({{"type", "boolean"}}, true));
  CHECK_FALSE(ok({{"type", "boolean"}}, 0));
  CHECK(ok({{"type", "null"}}, nullptr));
  CHECK(ok({{"type", "object"}}, json::object()));
  CHECK_FALSE(ok({{"type", "object"}}, json::array()));
  CHECK(ok({{"type", "array"}}, json::array()));
  CHECK(ok({{"type", {"string", "null"}}}, nullptr));
  CHECK_FALSE(ok({{"type", {"string", "null"}}}, 2));
  CHECK(why({{"type", "string"}}, 1).find("type") != std::string::npos);
}

TEST_CASE("json schema: required, properties, additionalProperties, strict", "[contract][schema]") {
  const json s = {{"type", "object"},
                  {"required", {"a"}},
                  {"properties", {{"a", {{"type", "integer"}}}, {"b", {{"type", "string"}}}}}};
  CHECK(ok(s, {{"a", 1}}));
  CHECK(ok(s, {{"a", 1}, {"b", "x"}, {"c", true}}));  // unknown members allowed by default
  CHECK_FALSE(ok(s, {{"b", "x"}}));
  CHECK(why(s, {{"b", "x"}}) == "(document): required: member \"a\" is missing");
  CHECK(why(s, {{"a", "1"}}).rfind("/a: type", 0) == 0);  // the path names the member
  // strict: members not described are errors
  CHECK_FALSE(ok(s, {{"a", 1}, {"c", true}}, true));
  CHECK(ok(s, {{"a", 1}, {"b", "x"}}, true));
  // additionalProperties false / schema
  json closed = s;
  closed["additionalProperties"] = false;
  CHECK_FALSE(ok(closed, {{"a", 1}, {"c", true}}));
  json typed = {{"type", "object"}, {"additionalProperties", {{"type", "integer"}}}};
  CHECK(ok(typed, {{"x", 1}, {"y", 2}}));
  CHECK_FALSE(ok(typed, {{"x", "1"}}));
  CHECK(ok(typed, {{"x", 1}}, true));  // explicit additionalProperties wins over strict
  // path escaping (RFC 6901)
  CHECK(why(typed, {{"a/b~c", "1"}}).rfind("/a~1b~0c: type", 0) == 0);
}

TEST_CASE("json schema: enum and const", "[contract][schema]") {
  CHECK(ok({{"enum", {"a", "b", 1}}}, "b"));
  CHECK(ok({{"enum", {"a", "b", 1}}}, 1));
  CHECK_FALSE(ok({{"enum", {"a", "b", 1}}}, "c"));
  CHECK(why({{"enum", {"a"}}}, "c").find("enum") != std::string::npos);
  CHECK(ok({{"const", 1}}, 1));
  CHECK_FALSE(ok({{"const", 1}}, 2));
  CHECK(ok({{"const", {{"k", {1, 2}}}}}, {{"k", {1, 2}}}));
  CHECK_FALSE(ok({{"const", {{"k", {1, 2}}}}}, {{"k", {2, 1}}}));
}

TEST_CASE("json schema: pattern, minLength, maxLength", "[contract][schema]") {
  const json digits = {{"type", "string"}, {"pattern", "^[0-9]{12}$"}};
  CHECK(ok(digits, "110105001002"));
  CHECK_FALSE(ok(digits, "11010500100"));
  CHECK_FALSE(ok(digits, "11010500100a"));
  CHECK(ok({{"pattern", "b"}}, "abc"));  // unanchored patterns search, as JSON Schema says
  CHECK(ok({{"pattern", "^x"}}, 5));     // only strings are checked
  CHECK(ok({{"minLength", 2}}, "ab"));
  CHECK_FALSE(ok({{"minLength", 2}}, "a"));
  CHECK(ok({{"maxLength", 2}}, "ab"));
  CHECK_FALSE(ok({{"maxLength", 2}}, "abc"));
  // lengths are in code points: "烟感" is 6 bytes, 2 characters
  CHECK(ok({{"maxLength", 2}, {"minLength", 2}}, "烟感"));
}

TEST_CASE("json schema: minimum, maximum, exclusive bounds", "[contract][schema]") {
  CHECK(ok({{"minimum", 1}, {"maximum", 4}}, 1));
  CHECK(ok({{"minimum", 1}, {"maximum", 4}}, 4));
  CHECK_FALSE(ok({{"minimum", 1}, {"maximum", 4}}, 0));
  CHECK_FALSE(ok({{"minimum", 1}, {"maximum", 4}}, 5));
  CHECK_FALSE(ok({{"minimum", 1}}, 0.5));
  CHECK(ok({{"exclusiveMinimum", 0}}, 0.001));
  CHECK_FALSE(ok({{"exclusiveMinimum", 0}}, 0));
  CHECK_FALSE(ok({{"exclusiveMaximum", 10}}, 10));
  // 64-bit integers compare exactly
  CHECK_FALSE(ok({{"maximum", INT64_C(9007199254740992)}}, INT64_C(9007199254740993)));
  CHECK(ok({{"minimum", 0}}, UINT64_C(18446744073709551615)));
  CHECK(ok({{"minimum", 1}}, "text"));  // only numbers are checked
}

TEST_CASE("json schema: items, minItems, maxItems", "[contract][schema]") {
  const json s = {
      {"type", "array"}, {"items", {{"type", "integer"}}}, {"minItems", 1}, {"maxItems", 3}};
  CHECK(ok(s, {1, 2, 3}));
  CHECK_FALSE(ok(s, json::array()));
  CHECK_FALSE(ok(s, {1, 2, 3, 4}));
  CHECK_FALSE(ok(s, {1, "2"}));
  CHECK(why(s, {1, "2"}).rfind("/1: type", 0) == 0);
}

TEST_CASE("json schema: allOf, anyOf, oneOf, not", "[contract][schema]") {
  const json all = {{"allOf", {{{"type", "integer"}}, {{"minimum", 2}}}}};
  CHECK(ok(all, 3));
  CHECK_FALSE(ok(all, 1));
  const json any = {{"anyOf", {{{"type", "integer"}}, {{"type", "string"}}}}};
  CHECK(ok(any, 3));
  CHECK(ok(any, "x"));
  CHECK_FALSE(ok(any, true));
  const json one = {{"oneOf", {{{"type", "integer"}}, {{"minimum", 2}}}}};
  CHECK(ok(one, 1));        // only the first
  CHECK(ok(one, 2.5));      // only the second
  CHECK_FALSE(ok(one, 3));  // both
  CHECK(why(one, 3).find("oneOf: matches 2") != std::string::npos);
  CHECK(ok(one, "x"));  // bounds apply to numbers only: the second matches
  const json either = {{"oneOf", {{{"type", "integer"}}, {{"type", "string"}}}}};
  CHECK_FALSE(ok(either, true));  // neither
  CHECK(why(either, true).find("oneOf: matches 0") != std::string::npos);
  CHECK(ok({{"not", {{"type", "string"}}}}, 1));
  CHECK_FALSE(ok({{"not", {{"type", "string"}}}}, "x"));
  CHECK(ok(true, 1));
  CHECK_FALSE(ok(false, 1));
}

TEST_CASE("json schema: $ref within a document and to a sibling", "[contract][schema]") {
  SchemaSet set;
  REQUIRE(set.add("common.json", {{"$defs",
                                   {{"code", {{"type", "string"}, {"pattern", "^[0-9]{20}$"}}},
                                    {"a/b", {{"const", 1}}}}}})
              .empty());
  REQUIRE(set.add("msg.json", {{"type", "object"},
                               {"properties",
                                {{"grid", {{"$ref", "common.json#/$defs/code"}}},
                                 {"one", {{"$ref", "common.json#/$defs/a~1b"}}},
                                 {"self", {{"$ref", "#/$defs/local"}}},
                                 {"whole", {{"$ref", "common.json"}}}}},
                               {"$defs", {{"local", {{"type", "boolean"}}}}}})
              .empty());
  CHECK(set.unresolved_refs().empty());
  CHECK(set.validate("msg.json", {{"grid", "11010500100200300401"}, {"one", 1}, {"self", true}})
            .empty());
  CHECK(set.validate("msg.json", {{"grid", "1101"}}).size() == 1);
  CHECK(set.validate("msg.json", {{"one", 2}}).size() == 1);
  CHECK(set.validate("msg.json", {{"self", 2}}).size() == 1);
  CHECK(set.validate("common.json#/$defs/code", "11010500100200300401").empty());
  CHECK_FALSE(set.validate("nope.json", 1).empty());
  // a reference to something that is not there is found before validation, and reported during
  SchemaSet bad;
  REQUIRE(bad.add("x.json", {{"$ref", "missing.json#/$defs/y"}}).empty());
  REQUIRE(bad.unresolved_refs().size() == 1);
  CHECK(bad.unresolved_refs()[0] == "x.json: missing.json#/$defs/y");
  CHECK(to_string(bad.validate("x.json", 1)[0]).find("does not resolve") != std::string::npos);
  // a $ref loop ends with an issue instead of a stack overflow
  SchemaSet loop;
  REQUIRE(loop.add("l.json", {{"$ref", "#"}}).empty());
  CHECK_FALSE(loop.validate("l.json", 1).empty());
}

TEST_CASE("json schema: schema documents are checked when added", "[contract][schema]") {
  SchemaSet set;
  CHECK(set.add("a.json", {{"tpye", "string"}}).find("unknown keyword \"tpye\"") !=
        std::string::npos);
  CHECK(set.add("a.json", {{"type", "strin"}}).find("unknown type") != std::string::npos);
  CHECK(set.add("a.json", {{"pattern", "("}}).find("does not compile") != std::string::npos);
  CHECK(set.add("a.json", {{"minLength", -1}}).find("non-negative") != std::string::npos);
  CHECK(set.add("a.json", {{"required", {1}}}).find("array of strings") != std::string::npos);
  CHECK(set.add("a.json", {{"properties", {{"x", 5}}}}).find("/properties/x") != std::string::npos);
  CHECK(set.add("a.json", {{"oneOf", json::array()}}).find("non-empty") != std::string::npos);
  CHECK_FALSE(set.has("a.json"));
  // annotations are accepted and ignored
  CHECK(set.add("a.json", {{"title", "t"},
                           {"description", "d"},
                           {"examples", {1}},
                           {"$schema", "https://json-schema.org/draft/2020-12/schema"},
                           {"format", "uuid"}})
            .empty());
  CHECK(set.has("a.json"));
}

TEST_CASE("json schema: issues are capped", "[contract][schema]") {
  SchemaSet set;
  REQUIRE(set.add("s.json", {{"type", "array"}, {"items", {{"type", "string"}}}}).empty());
  Options o;
  o.max_issues = 3;
  CHECK(set.validate("s.json", json(std::vector<int>(100, 1)), o).size() == 3);
}
