# spool: append-only, checksummed recording spool (docs/spool.md)
sgw_layer(spool
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/spool_format.cc
    ${CMAKE_CURRENT_LIST_DIR}/spool_file_system.cc
    ${CMAKE_CURRENT_LIST_DIR}/spool_writer.cc
    ${CMAKE_CURRENT_LIST_DIR}/spool_reader.cc
    ${CMAKE_CURRENT_LIST_DIR}/spool_syncer.cc
    ${CMAKE_CURRENT_LIST_DIR}/spool_events.cc
  DEPS sgw_common PkgConfig::ISAL nlohmann_json::nlohmann_json)
