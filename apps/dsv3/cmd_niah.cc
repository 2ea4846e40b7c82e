// `dsv3 niah`: needle-in-a-haystack evaluation (issue 17). For each context
// length L (--lengths) and needle depth d (--depths), --trials prompts are
// built from the --filler text with a fresh passkey each (deterministic in
// --seed); the model answers greedily and a cell counts the answers whose
// decoded text starts with the passkey. Prints the grid and writes an SVG
// heatmap (--svg). `--write-data DIR` instead writes a training data
// directory (dsv3 prepare-data's format) of passkey episodes of random
// length and depth in the same sentences, for the long-context recipe of
// docs/long-context.md.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <random>

#include "apps/dsv3/commands.h"
#include "apps/dsv3/text_output.h"
#include "core/mapped_file.h"
#include "runtime/niah.h"
#include "train/data.h"

namespace dsv3::cli {

namespace {

struct NiahOptions {
  std::string model_dir = DefaultModelDir(), tokenizer_dir, filler, lengths, depths = "0,10,20,30,40,50,60,70,80,90,100";
  std::string svg, title, write_data;
  int64_t trials = 4, episodes = 2000, min_length = 0, max_length = 0;
  int digits = 5;
  uint64_t seed = 1;
  bool show_misses = false;
};

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

// "128,256" -> numbers; `flag` names the culprit.
Expected<std::vector<double>> ParseList(const std::string& text, const std::string& flag) {
  std::vector<double> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    char* stop = nullptr;
    const double v = std::strtod(item.c_str(), &stop);
    if (item.empty() || stop != item.c_str() + item.size() || !std::isfinite(v))
      return Status::Error(flag + ": '" + item + "' is not a number (expected a comma-separated list)");
    out.push_back(v);
    start = end + 1;
  }
  return out;
}

// The sentences of one passkey, tokenized.
NiahPieces Pieces(const Tokenizer& tok, const std::vector<int32_t>& filler, const std::string& key) {
  NiahPieces p;
  p.filler = filler;
  p.needle = tok.Encode(" The pass key is " + key + ". Remember it. " + key + " is the pass key.");
  p.question = tok.Encode(" What is the pass key? The pass key is");
  p.answer = tok.Encode(" " + key + ".");
  if (tok.config().add_bos_token && tok.bos_id() >= 0) p.prefix = {tok.bos_id()};
  return p;
}

// The filler text's ids (no BOS); errors name --filler.
Expected<std::vector<int32_t>> FillerIds(const Tokenizer& tok, const std::string& path) {
  if (path.empty()) return Status::Error("--filler FILE is required (the haystack text, e.g. tests/data/brown-validation-excerpt.txt)");
  auto text = ReadTextFile(path, kMaxDataFileBytes);
  if (!text.ok()) return Status::Error("--filler: " + text.status().message());
  std::vector<int32_t> ids = tok.Encode(*text);
  if (ids.empty()) return Status::Error("--filler " + path + ": the text encodes to no tokens");
  return ids;
}

Status CheckCommon(const NiahOptions& o) {
  if (o.trials < 1 || o.trials > 100000) return Status::Error("--trials must be in [1, 100000], got " + std::to_string(o.trials));
  if (o.digits < 1 || o.digits > 18) return Status::Error("--digits must be in [1, 18], got " + std::to_string(o.digits));
  return Status::Ok();
}

// Whether the answer's text begins with the passkey (not followed by another digit).
bool Found(const Tokenizer& tok, const std::vector<int32_t>& answer, const std::string& key) {
  auto text = tok.Decode(answer, true);
  if (!text.ok()) return false;
  const std::string& s = *text;
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  if (s.compare(i, key.size(), key) != 0) return false;
  return i + key.size() == s.size() || !std::isdigit(static_cast<unsigned char>(s[i + key.size()]));
}

// Lengths from --lengths (default: powers of two from 128 that fit) and
// depths from --depths, checked against the model and the sentences.
Status GridAxes(const NiahOptions& o, const Model& m, const NiahPieces& probe, int64_t max_new, NiahGrid& g) {
  const int64_t max_pos = m.config().max_position_embeddings, min_len = NiahMinLength(probe);
  if (o.lengths.empty()) {
    for (int64_t L = 128; L + max_new <= max_pos && g.lengths.size() < 8; L *= 2) g.lengths.push_back(L);
    if (g.lengths.empty()) return Status::Error("max_position_embeddings " + std::to_string(max_pos) + " is too short; give --lengths");
  } else {
    DSV3_ASSIGN_OR_RETURN(auto ls, ParseList(o.lengths, "--lengths"));
    for (double v : ls) {
      if (v != std::floor(v) || v < min_len)
        return Status::Error("--lengths: " + Num(v) + " must be an integer >= " + std::to_string(min_len) +
                             " (the needle, question and one filler token)");
      if (v + max_new > max_pos)
        return Status::Error("--lengths: " + std::to_string(int64_t(v)) + " tokens plus " + std::to_string(max_new) +
                             " answer tokens exceed the model's max_position_embeddings " + std::to_string(max_pos));
      g.lengths.push_back(static_cast<int64_t>(v));
    }
  }
  DSV3_ASSIGN_OR_RETURN(g.depths, ParseList(o.depths, "--depths"));
  for (double d : g.depths)
    if (d < 0 || d > 100) return Status::Error("--depths: " + Num(d) + " is outside [0, 100] (percent)");
  g.trials = o.trials;
  g.found.assign(g.depths.size(), std::vector<int64_t>(g.lengths.size(), 0));
  return Status::Ok();
}

Status Evaluate(const NiahOptions& o) {
  DSV3_RETURN_IF_ERROR(CheckCommon(o));
  DSV3_ASSIGN_OR_RETURN(auto model, Model::Load(o.model_dir, LoadOptions{.verbose = false}));
  const Model& m = *model;
  DSV3_ASSIGN_OR_RETURN(auto tok, LoadTokenizerFor(m, o.tokenizer_dir.empty() ? TokenizerDirOf(o.model_dir) : o.tokenizer_dir));
  DSV3_ASSIGN_OR_RETURN(std::vector<int32_t> filler, FillerIds(*tok, o.filler));
  const std::string widest(o.digits, '8');
  const NiahPieces probe = Pieces(*tok, filler, widest);
  const int64_t max_new = static_cast<int64_t>(probe.answer.size()) + 2;
  NiahGrid g;
  DSV3_RETURN_IF_ERROR(GridAxes(o, m, probe, max_new, g));
  std::vector<int32_t> stop;
  if (tok->eos_id() >= 0) stop.push_back(tok->eos_id());
  for (size_t l = 0; l < g.lengths.size(); ++l)
    for (size_t d = 0; d < g.depths.size(); ++d) {
      // One stream per cell: a cell's passkeys do not depend on the other cells.
      std::mt19937_64 rng(o.seed * 1000003 + l * 1009 + d);
      for (int64_t t = 0; t < o.trials; ++t) {
        const std::string key = NiahPasskey(rng, o.digits);
        const NiahPieces p = Pieces(*tok, filler, key);
        const auto prompt = NiahPrompt(p, g.lengths[l], g.depths[d], static_cast<int64_t>(rng() % filler.size()));
        DSV3_ASSIGN_OR_RETURN(auto answer, NiahGreedy(m, prompt, max_new, stop));
        const bool found = Found(*tok, answer, key);
        g.found[d][l] += found;
        if (!found && o.show_misses) {
          auto text = tok->Decode(answer, true);
          std::fprintf(stderr, "\nniah: missed length %lld depth %g%% trial %lld: pass key %s, answer \"%s\"\n",
                       (long long)g.lengths[l], g.depths[d], (long long)t, key.c_str(),
                       text.ok() ? text->c_str() : "(undecodable)");
        }
      }
      std::fprintf(stderr, "\rniah: length %lld depth %g%%   ", (long long)g.lengths[l], g.depths[d]);
    }
  std::fprintf(stderr, "\n");
  std::printf("%s", NiahTable(g).c_str());
  std::printf("niah: mean=%.4f cells=%zu trials=%lld\n", g.Mean(), g.lengths.size() * g.depths.size(), (long long)o.trials);
  if (!o.svg.empty()) {
    std::ofstream f(o.svg);
    f << NiahSvg(g, o.title.empty() ? "Needle in a haystack: " + o.model_dir : o.title);
    if (!f.good()) return Status::Error("--svg " + o.svg + ": cannot write");
  }
  return Status::Ok();
}

// Documents of 32 episodes each; episode lengths uniform in [min, max],
// depths uniform in [0, 100].
Status WriteData(const NiahOptions& o) {
  DSV3_RETURN_IF_ERROR(CheckCommon(o));
  const std::string tok_dir = o.tokenizer_dir.empty() ? TokenizerDirOf(o.model_dir) : o.tokenizer_dir;
  DSV3_ASSIGN_OR_RETURN(auto tok, Tokenizer::Load(tok_dir));
  DSV3_ASSIGN_OR_RETURN(std::vector<int32_t> filler, FillerIds(*tok, o.filler));
  const int64_t min_len = NiahMinLength(Pieces(*tok, filler, std::string(o.digits, '8')));
  const int64_t lo = std::max(o.min_length, min_len), hi = o.max_length;
  if (hi < lo) return Status::Error("--max-length must be >= " + std::to_string(lo) + " (--min-length and the sentences), got " + std::to_string(hi));
  if (o.episodes < 1) return Status::Error("--episodes must be >= 1, got " + std::to_string(o.episodes));
  std::mt19937_64 rng(o.seed);
  train::DataWriterSplit splits[2];
  const int64_t counts[2] = {o.episodes, std::max<int64_t>(32, o.episodes / 16)};
  for (int s = 0; s < 2; ++s)
    for (int64_t e = 0; e < counts[s]; ++e) {
      if (e % 32 == 0) splits[s].documents.emplace_back();
      const NiahPieces p = Pieces(*tok, filler, NiahPasskey(rng, o.digits));
      const int64_t len = lo + static_cast<int64_t>(rng() % (hi - lo + 1));
      const double depth = 100.0 * double(rng() % 1001) / 1000.0;
      const auto ep = NiahEpisode(p, len, depth, static_cast<int64_t>(rng() % filler.size()));
      splits[s].documents.back().insert(splits[s].documents.back().end(), ep.begin(), ep.end());
    }
  train::DataInfo info;
  info.vocab_size = tok->vocab_size(), info.eos_token_id = tok->eos_id(), info.tokenizer = tok_dir;
  DSV3_RETURN_IF_ERROR(train::WriteTokenData(o.write_data, info, splits[0], splits[1]));
  std::printf("niah: wrote %lld + %lld episodes of %lld..%lld tokens -> %s\n", (long long)counts[0], (long long)counts[1],
              (long long)lo, (long long)hi, o.write_data.c_str());
  return Status::Ok();
}

}  // namespace

