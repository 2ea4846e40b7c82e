// JSON Schema -> schema graph; see json_schema.h.
#include "runtime/json_schema.h"

#include <algorithm>
#include <map>
#include <set>

namespace dsv3 {

using json = nlohmann::ordered_json;

namespace {

// Annotations: no effect on which documents are valid.
const std::set<std::string> kAnnotations = {"$schema", "$id", "$comment", "title", "description", "default",
                                            "examples", "deprecated", "readOnly", "writeOnly", "$defs", "definitions"};
// Enforced by the grammar.
const std::set<std::string> kEnforced = {"type", "properties", "required", "additionalProperties", "items",
                                         "minItems", "maxItems", "enum", "const", "anyOf", "oneOf", "$ref",
                                         "minLength", "maxLength", "nullable", "minimum", "maximum",
                                         "exclusiveMinimum", "exclusiveMaximum", "multipleOf"};

// Compiles schema values into nodes, memoising $ref targets by path so that
// recursive definitions become cycles in the graph.
class Compiler {
 public:
  Compiler(const json& root, const SchemaOptions& o) : root_(root), options_(o) {}

  Expected<CompiledSchema> Run() {
    out_.any_value = AddAny();
    const int32_t r = Compile(root_, "#");
    if (!error_.ok()) return error_;
    out_.root = r;
    DSV3_RETURN_IF_ERROR(CheckProductive());
    return std::move(out_);
  }

 private:
  int32_t Add(SchemaNode n) {
    out_.nodes.push_back(std::move(n));
    return static_cast<int32_t>(out_.nodes.size() - 1);
  }
  int32_t Fail(const std::string& path, const std::string& why) {
    if (error_.ok()) error_ = Status::Error("json schema: " + path + ": " + why);
    return out_.any_value;
  }

  // The builtin "any JSON value": anyOf free-form object, array, string, number, literals.
  int32_t AddAny() {
    const int32_t any = Add(SchemaNode{});  // kAnyOf, filled below
    SchemaNode obj{.kind = SchemaKind::kObject, .free_form = true, .additional = any};
    SchemaNode arr{.kind = SchemaKind::kArray, .items = any};
    SchemaNode lit{.kind = SchemaKind::kLiterals, .literals = {"true", "false", "null"}};
    const int32_t o = Add(obj), a = Add(arr), s = Add(SchemaNode{.kind = SchemaKind::kString});
    const int32_t n = Add(SchemaNode{.kind = SchemaKind::kNumber}), l = Add(lit);
    out_.nodes[any].alternatives = {o, a, s, n, l};
    return any;
  }

  int32_t Compile(const json& s, const std::string& path);
  int32_t CompileRef(const std::string& ref, const std::string& path);
  int32_t CompileTyped(const json& s, const std::string& type, const std::string& path);
  int32_t CompileObject(const json& s, const std::string& path);
  int32_t CompileArray(const json& s, const std::string& path);
  int32_t CompileString(const json& s, const std::string& path);
  int32_t CompileNumber(const json& s, bool integer, const std::string& path);
  bool CheckKeywords(const json& s, const std::string& path);
  bool Count(const json& s, const char* key, const std::string& path, int64_t* out);
  Status CheckProductive() const;

