// `dsv3 prepare-data`: text files -> the token data directory `dsv3 train`
// reads (data.json + uint32 shards, see src/train/data.h). Each file is one
// document (or each non-empty line, with --doc-per-line); documents are
// encoded with the tokenizer (no BOS) and followed by its end-of-sequence id.
// Whole documents go to validation, evenly spread over the input order, so
// the split is deterministic and covers every part of the corpus.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "apps/dsv3/commands.h"
#include "core/mapped_file.h"
#include "tokenizer/tokenizer.h"
#include "train/data.h"

namespace dsv3::cli {

namespace {

struct PrepareOptions {
  std::string tokenizer_dir, out;
  double val_fraction = 0.05;
  bool doc_per_line = false;
  std::vector<std::string> files;
};

// The documents of the input files, in order.
Expected<std::vector<std::string>> ReadDocuments(const PrepareOptions& o) {
  std::vector<std::string> docs;
  for (const std::string& path : o.files) {
    DSV3_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path, kMaxDataFileBytes));  // a corpus, not a config
    if (!o.doc_per_line) {
      if (text.find_first_not_of(" \t\r\n") != std::string::npos) docs.push_back(std::move(text));
      continue;
    }
    size_t begin = 0;
    while (begin < text.size()) {
      size_t end = text.find('\n', begin);
      if (end == std::string::npos) end = text.size();
      std::string line = text.substr(begin, end - begin);
      if (line.find_first_not_of(" \t\r") != std::string::npos) docs.push_back(std::move(line));
      begin = end + 1;
    }
  }
  if (docs.empty()) return Status::Error("no text in the input files (every file is empty or blank)");
  return docs;
}

int Prepare(const PrepareOptions& o) {
  if (!(o.val_fraction > 0.0 && o.val_fraction < 1.0))
    return Fail(Status::Error("--val-fraction must be in (0, 1)"));
  auto tok = Tokenizer::Load(o.tokenizer_dir);
  if (!tok.ok()) return Fail(tok.status());
  const Tokenizer& t = **tok;
  if (t.eos_id() < 0)
    return Fail(Status::Error(o.tokenizer_dir + ": the tokenizer has no eos_token (tokenizer_config.json) to "
                              "separate documents with"));
  auto docs = ReadDocuments(o);
  if (!docs.ok()) return Fail(docs.status());
  const size_t n = docs->size();
  train::DataWriterSplit train, val;
  int64_t train_tokens = 0, val_tokens = 0;
  for (size_t i = 0; i < n; ++i) {
    // Document i is validation when floor((i+1) F) > floor(i F): evenly spread.
    const bool is_val = static_cast<int64_t>((i + 1) * o.val_fraction) > static_cast<int64_t>(i * o.val_fraction);
    std::vector<int32_t> ids;
    Status st = t.EncodeInto((*docs)[i], ids);
    if (!st.ok()) return Fail(st);
    std::vector<uint32_t> doc(ids.begin(), ids.end());
    (is_val ? val_tokens : train_tokens) += static_cast<int64_t>(doc.size()) + 1;
    (is_val ? val : train).documents.push_back(std::move(doc));
  }
  if (val.documents.empty() || train.documents.empty())
    return Fail(Status::Error("--val-fraction " + std::to_string(o.val_fraction) + " leaves " +
                              (val.documents.empty() ? "no validation" : "no training") + " document among " +
                              std::to_string(n) + " (use more files, --doc-per-line, or another fraction)"));
  train::DataInfo info;
  info.vocab_size = t.vocab_size();
  info.eos_token_id = t.eos_id();
  info.tokenizer = std::filesystem::absolute(o.tokenizer_dir).lexically_normal().string();  // checkpoints copy it
  Status st = train::WriteTokenData(o.out, info, train, val);
  if (!st.ok()) return Fail(st);
  std::printf("prepare-data: %zu documents (%zu train, %zu validation), %lld + %lld tokens, vocab %d, eos %d -> %s\n",
              n, train.documents.size(), val.documents.size(), static_cast<long long>(train_tokens),
              static_cast<long long>(val_tokens), t.vocab_size(), t.eos_id(), o.out.c_str());
  return 0;
}

}  // namespace

void RegisterPrepareData(CLI::App& app, Common& common) {
  auto o = std::make_shared<PrepareOptions>();
  CLI::App* cmd = app.add_subcommand("prepare-data", "tokenize text files into the token shards dsv3 train reads");
  cmd->add_option("--tokenizer", o->tokenizer_dir, "directory with tokenizer.json (+ tokenizer_config.json)")
      ->required();
  cmd->add_option("--out", o->out, "data directory to write")->required();
  cmd->add_option("--val-fraction", o->val_fraction, "fraction of documents held out for validation")
      ->capture_default_str();
  cmd->add_flag("--doc-per-line", o->doc_per_line, "each non-empty line is a document (default: each file)");
  cmd->add_option("files", o->files, "text files")->required();
  cmd->callback([o, &common] {
    common.Apply();
    common.exit_code = Prepare(*o);
  });
}

}  // namespace dsv3::cli
