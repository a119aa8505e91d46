# Timeline: per-stream PCM tracks on the session clock (docs/timeline.md).
# Included from src/recording/CMakeLists.txt. The resampler is in-house
# (recording/timeline_resample.h), so no extra library is needed.
sgw_layer(timeline
  SOURCES timeline.cc timeline_resample.cc
  DEPS sgw_common sgw_media sgw_reorder sgw_codecs)