  const json& root_;
  SchemaOptions options_;
  CompiledSchema out_;
  Status error_;
  std::map<std::string, int32_t> refs_;
  int depth_ = 0;
};

bool Compiler::CheckKeywords(const json& s, const std::string& path) {
  for (auto it = s.begin(); it != s.end(); ++it) {
    const std::string& k = it.key();
    if (kAnnotations.count(k) || kEnforced.count(k)) continue;
    if (options_.strict) {
      Fail(path + "/" + k, "keyword '" + k + "' is not supported in strict mode (dsv3 cannot enforce it)");
      return false;
    }
  }
  return true;
}

bool Compiler::Count(const json& s, const char* key, const std::string& path, int64_t* out) {
  auto it = s.find(key);
  if (it == s.end()) return true;
  if (!it->is_number_unsigned() || it->get<uint64_t>() > (uint64_t{1} << 31)) {
    Fail(path + "/" + key, std::string("'") + key + "' must be a non-negative integer");
    return false;
  }
  *out = static_cast<int64_t>(it->get<uint64_t>());
  return true;
}

int32_t Compiler::Compile(const json& s, const std::string& path) {
  if (!error_.ok()) return out_.any_value;
  if (s.is_boolean()) return s.get<bool>() ? out_.any_value : Fail(path, "the schema 'false' admits no document");
  if (!s.is_object()) return Fail(path, "a schema must be an object or a boolean");
  if (++depth_ > 64) return Fail(path, "schema nested more than 64 levels deep");
  struct Leave {
    int& d;
    ~Leave() { --d; }
  } leave{depth_};
  if (!CheckKeywords(s, path)) return out_.any_value;
  if (auto r = s.find("$ref"); r != s.end()) {
    if (!r->is_string()) return Fail(path + "/$ref", "'$ref' must be a string");
    return CompileRef(r->get<std::string>(), path + "/$ref");
  }
  for (const char* key : {"enum", "const"}) {
    auto e = s.find(key);
    if (e == s.end()) continue;
    SchemaNode n{.kind = SchemaKind::kLiterals};
    if (std::string(key) == "const") {
      n.literals.push_back(e->dump());
    } else {
      if (!e->is_array() || e->empty()) return Fail(path + "/enum", "'enum' must be a non-empty array");
      for (const json& v : *e) n.literals.push_back(v.dump());
    }
    return Add(std::move(n));
  }
  for (const char* key : {"anyOf", "oneOf"}) {
    auto a = s.find(key);
    if (a == s.end()) continue;
    if (!a->is_array() || a->empty()) return Fail(path + "/" + key, std::string("'") + key + "' must be a non-empty array");
    const int32_t id = Add(SchemaNode{});
    std::vector<int32_t> alts;
    for (size_t i = 0; i < a->size(); ++i) alts.push_back(Compile((*a)[i], path + "/" + key + "/" + std::to_string(i)));
    out_.nodes[id].alternatives = std::move(alts);
    return id;
  }
  auto t = s.find("type");
  if (t == s.end()) {
    if (s.contains("properties") || s.contains("additionalProperties") || s.contains("required"))
      return CompileTyped(s, "object", path);
    if (s.contains("items")) return CompileTyped(s, "array", path);
    return out_.any_value;
  }
  if (t->is_string()) {
    if (s.value("nullable", false) && t->get<std::string>() != "null") {
      const int32_t id = Add(SchemaNode{});
      const int32_t v = CompileTyped(s, t->get<std::string>(), path), n = CompileTyped(s, "null", path);
      out_.nodes[id].alternatives = {v, n};
      return id;
    }
    return CompileTyped(s, t->get<std::string>(), path);
  }
  if (!t->is_array() || t->empty()) return Fail(path + "/type", "'type' must be a string or a non-empty array");
  const int32_t id = Add(SchemaNode{});
  std::vector<int32_t> alts;
  for (const json& x : *t) {
    if (!x.is_string()) return Fail(path + "/type", "'type' entries must be strings");
    alts.push_back(CompileTyped(s, x.get<std::string>(), path));
  }
  out_.nodes[id].alternatives = std::move(alts);
  return id;
}

int32_t Compiler::CompileRef(const std::string& ref, const std::string& path) {
  if (auto it = refs_.find(ref); it != refs_.end()) return it->second;
  if (ref.empty() || ref[0] != '#') return Fail(path, "only local references ('#/$defs/...') are supported, got '" + ref + "'");
  json::json_pointer ptr;
  try {
    ptr = json::json_pointer(ref.substr(1));
  } catch (const json::exception&) {
    return Fail(path, "'" + ref + "' is not a valid JSON pointer");
  }
  if (!root_.contains(ptr)) return Fail(path, "'" + ref + "' points to nothing in the schema");
  // A placeholder anyOf of one, so that a reference back to this target
  // while it is compiled becomes a cycle.
  const int32_t id = Add(SchemaNode{});
  refs_[ref] = id;
  const int32_t target = Compile(root_.at(ptr), ref);
  out_.nodes[id].alternatives = {target};
  return id;
}

int32_t Compiler::CompileTyped(const json& s, const std::string& type, const std::string& path) {
  if (type == "object") return CompileObject(s, path);
  if (type == "array") return CompileArray(s, path);
  if (type == "string") return CompileString(s, path);
  if (type == "number" || type == "integer") return CompileNumber(s, type == "integer", path);
  if (type == "boolean") return Add(SchemaNode{.kind = SchemaKind::kLiterals, .literals = {"true", "false"}});
  if (type == "null") return Add(SchemaNode{.kind = SchemaKind::kLiterals, .literals = {"null"}});
  return Fail(path + "/type", "unknown type '" + type + "'");
}

int32_t Compiler::CompileObject(const json& s, const std::string& path) {
  const int32_t id = Add(SchemaNode{.kind = SchemaKind::kObject});
  std::set<std::string> required;
  if (auto r = s.find("required"); r != s.end()) {
    if (!r->is_array()) return Fail(path + "/required", "'required' must be an array of names");
    for (const json& x : *r) {
      if (!x.is_string()) return Fail(path + "/required", "'required' must be an array of names");
      required.insert(x.get<std::string>());
    }
  }
  std::vector<SchemaProperty> props;
  if (auto p = s.find("properties"); p != s.end()) {
    if (!p->is_object()) return Fail(path + "/properties", "'properties' must be an object");
    for (auto it = p->begin(); it != p->end(); ++it) {
      const int32_t node = Compile(it.value(), path + "/properties/" + it.key());
      props.push_back({json(it.key()).dump(), node, required.count(it.key()) > 0});
      required.erase(it.key());
    }
  }
  if (!required.empty())
    return Fail(path + "/required", "'" + *required.begin() + "' is required but not among the properties");
  const auto add = s.find("additionalProperties");
  if (add != s.end() && !add->is_boolean() && !add->is_object())
    return Fail(path + "/additionalProperties", "'additionalProperties' must be a boolean or a schema");
  SchemaNode& n = out_.nodes[id];
  if (props.empty() && !(add != s.end() && add->is_boolean() && !add->get<bool>())) {
    n.free_form = true;  // any keys; values follow additionalProperties (any value when absent)
    const int32_t value = add != s.end() && add->is_object() ? Compile(*add, path + "/additionalProperties")
                                                             : out_.any_value;
    out_.nodes[id].additional = value;
    return id;
  }
  if (options_.strict && !(add != s.end() && add->is_boolean() && !add->get<bool>()))
    return Fail(path + "/additionalProperties", "strict mode needs 'additionalProperties': false on every object");
  for (size_t i = 0; i < props.size(); ++i)
    if (props[i].required) n.last_required = static_cast<int32_t>(i);
  n.properties = std::move(props);
  return id;
}

int32_t Compiler::CompileArray(const json& s, const std::string& path) {
  SchemaNode n{.kind = SchemaKind::kArray, .items = out_.any_value};
  if (!Count(s, "minItems", path, &n.min_items) || !Count(s, "maxItems", path, &n.max_items)) return out_.any_value;
  if (n.max_items >= 0 && n.max_items < n.min_items) return Fail(path + "/maxItems", "'maxItems' is below 'minItems'");
  if (options_.strict && s.contains("uniqueItems")) return Fail(path + "/uniqueItems", "keyword 'uniqueItems' is not supported in strict mode");
  const int32_t id = Add(std::move(n));
  if (auto it = s.find("items"); it != s.end()) {
    if (it->is_array()) return Fail(path + "/items", "tuple 'items' (an array of schemas) is not supported");
    const int32_t items = Compile(*it, path + "/items");
    out_.nodes[id].items = items;
  }
  return id;
}

namespace {

// The most digits before the point such that every such number is within
// `bound` (> 0): 10^d - 1 <= bound for integers, 10^d <= bound with a fraction.
int32_t DigitsWithin(double bound, bool integer, bool exclusive) {
  int32_t d = 0;
  double p = 10;  // 10^(d+1)
  while (d < 32 && (integer ? (exclusive ? p - 1 < bound : p - 1 <= bound) : (exclusive ? p < bound : p <= bound)))
    ++d, p *= 10;
  return d;
}

}  // namespace

// minimum / maximum / exclusive* as digit rules (json_schema.h). Bounds the
// rules cannot guarantee (a maximum below 9, a minimum above 1, multipleOf)
// are refused in strict mode and ignored otherwise.
int32_t Compiler::CompileNumber(const json& s, bool integer, const std::string& path) {
  SchemaNode n{.kind = integer ? SchemaKind::kInteger : SchemaKind::kNumber};
  auto bound = [&](const char* key, double* v) {
    auto it = s.find(key);
    if (it == s.end() || !it->is_number()) return false;
    *v = it->get<double>();
    return true;
  };
  auto refuse = [&](const char* key, const std::string& why) {
    if (options_.strict) return Fail(path + "/" + key, std::string("keyword '") + key + "' " + why + " (dsv3 cannot enforce it)");
    return Add(SchemaNode{.kind = integer ? SchemaKind::kInteger : SchemaKind::kNumber});
  };
  if (s.contains("multipleOf") && !(integer && s["multipleOf"] == 1)) return refuse("multipleOf", "is not supported in strict mode");
  double lo = 0, hi = 0;
  const bool lo_x = bound("exclusiveMinimum", &lo), has_lo = lo_x || bound("minimum", &lo);
  const bool hi_x = bound("exclusiveMaximum", &hi), has_hi = hi_x || bound("maximum", &hi);
  n.no_exponent = has_lo || has_hi;
  int32_t digits = 32;
  if (has_lo && lo >= 0) {
    n.no_negative = true;
    if (lo > 0 || lo_x) {
      if (lo > 1 || (lo == 1 && lo_x)) return refuse(lo_x ? "exclusiveMinimum" : "minimum", "above 1 is not supported");
      n.no_zero_lead = true;  // x >= 1
    }
  } else if (has_lo) {
    digits = std::min(digits, DigitsWithin(-lo, integer, lo_x));
  }
  if (has_hi) {
    if (hi < 0) return refuse(hi_x ? "exclusiveMaximum" : "maximum", "below 0 is not supported");
    digits = std::min(digits, DigitsWithin(hi, integer, hi_x));
  }
  if (digits == 0) return refuse(hi_x ? "exclusiveMaximum" : has_hi ? "maximum" : "minimum", "this close to 0 is not supported");
  if (has_lo || has_hi) n.max_digits = digits;
  return Add(std::move(n));
}

int32_t Compiler::CompileString(const json& s, const std::string& path) {
  SchemaNode n{.kind = SchemaKind::kString};
  if (!Count(s, "minLength", path, &n.min_length) || !Count(s, "maxLength", path, &n.max_length)) return out_.any_value;
  if (n.max_length >= 0 && n.max_length < n.min_length) return Fail(path + "/maxLength", "'maxLength' is below 'minLength'");
  // A pattern is a constraint in every mode, and dsv3 has no regular
  // expressions in its grammar: refused rather than silently not enforced.
  if (s.contains("pattern"))
    return Fail(path + "/pattern", "keyword 'pattern' is not supported (strings cannot be constrained to a regular expression)");
  if (options_.strict)  // annotations by default in JSON Schema; strict asks for them to hold
    for (const char* k : {"format", "contentEncoding", "contentMediaType"})
      if (s.contains(k)) return Fail(path + "/" + k, std::string("keyword '") + k + "' is not supported in strict mode");
  return Add(std::move(n));
}

// A node is productive if some finite document matches it; computed as a
// fixpoint so that recursion through optional parts is fine.
Status Compiler::CheckProductive() const {
  const auto& nodes = out_.nodes;
  std::vector<char> ok(nodes.size(), 0);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (ok[i]) continue;
      const SchemaNode& n = nodes[i];
      bool p = true;
      switch (n.kind) {
        case SchemaKind::kObject:
          for (const auto& prop : n.properties) p = p && (!prop.required || ok[prop.node]);
          break;
        case SchemaKind::kArray: p = n.min_items == 0 || ok[n.items]; break;
        case SchemaKind::kLiterals: p = !n.literals.empty(); break;
        case SchemaKind::kAnyOf:
          p = std::any_of(n.alternatives.begin(), n.alternatives.end(), [&](int32_t a) { return ok[a] != 0; });
          break;
        case SchemaKind::kSequence:
          p = std::all_of(n.alternatives.begin(), n.alternatives.end(), [&](int32_t a) { return ok[a] != 0; });
          break;
        default: break;
      }
      if (p) ok[i] = 1, changed = true;
    }
  }
  if (!ok[out_.root])
    return Status::Error("json schema: #: the schema admits no finite document (a required property or item recurses without end)");
  return Status::Ok();
}

}  // namespace

