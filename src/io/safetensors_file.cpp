#include "io/safetensors_file.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/strings.h"

namespace moeforge {

uint64_t TensorInfo::num_elements() const {
  uint64_t count = 1;
  for (int64_t dim : shape) count *= static_cast<uint64_t>(dim);
  return count;
}

namespace {

// Parses one tensor entry of the header, validating its fields; offsets are checked by the caller.
TensorInfo parse_entry(const std::string& name, const nlohmann::json& entry, const std::string& label) {
  auto where = [&] { return cat(label, ": tensor '", name, "'"); };
  if (!entry.is_object()) fail(where(), ": header entry is not an object");
  TensorInfo info;
  info.name = name;
  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end() || !dtype_it->is_string()) fail(where(), ": missing or non-string 'dtype'");
  auto dtype = parse_dtype(dtype_it->get<std::string>());
  if (!dtype) fail(where(), ": unsupported dtype '", dtype_it->get<std::string>(), "'");
  info.dtype = *dtype;
  auto shape_it = entry.find("shape");
  if (shape_it == entry.end() || !shape_it->is_array()) fail(where(), ": missing or non-array 'shape'");
  unsigned __int128 elements = 1;
  for (const auto& dim : *shape_it) {
    if (!dim.is_number_unsigned()) fail(where(), ": shape ", shape_it->dump(), " has a non-integer or negative dimension");
    uint64_t value = dim.get<uint64_t>();
    if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) fail(where(), ": dimension too large");
    info.shape.push_back(static_cast<int64_t>(value));
    elements *= value;
    if (elements > (static_cast<unsigned __int128>(1) << 62)) fail(where(), ": shape ", shape_it->dump(), " is too large");
  }
  auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
      !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned())
    fail(where(), ": 'data_offsets' must be two non-negative integers");
  info.data_begin = (*offsets_it)[0].get<uint64_t>();
  info.data_end = (*offsets_it)[1].get<uint64_t>();
  if (info.data_end < info.data_begin)
    fail(where(), ": data_offsets [", info.data_begin, ", ", info.data_end, "] end before they begin");
  unsigned __int128 expected = elements * dtype_size(info.dtype);
  if (expected != info.num_bytes())
    fail(where(), ": byte count ", info.num_bytes(), " does not match shape ", shape_to_string(info.shape), " x ",
         dtype_name(info.dtype), " (", static_cast<uint64_t>(expected), " bytes)");
  return info;
}

}  // namespace

std::vector<TensorInfo> SafetensorsFile::parse_header(std::string_view header_json, uint64_t data_bytes,
                                                      const std::string& label,
                                                      std::map<std::string, std::string>* metadata) {
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_json);
  } catch (const nlohmann::json::exception& e) {
    fail(label, ": header is not valid JSON (", e.what(), ")");
  }
  if (!header.is_object()) fail(label, ": header is not a JSON object");
  std::vector<TensorInfo> tensors;
  tensors.reserve(header.size());
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(label, ": __metadata__ is not an object");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) fail(label, ": __metadata__ value for '", key, "' is not a string");
        if (metadata) (*metadata)[key] = value.get<std::string>();
      }
      continue;
    }
    tensors.push_back(parse_entry(name, entry, label));
  }
  std::sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.data_begin != b.data_begin ? a.data_begin < b.data_begin : a.data_end < b.data_end;
  });
  uint64_t previous_end = 0;
  const TensorInfo* previous = nullptr;
  for (const auto& tensor : tensors) {
    if (tensor.data_end > data_bytes)
      fail(label, ": tensor '", tensor.name, "': data_offsets [", tensor.data_begin, ", ", tensor.data_end,
           "] run past the end of the data section (", data_bytes, " bytes)");
    // Empty tensors occupy no bytes and cannot overlap anything.
    if (tensor.num_bytes() > 0 && previous && tensor.data_begin < previous_end)
      fail(label, ": tensor '", tensor.name, "' overlaps tensor '", previous->name, "'");
    if (tensor.num_bytes() > 0) {
      previous_end = tensor.data_end;
      previous = &tensor;
    }
  }
  return tensors;
}

std::shared_ptr<const SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->mapping_ = std::make_unique<MappedFile>(path);
  const std::string label = path.string();
  const uint64_t size = file->mapping_->size();
  if (size < 8) fail(label, ": file is ", size, " bytes, too short for a safetensors header");
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | file->mapping_->data()[i];  // little endian
  if (header_bytes > kMaxSafetensorsHeaderBytes)
    fail(label, ": header length ", header_bytes, " exceeds the ", kMaxSafetensorsHeaderBytes, "-byte limit");
  if (header_bytes > size - 8)
    fail(label, ": header length ", header_bytes, " exceeds the file size (", size, " bytes)");
  std::string_view header(reinterpret_cast<const char*>(file->mapping_->data() + 8), header_bytes);
  file->data_offset_ = 8 + header_bytes;
  file->tensors_ = parse_header(header, size - file->data_offset_, label, &file->metadata_);
  for (size_t i = 0; i < file->tensors_.size(); ++i) file->index_[file->tensors_[i].name] = i;
  return file;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

ByteView SafetensorsFile::bytes(const TensorInfo& tensor) const {
  return ByteView{mapping_->data() + data_offset_ + tensor.data_begin, tensor.num_bytes()};
}

}  // namespace moeforge
