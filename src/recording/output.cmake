# recording output: audio file writer (libsndfile), channel layout, recording JSON.
# See docs/channel-layout.md and docs/recording-json.md.
# GLOBAL: the targets are used by consumers in other directories (tests, app) and by
# test/tools, which asks for the same pkg-config module.
if(NOT TARGET PkgConfig::SNDFILE)
  pkg_check_modules(SNDFILE REQUIRED IMPORTED_TARGET GLOBAL sndfile)
endif()
if(NOT TARGET OpenSSL::Crypto)
  find_package(OpenSSL REQUIRED)
  set_target_properties(OpenSSL::Crypto PROPERTIES IMPORTED_GLOBAL TRUE)
endif()
sgw_layer(recording_output
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/audio_writer.cc
    ${CMAKE_CURRENT_LIST_DIR}/channel_layout.cc
    ${CMAKE_CURRENT_LIST_DIR}/recording_json.cc
    ${CMAKE_CURRENT_LIST_DIR}/call_decision.cc
  DEPS sgw_common sgw_metadata PkgConfig::SNDFILE OpenSSL::Crypto nlohmann_json::nlohmann_json)
