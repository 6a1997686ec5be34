/// @brief Backbone export (see export.h).
#include "core/model/export.h"

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "core/util/error.h"

namespace mst {

namespace {

/// timm's name for one of our parameter names ("" = none: left out).
std::string timmName(const std::string& name) {
  if (name == "mask_token") return "";
  if (name.rfind("patch_embed.", 0) == 0) return "patch_embed.proj." + name.substr(12);
  // blocks.N.fc1.weight → blocks.N.mlp.fc1.weight
  for (const char* fc : {".fc1.", ".fc2."}) {
    const auto at = name.find(fc);
    if (name.rfind("blocks.", 0) == 0 && at != std::string::npos)
      return name.substr(0, at) + ".mlp" + name.substr(at);
  }
  return name;
}

bool littleEndian() {
  const uint32_t probe = 1;
  return *reinterpret_cast<const unsigned char*>(&probe) == 1;
}

uint64_t readLe64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

NamedTensors backboneTensors(VitImpl& vit, ExportNames names) {
  NamedTensors out;
  const int64_t D = vit.dim, P = vit.patch_size;
  for (const auto& p : vit.named_parameters(/*recurse=*/true)) {
    torch::Tensor t = p.value().detach().to(torch::kCPU, torch::kFloat).contiguous();
    std::string name = p.key();
    if (names == ExportNames::Timm) {
      const std::string mapped = timmName(name);
      if (mapped.empty()) continue;
      // Our patch embedding is a linear map of (C, P, P)-ordered patch pixels: the same numbers
      // as the weight of timm's P×P, stride-P convolution.
      if (name == "patch_embed.weight") t = t.view({D, t.size(1) / (P * P), P, P}).contiguous();
      name = mapped;
    }
    out.emplace_back(name, t.clone());
  }
  return out;
}

nlohmann::json timmKwargs(const ModelConfig& m) {
  return {{"img_size", m.image_size}, {"patch_size", m.patch_size}, {"in_chans", m.channels},
          {"embed_dim", m.dim},       {"depth", m.depth},           {"num_heads", m.heads},
          {"mlp_ratio", m.mlp_ratio}, {"qkv_bias", true},           {"num_classes", 0}};
}

void writeSafetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (header.contains(name)) throw MstError("export: two tensors named " + name);
    TORCH_CHECK(t.scalar_type() == torch::kFloat && t.is_contiguous() && t.device().is_cpu(),
                "writeSafetensors: ", name, " must be a contiguous fp32 CPU tensor");
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * sizeof(float);
    header[name] = {
        {"dtype", "F32"}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  // (One temporary name per process: two exports to one path do not write into each other.)
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw MstError("cannot write " + tmp + ": " + std::strerror(errno));
    unsigned char length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(text.size() >> (8 * i));
    out.write(reinterpret_cast<const char*>(length), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    static_assert(sizeof(float) == 4, "F32");
    const bool little = littleEndian();
    for (const auto& [name, t] : tensors) {
      if (little) {
        out.write(static_cast<const char*>(t.data_ptr()),
                  static_cast<std::streamsize>(t.numel() * 4));
      } else {  // safetensors is little-endian
        const auto* p = static_cast<const unsigned char*>(t.data_ptr());
        for (int64_t i = 0; i < t.numel(); ++i)
          for (int b = 3; b >= 0; --b) out.put(static_cast<char>(p[i * 4 + b]));
      }
    }
    out.flush();
    if (!out) {
      out.close();
      std::remove(tmp.c_str());
      throw MstError("cannot write " + tmp + " (disk full?)");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw MstError("cannot move " + tmp + " into place at " + path + ": " + std::strerror(errno));
  }
}

NamedTensors readSafetensors(const std::string& path,
                             std::map<std::string, std::string>* metadata) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw MstError("cannot read " + path);
  in.seekg(0, std::ios::end);
  const auto size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  unsigned char length[8];
  if (size < 8 || !in.read(reinterpret_cast<char*>(length), 8))
    throw MstError(path + " is not a safetensors file (shorter than its header length)");
  const uint64_t header_size = readLe64(length);
  if (header_size > size - 8 || header_size > (uint64_t{100} << 20))
    throw MstError(path + " is not a safetensors file (header length " +
                   std::to_string(header_size) + " past the end)");
  std::string text(header_size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_size));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const std::exception&) {
    throw MstError(path + " is not a safetensors file (its header is not JSON)");
  }
  if (!header.is_object())
    throw MstError(path + " is not a safetensors file (header not an object)");
  const uint64_t data_size = size - 8 - header_size;
  NamedTensors out;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (metadata && entry.is_object())
        for (const auto& [k, v] : entry.items())
          if (v.is_string()) (*metadata)[k] = v.get<std::string>();
      continue;
    }
    const auto bad = [&](const std::string& why) {
      return MstError(path + ": tensor " + name + ": " + why);
    };
    if (!entry.is_object() || !entry.contains("dtype") || entry["dtype"] != "F32")
      throw bad("not an F32 tensor");
    const auto& shape = entry["shape"];
    const auto& offsets = entry["data_offsets"];
    if (!shape.is_array() || !offsets.is_array() || offsets.size() != 2 ||
        !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
      throw bad("shape or data_offsets missing");
    std::vector<int64_t> dims;
    uint64_t numel = 1;
    for (const auto& d : shape) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > (uint64_t{1} << 40))
        throw bad("bad shape");
      dims.push_back(d.get<int64_t>());
      numel *= d.get<uint64_t>();
      if (numel > (uint64_t{1} << 40)) throw bad("bad shape");
    }
    const uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
    if (begin > end || end > data_size || end - begin != numel * 4)
      throw bad("data_offsets disagree with its shape or the file's size");
    auto t = torch::empty(dims, torch::kFloat);
    in.seekg(static_cast<std::streamoff>(8 + header_size + begin));
    std::vector<unsigned char> raw(end - begin);
    if (!in.read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(raw.size())))
      throw bad("data cut short");
    auto* dst = static_cast<unsigned char*>(t.data_ptr());
    const bool little = littleEndian();
    for (uint64_t i = 0; i < numel; ++i)
      for (int b = 0; b < 4; ++b) dst[i * 4 + b] = raw[i * 4 + (little ? b : 3 - b)];
    out.emplace_back(name, t);
  }
  return out;
}

}  // namespace mst
