# partials: in-call segment shipping and orphan adoption (docs/failover.md)
sgw_layer(partials
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/partials.cc ${CMAKE_CURRENT_LIST_DIR}/segment_shipper.cc
          ${CMAKE_CURRENT_LIST_DIR}/orphan_recovery.cc
  DEPS sgw_delivery sgw_s3 sgw_spool sgw_common nlohmann_json::nlohmann_json)