Expected<CompiledSchema> CompileJsonSchema(const json& schema, const SchemaOptions& options) {
  return Compiler(schema, options).Run();
}

Expected<CompiledSchema> CompileJsonSchema(const nlohmann::json& schema, const SchemaOptions& options) {
  return CompileJsonSchema(json::parse(schema.dump()), options);
}

namespace {

// Copies `part`'s nodes into `into` (ids shifted) and returns its root's new id.
int32_t Append(CompiledSchema& into, const CompiledSchema& part) {
  const int32_t off = static_cast<int32_t>(into.nodes.size());
  auto shift = [off](int32_t id) { return id < 0 ? id : id + off; };
  for (SchemaNode n : part.nodes) {
    for (auto& p : n.properties) p.node = shift(p.node);
    n.additional = shift(n.additional), n.items = shift(n.items);
    for (auto& a : n.alternatives) a = shift(a);
    into.nodes.push_back(std::move(n));
  }
  return shift(part.root);
}

}  // namespace

CompiledSchema SequenceSchema(const std::vector<std::vector<GrammarPart>>& alternatives) {
  CompiledSchema out = AnyJsonObject();  // provides any_value; its root is unused
  SchemaNode root{.kind = SchemaKind::kAnyOf};
  for (const auto& parts : alternatives) {
    SchemaNode seq{.kind = SchemaKind::kSequence};
    for (const GrammarPart& p : parts) {
      if (p.value) {
        seq.alternatives.push_back(Append(out, *p.value));
      } else if (!p.text.empty()) {
        out.nodes.push_back(SchemaNode{.kind = SchemaKind::kLiterals, .literals = {p.text}});
        seq.alternatives.push_back(static_cast<int32_t>(out.nodes.size() - 1));
      }
    }
    out.nodes.push_back(std::move(seq));
    root.alternatives.push_back(static_cast<int32_t>(out.nodes.size() - 1));
  }
  out.nodes.push_back(std::move(root));
  out.root = static_cast<int32_t>(out.nodes.size() - 1);
  return out;
}

CompiledSchema AnyJsonObject() {
  auto c = CompileJsonSchema(json{{"type", "object"}});
  return std::move(*c);
}

}  // namespace dsv3