void RegisterNiah(CLI::App& app, Common& common) {
  auto o = std::make_shared<NiahOptions>();
  CLI::App* cmd = app.add_subcommand("niah", "needle-in-a-haystack passkey retrieval grid (lengths x depths) and SVG heatmap");
  cmd->add_option("-m,--model", o->model_dir, "checkpoint directory or .gguf file (default: the bundled model)")->capture_default_str();
  cmd->add_option("--tokenizer", o->tokenizer_dir, "tokenizer directory (default: the model's directory)");
  cmd->add_option("--filler", o->filler, "haystack text file (required)");
  cmd->add_option("--lengths", o->lengths, "context lengths in tokens, comma-separated (default: 128, 256, ... that fit)");
  cmd->add_option("--depths", o->depths, "needle depths in percent of the context, comma-separated")->capture_default_str();
  cmd->add_option("--trials", o->trials, "passkeys per cell")->capture_default_str();
  cmd->add_option("--digits", o->digits, "digits per passkey")->capture_default_str();
  cmd->add_option("--seed", o->seed, "passkeys and filler offsets")->capture_default_str();
  cmd->add_option("--svg", o->svg, "write the heatmap here");
  cmd->add_flag("--show-misses", o->show_misses, "print each missed pass key and the model's answer (stderr)");
  cmd->add_option("--title", o->title, "heatmap title");
  cmd->add_option("--write-data", o->write_data, "instead of evaluating: write a training data directory of passkey episodes");
  cmd->add_option("--episodes", o->episodes, "with --write-data: training episodes (validation: 1/16, at least 32)")->capture_default_str();
  cmd->add_option("--min-length", o->min_length, "with --write-data: shortest episode (tokens)");
  cmd->add_option("--max-length", o->max_length, "with --write-data: longest episode (tokens)");
  cmd->callback([o, &common] {
    common.Apply();
    const Status s = o->write_data.empty() ? Evaluate(*o) : WriteData(*o);
    common.exit_code = s.ok() ? 0 : Fail(s);
  });
}

}  // namespace dsv3::cli
