// The local Hugging Face cache, read without network: "org/name" (optionally "@revision") model or
// data-set ids resolve to their snapshot directory, HUB/models--org--name/snapshots/COMMIT (and
// datasets--org--name for data), where HUB is $HF_HUB_CACHE, else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub. A revision is a branch or tag
// (refs/REV holds its commit) or a commit hash; the default is "main", or the only snapshot when
// refs/main is absent. moeforge never downloads.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace moeforge {

enum class HubKind { Model, Dataset };

// Whether `text` has the shape of a hub id ("name", "org/name", either with "@rev").
bool looks_like_hub_id(const std::string& text);

// The snapshot directory of `id` in the cache, or nullopt (not cached, or not an id).
std::optional<std::filesystem::path> find_in_hub_cache(const std::string& id, HubKind kind);

// `text` itself when it exists; else its cached snapshot when it is a cached hub id; else `text`
// unchanged (the caller's "no such directory" error then names it; see hub_cache_hint).
std::string resolve_hub_reference(const std::string& text, HubKind kind = HubKind::Model);

// For messages about a path that does not exist: "" when it cannot be a hub id, else
// " (nor a model/data set 'org/name' in the Hugging Face cache DIR; moeforge does not download:
// `hf download org/name` first)".
std::string hub_cache_hint(const std::string& text, HubKind kind = HubKind::Model);

// "org/name" when `path` lies in a cache snapshot (models--org--name/snapshots/...), else "".
std::string hub_id_of(const std::filesystem::path& path);

}  // namespace moeforge
