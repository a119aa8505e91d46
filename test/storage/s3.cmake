# s3: the SigV4 signer against AWS's published vectors (always), and the S3
# client against a real S3 server (Ceph radosgw from scripts/s3-server), which
# the s3_server_start/stop fixture starts once for all client tests unless the
# caller gives one in S3_ENDPOINT/S3_ACCESS_KEY/S3_SECRET_KEY. See docs/s3.md.
sgw_test(s3_tests SOURCES ${CMAKE_CURRENT_LIST_DIR}/sigv4_test.cc DEPS sgw_s3)
# AWS credential providers (offline: fake HTTP seam and a local httplib server).
sgw_test(aws_credentials_tests SOURCES ${CMAKE_CURRENT_LIST_DIR}/aws_credentials_test.cc
  DEPS sgw_s3 PkgConfig::HTTPLIB Threads::Threads)

add_executable(s3_client_tests ${CMAKE_CURRENT_LIST_DIR}/s3_client_test.cc)
target_link_libraries(s3_client_tests PRIVATE sgw_s3 PkgConfig::HTTPLIB Threads::Threads
  GTest::gtest_main sgw_warnings)
target_compile_definitions(s3_client_tests PRIVATE SGW_TEST_DATA_DIR="${CMAKE_CURRENT_LIST_DIR}/data")
set(SGW_S3_SERVER_DIR ${CMAKE_CURRENT_BINARY_DIR}/s3-server)
gtest_discover_tests(s3_client_tests DISCOVERY_TIMEOUT 60
  PROPERTIES FIXTURES_REQUIRED sgw_s3_server
             ENVIRONMENT SGW_S3_SERVER_DIR=${SGW_S3_SERVER_DIR}
             TIMEOUT 300)
add_test(NAME s3_server_start
  COMMAND sh -c "[ -n \"$S3_ENDPOINT\" ] || exec \"$0\" start \"$1\""
          ${PROJECT_SOURCE_DIR}/scripts/s3-server ${SGW_S3_SERVER_DIR})
set_tests_properties(s3_server_start PROPERTIES FIXTURES_SETUP sgw_s3_server TIMEOUT 240)
add_test(NAME s3_server_stop
  COMMAND sh -c "[ -n \"$S3_ENDPOINT\" ] || [ ! -d \"$1\" ] || exec \"$0\" stop \"$1\""
          ${PROJECT_SOURCE_DIR}/scripts/s3-server ${SGW_S3_SERVER_DIR})
set_tests_properties(s3_server_stop PROPERTIES FIXTURES_CLEANUP sgw_s3_server)
