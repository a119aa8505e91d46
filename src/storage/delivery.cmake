# delivery: the durable delivery queue, its catalogue (SQLite) and its sinks (docs/storage.md)
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
sgw_layer(delivery
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/delivery_entry.cc ${CMAKE_CURRENT_LIST_DIR}/delivery_queue.cc
          ${CMAKE_CURRENT_LIST_DIR}/catalogue.cc ${CMAKE_CURRENT_LIST_DIR}/webhook_event.cc
          ${CMAKE_CURRENT_LIST_DIR}/user_metadata.cc ${CMAKE_CURRENT_LIST_DIR}/s3_sink.cc
          ${CMAKE_CURRENT_LIST_DIR}/fallback_sink.cc
  DEPS sgw_s3 sgw_common nlohmann_json::nlohmann_json PkgConfig::SQLITE3)
