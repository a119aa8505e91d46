sgw_test(spool_tests
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/spool_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/spool_writer_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/spool_syncer_test.cc
  DEPS sgw_spool)
