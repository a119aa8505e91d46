// Stable JSON rendering of a RecordingMetadata (shape documented in docs/metadata.md).
// Every key is always present (absent optionals are null), arrays keep document order, and
// every string is valid UTF-8 so dump() cannot throw on it. Pure function, any thread.
#pragma once

#include <nlohmann/json.hpp>

#include "metadata/recording_metadata.h"

namespace sgw::metadata {

nlohmann::json to_json(const RecordingMetadata& md);

}  // namespace sgw::metadata
