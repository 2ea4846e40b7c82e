// Needle-in-a-haystack evaluation (issue 17), as in the DeepSeek-V3 paper's
// long-context figure: a passkey sentence (the needle) is inserted at depth d
// (0 = start, 100 = end) of L tokens of filler text, a question follows, and
// the model must answer with the passkey. This module works on token ids:
// assembling prompts and training episodes, greedy answering with a Model,
// the accuracy grid over lengths x depths, and its text table and SVG heatmap
// (green = found, red = not). The CLI (apps/dsv3/cmd_niah.cc) tokenizes the
// sentences and judges answers by their decoded text.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/model.h"

namespace dsv3 {

// The pieces of one prompt, already tokenized.
struct NiahPieces {
  std::vector<int32_t> filler;    // the haystack text, used cyclically
  std::vector<int32_t> needle;    // "The pass key is K. Remember it. K is the pass key."
  std::vector<int32_t> question;  // "What is the pass key? The pass key is"
  std::vector<int32_t> answer;    // " K." (training episodes only)
  std::vector<int32_t> prefix;    // BOS when the tokenizer adds one, else empty
};

// prompt [L] = prefix, filler from `filler_offset`, the needle at depth
// `depth_percent` of the room the filler leaves, more filler, the question.
// L must exceed the fixed pieces (NiahMinLength).
std::vector<int32_t> NiahPrompt(const NiahPieces& p, int64_t length, double depth_percent, int64_t filler_offset);
int64_t NiahMinLength(const NiahPieces& p);  // prefix + needle + question + 1 filler token

// A training episode: NiahPrompt(length, depth) then the answer.
std::vector<int32_t> NiahEpisode(const NiahPieces& p, int64_t length, double depth_percent, int64_t filler_offset);

// Greedy continuation of `prompt` (one sequence), at most max_new tokens,
// prefilled in chunks of `chunk` positions; stops early at any of `stop`.
Expected<std::vector<int32_t>> NiahGreedy(const Model& model, const std::vector<int32_t>& prompt, int64_t max_new,
                                          const std::vector<int32_t>& stop, int64_t chunk = 512);

// Accuracy per cell: found[depth][length] / trials.
struct NiahGrid {
  std::vector<int64_t> lengths;  // columns (tokens)
  std::vector<double> depths;    // rows (percent)
  int64_t trials = 0;
  std::vector<std::vector<int64_t>> found;  // [depths][lengths]
  double Accuracy(size_t d, size_t l) const { return trials ? double(found[d][l]) / trials : 0.0; }
  double Mean() const;
};

// Fixed-width table: one row per depth, one column per length, percent found.
std::string NiahTable(const NiahGrid& grid);
// The heatmap as an SVG document (cells coloured red -> yellow -> green by
// accuracy, labelled with the percentage; axes: context length, depth).
std::string NiahSvg(const NiahGrid& grid, const std::string& title);

// A passkey of `digits` decimal digits, first digit non-zero.
std::string NiahPasskey(std::mt19937_64& rng, int digits);

}  // namespace dsv3
